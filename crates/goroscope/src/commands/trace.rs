//! `goroscope trace`: stream exec, exit, fork and open events as they happen.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use goroscope_bpf::{EventCollector, EventObjects, EventOptions, RawEvent};

use super::{announce_attached, is_broken_pipe, report_losses, PROC_ROOT};
use crate::cli::TraceArgs;
use crate::clock::WallClock;
use crate::output::events::EventWriter;
use crate::run_control::RunControl;
use crate::settings::{process_filter, require_privileges};
use crate::sink::{report_unwritten, Sink};

/// Runs the command.
pub fn run(args: &TraceArgs) -> anyhow::Result<()> {
    let proc_root = Path::new(PROC_ROOT);
    let filter = process_filter(&args.target, proc_root)?;
    require_privileges(proc_root)?;
    let control = RunControl::start(args.target.duration)?;

    let mut kinds = args.events.clone();
    kinds.sort();
    kinds.dedup();
    let options = EventOptions {
        kinds: kinds.clone(),
        capture_args: args.args,
        filter,
        ring_bytes: goroscope_bpf::RING_BYTES,
    };

    goroscope_bpf::init();
    let mode = goroscope_bpf::choose_attach_mode()?;
    let mut objects = EventObjects::default();
    let collector = EventCollector::start(&mut objects, mode, &options)
        .context("starting the event collectors")?;
    let mut stream = collector.stream().context("starting the event reader")?;
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    announce_attached(
        &format!("tracing {}", names.join(",")),
        mode,
        &options.filter,
    );

    let mut writer = EventWriter::new(args.format, WallClock::measure());
    let mut out = Sink::stdout(control.signals()).context("starting the output writer")?;
    let mut malformed = 0u64;
    let mut pipe_closed = false;
    let mut emit = |event: &RawEvent, out: &mut Sink| -> io::Result<()> {
        match event.decode() {
            Ok(event) => writer.write(out, &event),
            Err(_) => {
                malformed += 1;
                Ok(())
            }
        }
    };

    while !control.should_stop() {
        let wait = control.next_wait(Duration::from_millis(100));
        match stream.next(wait).context("reading events")? {
            Some(event) => {
                if let Err(err) = emit(&event, &mut out) {
                    if is_broken_pipe(&err) {
                        pipe_closed = true;
                        break;
                    }
                    return Err(err).context("writing events");
                }
            }
            // Hand over while idle so a slow trickle of events shows up promptly.
            None => match out.flush() {
                Err(err) if is_broken_pipe(&err) => {
                    pipe_closed = true;
                    break;
                }
                other => other.context("writing events")?,
            },
        }
    }

    let rest = stream.finish().context("stopping the event reader")?;
    if !pipe_closed {
        for event in &rest {
            if let Err(err) = emit(event, &mut out) {
                if is_broken_pipe(&err) {
                    break;
                }
                return Err(err).context("writing events");
            }
        }
    }
    let losses = collector.losses().context("reading loss counters")?;
    let queue_drops = stream.queue_drops();
    // Detach before waiting for the output: a slow reader must not keep the probes attached.
    drop(stream);
    drop(collector);
    match out.finish() {
        Ok(unwritten) => report_unwritten(unwritten, "events"),
        Err(err) if is_broken_pipe(&err) => {}
        Err(err) => return Err(err).context("writing events"),
    }
    if malformed > 0 {
        eprintln!("goroscope: {malformed} malformed records skipped");
    }
    report_losses(&losses, queue_drops);
    Ok(())
}
