//! `goroscope profile`: sample, symbolize, and write the profile in the format asked for. The
//! output file is prepared before anything is attached (a path that cannot be written is a usage
//! error) and written whole at the end through a temporary file, so a failed run never leaves
//! half a profile behind.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use goroscope_bpf::profile::FREQUENCIES;
use goroscope_export::ProfileFormat;
use goroscope_model::profile::{Profile, ProfileKind};
use goroscope_profiler::CpuProfile;

use super::{describe_targets, is_broken_pipe, PROC_ROOT};
use crate::cli::ProfileArgs;
use crate::run_control::RunControl;
use crate::settings::{is_process, process_filter, require_privileges, UsageError};

/// How often the profile looks at new processes and goroutines.
const TICK: Duration = Duration::from_secs(1);
/// Rows of the text table.
const TOP_ROWS: usize = 30;

/// Where the profile goes.
enum Destination {
    /// A file, written through `temporary` and renamed over `path` at the end (`done` once
    /// renamed).
    File {
        path: PathBuf,
        temporary: PathBuf,
        file: File,
        done: bool,
    },
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
        let name = path
            .file_name()
            .ok_or_else(|| UsageError(format!("--output {} names no file", path.display())))?;
        // The temporary file beside it could be created, but the rename over it at the end
        // would fail, after the whole profile was taken.
        if path.is_dir() {
            return Err(UsageError(format!(
                "cannot write the profile to {}: it is a directory; give a file name with --output",
                path.display()
            )));
        }
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(".goroscope-{}", std::process::id()));
        let temporary = path.with_file_name(temporary_name);
        let file = File::create(&temporary).map_err(|e| {
            UsageError(format!(
                "cannot write the profile to {}: {e}; choose a writable path with --output",
                path.display()
            ))
        })?;
        Ok(Destination::File {
            path: path.to_path_buf(),
            temporary,
            file,
            done: false,
        })
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
            Destination::File {
                path,
                temporary,
                file,
                done,
            } => {
                file.write_all(bytes)
                    .and_then(|()| file.sync_all())
                    .and_then(|()| std::fs::rename(&*temporary, &*path))
                    .with_context(|| format!("writing {}", path.display()))?;
                *done = true;
                Ok(())
            }
        }
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        // Still here when the run failed before writing: leave nothing half-made behind.
        if let Destination::File {
            temporary,
            done: false,
            ..
        } = self
        {
            let _ = std::fs::remove_file(&*temporary);
        }
    }
}

/// Runs the command.
pub fn run(args: &ProfileArgs) -> anyhow::Result<()> {
    let proc_root = Path::new(PROC_ROOT);
    if !FREQUENCIES.contains(&args.frequency) {
        return Err(UsageError(format!(
            "--frequency {} is out of range; use {} to {} Hz",
            args.frequency,
            FREQUENCIES.start(),
            FREQUENCIES.end()
        ))
        .into());
    }
    if args.kind != ProfileKind::Cpu {
        return Err(UsageError(format!(
            "--kind {} is not available yet; use --kind cpu",
            args.kind.name()
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
    require_privileges(proc_root)?;
    let mut destination = Destination::prepare(args.output.as_deref(), format)?;

    goroscope_bpf::init();
    let mut storage = MaybeUninit::uninit();
    let mut profile = CpuProfile::start(&mut storage, &filter, args.frequency, proc_root)
        .context("starting CPU sampling")?;
    eprintln!(
        "goroscope: profiling CPU at {} Hz: {}; Ctrl-C to stop",
        args.frequency,
        describe_targets(&filter)
    );
    // The duration counts from when sampling began, not from when loading did.
    let control = RunControl::start(args.target.duration)?;
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal();
    let mut exits = Vec::new();
    let mut next_tick = Instant::now() + TICK;
    while !control.should_stop() {
        std::thread::sleep(control.next_wait(Duration::from_millis(100)));
        if Instant::now() < next_tick {
            continue;
        }
        next_tick += TICK;
        let samples = profile.tick().context("reading CPU samples")?;
        if progress {
            eprint!(
                "\rgoroscope: {:>4}s, {samples} samples ",
                started.elapsed().as_secs()
            );
        }
        for &pid in &filter.pids {
            if !exits.iter().any(|&(p, _)| p == pid) && !is_process(proc_root, pid) {
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
    let (mut profile, summary) = profile.finish().context("reading CPU samples")?;
    for (pid, after) in &exits {
        let note = format!(
            "process {pid} exited {:.1}s into the profile; what was sampled before is here",
            after.as_secs_f64()
        );
        eprintln!("goroscope: {note}");
        profile.comments.push(note);
    }
    let bytes = render(&profile, format)?;
    destination.write(&bytes)?;
    eprintln!(
        "goroscope: {} samples from {} processes ({} Go) in {:.1}s{}",
        summary.samples,
        summary.processes,
        summary.go_processes,
        started.elapsed().as_secs_f64(),
        match &args.output {
            Some(path) => format!("; wrote {} ({})", path.display(), format.name()),
            None => String::new(),
        }
    );
    let lost = summary.losses;
    if lost.samples + lost.user_stacks + lost.kernel_stacks == 0 {
        eprintln!("goroscope: nothing lost");
    } else {
        for comment in &profile.comments {
            eprintln!("goroscope: LOST DATA: {comment}");
        }
    }
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
            goroscope_export::flame_graph(profile, value, "goroscope CPU profile", &mut out)
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
