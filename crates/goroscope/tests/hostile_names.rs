//! Hostile names through every command (run as root): real processes whose names hold ESC
//! sequences (clear the screen, retitle the terminal), newlines and bytes that are not UTF-8,
//! opening files named the same way. Text output must print no control character (one event,
//! one line) and no U+FFFD (invalid bytes are escaped, not replaced); JSON must give back the
//! exact bytes.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use common::{testload_bin, unique_temp_path, Finished, Goroscope};
use goroscope_model::text::base64_decode;
use goroscope_model::{escape, unescape};
use serde_json::Value;

/// How long to let goroscope drain its buffers after the workload ended.
const SETTLE: Duration = Duration::from_millis(300);

/// A process name that retitles the terminal, clears the screen and breaks the line: 15
/// bytes, all of which the kernel keeps as the comm of a program with this file name.
const COMM: &str = "\x1b]0;pwn\x07\x1b[2J\nev";

/// A process name that is not UTF-8 (and clears the screen).
const BAD_COMM: &[u8] = b"bad\xff\x1b[2J\nname";

/// File names that forge an event line, drive the terminal, and are not UTF-8.
const FILE_NAMES: [&[u8]; 3] = [
    b"forged\n00:00:00.000000 open        1       1 init             etc-shadow O_RDONLY -> fd 3",
    b"esc\x1b[2J\x1b]0;title\x07\x9b",
    b"bad\xff\xfe.utf8",
];

/// A scratch directory, removed with everything in it when dropped.
struct Scratch(PathBuf);

impl Scratch {
    #[track_caller]
    fn new(label: &str) -> Scratch {
        let dir = unique_temp_path(label);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Scratch(dir)
    }

    /// `name` in the directory.
    fn path(&self, name: &[u8]) -> PathBuf {
        self.0.join(OsStr::from_bytes(name))
    }

    /// A copy of testload named `name`.
    #[track_caller]
    fn testload_named(&self, name: &[u8]) -> PathBuf {
        let exe = self.path(name);
        std::fs::copy(testload_bin(), &exe).unwrap_or_else(|e| panic!("copy testload: {e}"));
        exe
    }

    /// A small file named `name`.
    #[track_caller]
    fn file(&self, name: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, b"x\n").unwrap_or_else(|e| panic!("create {path:?}: {e}"));
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// Text safe for a terminal: no control character but line ends, and no U+FFFD (a byte
/// that is not UTF-8 must be escaped, not replaced).
#[track_caller]
fn assert_safe(what: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{fffd}'),
            "{what} line {} holds a control character or U+FFFD: {line:?}",
            n + 1
        );
    }
}

/// The exact bytes of JSON field `name`: its `_base64` twin when present, else its text
/// (which must then not hold U+FFFD).
#[track_caller]
fn exact(v: &Value, name: &str) -> Vec<u8> {
    if let Some(b64) = v.get(format!("{name}_base64")) {
        let b64 = b64
            .as_str()
            .unwrap_or_else(|| panic!("{name}_base64 is text: {v}"));
        return base64_decode(b64).unwrap_or_else(|| panic!("{name}_base64 is base64: {v}"));
    }
    let text = v[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is text: {v}"));
    assert!(
        !text.contains('\u{fffd}'),
        "{name} lost bytes without a twin: {v}"
    );
    text.as_bytes().to_vec()
}

/// The exact bytes of every exec argument.
#[track_caller]
fn exact_args(v: &Value) -> Vec<Vec<u8>> {
    if let Some(list) = v.get("args_base64").and_then(Value::as_array) {
        return list
            .iter()
            .map(|a| base64_decode(a.as_str().unwrap_or_default()).expect("base64 args"))
            .collect();
    }
    let list = v["args"].as_array().unwrap_or_else(|| panic!("args: {v}"));
    list.iter()
        .map(|a| a.as_str().expect("args are text").as_bytes().to_vec())
        .collect()
}

#[track_caller]
fn stop(tracer: Goroscope) -> Finished {
    let run = tracer.stop();
    run.assert_code(0);
    run.assert_nothing_lost();
    run
}

#[test]
fn trace_prints_hostile_names_escaped_one_event_per_line_and_exact_in_json() {
    let dir = Scratch::new("hostile-trace");
    let exe = dir.testload_named(COMM.as_bytes());
    let files: Vec<PathBuf> = FILE_NAMES.iter().map(|name| dir.file(name)).collect();

    let args = [
        "trace",
        "--events",
        "exec,open,exit",
        "--args",
        "--comm",
        COMM,
    ];
    let text = Goroscope::start(&[&args[..], &["--format", "text"]].concat());
    let json = Goroscope::start(&[&args[..], &["--format", "json"]].concat());
    let mut pids = Vec::new();
    for file in &files {
        let mut child = Command::new(&exe)
            .arg("open")
            .arg(file)
            .arg("3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the hostile-named testload");
        pids.push(child.id());
        assert!(child.wait().expect("wait").success());
    }
    sleep(SETTLE);
    let text = stop(text);
    let json = stop(json);

    assert_safe("trace text stdout", &text.stdout);
    assert_safe("trace text stderr", &text.stderr);
    let events = json.json_lines();
    let lines: Vec<&str> = text.stdout.lines().collect();
    // Both tracers saw the same events (only these processes have this name): a forged line
    // would be one line too many.
    assert_eq!(
        lines.len(),
        events.len(),
        "one text line per event\ntext:\n{}\njson:\n{}",
        text.stdout,
        json.stdout
    );
    for (pid, file) in pids.iter().zip(&files) {
        let mine: Vec<&Value> = events.iter().filter(|e| e["pid"] == *pid).collect();
        assert!(
            !mine.is_empty(),
            "no event from pid {pid}:\n{}",
            json.stdout
        );
        for e in &mine {
            assert_eq!(exact(e, "comm"), COMM.as_bytes(), "{e}");
        }
        let execs: Vec<&&Value> = mine.iter().filter(|e| e["event"] == "exec").collect();
        assert_eq!(execs.len(), 1, "{mine:?}");
        assert_eq!(exact(execs[0], "filename"), bytes(&exe), "{}", execs[0]);
        let expected_args = vec![
            bytes(&exe).to_vec(),
            b"open".to_vec(),
            bytes(file).to_vec(),
            b"3".to_vec(),
        ];
        assert_eq!(exact_args(execs[0]), expected_args, "{}", execs[0]);
        let opens = mine
            .iter()
            .filter(|e| e["event"] == "open" && exact(e, "path") == bytes(file))
            .count();
        assert_eq!(opens, 3, "opens of {file:?} by {pid}: {mine:?}");
        assert_eq!(
            mine.iter().filter(|e| e["event"] == "exit").count(),
            1,
            "{mine:?}"
        );

        // The text names the same bytes, escaped: each open line holds the escaped path,
        // which unescapes to the file's exact name.
        let shown = escape(bytes(file));
        let open_lines: Vec<&&str> = lines
            .iter()
            .filter(|l| {
                let mut words = l.split_whitespace().skip(1);
                words.next() == Some("open") && words.next() == Some(&pid.to_string())
            })
            .filter(|l| l.contains(shown.as_ref()))
            .collect();
        assert_eq!(
            open_lines.len(),
            3,
            "text lines naming {shown}:\n{}",
            text.stdout
        );
        assert_eq!(unescape(&shown).as_deref(), Some(bytes(file)));
        assert!(
            open_lines
                .iter()
                .all(|l| l.contains(escape(COMM.as_bytes()).as_ref())),
            "{open_lines:?}"
        );
    }
}

/// Starts `exe --wait-stdin ARGS` and returns it with its pid announced.
fn spawn_waiting(exe: &Path, args: &[&str]) -> std::process::Child {
    let mut child = Command::new(exe)
        .arg("--wait-stdin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the hostile-named testload");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("testload prints its pid");
    assert_eq!(line.trim(), child.id().to_string());
    child
}

fn go(child: &mut std::process::Child) {
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(b"go\n").expect("release testload");
}

#[test]
fn syscalls_prints_hostile_process_names_escaped_and_exact_in_json() {
    let dir = Scratch::new("hostile-syscalls");
    for name in [COMM.as_bytes(), BAD_COMM] {
        let exe = dir.testload_named(name);
        let comm = &name[..name.len().min(15)];
        let mut runs = Vec::new();
        for format in ["text", "json"] {
            let mut child = spawn_waiting(&exe, &["getppid", "500"]);
            let pid = child.id().to_string();
            let tracer = Goroscope::start(&["syscalls", "--pid", &pid, "--format", format]);
            go(&mut child);
            assert!(child.wait().expect("wait").success());
            sleep(SETTLE);
            runs.push((pid, stop(tracer)));
        }
        let (pid, text) = &runs[0];
        assert_safe("syscalls text stdout", &text.stdout);
        assert_safe("syscalls text stderr", &text.stderr);
        let row = text
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(pid) && l.contains("getppid"))
            .unwrap_or_else(|| panic!("no getppid row for {pid}:\n{}", text.stdout));
        assert!(row.contains(escape(comm).as_ref()), "{row}");

        let (pid, json) = &runs[1];
        let rows = json.json_array();
        let row = rows
            .iter()
            .find(|r| {
                r["pid"].as_u64().map(|p| p.to_string()).as_ref() == Some(pid)
                    && r["syscall"] == "getppid"
            })
            .unwrap_or_else(|| panic!("no getppid row for {pid}:\n{}", json.stdout));
        assert_eq!(exact(row, "comm"), comm, "{row}");
        assert!(row["count"].as_u64() >= Some(500), "{row}");
    }
}

/// The directory Go source is copied into: Go accepts ESC, BEL and C1 controls in it (not a
/// newline or bytes that are not UTF-8), and keeps it in every file name of the binary.
const SOURCE_DIR: &str = "src\x1b[2J\x07\u{9b}";

/// Builds testdata/go/leaky from a copy in `SOURCE_DIR` under `dir`, into `exe`, with the
/// machine's own Go.
#[track_caller]
fn build_leaky_from_hostile_dir(dir: &Scratch, exe: &Path) {
    let src = dir.path(SOURCE_DIR.as_bytes());
    std::fs::create_dir(&src).expect("mkdir the hostile source dir");
    let program = gotest::program_dir("leaky");
    for entry in std::fs::read_dir(&program).expect("read testdata/go/leaky") {
        let entry = entry.expect("a directory entry");
        std::fs::copy(entry.path(), src.join(entry.file_name())).expect("copy the source");
    }
    let go = ["/usr/local/go/bin/go", "/usr/bin/go"]
        .into_iter()
        .find(|go| Path::new(go).exists())
        .unwrap_or("go");
    let output = Command::new(go)
        .current_dir(&src)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-buildvcs=false")
        .env("CGO_ENABLED", "0")
        .arg("build")
        .arg("-o")
        .arg(exe)
        .arg(".")
        .output()
        .expect("run go build");
    assert!(
        output.status.success(),
        "go build in a hostile directory: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn goroutines_and_errors_print_hostile_executable_names_escaped() {
    let dir = Scratch::new("hostile-goroutines");
    let name: &[u8] = b"leaky\x1b]0;pwn\x07\x1b[2J\n\xff";
    let exe = dir.path(name);
    build_leaky_from_hostile_dir(&dir, &exe);
    let running = gotest::Running::start(&exe, &[]);
    let pid = running.pid().to_string();
    // Every file name in the report sits in the hostile directory.
    let shown_dir = format!("{}/main.go", escape(SOURCE_DIR.as_bytes()));
    for format in ["text", "json"] {
        let args = [
            "goroutines",
            "--pid",
            &pid,
            "--duration",
            "1500ms",
            "--format",
            format,
        ];
        let run = common::run_goroscope(&args, Duration::from_secs(60));
        run.assert_code(0);
        assert_safe("goroutines stderr", &run.stderr);
        if format == "text" {
            assert_safe("goroutines text", &run.stdout);
            assert!(run.stdout.contains("LEAK SUSPECTS"), "{}", run.stdout);
            assert!(
                run.stdout.contains(&shown_dir),
                "file names escaped as {shown_dir}:\n{}",
                run.stdout
            );
        } else {
            let report: Value = serde_json::from_str(&run.stdout).expect("one JSON object");
            assert_eq!(exact(&report, "executable"), bytes(&exe), "{report}");
            let file = report["groups"][0]["creation"]["file"]
                .as_str()
                .unwrap_or_else(|| panic!("a creation file: {report}"));
            assert!(
                file.contains(&format!("/{SOURCE_DIR}/")),
                "JSON keeps the exact file name: {file:?}"
            );
        }
    }

    // A program that is not Go, under a hostile name: the error names it, escaped.
    let not_go = dir.testload_named(b"notgo\x1b[2J\nforged: line\xfe");
    let mut child = spawn_waiting(&not_go, &["sleep", "10000"]);
    let pid = child.id().to_string();
    let run = common::run_goroscope(
        &["goroutines", "--pid", &pid, "--duration", "300ms"],
        Duration::from_secs(60),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(run.status.code(), Some(0), "{}", run.stderr);
    assert_safe("goroutines error", &run.stderr);
    assert!(
        run.stderr.contains("notgo\\e[2J\\nforged: line\\xfe"),
        "the error names the file, escaped: {}",
        run.stderr
    );
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("goroscope"))
            .count(),
        1,
        "{}",
        run.stderr
    );
}

mod agent_support;

/// A name's label value as the Prometheus text format writes it: the name as text (bytes
/// that are not UTF-8 become U+FFFD, as label values must be UTF-8), with `\`, `"` and
/// newline escaped by the format's own rule.
fn label_value(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[test]
fn the_agent_exports_hostile_process_names_as_valid_label_values() {
    use agent_support::{promtool_check, sample, Agent};

    let names: [&[u8]; 2] = [b"q\"b\\\x1b[2J\nz", BAD_COMM];
    let dir = Scratch::new("hostile-agent");
    let agent =
        Agent::start("listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n");
    for name in names {
        let exe = dir.testload_named(name);
        let status = Command::new(&exe)
            .env_clear()
            .args(["getppid", "100"])
            .status()
            .expect("run the hostile-named testload");
        assert!(status.success());
    }
    sleep(Duration::from_millis(2500));
    let text = agent.scrape();
    let (ok, said) = promtool_check(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics complained:\n{said}"
    );
    for name in names {
        let comm = label_value(&name[..name.len().min(15)]);
        let count = sample(
            &text,
            "goroscope_syscalls_total",
            &[("comm", &comm), ("syscall", "getppid")],
        );
        assert!(
            count >= Some(100.0),
            "getppid of {comm:?}: {count:?}\n{}",
            text.lines()
                .filter(|l| l.contains("getppid"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
