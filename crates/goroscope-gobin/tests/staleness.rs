//! Staleness is a red build: every Go release line the Go module proxy lists as released (the
//! versions of the `golang.org/toolchain` module, e.g. `v0.0.1-go1.27.4.linux-amd64`; release
//! candidates and betas ignored) must have a line in the built-in offset tables and a toolchain in
//! `gotest::TOOLCHAINS`. The list comes from `go list -m -versions golang.org/toolchain` (the
//! machine's Go), or from the proxy over HTTPS with curl; when neither answers, the test fails:
//! it never skips, or a stale build would pass unnoticed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use goroscope_gobin::offsets::table_lines;
use goroscope_gobin::GoVersion;

const PROXY_LIST: &str = "https://proxy.golang.org/golang.org/toolchain/@v/list";

/// The versions of `golang.org/toolchain`, or why they could not be listed.
fn toolchain_versions() -> Result<Vec<String>, String> {
    let go = ["/usr/local/go/bin/go", "/usr/bin/go"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("go");
    let scratch = std::env::temp_dir();
    let listed = Command::new(go)
        .args(["list", "-m", "-versions", "golang.org/toolchain"])
        .current_dir(&scratch)
        .env("GOTOOLCHAIN", "local")
        .output();
    let go_error = match listed {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout);
            let versions: Vec<String> = text
                .split_whitespace()
                .skip(1) // the module path
                .map(str::to_string)
                .collect();
            if !versions.is_empty() {
                return Ok(versions);
            }
            "it listed no version".to_string()
        }
        Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_string(),
        Err(error) => error.to_string(),
    };
    let fetched = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "60",
            PROXY_LIST,
        ])
        .output();
    let curl_error = match fetched {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout);
            let versions: Vec<String> = text.lines().map(str::to_string).collect();
            if !versions.is_empty() {
                return Ok(versions);
            }
            "the list is empty".to_string()
        }
        Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_string(),
        Err(error) => error.to_string(),
    };
    Err(format!(
        "`{go} list -m -versions golang.org/toolchain` failed ({go_error}) and `curl {PROXY_LIST}` \
         failed ({curl_error})"
    ))
}

/// The release line of a `golang.org/toolchain` version (`v0.0.1-go1.27.4.linux-amd64` →
/// `(1, 27)`); `None` for pre-releases and anything unexpected.
fn released_line(version: &str) -> Option<(u32, u32)> {
    let go = version.strip_prefix("v0.0.1-")?;
    let (release, _platform) = go.split_once(".linux-").or_else(|| go.rsplit_once('.'))?;
    let parsed = GoVersion::parse(release)?;
    parsed.suffix.is_empty().then_some(parsed.line())
}

#[test]
fn released_lines_parse_and_prereleases_do_not() {
    assert_eq!(released_line("v0.0.1-go1.27.4.linux-amd64"), Some((1, 27)));
    assert_eq!(released_line("v0.0.1-go1.21.0.darwin-arm64"), Some((1, 21)));
    assert_eq!(released_line("v0.0.1-go1.28rc1.linux-amd64"), None);
    assert_eq!(released_line("v0.0.1-go1.22beta2.windows-386"), None);
    assert_eq!(released_line("v0.0.1"), None);
}

#[test]
fn every_released_go_line_has_offsets_and_a_test_toolchain() {
    let versions = toolchain_versions().unwrap_or_else(|reason| {
        panic!(
            "cannot list the released Go toolchains from the Go module proxy: {reason}. This test \
             needs the proxy (or GOPROXY pointing at a mirror) and fails rather than skip, so a \
             Go release newer than goroscope's offset tables never goes unnoticed"
        )
    });
    let oldest = table_lines().first().copied().unwrap_or((1, 19));
    let released: BTreeSet<(u32, u32)> = versions
        .iter()
        .filter_map(|version| released_line(version))
        .filter(|line| *line >= oldest)
        .collect();
    assert!(
        released.contains(&(1, 27)),
        "the proxy's list looks wrong (no go1.27): {versions:?}"
    );
    let tested: BTreeSet<(u32, u32)> = gotest::TOOLCHAINS
        .iter()
        .filter_map(|toolchain| GoVersion::parse(toolchain.version).map(|v| v.line()))
        .collect();
    let uncovered: Vec<String> = released
        .iter()
        .filter(|line| !table_lines().contains(line) || !tested.contains(line))
        .map(|(major, minor)| {
            let mut missing = Vec::new();
            if !table_lines().contains(&(*major, *minor)) {
                missing.push("no offset table line");
            }
            if !tested.contains(&(*major, *minor)) {
                missing.push("no toolchain in gotest::TOOLCHAINS");
            }
            format!("go{major}.{minor} ({})", missing.join(", "))
        })
        .collect();
    assert!(
        uncovered.is_empty(),
        "Go has released {} that goroscope does not cover: add the newest point release of each \
         to TOOLCHAINS in scripts/gen-go-offsets.sh, crates/gotest/src/lib.rs and \
         scripts/go-toolchains.sh, then run scripts/gen-go-offsets.sh (stripped binaries of these \
         releases are read with offsets inferred from their code until then)",
        uncovered.join(", ")
    );
}
