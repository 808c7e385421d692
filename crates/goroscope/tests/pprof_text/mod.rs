//! Reading profiles the way users read them: `go tool pprof` (the machine's `go`, with
//! `GOTOOLCHAIN=local GOPROXY=off`) run on a profile file or URL, and its text parsed — `-top`
//! rows, `-tags` values, the `Duration:` header. Also what the profile tests run: small C and Go
//! programs built by the test, started and held until they print `ready`, and a goroscope
//! profile waited on until it samples.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{unique_temp_path, Goroscope};

/// How long a program built by a test may take to say `ready`, and goroscope to start sampling.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The end of the line `goroscope profile` prints once sampling has begun.
pub const PROFILING: &str = "Ctrl-C to stop";

/// What one `go tool pprof` run printed.
#[derive(Debug)]
pub struct PprofOutput {
    /// Its report.
    pub stdout: String,
    /// Its chatter (fetching, saving).
    pub stderr: String,
}

/// Runs `go tool pprof ARGS` with downloads saved under `save_dir` (PPROF_TMPDIR); panics with
/// what it said unless it succeeds.
#[track_caller]
pub fn go_tool_pprof_saving(args: &[&str], save_dir: &Path) -> PprofOutput {
    let run = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("PPROF_TMPDIR", save_dir)
        .stdin(Stdio::null())
        .output();
    let output = match run {
        Ok(output) => output,
        Err(e) => panic!("cannot run `go tool pprof` ({e}): the profile tests need Go on PATH"),
    };
    let result = PprofOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    if !output.status.success() {
        panic!(
            "`go tool pprof {}` failed ({}):\n{}\n{}",
            args.join(" "),
            output.status,
            result.stderr,
            result.stdout
        );
    }
    result
}

/// Runs `go tool pprof ARGS` on a local file; its report.
#[track_caller]
pub fn go_tool_pprof(args: &[&str]) -> String {
    go_tool_pprof_saving(args, &std::env::temp_dir()).stdout
}

/// A value as pprof prints it (`1802.72ms`, `2.02s`, `69s`, `17`), in milliseconds when it
/// carries a time unit, as is otherwise; None when it is not a number.
pub fn parse_value(text: &str) -> Option<f64> {
    const UNITS: &[(&str, f64)] = &[
        ("hrs", 3_600_000.0),
        ("min", 60_000.0),
        ("ms", 1.0),
        ("us", 1e-3),
        ("µs", 1e-3),
        ("ns", 1e-6),
        ("s", 1000.0),
    ];
    for &(unit, factor) in UNITS {
        if let Some(number) = text.strip_suffix(unit) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse().ok()
}

/// One row of `-top`.
#[derive(Debug, Clone)]
pub struct TopRow {
    /// Its own value (ms for times).
    pub flat: f64,
    /// Its value with everything it calls (ms for times).
    pub cum: f64,
    /// The function (or root frame), words joined by one space.
    pub name: String,
}

/// A `-top` report.
#[derive(Debug)]
pub struct Top {
    /// Its rows.
    pub rows: Vec<TopRow>,
    /// The whole text, for messages.
    pub text: String,
}

impl Top {
    /// Parses a `-top` report.
    pub fn parse(text: &str) -> Top {
        let rows = text
            .lines()
            .filter_map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.len() < 6 || !words[1].ends_with('%') || !words[4].ends_with('%') {
                    return None;
                }
                Some(TopRow {
                    flat: parse_value(words[0])?,
                    cum: parse_value(words[3])?,
                    name: words[5..].join(" "),
                })
            })
            .collect();
        Top {
            rows,
            text: text.to_owned(),
        }
    }

    /// The row of `name`, if shown.
    pub fn row(&self, name: &str) -> Option<&TopRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The cumulative value of `name`; panics when it is not shown.
    #[track_caller]
    pub fn cum(&self, name: &str) -> f64 {
        match self.row(name) {
            Some(row) => row.cum,
            None => panic!("no `{name}` row in the profile:\n{}", self.text),
        }
    }

    /// The `Duration:` of the profile's header, in ms.
    #[track_caller]
    pub fn duration_ms(&self) -> f64 {
        header_duration_ms(&self.text)
    }
}

/// `go tool pprof -top -unit=ms EXTRA... PROFILE`.
#[track_caller]
pub fn top(profile: &Path, extra: &[&str]) -> Top {
    let path = profile.to_str().expect("a UTF-8 temp path");
    let mut args = vec!["-top", "-unit=ms", "-nodefraction=0", "-nodecount=100000"];
    args.extend_from_slice(extra);
    args.push(path);
    Top::parse(&go_tool_pprof(&args))
}

/// The `Duration: 3.01s, ...` of a report's header, in ms.
#[track_caller]
pub fn header_duration_ms(text: &str) -> f64 {
    let duration = text
        .lines()
        .find_map(|l| l.strip_prefix("Duration: "))
        .and_then(|rest| parse_value(rest.split(',').next().unwrap_or(rest).trim()));
    match duration {
        Some(ms) => ms,
        None => panic!("no `Duration:` header in:\n{text}"),
    }
}

/// A `-tags` report: for each key, each value's weight (ms for times) and text.
#[derive(Debug)]
pub struct Tags {
    /// key -> [(weight, value)].
    pub keys: BTreeMap<String, Vec<(f64, String)>>,
    /// The whole text, for messages.
    pub text: String,
}

impl Tags {
    /// Parses a `-tags` report.
    pub fn parse(text: &str) -> Tags {
        let mut keys: BTreeMap<String, Vec<(f64, String)>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let trimmed = line.trim_start();
            if let Some((key, _)) = trimmed.split_once(": Total ") {
                keys.entry(key.to_owned()).or_default();
                current = Some(key.to_owned());
                continue;
            }
            let (Some(key), Some((value, rest))) = (&current, trimmed.split_once(" (")) else {
                continue;
            };
            let (Some(weight), Some((_, tag))) = (parse_value(value), rest.split_once("): "))
            else {
                continue;
            };
            keys.entry(key.clone())
                .or_default()
                .push((weight, tag.to_owned()));
        }
        Tags {
            keys,
            text: text.to_owned(),
        }
    }

    /// The values of `key` with their weights, sorted by value; empty when the key is absent.
    pub fn values(&self, key: &str) -> BTreeMap<String, f64> {
        self.keys
            .get(key)
            .into_iter()
            .flatten()
            .map(|(weight, value)| (value.clone(), *weight))
            .collect()
    }
}

/// `go tool pprof -tags EXTRA... PROFILE`.
#[track_caller]
pub fn tags(profile: &Path, extra: &[&str]) -> Tags {
    let path = profile.to_str().expect("a UTF-8 temp path");
    let mut args = vec!["-tags"];
    args.extend_from_slice(extra);
    args.push(path);
    Tags::parse(&go_tool_pprof(&args))
}

/// Panics unless `measured` is within `tolerance` (a fraction) of `expected`.
#[track_caller]
pub fn assert_near(what: &str, measured: f64, expected: f64, tolerance: f64, context: &str) {
    eprintln!("{what}: {measured:.1}, expected {expected:.1}");
    if (measured - expected).abs() > expected * tolerance {
        panic!(
            "{what}: measured {measured:.1}, expected {expected:.1} within {:.0} %\n{context}",
            tolerance * 100.0
        );
    }
}

/// A fresh directory in the temp dir.
#[track_caller]
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = unique_temp_path(label);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}

/// Compiles the C program `source` with `cc` (frame pointers kept, pthreads, `defines` as -D
/// flags) into a temp dir and returns the binary.
#[track_caller]
pub fn compile_c(name: &str, source: &str, defines: &[String]) -> PathBuf {
    let dir = temp_dir(name);
    let source_path = dir.join(format!("{name}.c"));
    std::fs::write(&source_path, source).expect("writing the C source");
    let binary = dir.join(name);
    let run = Command::new("cc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-pthread"])
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg("-o")
        .arg(&binary)
        .arg(&source_path)
        .output();
    let output = match run {
        Ok(output) => output,
        Err(e) => panic!("cannot run cc ({e}): the profile tests need a C compiler (Debian: gcc)"),
    };
    if !output.status.success() {
        panic!(
            "compiling {} failed:\n{}",
            source_path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    binary
}

/// Builds the one-file Go program `source` with the `go` on PATH into a temp dir and returns
/// the binary.
#[track_caller]
pub fn build_go(name: &str, source: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::write(dir.join("main.go"), source).expect("writing the Go source");
    let binary = dir.join(name);
    let run = Command::new("go")
        .current_dir(&dir)
        .args(["build", "-o"])
        .arg(&binary)
        .arg("main.go")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .output();
    let output = match run {
        Ok(output) => output,
        Err(e) => panic!("cannot run go ({e}): the profile tests need Go on PATH"),
    };
    if !output.status.success() {
        panic!(
            "building {name} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    binary
}

/// A program that prints `ready` once set up (and may then wait for a line on stdin before
/// doing its work); killed when dropped.
pub struct ReadyProgram {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl ReadyProgram {
    /// Starts `binary ARGS` and waits for its `ready` line.
    #[track_caller]
    pub fn start(binary: &Path, args: &[&str]) -> ReadyProgram {
        let spawned = Command::new(binary)
            .args(args)
            .env("GOMAXPROCS", "2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => panic!("cannot start {}: {e}", binary.display()),
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let program = ReadyProgram {
            stdin: child.stdin.take(),
            child,
            lines,
            name: format!("{} {}", binary.display(), args.join(" ")),
        };
        let line = program.next_line(START_TIMEOUT);
        // Programs say `ready`, or (testdata/go/cpuburn, like leaky) a JSON line with "ready":true.
        assert!(
            line == "ready" || line.replace(' ', "").contains("\"ready\":true"),
            "{} should say it is ready first, said {line:?}",
            program.name
        );
        program
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints; panics after `timeout`.
    #[track_caller]
    pub fn next_line(&self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(_) => panic!("{} printed no line within {timeout:?}", self.name),
        }
    }

    /// Lets it start its work (sends a line on its stdin).
    #[track_caller]
    pub fn go(&mut self) {
        let mut stdin = self.stdin.take().expect("go() is called once");
        if let Err(e) = writeln!(stdin, "go") {
            panic!("cannot release {}: {e}", self.name);
        }
    }

    /// Waits for it to exit on its own; panics after `timeout`.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => panic!("{} did not finish within {timeout:?}", self.name),
                Err(e) => panic!("waiting for {} failed: {e}", self.name),
            }
        }
    }
}

impl Drop for ReadyProgram {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `goroscope profile` says it is sampling; panics if it ends or takes too long.
#[track_caller]
pub fn wait_profiling(goroscope: &Goroscope) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let stderr = goroscope.stderr_so_far();
        if stderr.contains(PROFILING) {
            return;
        }
        if Instant::now() > deadline || has_ended(goroscope.pid()) {
            thread::sleep(Duration::from_millis(50));
            panic!(
                "goroscope never started sampling (no `{PROFILING}`); stderr:\n{}",
                goroscope.stderr_so_far()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Has process `pid` ended (gone, or a zombie not yet waited for)?
pub fn has_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which ends with the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// How many goroutines leaky planted blocked in main.leakChanRecv, from its ready line.
#[track_caller]
pub fn leaky_receivers(leaky: &gotest::Running) -> u64 {
    let ready: Option<serde_json::Value> = serde_json::from_str(&leaky.ready_line).ok();
    match ready
        .as_ref()
        .and_then(|r| r["planted"]["chan-recv"].as_u64())
    {
        Some(count) => count,
        None => panic!(
            "no planted chan-recv count in leaky's ready line: {}",
            leaky.ready_line
        ),
    }
}

/// `sleep 60` processes (programs that are not Go), killed when dropped.
pub struct Sleepers(Vec<Child>);

impl Sleepers {
    /// Starts `count` of them.
    #[track_caller]
    pub fn start(count: usize) -> Sleepers {
        let mut sleepers = Sleepers(Vec::new());
        for _ in 0..count {
            match Command::new("sleep").arg("60").spawn() {
                Ok(child) => sleepers.0.push(child),
                Err(e) => panic!("cannot start sleep: {e}"),
            }
        }
        sleepers
    }

    /// Their process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for sleeper in &mut self.0 {
            let _ = sleeper.kill();
            let _ = sleeper.wait();
        }
    }
}
