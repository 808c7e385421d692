//! Runs the built `testload` binary and checks its exit statuses and its
//! stdout protocol (`--wait-stdin` prints the pid, then waits for a line).

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn Error>>;

const TESTLOAD: &str = env!("CARGO_BIN_EXE_testload");

fn run(args: &[&str]) -> std::io::Result<Output> {
    Command::new(TESTLOAD)
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// A path in the temp dir unique to this test process and `name`.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("testload-{}-{name}", std::process::id()))
}

#[test]
fn exit_returns_the_given_code() -> TestResult {
    let out = run(&["exit", "7"])?;
    assert_eq!(out.status.code(), Some(7));
    assert!(out.stdout.is_empty());
    Ok(())
}

#[test]
fn wait_stdin_prints_pid_then_runs_after_a_line() -> TestResult {
    let mut child = Command::new(TESTLOAD)
        .args(["--wait-stdin", "getppid", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);

    let mut line = String::new();
    stdout.read_line(&mut line)?;
    assert!(line.ends_with('\n'), "pid line not terminated: {line:?}");
    let pid: u32 = line.trim_end().parse()?;
    assert_eq!(pid, child.id());

    // It must still be waiting for us.
    std::thread::sleep(Duration::from_millis(100));
    assert!(child.try_wait()?.is_none(), "exited before reading stdin");

    stdin.write_all(b"go\n")?;
    drop(stdin);
    let status = child.wait()?;
    assert_eq!(status.code(), Some(0));

    let mut rest = String::new();
    stdout.read_to_string(&mut rest)?;
    assert_eq!(rest, "", "unexpected extra stdout");
    Ok(())
}

#[test]
fn wait_stdin_also_proceeds_on_eof() -> TestResult {
    // stdin is /dev/null: EOF at once, so the command runs straight away.
    let out = run(&["--wait-stdin", "exit", "3"])?;
    assert_eq!(out.status.code(), Some(3));
    let pid: u32 = String::from_utf8(out.stdout)?.trim_end().parse()?;
    assert!(pid > 0);
    Ok(())
}

#[test]
fn bad_arguments_exit_2_without_stdout() -> TestResult {
    for args in [
        &[][..],
        &["nope"][..],
        &["exit", "256"][..],
        &["getppid", "-5"][..],
        &["open", "/tmp/x"][..],
        &["kill-self", "0"][..],
    ] {
        let out = run(args)?;
        assert_eq!(out.status.code(), Some(2), "args {args:?}");
        assert!(out.stdout.is_empty(), "args {args:?}");
        assert!(!out.stderr.is_empty(), "args {args:?}");
    }
    Ok(())
}

#[test]
fn open_succeeds_on_an_existing_file() -> TestResult {
    let path = temp_path("open");
    std::fs::write(&path, b"x")?;
    let out = run(&["open", path.to_str().ok_or("non-UTF-8 temp dir")?, "100"]);
    std::fs::remove_file(&path)?;
    let out = out?;
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    Ok(())
}

#[test]
fn open_fails_with_exit_1_on_a_missing_file() -> TestResult {
    let path = temp_path("absent-for-open");
    let out = run(&["open", path.to_str().ok_or("non-UTF-8 temp dir")?, "1"])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("errno 2"));
    Ok(())
}

#[test]
fn open_missing_expects_enoent() -> TestResult {
    let path = temp_path("absent");
    let out = run(&[
        "open-missing",
        path.to_str().ok_or("non-UTF-8 temp dir")?,
        "50",
    ])?;
    assert_eq!(out.status.code(), Some(0));

    // An existing file makes it fail.
    let out = run(&["open-missing", TESTLOAD, "1"])?;
    assert_eq!(out.status.code(), Some(1));
    Ok(())
}

#[test]
fn kill_self_dies_of_the_signal() -> TestResult {
    let out = run(&["kill-self", "15"])?;
    assert_eq!(out.status.signal(), Some(15));
    // SIGPIPE too, although the Rust runtime ignores it by default.
    let out = run(&["kill-self", "13"])?;
    assert_eq!(out.status.signal(), Some(13));
    Ok(())
}

#[test]
fn sleep_takes_about_that_long() -> TestResult {
    let start = Instant::now();
    let out = run(&["sleep", "200"])?;
    assert_eq!(out.status.code(), Some(0));
    assert!(start.elapsed() >= Duration::from_millis(200));
    Ok(())
}
