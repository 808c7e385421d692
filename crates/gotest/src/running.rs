//! A test Go program running as a child process: started with `GOMAXPROCS=2`, ready once it
//! prints its JSON ready line (`"ready":true`), its stdout read to the end by a thread (a closed
//! pipe would kill it the next time it prints), and killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a program may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running test program; killed on drop.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The ready line it printed.
    pub ready_line: String,
}

impl Running {
    /// Starts `binary` with `args` and waits for its ready line; panics (killing it) when it
    /// cannot start or never gets ready.
    #[track_caller]
    pub fn start(binary: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(binary)
            .args(args)
            .env("GOMAXPROCS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            panic!("{} has no stdout pipe", binary.display());
        };
        let (sender, lines) = mpsc::channel();
        // Owned from here on: a program that never gets ready is still killed.
        let mut running = Running {
            child,
            lines,
            ready_line: String::new(),
        };
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let line = running
            .lines
            .recv_timeout(READY_TIMEOUT)
            .unwrap_or_else(|_| panic!("{} printed no ready line in 30 s", binary.display()));
        assert!(
            line.contains("\"ready\":true"),
            "{} did not get ready: {line:?}",
            binary.display()
        );
        running.ready_line = line;
        running
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it now and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The next line it prints, waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
