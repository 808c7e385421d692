//! `spawn RATE N PROGRAM [ARGS...]`: process churn at a known rate. Starts N processes, RATE
//! per second on a fixed schedule (a late start does not delay the ones after it), each
//! `PROGRAM ARGS` with an empty environment, and reaps them; fails unless every one exited 0.
//! The agent's churn test and soak benchmark count exactly these execs, exits and syscalls.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

/// What `spawn` starts, parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct Churn {
    /// Processes started per second.
    pub rate: u64,
    /// Processes started in all.
    pub count: u64,
    /// The program and its arguments (argv[0] is the program).
    pub argv: Vec<CString>,
}

impl Churn {
    /// Parses `RATE N PROGRAM [ARGS...]`.
    pub fn parse(params: &[OsString]) -> Result<Self, String> {
        let [rate, count, program, args @ ..] = params else {
            return Err("spawn takes RATE N PROGRAM [ARGS...]".to_string());
        };
        let rate: u64 = crate::parse_number(rate, "RATE")?;
        if rate == 0 {
            return Err("RATE must be at least 1".to_string());
        }
        let count = crate::parse_number(count, "N")?;
        let argv = std::iter::once(program)
            .chain(args)
            .map(|a| CString::new(a.as_bytes()).map_err(|_| format!("{a:?} contains a NUL byte")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rate, count, argv })
    }

    /// Starts every process on schedule and reaps them all.
    pub fn run(&self) -> Result<(), String> {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let start = Instant::now();
        let mut running = 0u64;
        let mut failed = 0u64;
        for i in 0..self.count {
            let due = start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / self.rate);
            loop {
                reap(&mut running, &mut failed, false)?;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(2)));
            }
            // SAFETY: vfork-free fork; the child only calls execve and _exit, which are
            // async-signal-safe, with pointers into memory that stays alive in the child.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                return Err(format!("fork {i}: {}", io::Error::last_os_error()));
            }
            if pid == 0 {
                // SAFETY: see above; argv and envp are NULL-terminated arrays of C strings.
                unsafe {
                    libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
                    libc::_exit(127);
                }
            }
            running += 1;
        }
        while running > 0 {
            reap(&mut running, &mut failed, true)?;
        }
        if failed > 0 {
            return Err(format!("{failed} of {} processes failed", self.count));
        }
        Ok(())
    }
}

/// Reaps exited children (blocking for one when `block`), counting failures.
fn reap(running: &mut u64, failed: &mut u64, block: bool) -> Result<(), String> {
    let mut flags = if block { 0 } else { libc::WNOHANG };
    while *running > 0 {
        let mut status = 0;
        // SAFETY: waiting for any child with a valid pointer to the status.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        if pid == 0 {
            return Ok(());
        }
        if pid < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(format!("waitpid: {err}"));
        }
        *running -= 1;
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            *failed += 1;
        }
        flags = libc::WNOHANG;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Churn, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        Churn::parse(&args)
    }

    #[test]
    fn parses_and_rejects() {
        let churn = parse(&["200", "10", "/bin/true", "a"]).expect("valid");
        assert_eq!((churn.rate, churn.count, churn.argv.len()), (200, 10, 2));
        assert!(parse(&["0", "10", "/bin/true"]).is_err());
        assert!(parse(&["10", "/bin/true"]).is_err());
        assert!(parse(&["x", "1", "/bin/true"]).is_err());
    }

    #[test]
    fn runs_every_process_and_sees_failures() {
        assert_eq!(
            parse(&["1000", "20", "/bin/true"]).map(|c| c.run()),
            Ok(Ok(()))
        );
        let failing = parse(&["1000", "5", "/bin/false"]).expect("valid");
        assert_eq!(failing.run(), Err("5 of 5 processes failed".to_string()));
    }
}
