//! The pprof output read by the real `go tool pprof`: a small, fully symbolized CPU profile
//! (inlined lines, two mappings with build ids, string and numeric labels, 30ms against 10ms
//! in two leaf functions) written to a temporary file and reported with `-top`, `-tags`,
//! `-traces` and `-raw`, with nothing printed on stderr.
//!
//! Needs Go (`go` on PATH or /usr/local/go/bin/go); without it the test fails and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use goroscope_export::pprof;
use goroscope_model::profile::{Label, Line, Location, Mapping, Profile, ProfileKind, Sample};

/// Ten milliseconds, in nanoseconds.
const MS_10: i64 = 10_000_000;

/// The `go` command: from PATH, else Go's default install.
#[track_caller]
fn go_command() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("go"))
            .find(|candidate| candidate.is_file())
    });
    let installed = Path::new("/usr/local/go/bin/go");
    match on_path {
        Some(go) => go,
        None if installed.is_file() => installed.to_path_buf(),
        None => panic!(
            "this test runs `go tool pprof` and needs Go: install it (https://go.dev/dl/) \
             so that `go` is on PATH or at /usr/local/go/bin/go"
        ),
    }
}

/// A fresh directory for this test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    #[track_caller]
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "goroscope-pprof-go-tool-{}-{nanos}",
            std::process::id()
        ));
        if let Err(error) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {error}", dir.display());
        }
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn line(function: &str, file: &str, line: u32, start_line: u32) -> Line {
    Line {
        function: function.to_string(),
        file: file.to_string(),
        line,
        start_line,
    }
}

/// A CPU profile: `main.parse` (inlined into `main.handle`) holds 30ms in three samples,
/// libc's `__libc_write` 10ms in one; labels `tenant` (alpha 3 samples, beta 1) and `goid`.
fn profile() -> Profile {
    let mut profile = Profile::new(ProfileKind::Cpu);
    profile.period = MS_10;
    profile.time_ns = 1_700_000_000_000_000_000;
    profile.duration_ns = 1_000_000_000;
    let symbolized = |start, limit, offset, file: &str, build_id: &str| Mapping {
        start,
        limit,
        offset,
        file: file.to_string(),
        build_id: build_id.to_string(),
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
    };
    profile.mappings = vec![
        symbolized(0x40_0000, 0x80_0000, 0, "/srv/app/server", "4c1f9a2e0b7d"),
        symbolized(
            0x7f3a_0000_0000,
            0x7f3a_0019_0000,
            0x28000,
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "e7b3c0ffee11",
        ),
    ];
    let at = |address, mapping, lines| Location {
        address,
        mapping: Some(mapping),
        lines,
    };
    profile.locations = vec![
        at(
            0x40_1200,
            0,
            vec![
                line("main.parse", "/src/app/parse.go", 12, 10),
                line("main.handle", "/src/app/server.go", 40, 30),
            ],
        ),
        at(
            0x40_2340,
            0,
            vec![line("main.serve", "/src/app/server.go", 80, 70)],
        ),
        at(
            0x40_3000,
            0,
            vec![line("main.main", "/src/app/main.go", 10, 5)],
        ),
        at(
            0x7f3a_0001_2340,
            1,
            vec![line(
                "__libc_write",
                "../sysdeps/unix/sysv/linux/write.c",
                26,
                24,
            )],
        ),
        at(
            0x40_4000,
            0,
            vec![line("main.flush", "/src/app/server.go", 95, 90)],
        ),
    ];
    let sample = |locations: &[usize], samples: i64, tenant: &str, goid: i64| Sample {
        locations: locations.to_vec(),
        values: vec![samples, samples * MS_10],
        labels: vec![Label::text("tenant", tenant), Label::number("goid", goid)],
    };
    profile.samples = vec![
        sample(&[0, 1, 2], 2, "alpha", 17),
        sample(&[0, 1, 2], 1, "beta", 18),
        sample(&[3, 4, 1, 2], 1, "alpha", 17),
    ];
    profile
}

/// `go tool pprof <args> <profile>`'s stdout, failing on a non-zero exit or any stderr.
#[track_caller]
fn go_tool_pprof(dir: &Path, profile: &Path, args: &[&str]) -> String {
    let go = go_command();
    let mut command = Command::new(&go);
    command
        .args(["tool", "pprof"])
        .args(args)
        .arg(profile)
        .current_dir(dir)
        // No go.mod here, no toolchain switch, no module proxy: nothing is downloaded.
        // (pprof itself is built from GOROOT on first use, into the usual build cache.)
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        // pprof looks for binaries only here (empty), and writes nothing elsewhere.
        .env("PPROF_BINARY_PATH", dir)
        .env("PPROF_TMPDIR", dir);
    if std::env::var_os("HOME").is_none() {
        command.env("HOME", dir);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(error) => panic!("cannot run {}: {error}", go.display()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "go tool pprof {args:?} failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    assert_eq!(stderr, "", "go tool pprof {args:?} printed on stderr");
    stdout
}

/// The lines of `text` with their whitespace collapsed to single spaces.
fn normalized_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Fails unless `text` has `expected` as consecutive lines (whitespace collapsed).
#[track_caller]
fn assert_lines(what: &str, text: &str, expected: &[&str]) {
    let lines = normalized_lines(text);
    let found = lines
        .windows(expected.len())
        .any(|window| window.iter().zip(expected).all(|(line, want)| line == want));
    assert!(
        found,
        "{what}: expected the lines {expected:#?} in:\n{text}"
    );
}

#[test]
fn go_tool_pprof_reads_the_profile_without_complaint() {
    let dir = TempDir::new();
    let path = dir.0.join("cpu.pb.gz");
    if let Err(error) = std::fs::write(&path, pprof(&profile())) {
        panic!("cannot write {}: {error}", path.display());
    }

    // -top: the default sample type (cpu) is used; the 3:1 split shows as 75% / 25%, the
    // inlined frame is marked, and callers have cum only.
    let top = go_tool_pprof(&dir.0, &path, &["-top"]);
    assert_lines("-top", &top, &["Build ID: 4c1f9a2e0b7d", "Type: cpu"]);
    assert_lines(
        "-top",
        &top,
        &[
            "Showing nodes accounting for 40ms, 100% of 40ms total",
            "flat flat% sum% cum cum%",
            "30ms 75.00% 75.00% 30ms 75.00% main.parse (inline)",
            "10ms 25.00% 100% 10ms 25.00% __libc_write",
        ],
    );
    assert_lines("-top", &top, &["0 0% 100% 30ms 75.00% main.handle"]);
    assert_lines("-top", &top, &["0 0% 100% 40ms 100% main.main"]);

    // -tags over sample counts: both label kinds, with their counts.
    let tags = go_tool_pprof(&dir.0, &path, &["-tags", "-sample_index=samples"]);
    assert_lines(
        "-tags",
        &tags,
        &[
            "goid: Total 4 of 4 ( 100%)",
            "3 (75.00%): 17",
            "1 (25.00%): 18",
        ],
    );
    assert_lines(
        "-tags",
        &tags,
        &[
            "tenant: Total 4 of 4 ( 100%)",
            "3 (75.00%): alpha",
            "1 (25.00%): beta",
        ],
    );

    // -traces: each sample's labels and its stack, leaf first, inlined frame expanded.
    let traces = go_tool_pprof(&dir.0, &path, &["-traces"]);
    assert_lines(
        "-traces",
        &traces,
        &[
            "tenant: alpha",
            "goid: 17",
            "20ms main.parse (inline)",
            "main.handle",
            "main.serve",
            "main.main",
        ],
    );
    assert_lines(
        "-traces",
        &traces,
        &[
            "tenant: alpha",
            "goid: 17",
            "10ms __libc_write",
            "main.flush",
            "main.serve",
            "main.main",
        ],
    );

    // -raw: ids, values, lines with start lines, and both mappings fully symbolized.
    let raw = go_tool_pprof(&dir.0, &path, &["-raw"]);
    assert_lines(
        "-raw",
        &raw,
        &["PeriodType: cpu nanoseconds", "Period: 10000000"],
    );
    assert_lines(
        "-raw",
        &raw,
        &[
            "samples/count cpu/nanoseconds[dflt]",
            "2 20000000: 1 2 3",
            "tenant:[alpha]",
            "goid:[17]",
            "1 10000000: 1 2 3",
            "tenant:[beta]",
            "goid:[18]",
            "1 10000000: 4 5 2 3",
        ],
    );
    assert_lines(
        "-raw",
        &raw,
        &[
            "1: 0x401200 M=1 main.parse /src/app/parse.go:12:0 s=10",
            "main.handle /src/app/server.go:40:0 s=30",
        ],
    );
    assert_lines(
        "-raw",
        &raw,
        &["4: 0x7f3a00012340 M=2 __libc_write ../sysdeps/unix/sysv/linux/write.c:26:0 s=24"],
    );
    assert_lines(
        "-raw",
        &raw,
        &[
            "Mappings",
            "1: 0x400000/0x800000/0x0 /srv/app/server 4c1f9a2e0b7d [FN][FL][LN][IN]",
            "2: 0x7f3a00000000/0x7f3a00190000/0x28000 /usr/lib/x86_64-linux-gnu/libc.so.6 \
             e7b3c0ffee11 [FN][FL][LN][IN]",
        ],
    );
}
