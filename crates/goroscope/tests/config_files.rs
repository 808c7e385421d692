//! Config files that are not what they seem, through the real binary: a FIFO, a device, a
//! directory, a huge file, deep nesting and a huge value must be refused at once with a reason
//! (exit 2 for `--check`), and a reload pointed at a FIFO must not stop the running agent.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{run_goroscope, unique_temp_path, Finished};

/// Long enough for a loaded 2-core machine; the old behaviour never finished at all (FIFO,
/// /dev/zero) or took far longer.
const PROMPT: Duration = Duration::from_secs(10);

/// Removes a path when dropped.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[track_caller]
fn fifo() -> Removed {
    let path = unique_temp_path("fifo").with_extension("yaml");
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in temp paths");
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    Removed(path)
}

#[track_caller]
fn check(path: &Path) -> Finished {
    let path = path.to_str().expect("UTF-8 test paths");
    let started = Instant::now();
    let run = run_goroscope(&["agent", "--check", "--config", path], PROMPT);
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    run.assert_code(2);
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "one short line: {}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(
        run.stderr.len() < 600,
        "{}",
        &run.stderr[..2000.min(run.stderr.len())]
    );
    run
}

#[test]
fn check_refuses_what_is_not_a_regular_file_at_once() {
    let fifo = fifo();
    let run = check(&fifo.0);
    assert!(
        run.stderr
            .contains("is a FIFO (named pipe), not a regular file"),
        "{}",
        run.stderr
    );
    let run = check(Path::new("/dev/zero"));
    assert!(
        run.stderr
            .starts_with("goroscope: /dev/zero: is a character device, not a regular file"),
        "{}",
        run.stderr
    );
    let run = check(Path::new("/tmp"));
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
}

#[test]
fn check_refuses_huge_files_deep_nesting_and_huge_values_quickly() {
    let big = Removed(unique_temp_path("big").with_extension("yaml"));
    let file = std::fs::File::create(&big.0).expect("create");
    file.set_len(200_000_000).expect("a sparse 200 MB file");
    drop(file);
    let run = check(&big.0);
    assert!(
        run.stderr
            .contains("is 200000000 bytes, more than the 1048576 bytes"),
        "{}",
        run.stderr
    );

    let deep = Removed(unique_temp_path("deep").with_extension("yaml"));
    std::fs::write(&deep.0, format!("a: {}", "[".repeat(100_000))).expect("write");
    let run = check(&deep.0);
    assert!(run.stderr.contains(":1:"), "a line: {}", run.stderr);
    assert!(
        run.stderr.contains("nest more than 128 deep"),
        "{}",
        run.stderr
    );

    let long = Removed(unique_temp_path("long").with_extension("yaml"));
    let pattern = "x".repeat(900_000);
    std::fs::write(&long.0, format!("targets:\n  comms: [\"{pattern}\"]\n")).expect("write");
    let run = check(&long.0);
    assert!(
        run.stderr.contains(":2:11: targets.comms[0]: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("… (899940 more bytes)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_reload_pointed_at_a_fifo_is_refused_and_collection_goes_on() {
    let config = unique_temp_path("reload-fifo").with_extension("yaml");
    let _cleanup = Removed(config.clone());
    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n",
    )
    .expect("write the config");
    let agent = common::Goroscope::spawn(&["agent", "--config", config.to_str().expect("UTF-8")]);
    agent.wait_attached();
    std::fs::remove_file(&config).expect("remove the config");
    let c = CString::new(config.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    common::send_signal(agent.pid(), libc::SIGHUP);
    let deadline = Instant::now() + PROMPT;
    while !agent.stderr_so_far().contains("reload refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal within {PROMPT:?}:\n{}",
            agent.stderr_so_far()
        );
        sleep(Duration::from_millis(100));
    }
    let stderr = agent.stderr_so_far();
    assert!(
        stderr.contains("is a FIFO (named pipe), not a regular file"),
        "{stderr}"
    );
    // Still running, and stops on request.
    let run = agent.stop();
    run.assert_code(0);
}
