//! `goroscope profile`: sample, symbolize, and write the profile in the format asked for. The
//! output file is prepared before anything is attached and written whole at the end
//! ([`OutputFile`]).

use std::io::{IsTerminal, Write};
use std::mem::MaybeUninit;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use goroscope_bpf::profile::FREQUENCIES;
use goroscope_export::ProfileFormat;
use goroscope_model::profile::{Profile, ProfileKind};
use goroscope_profiler::{Request, Session, SessionError};

use super::{describe_targets, is_broken_pipe, PROC_ROOT};
use crate::cli::ProfileArgs;
use crate::output_file::OutputFile;
use crate::run_control::RunControl;
use crate::settings::{is_process, process_filter, require_privileges, UsageError};

/// Samples per second per CPU unless --frequency says.
const DEFAULT_FREQUENCY: u32 = 99;
/// Goroutine snapshots per second of a wall-clock profile unless --frequency says.
const DEFAULT_WALL_FREQUENCY: u32 = 10;
/// Rows of the text table.
const TOP_ROWS: usize = 30;

/// Where the profile goes.
enum Destination {
    /// A file, written whole at the end.
    File(OutputFile),
    /// Standard output.
    Stdout,
}

impl Destination {
    /// Checks the output can be written, before anything is attached.
    fn prepare(output: Option<&Path>, format: ProfileFormat) -> Result<Destination, UsageError> {
        let Some(path) = output else {
            if matches!(format, ProfileFormat::Pprof | ProfileFormat::Svg)
                && std::io::stdout().is_terminal()
            {
                return Err(UsageError(format!(
                    "a {} profile is not for a terminal: give --output FILE, or pipe it",
                    format.name()
                )));
            }
            return Ok(Destination::Stdout);
        };
        OutputFile::prepare(path, "the profile").map(Destination::File)
    }

    /// Writes `bytes` and puts the file in place.
    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Destination::Stdout => {
                let mut out = std::io::stdout().lock();
                match out.write_all(bytes).and_then(|()| out.flush()) {
                    Err(e) if !is_broken_pipe(&e) => Err(e).context("writing the profile"),
                    _ => Ok(()),
                }
            }
            Destination::File(file) => file.write(bytes),
        }
    }
}

/// Runs the command.
pub fn run(args: &ProfileArgs) -> anyhow::Result<()> {
    let proc_root = Path::new(PROC_ROOT);
    let frequency = args.frequency.unwrap_or(match args.kind {
        ProfileKind::Wall => DEFAULT_WALL_FREQUENCY,
        _ => DEFAULT_FREQUENCY,
    });
    if !FREQUENCIES.contains(&frequency) {
        return Err(UsageError(format!(
            "--frequency {frequency} is out of range; use {} to {} Hz",
            FREQUENCIES.start(),
            FREQUENCIES.end()
        ))
        .into());
    }
    let format = match (args.format, &args.output) {
        (Some(format), _) => format,
        (None, None) => ProfileFormat::Text,
        (None, Some(path)) => ProfileFormat::from_path(path).ok_or_else(|| {
            UsageError(format!(
                "cannot tell the format from the name {}; name it .pb.gz, .folded or .svg, \
                 or give --format pprof|folded|svg|text",
                path.display()
            ))
        })?,
    };
    let filter = process_filter(&args.target, proc_root)?;
    if args.kind == ProfileKind::Wall && (filter.pids.len() != 1 || filter.comm.is_some()) {
        return Err(UsageError(
            "--kind wall reads one Go process's goroutines: give exactly one --pid".into(),
        )
        .into());
    }
    require_privileges(proc_root)?;
    let mut destination = Destination::prepare(args.output.as_deref(), format)?;

    goroscope_bpf::init();
    let mut storage = MaybeUninit::uninit();
    let request = Request {
        kind: args.kind,
        filter: filter.clone(),
        frequency,
        min_off_cpu_ns: u64::try_from(args.min_off_cpu.as_nanos()).unwrap_or(u64::MAX),
    };
    let mut running = match Session::start(&mut storage, &request, proc_root) {
        Ok(running) => running,
        Err(SessionError::Request(message)) => return Err(UsageError(message).into()),
        Err(e) => return Err(e).context("starting the profile"),
    };
    eprintln!(
        "goroscope: {}: {}; Ctrl-C to stop",
        running.describe(),
        describe_targets(&filter)
    );
    // The duration counts from when sampling began, not from when loading did.
    let control = RunControl::start(args.target.duration)?;
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal();
    let mut exits = Vec::new();
    let period = running.period();
    let mut next_tick = Instant::now() + period;
    while !control.should_stop() {
        let wait = next_tick.saturating_duration_since(Instant::now());
        std::thread::sleep(control.next_wait(wait.min(Duration::from_millis(100))));
        if Instant::now() < next_tick {
            continue;
        }
        next_tick += period;
        let gone = running.tick().context("profiling")?;
        if progress {
            eprint!(
                "\rgoroscope: {:>4}s, {} ",
                started.elapsed().as_secs(),
                running.progress()
            );
        }
        for &pid in &filter.pids {
            if !exits.iter().any(|&(p, _)| p == pid) && (gone || !is_process(proc_root, pid)) {
                exits.push((pid, started.elapsed()));
            }
        }
        if !filter.pids.is_empty() && exits.len() == filter.pids.len() {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    let (mut profile, outcome) = running.finish().context("finishing the profile")?;
    if outcome.lost.is_empty() {
        eprintln!("goroscope: nothing lost");
    }
    for lost in &outcome.lost {
        eprintln!("goroscope: LOST DATA: {lost}");
    }
    for (pid, after) in &exits {
        let note = format!(
            "process {pid} exited {:.1}s into the profile; what was gathered before is here",
            after.as_secs_f64()
        );
        eprintln!("goroscope: {note}");
        profile.comments.push(note);
    }
    let bytes = render(&profile, format)?;
    destination.write(&bytes)?;
    eprintln!(
        "goroscope: {} in {:.1}s{}",
        outcome.summary,
        started.elapsed().as_secs_f64(),
        match &args.output {
            Some(path) => format!("; wrote {} ({})", path.display(), format.name()),
            None => String::new(),
        }
    );
    Ok(())
}

/// The profile in `format`.
fn render(profile: &Profile, format: ProfileFormat) -> anyhow::Result<Vec<u8>> {
    let value = profile.default_sample_type;
    Ok(match format {
        ProfileFormat::Pprof => goroscope_export::pprof(profile),
        ProfileFormat::Folded => {
            let mut out = String::new();
            goroscope_export::folded(profile, value, &mut out);
            out.into_bytes()
        }
        ProfileFormat::Svg => {
            let mut out = Vec::new();
            let title = match profile.kind {
                ProfileKind::Cpu => "goroscope: CPU",
                ProfileKind::OffCpu => "goroscope: off-CPU time",
                ProfileKind::Wall => "goroscope: goroutine wall time",
            };
            goroscope_export::flame_graph(profile, value, title, &mut out)
                .context("drawing the flame graph")?;
            out
        }
        ProfileFormat::Text => {
            let mut table = goroscope_export::top_table(profile, value, TOP_ROWS);
            if !table.ends_with('\n') {
                table.push('\n');
            }
            table.into_bytes()
        }
    })
}
