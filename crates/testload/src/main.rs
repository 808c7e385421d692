//! `testload`: workloads with exactly known syscall behaviour.
//!
//! goroscope's integration tests and benchmarks start this binary and then
//! check that the tracer saw exactly what the workload did. Every counted
//! iteration issues its syscall through `libc::syscall` directly, so one
//! iteration is exactly one syscall of the named kind (a libc wrapper could
//! pick a different syscall, e.g. `open` vs `openat`).
//!
//! Usage: `testload [--wait-stdin] <command> [args]`
//!
//! With `--wait-stdin` the process first prints its pid and a newline on
//! stdout, then blocks until it reads one line (or EOF) on stdin, so a test
//! can attach a tracer to the pid before the workload starts.
//!
//! Commands:
//!
//! * `open PATH N`: N times `openat(AT_FDCWD, PATH, O_RDONLY|O_CLOEXEC)` and
//!   `close`; exits 1 if an open fails.
//! * `open-missing PATH N`: N times `openat` of a path that must not exist;
//!   exits 1 unless every attempt fails with `ENOENT`.
//! * `getppid N`: N raw `getppid` syscalls.
//! * `exit CODE`: exits at once with CODE (0-255) via `_exit`.
//! * `kill-self SIGNAL`: `kill(getpid(), SIGNAL)`, then waits in `pause()`
//!   in case the signal is ignored.
//! * `sleep MILLIS`: one `nanosleep` of that many milliseconds (restarted
//!   with the remaining time if interrupted).
//! * `connect ADDR N`: N TCP connections to ADDR (e.g. `127.0.0.1:8080`), one
//!   after another; each writes 100 bytes, then reads until the peer closes,
//!   then closes. Exits 1 if a connection fails.
//! * `spawn RATE N PROGRAM [ARGS...]`: N processes, RATE per second, each
//!   running PROGRAM with an empty environment (see `spawn.rs`); exits 1
//!   unless every one exited 0.
//!
//! After the command it exits 0. Bad arguments print a message to stderr and
//! exit 2. Nothing but the pid is ever written to stdout.

use std::ffi::{CString, OsString};
use std::io::{self, BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::process;

mod spawn;

/// Exit status for bad command-line arguments.
const EXIT_USAGE: i32 = 2;
/// Exit status when the workload did not behave as expected.
const EXIT_FAILED: i32 = 1;

const USAGE: &str = "usage: testload [--wait-stdin] <command> [args]
commands:
  open PATH N           N x openat(PATH, O_RDONLY|O_CLOEXEC) + close
  open-missing PATH N   N x openat(PATH) expecting ENOENT
  getppid N             N x getppid
  exit CODE             _exit(CODE), CODE in 0-255
  kill-self SIGNAL      kill(getpid(), SIGNAL), then pause()
  sleep MILLIS          nanosleep for MILLIS milliseconds
  connect ADDR N        N x TCP connect to ADDR, write 100 bytes, read to EOF, close
  spawn RATE N PROGRAM [ARGS...]
                        N processes running PROGRAM, RATE per second";

/// Highest signal number Linux accepts (`SIGRTMAX`, `_NSIG - 1`).
const MAX_SIGNAL: i32 = 64;

/// One workload, as parsed from the command line.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Open {
        path: CString,
        count: u64,
    },
    OpenMissing {
        path: CString,
        count: u64,
    },
    Getppid {
        count: u64,
    },
    Exit {
        code: i32,
    },
    KillSelf {
        signal: i32,
    },
    Sleep {
        millis: u64,
    },
    Connect {
        address: std::net::SocketAddr,
        count: u64,
    },
    Spawn(spawn::Churn),
}

/// The whole command line.
#[derive(Debug, PartialEq, Eq)]
struct Invocation {
    wait_stdin: bool,
    command: Command,
}

fn main() {
    // Rust's runtime sets SIGPIPE to "ignore" before `main`; put it back to
    // the default so `kill-self 13` behaves as it would in a C program.
    // SAFETY: no other threads exist yet, and SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }

    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let invocation = match parse_args(&args) {
        Ok(invocation) => invocation,
        Err(message) => {
            eprintln!("testload: {message}\n{USAGE}");
            process::exit(EXIT_USAGE);
        }
    };

    if invocation.wait_stdin {
        if let Err(err) = announce_and_wait() {
            eprintln!("testload: --wait-stdin: {err}");
            process::exit(EXIT_FAILED);
        }
    }

    match run(&invocation.command) {
        Ok(()) => process::exit(0),
        Err(message) => {
            eprintln!("testload: {message}");
            process::exit(EXIT_FAILED);
        }
    }
}

/// Parses the arguments after the program name.
fn parse_args(args: &[OsString]) -> Result<Invocation, String> {
    let mut rest = args;
    let mut wait_stdin = false;
    if rest.first().is_some_and(|arg| arg == "--wait-stdin") {
        wait_stdin = true;
        rest = &rest[1..];
    }

    let Some((name, params)) = rest.split_first() else {
        return Err("missing command".to_string());
    };
    let name = name
        .to_str()
        .ok_or_else(|| format!("unknown command {name:?}"))?;

    let command = match name {
        "open" => {
            let [path, count] = expect_params::<2>(name, params)?;
            Command::Open {
                path: parse_path(path)?,
                count: parse_number(count, "N")?,
            }
        }
        "open-missing" => {
            let [path, count] = expect_params::<2>(name, params)?;
            Command::OpenMissing {
                path: parse_path(path)?,
                count: parse_number(count, "N")?,
            }
        }
        "getppid" => {
            let [count] = expect_params::<1>(name, params)?;
            Command::Getppid {
                count: parse_number(count, "N")?,
            }
        }
        "exit" => {
            let [code] = expect_params::<1>(name, params)?;
            let code: u8 = parse_number(code, "CODE (0-255)")?;
            Command::Exit {
                code: i32::from(code),
            }
        }
        "kill-self" => {
            let [signal] = expect_params::<1>(name, params)?;
            let signal: i32 = parse_number(signal, "SIGNAL")?;
            if !(1..=MAX_SIGNAL).contains(&signal) {
                return Err(format!(
                    "SIGNAL must be a signal number from 1 to {MAX_SIGNAL}, got {signal}"
                ));
            }
            Command::KillSelf { signal }
        }
        "sleep" => {
            let [millis] = expect_params::<1>(name, params)?;
            Command::Sleep {
                millis: parse_number(millis, "MILLIS")?,
            }
        }
        "connect" => {
            let [address, count] = expect_params::<2>(name, params)?;
            Command::Connect {
                address: address
                    .to_str()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("ADDR must be IP:PORT, got {address:?}"))?,
                count: parse_number(count, "N")?,
            }
        }
        "spawn" => Command::Spawn(spawn::Churn::parse(params)?),
        "--wait-stdin" => return Err("--wait-stdin must come before the command".to_string()),
        other => return Err(format!("unknown command {other:?}")),
    };

    Ok(Invocation {
        wait_stdin,
        command,
    })
}

/// Checks that a command got exactly `N` parameters and returns them.
fn expect_params<'a, const N: usize>(
    command: &str,
    params: &'a [OsString],
) -> Result<[&'a OsString; N], String> {
    let found = params.len();
    let refs: Vec<&OsString> = params.iter().collect();
    refs.try_into()
        .map_err(|_| format!("{command} takes {N} argument(s), got {found}"))
}

/// Turns a path argument into a C string (any bytes but NUL are allowed).
fn parse_path(arg: &OsString) -> Result<CString, String> {
    if arg.is_empty() {
        return Err("PATH must not be empty".to_string());
    }
    CString::new(arg.as_bytes()).map_err(|_| format!("PATH {arg:?} contains a NUL byte"))
}

/// Parses a decimal number (digits only, no sign, no whitespace).
fn parse_number<T: std::str::FromStr>(arg: &OsString, what: &str) -> Result<T, String> {
    let text = arg.to_str().unwrap_or("");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} must be a decimal number, got {arg:?}"));
    }
    text.parse()
        .map_err(|_| format!("{what} is out of range: {arg:?}"))
}

/// Prints our pid, then blocks until one line or EOF arrives on stdin.
fn announce_and_wait() -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", process::id())?;
    stdout.flush()?;
    drop(stdout);

    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

/// Runs one workload. `Err` means it did not behave as expected.
fn run(command: &Command) -> Result<(), String> {
    match command {
        Command::Open { path, count } => {
            for i in 0..*count {
                let fd = raw_openat(path);
                if fd < 0 {
                    let err = io::Error::last_os_error();
                    return Err(format!(
                        "open {path:?} failed on iteration {i}: errno {} ({err})",
                        err.raw_os_error().unwrap_or(0)
                    ));
                }
                // SAFETY: closing a descriptor we just opened and own.
                let rc = unsafe { libc::syscall(libc::SYS_close, fd) };
                if rc != 0 {
                    let err = io::Error::last_os_error();
                    return Err(format!("close({fd}) failed: {err}"));
                }
            }
            Ok(())
        }
        Command::OpenMissing { path, count } => {
            for i in 0..*count {
                let fd = raw_openat(path);
                if fd >= 0 {
                    // SAFETY: closing the descriptor that unexpectedly opened.
                    unsafe { libc::syscall(libc::SYS_close, fd) };
                    return Err(format!(
                        "open-missing: {path:?} exists (opened on iteration {i})"
                    ));
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ENOENT) {
                    return Err(format!(
                        "open-missing {path:?}: expected ENOENT on iteration {i}, got errno {} ({err})",
                        err.raw_os_error().unwrap_or(0)
                    ));
                }
            }
            Ok(())
        }
        Command::Getppid { count } => {
            for _ in 0..*count {
                // SAFETY: getppid takes no arguments and cannot fail.
                unsafe { libc::syscall(libc::SYS_getppid) };
            }
            Ok(())
        }
        Command::Exit { code } => {
            // SAFETY: _exit ends the process immediately; nothing to clean up.
            unsafe { libc::_exit(*code) }
        }
        Command::KillSelf { signal } => {
            // SAFETY: plain syscalls on our own process with a valid signal.
            let rc = unsafe {
                let pid = libc::syscall(libc::SYS_getpid);
                libc::syscall(libc::SYS_kill, pid, *signal)
            };
            if rc != 0 {
                let err = io::Error::last_os_error();
                return Err(format!("kill(self, {signal}) failed: {err}"));
            }
            loop {
                // SAFETY: pause only blocks until a signal arrives.
                unsafe { libc::pause() };
            }
        }
        Command::Sleep { millis } => sleep_millis(*millis),
        Command::Connect { address, count } => connect_many(*address, *count),
        Command::Spawn(churn) => churn.run(),
    }
}

/// One `openat(AT_FDCWD, path, O_RDONLY|O_CLOEXEC)`; returns the raw result.
fn raw_openat(path: &CString) -> libc::c_long {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    }
}

/// Sleeps with the raw `nanosleep` syscall, resuming after interruptions.
fn sleep_millis(millis: u64) -> Result<(), String> {
    let secs = millis / 1000;
    let mut request = libc::timespec {
        tv_sec: libc::time_t::try_from(secs)
            .map_err(|_| format!("sleep of {millis} ms is too long"))?,
        // Below 1e9, so it fits in every `c_long`.
        tv_nsec: ((millis % 1000) * 1_000_000) as libc::c_long,
    };
    loop {
        let mut remaining = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: both pointers refer to live, properly aligned timespecs.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_nanosleep,
                &request as *const libc::timespec,
                &mut remaining as *mut libc::timespec,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("nanosleep failed: {err}"));
        }
        request = remaining;
    }
}

/// `connect`: N sequential connections, each sending 100 bytes and reading to EOF.
fn connect_many(address: std::net::SocketAddr, count: u64) -> Result<(), String> {
    use std::io::Read;
    for i in 0..count {
        let mut stream = std::net::TcpStream::connect(address)
            .map_err(|e| format!("connection {i} to {address}: {e}"))?;
        stream
            .write_all(&[b'x'; 100])
            .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
            .map_err(|e| format!("connection {i}: writing: {e}"))?;
        let mut rest = Vec::new();
        stream
            .read_to_end(&mut rest)
            .map_err(|e| format!("connection {i}: reading: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Invocation, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_args(&args)
    }

    fn cstr(s: &str) -> CString {
        CString::new(s).unwrap_or_default()
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(
            parse(&["open", "/tmp/f", "10"]),
            Ok(Invocation {
                wait_stdin: false,
                command: Command::Open {
                    path: cstr("/tmp/f"),
                    count: 10
                }
            })
        );
        assert_eq!(
            parse(&["open-missing", "/nope", "0"]).map(|i| i.command),
            Ok(Command::OpenMissing {
                path: cstr("/nope"),
                count: 0
            })
        );
        assert_eq!(
            parse(&["getppid", "1000000"]).map(|i| i.command),
            Ok(Command::Getppid { count: 1_000_000 })
        );
        assert_eq!(
            parse(&["exit", "255"]).map(|i| i.command),
            Ok(Command::Exit { code: 255 })
        );
        assert_eq!(
            parse(&["exit", "0"]).map(|i| i.command),
            Ok(Command::Exit { code: 0 })
        );
        assert_eq!(
            parse(&["kill-self", "9"]).map(|i| i.command),
            Ok(Command::KillSelf { signal: 9 })
        );
        assert_eq!(
            parse(&["sleep", "250"]).map(|i| i.command),
            Ok(Command::Sleep { millis: 250 })
        );
    }

    #[test]
    fn parses_wait_stdin() {
        assert_eq!(
            parse(&["--wait-stdin", "getppid", "3"]),
            Ok(Invocation {
                wait_stdin: true,
                command: Command::Getppid { count: 3 }
            })
        );
    }

    #[test]
    fn rejects_missing_or_unknown_command() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--wait-stdin"]).is_err());
        assert!(parse(&["fork", "3"]).is_err());
        assert!(parse(&["OPEN", "/tmp/f", "1"]).is_err());
        assert!(parse(&["getppid", "3", "--wait-stdin"]).is_err());
        assert!(parse(&["--wait-stdin", "--wait-stdin", "getppid", "1"]).is_err());
    }

    #[test]
    fn rejects_wrong_argument_counts() {
        assert!(parse(&["open", "/tmp/f"]).is_err());
        assert!(parse(&["open", "/tmp/f", "1", "2"]).is_err());
        assert!(parse(&["open-missing"]).is_err());
        assert!(parse(&["getppid"]).is_err());
        assert!(parse(&["getppid", "1", "2"]).is_err());
        assert!(parse(&["exit"]).is_err());
        assert!(parse(&["kill-self"]).is_err());
        assert!(parse(&["sleep", "1", "2"]).is_err());
    }

    #[test]
    fn rejects_bad_numbers() {
        for bad in ["", "-1", "+1", "1.5", "ten", " 1", "0x10", "1e3"] {
            assert!(parse(&["getppid", bad]).is_err(), "accepted {bad:?}");
            assert!(parse(&["sleep", bad]).is_err(), "accepted {bad:?}");
        }
        assert!(parse(&["getppid", "18446744073709551616"]).is_err());
        assert!(parse(&["open", "/tmp/f", "x"]).is_err());
    }

    #[test]
    fn rejects_out_of_range_exit_codes_and_signals() {
        assert!(parse(&["exit", "256"]).is_err());
        assert!(parse(&["exit", "-1"]).is_err());
        assert!(parse(&["kill-self", "0"]).is_err());
        assert!(parse(&["kill-self", "65"]).is_err());
        assert!(parse(&["kill-self", "SIGTERM"]).is_err());
        assert!(parse(&["kill-self", "64"]).is_ok());
    }

    #[test]
    fn rejects_empty_path() {
        assert!(parse(&["open", "", "1"]).is_err());
        assert!(parse(&["open-missing", "", "1"]).is_err());
    }
}
