//! `goroscope record`: watch one process for a while (goroutine snapshots, CPU and wall-clock
//! profiles, syscalls, TCP, file opens, descriptors and threads) and write one self-contained
//! HTML report, or the recording as JSON for `goroscope report`.
//!
//! Bad input (no such process, an interval out of range, an output that cannot be written, no
//! privileges) is refused before anything is attached. Ctrl-C, or the process exiting, ends the
//! recording early; what was gathered is still written, and says how it ended.

mod go_side;
mod kernel;
mod progress;
mod timeline;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use goroscope_model::recording::{Ended, Recording, Target, Window, RECORDING_FORMAT};

use super::PROC_ROOT;
use crate::cli::{RecordArgs, ReportFormat};
use crate::output_file::OutputFile;
use crate::run_control::RunControl;
use crate::settings::{is_process, require_privileges, UsageError};
use go_side::{GoEnd, GoRecorder, GoStart};
use kernel::{KernelSources, Storage};
use progress::Progress;

/// Shortest interval accepted: snapshots closer than this cost more than they tell.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval accepted: a report needs points to draw.
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// How often the kernel collectors are read (open events, CPU sample counts).
const KERNEL_TICK: Duration = Duration::from_millis(100);

/// Runs the command.
pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    let proc_root = Path::new(PROC_ROOT);
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&args.interval) {
        return Err(UsageError(format!(
            "--interval {} is out of range; use {} to {}",
            humantime::format_duration(args.interval),
            humantime::format_duration(MIN_INTERVAL),
            humantime::format_duration(MAX_INTERVAL)
        ))
        .into());
    }
    if args.interval > args.duration {
        return Err(UsageError(format!(
            "--interval {} is longer than --duration {}: the report would have no timeline",
            humantime::format_duration(args.interval),
            humantime::format_duration(args.duration)
        ))
        .into());
    }
    let format =
        args.format
            .unwrap_or_else(|| match args.output.extension().and_then(|e| e.to_str()) {
                Some("json") => ReportFormat::Json,
                _ => ReportFormat::Html,
            });
    if !is_process(proc_root, args.pid) {
        return Err(UsageError(format!(
            "no process with PID {} (it may have exited); check with `ps -p {}`",
            args.pid, args.pid
        ))
        .into());
    }
    if args.pid == std::process::id() {
        return Err(UsageError("goroscope cannot record itself".into()).into());
    }
    require_privileges(proc_root)?;
    let mut output = OutputFile::prepare(&args.output, "the report")?;

    goroscope_bpf::init();
    let mode = goroscope_bpf::choose_attach_mode()?;
    let interval_ns = u64::try_from(args.interval.as_nanos()).unwrap_or(u64::MAX);
    let target = timeline::describe_target(proc_root, args.pid);
    let mut wall_storage = std::mem::MaybeUninit::uninit();
    let mut go = match GoRecorder::start(&mut wall_storage, proc_root, args.pid, interval_ns)? {
        GoStart::Go(go) => Ok(go),
        GoStart::NotGo(reason) => Err(reason),
    };
    let mut storage = Storage::default();
    let mut kernel = KernelSources::start(&mut storage, mode, args.pid, proc_root);
    let what = match &go {
        Ok(go) => format!("Go process {} ({})", args.pid, go.go_version),
        Err(_) => format!("process {} (not Go: no goroutines)", args.pid),
    };
    eprintln!(
        "goroscope: recording {what} for {} into {}; Ctrl-C to stop early",
        humantime::format_duration(args.duration),
        args.output.display()
    );
    if let Err(reason) = &go {
        eprintln!("goroscope: {}", goroscope_model::escape_controls(reason));
    }

    let control = RunControl::start(Some(args.duration))?;
    let started = Instant::now();
    let started_unix_ns = goroscope_profiler::unix_now_ns();
    let started_mono_ns = goroscope_goprocess::monotonic_ns();
    let mut progress = Progress::new(args.duration);
    let mut timeline = Vec::new();
    let mut ended = Ended::Completed;
    let mut next_point = started;
    let mut next_kernel = started;
    loop {
        let now = Instant::now();
        if now >= next_kernel {
            kernel.tick();
            next_kernel = now + KERNEL_TICK;
        }
        if now >= next_point {
            next_point += args.interval;
            if next_point < now {
                next_point = now + args.interval;
            }
            let at_ns = goroscope_goprocess::monotonic_ns().saturating_sub(started_mono_ns);
            let mut point = timeline::process_point(proc_root, args.pid, at_ns);
            if let Ok(recorder) = &mut go {
                match recorder.snapshot(started_mono_ns) {
                    Ok(go_point) => point.go = go_point,
                    Err(GoEnd::Exited) => {
                        ended = Ended::Exited {
                            after_ns: elapsed_ns(started),
                        }
                    }
                    Err(GoEnd::Exec(into)) => {
                        ended = Ended::Exec {
                            after_ns: elapsed_ns(started),
                            into,
                        }
                    }
                }
            }
            // A zombie (exited, not yet reaped by its parent) has ended too.
            let gone = !is_process(proc_root, args.pid);
            if !matches!(ended, Ended::Completed) || gone {
                if gone && matches!(ended, Ended::Completed) {
                    ended = Ended::Exited {
                        after_ns: elapsed_ns(started),
                    };
                }
                break;
            }
            timeline.push(point);
            let snapshots = go.as_ref().map_or(0, |g| g.snapshots());
            let samples = kernel.cpu_samples();
            progress.show(started.elapsed(), timeline.len(), snapshots, samples);
        }
        if control.should_stop() {
            if control.signals().any() {
                ended = Ended::Interrupted {
                    after_ns: elapsed_ns(started),
                };
            }
            break;
        }
        let wait = next_point
            .min(next_kernel)
            .saturating_duration_since(Instant::now());
        std::thread::sleep(control.next_wait(wait));
    }
    progress.done();
    let recorded_ns = elapsed_ns(started);

    let mut notes = Vec::new();
    let (go_section, wall_profile, go_version, main_module, not_go) = match go {
        Ok(recorder) => {
            let version = recorder.go_version.clone();
            let module = recorder.main_module.clone();
            let (section, wall, go_notes) = recorder.finish();
            notes.extend(go_notes);
            (Some(section), wall, Some(version), module, None)
        }
        Err(reason) => (None, None, None, None, Some(reason)),
    };
    let results = kernel.finish();
    notes.extend(results.notes);
    match &ended {
        Ended::Exited { after_ns } => eprintln!(
            "goroscope: process {} exited {:.1}s into the recording; writing what was gathered",
            args.pid,
            *after_ns as f64 / 1e9
        ),
        Ended::Exec { after_ns, into } => eprintln!(
            "goroscope: process {} replaced its program with {} {:.1}s into the recording; writing what was gathered",
            args.pid,
            goroscope_model::escape_controls(into),
            *after_ns as f64 / 1e9
        ),
        Ended::Interrupted { .. } | Ended::Completed => {}
    }
    let recording = Recording {
        format: RECORDING_FORMAT,
        goroscope_version: env!("CARGO_PKG_VERSION").to_string(),
        target: Target {
            go_version,
            main_module,
            not_go,
            ..target
        },
        window: Window {
            started_unix_ns,
            requested_ns: u64::try_from(args.duration.as_nanos()).unwrap_or(u64::MAX),
            recorded_ns,
            interval_ns,
            ended,
        },
        timeline,
        go: go_section,
        cpu_profile: results.cpu_profile,
        wall_profile,
        syscalls: results.syscalls,
        tcp: results.tcp,
        files: results.files,
        notes,
    };
    let bytes = match format {
        ReportFormat::Html => render_html(&recording)?.into_bytes(),
        ReportFormat::Json => {
            serde_json::to_vec(&recording).context("writing the recording as JSON")?
        }
    };
    output.write(&bytes)?;
    for note in &recording.notes {
        eprintln!(
            "goroscope: note: {}",
            goroscope_model::escape_controls(note)
        );
    }
    eprintln!(
        "goroscope: recorded {:.1}s ({} points); wrote {} ({}, {} KiB)",
        recorded_ns as f64 / 1e9,
        recording.timeline.len(),
        args.output.display(),
        match format {
            ReportFormat::Html => "html",
            ReportFormat::Json => "json",
        },
        bytes.len().div_ceil(1024)
    );
    Ok(())
}

/// The HTML report of `recording`.
pub fn render_html(recording: &Recording) -> anyhow::Result<String> {
    goroscope_export::report::render_html(recording).context("rendering the report")
}

fn elapsed_ns(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Checks a recording read back from JSON can be rendered by this version.
pub fn check_format(recording: &Recording) -> Result<(), UsageError> {
    if recording.format != RECORDING_FORMAT {
        return Err(UsageError(format!(
            "this recording has format {}, and this goroscope reads format {RECORDING_FORMAT}; render it with the goroscope that recorded it ({})",
            recording.format, recording.goroscope_version
        )));
    }
    Ok(())
}
