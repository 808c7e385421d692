//! One module per command; each validates, attaches, runs and reports.

pub mod doctor;
pub mod goroutines;
pub mod profile;
pub mod record;
pub mod report;
pub mod syscalls;
pub mod trace;

use std::io::{self, Write};
use std::path::Path;

use goroscope_bpf::{AttachMode, Losses, ProcessFilter};

/// Where the process table is; tests of validation use a fake one.
pub const PROC_ROOT: &str = "/proc";

/// Describes the processes a filter selects, for the "attached" line.
pub fn describe_targets(filter: &ProcessFilter) -> String {
    let mut parts = Vec::new();
    if !filter.pids.is_empty() {
        let pids: Vec<String> = filter.pids.iter().map(u32::to_string).collect();
        parts.push(format!("pid {}", pids.join(",")));
    }
    if let Some(comm) = &filter.comm {
        parts.push(format!("comm {}", crate::output::safe(comm)));
    }
    if parts.is_empty() {
        "host-wide".into()
    } else {
        parts.join(", ")
    }
}

/// Tells the operator collection has begun (tests and scripts wait for this line).
pub fn announce_attached(what: &str, mode: AttachMode, filter: &ProcessFilter) {
    eprintln!(
        "goroscope: attached ({mode}): {what}, {}; Ctrl-C to stop",
        describe_targets(filter)
    );
}

/// Prints kernel-side and queue losses on stderr; every loss is said.
pub fn report_losses(kernel: &Losses, queue_drops: u64) {
    let mut err = io::stderr().lock();
    if kernel.total() == 0 && queue_drops == 0 {
        let _ = writeln!(err, "goroscope: nothing lost (kernel: 0, queue: 0)");
        return;
    }
    let _ = writeln!(
        err,
        "goroscope: LOST DATA: kernel {} , queue {queue_drops}",
        kernel.total()
    );
    for (reason, n) in kernel.nonzero() {
        let _ = writeln!(err, "goroscope:   {n} lost: {reason}");
    }
    if queue_drops > 0 {
        let _ = writeln!(
            err,
            "goroscope:   {queue_drops} lost: events queue full (output too slow; write to a file or filter with --pid/--comm)"
        );
    }
}

/// True when every PID the filter names has exited (never for host-wide runs).
pub fn all_targets_gone(filter: &ProcessFilter) -> bool {
    !filter.pids.is_empty()
        && filter
            .pids
            .iter()
            .all(|&pid| !crate::settings::is_process(Path::new(PROC_ROOT), pid))
}

/// True for the error a closed pipe gives (`goroscope trace | head`), which is not a failure.
pub fn is_broken_pipe(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::BrokenPipe
}
