//! `goroscope syscalls`: count syscalls per process in the kernel, then print
//! them sorted by total time.

use std::mem::MaybeUninit;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use goroscope_bpf::syscalls::SyscallOptions;
use goroscope_bpf::SyscallCollector;
use goroscope_model::sort_by_total_time;

use super::{all_targets_gone, announce_attached, is_broken_pipe, report_losses, PROC_ROOT};
use crate::cli::{StreamFormat, SyscallsArgs};
use crate::output::syscalls::{write_json, write_text};
use crate::run_control::RunControl;
use crate::settings::{process_filter, require_privileges};
use crate::sink::{report_unwritten, Sink};

/// Runs the command.
pub fn run(args: &SyscallsArgs) -> anyhow::Result<()> {
    let proc_root = Path::new(PROC_ROOT);
    let filter = process_filter(&args.target, proc_root)?;
    require_privileges(proc_root)?;
    let control = RunControl::start(args.target.duration)?;

    goroscope_bpf::init();
    // Checks the kernel can attach anything; the syscall handlers are raw tracepoints.
    goroscope_bpf::choose_attach_mode()?;
    let mut storage = MaybeUninit::uninit();
    let options = SyscallOptions {
        timing: args.timed_calls,
        ..SyscallOptions::default()
    };
    let collector = SyscallCollector::start_with(&mut storage, &filter, options)
        .context("starting the syscall collector")?;
    announce_attached("counting syscalls", collector.mode(), &filter);

    while !control.should_stop() {
        std::thread::sleep(control.next_wait(Duration::from_millis(100)));
        if all_targets_gone(&filter) {
            eprintln!("goroscope: every traced process has exited; reporting what was seen");
            break;
        }
    }

    let mut rows = collector.rows().context("reading syscall statistics")?;
    let losses = collector.losses().context("reading loss counters")?;
    drop(collector); // detach before printing
    sort_by_total_time(&mut rows);

    let mut out = Sink::stdout(control.signals()).context("starting the output writer")?;
    let written = match args.format {
        StreamFormat::Json => write_json(&mut out, &rows),
        StreamFormat::Text => write_text(&mut out, &rows),
    }
    .and_then(|()| out.finish());
    match written {
        Ok(unwritten) => report_unwritten(unwritten, "lines"),
        Err(err) if !is_broken_pipe(&err) => return Err(err).context("writing the report"),
        Err(_) => {}
    }
    report_losses(&losses, 0);
    Ok(())
}
