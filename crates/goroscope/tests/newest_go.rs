//! The newest Go, stripped (`-ldflags="-s -w"`, the usual production build) in every build mode:
//! `goroscope goroutines` reads it with its own offset table line, and again with that line hidden
//! (`GOROSCOPE_TEST_HIDE_OFFSET_TABLE`, test-only), as a release newer than goroscope's tables,
//! whose layout is then inferred from the binary's runtime code. Both runs must find the planted
//! chan-send leak group exactly: where it was created, how many, why and where it blocks.

use std::process::{Command, Output};

use gotest::{BuildMode, HIDE_OFFSET_TABLE_ENV, NEWEST_TOOLCHAIN};
use serde_json::Value;

/// The chan-send group planted by testdata/go/leaky.
const CHAN_SEND_COUNT: u64 = 37;

/// Runs `goroscope goroutines` on `pid` for 1.5 s, hiding `hide` table lines if given.
#[track_caller]
fn report(pid: u32, hide: Option<&str>) -> (Output, Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_goroscope"));
    command
        .args(["goroutines", "--pid", &pid.to_string(), "--format", "json"])
        .args(["--duration", "1500ms", "--interval", "100ms"])
        .env_remove(HIDE_OFFSET_TABLE_ENV);
    if let Some(lines) = hide {
        command.env(HIDE_OFFSET_TABLE_ENV, lines);
    }
    let output = command.output().expect("run goroscope");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "goroscope printed no JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, value)
}

/// Checks one report: the Go version, where the offsets came from, and the chan-send group.
#[track_caller]
fn check(what: &str, output: &Output, report: &Value, source: impl Fn(&str) -> bool) {
    assert!(
        output.status.success(),
        "{what}: goroscope failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["go_version"], NEWEST_TOOLCHAIN.version, "{what}");
    let offsets_source = report["offsets_source"].as_str().unwrap_or("");
    assert!(
        source(offsets_source),
        "{what}: offsets_source {offsets_source:?}"
    );
    assert_eq!(
        report["globals_source"], "decoded from runtime functions",
        "{what}: a stripped binary has no symbol table"
    );
    let create_line = gotest::marked_lines("leaky", "main.go", "goroscope:create chan-send")[0];
    let block_line = gotest::marked_lines("leaky", "main.go", "goroscope:block chan-send")[0];
    let groups = report["groups"].as_array().cloned().unwrap_or_default();
    let group = groups
        .iter()
        .find(|g| {
            g["creation"]["line"] == create_line
                && g["creation"]["file"]
                    .as_str()
                    .is_some_and(|file| file.ends_with("leaky/main.go"))
        })
        .unwrap_or_else(|| {
            panic!(
                "{what}: no group created at leaky/main.go:{create_line}; groups: {}",
                serde_json::to_string_pretty(&groups).unwrap_or_default()
            )
        });
    assert_eq!(group["count"], CHAN_SEND_COUNT, "{what}: {group}");
    assert_eq!(group["wait_reason"], "chan send", "{what}: {group}");
    assert_eq!(
        group["start_function"], "main.leakChanSend",
        "{what}: {group}"
    );
    assert_eq!(group["blocked_at"]["line"], block_line, "{what}: {group}");
    assert_eq!(
        group["blocked_at"]["function"], "main.leakChanSend",
        "{what}: {group}"
    );
}

/// The stripped `mode` build of leaky by the newest toolchain, read with its table line and then
/// with that line hidden.
#[track_caller]
fn read_with_table_and_inferred(mode: BuildMode) {
    let binary = gotest::build_stripped("leaky", NEWEST_TOOLCHAIN, mode);
    let leaky = gotest::Running::start(&binary, &[]);
    let line = NEWEST_TOOLCHAIN.line();
    let what = format!("{} {} stripped", NEWEST_TOOLCHAIN.version, mode.name());

    let (output, with_table) = report(leaky.pid(), None);
    let table = format!("table go{line}");
    check(&format!("{what}, table"), &output, &with_table, |source| {
        source == table
    });

    let (output, inferred) = report(leaky.pid(), Some(&line));
    check(
        &format!("{what}, go{line} hidden"),
        &output,
        &inferred,
        |source| source.starts_with("inferred"),
    );
    let warnings = inferred["warnings"].to_string();
    assert!(
        warnings.contains(HIDE_OFFSET_TABLE_ENV) && warnings.contains("inferred"),
        "{what}: the report says the tables were hidden and the layout inferred: {warnings}"
    );
}

macro_rules! every_mode {
    ($($name:ident => $mode:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            read_with_table_and_inferred($mode);
        }
    )*};
}

every_mode! {
    stripped_default_build_reads_with_table_and_inferred_layout => BuildMode::Default,
    stripped_build_reads_with_table_and_inferred_layout => BuildMode::Stripped,
    stripped_pie_reads_with_table_and_inferred_layout => BuildMode::Pie,
    stripped_static_build_reads_with_table_and_inferred_layout => BuildMode::Static,
    stripped_cgo_build_reads_with_table_and_inferred_layout => BuildMode::Cgo,
}

#[test]
fn every_build_mode_is_covered() {
    assert_eq!(
        gotest::BUILD_MODES.len(),
        5,
        "add a test above for the new mode"
    );
}
