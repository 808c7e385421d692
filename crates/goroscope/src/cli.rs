//! The command line as typed: parsed by clap, then validated into settings
//! (settings.rs) before anything touches the kernel.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use goroscope_bpf::syscalls::Timing;
use goroscope_model::EventKind;

/// goroscope: see inside a Linux host and the Go services on it, with eBPF,
/// without rebuilding, restarting or instrumenting anything.
#[derive(Debug, Parser)]
#[command(name = "goroscope", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check what this kernel and machine allow, and self-test every collector.
    Doctor(DoctorArgs),
    /// Stream process and file events (exec, exit, fork, open) as they happen.
    Trace(TraceArgs),
    /// Count syscalls per process with errors and latency percentiles.
    Syscalls(SyscallsArgs),
    /// Goroutine health of a running Go process: states, wait reasons, leak suspects, GC and
    /// scheduler, read from its memory without stopping or changing it.
    Goroutines(GoroutinesArgs),
    /// Where the time goes: a CPU, off-CPU or goroutine wall-clock profile, Go-aware (inlined
    /// frames, goroutines and their pprof labels), as pprof, folded stacks, a flame graph or a
    /// table of the top functions.
    Profile(ProfileArgs),
    /// Watch one process for a while and write one self-contained HTML report of its health:
    /// goroutines and leak suspects, where goroutines wait, CPU and wall-clock flame graphs, GC,
    /// scheduler, syscalls, TCP, files and descriptors.
    Record(RecordArgs),
    /// Render a report again from the JSON of a recording (`goroscope record --format json`).
    Report(ReportArgs),
    /// Run continuously and serve everything collected as Prometheus metrics on /metrics
    /// (also /healthz and /readyz). SIGHUP reloads the config file.
    Agent(AgentArgs),
}

/// `goroscope agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The YAML config file (see config/agent.example.yaml). Default: every collector the kernel
    /// allows, with the defaults documented there.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Address to serve on, overriding the config's `listen` (default 127.0.0.1:9949).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Only validate the config file, print what it sets, and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub check: bool,
}

/// `goroscope doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = DoctorFormat::Table)]
    pub format: DoctorFormat,
}

/// Output formats of `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    /// A readable table.
    Table,
    /// One JSON object.
    Json,
}

/// Which processes to look at, shared by the tracing commands.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Only this process (repeat for several). Default: the whole host.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only processes with this name (as in /proc/PID/comm; first 15 bytes).
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,
    /// Stop after this long (e.g. 10s, 1m30s, 500ms). Default: until Ctrl-C.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

/// `goroscope trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    /// Which processes, and for how long.
    pub target: TargetArgs,
    /// Which events, comma-separated.
    #[arg(long, value_name = "KINDS", value_delimiter = ',', value_parser = parse_event_kind,
          default_value = "exec,exit,fork,open")]
    pub events: Vec<EventKind>,
    /// Include command lines in exec events (off by default: arguments can hold secrets).
    #[arg(long)]
    pub args: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StreamFormat::Text)]
    pub format: StreamFormat,
}

/// `goroscope syscalls`.
#[derive(Debug, Args)]
pub struct SyscallsArgs {
    #[command(flatten)]
    /// Which processes, and for how long.
    pub target: TargetArgs,
    /// Latency is measured on at most N calls per second per thread, after a burst of 255 (every
    /// call is counted either way; each timed call stands for the calls its thread made since
    /// the previous one). `all` times every call, which doubles the cost on threads making
    /// millions of calls per second.
    #[arg(long, value_name = "N|all", default_value = "10000", value_parser = parse_timing)]
    pub timed_calls: Timing,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StreamFormat::Text)]
    pub format: StreamFormat,
}

/// `goroscope profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    /// Which processes, and for how long.
    pub target: TargetArgs,
    /// What to measure: `cpu` (on-CPU samples), `offcpu` (time threads spend blocked or waiting
    /// for a CPU) or `wall` (every goroutine's time, by stack and wait reason).
    #[arg(long, value_name = "KIND", default_value = "cpu", value_parser = parse_profile_kind)]
    pub kind: goroscope_model::profile::ProfileKind,
    /// Samples per second per CPU (1-1000; default 99); for `wall`, goroutine snapshots per
    /// second (default 10).
    #[arg(long, value_name = "HZ")]
    pub frequency: Option<u32>,
    /// `offcpu`: the shortest time off CPU counted (e.g. 100us, 1ms, 10ms).
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "1ms")]
    pub min_off_cpu: Duration,
    /// Write the profile here; its name picks the format (`.pb.gz` pprof, `.folded`, `.svg`)
    /// unless --format says. Default: a table of the top functions on stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Output format: pprof, folded, svg or text.
    #[arg(long, value_name = "FORMAT", value_parser = parse_profile_format)]
    pub format: Option<goroscope_export::ProfileFormat>,
}

/// `goroscope record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The process to record.
    #[arg(long, value_name = "PID")]
    pub pid: u32,
    /// How long to record (e.g. 30s, 2m); Ctrl-C ends early and still writes the report.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Time between goroutine snapshots and timeline points (e.g. 100ms, 1s).
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "100ms")]
    pub interval: Duration,
    /// Write the report here.
    #[arg(long, short = 'o', value_name = "FILE", default_value = "report.html")]
    pub output: std::path::PathBuf,
    /// `html` (the report) or `json` (the recording, for `goroscope report`). Default: from
    /// the output's name (`.json` is json), else html.
    #[arg(long, value_name = "FORMAT", value_parser = parse_report_format)]
    pub format: Option<ReportFormat>,
}

/// `goroscope report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A recording written by `goroscope record --format json`.
    #[arg(value_name = "DATA.json")]
    pub data: std::path::PathBuf,
    /// Write the HTML report here.
    #[arg(long, short = 'o', value_name = "FILE", default_value = "report.html")]
    pub output: std::path::PathBuf,
}

/// What `goroscope record` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// The self-contained HTML report.
    Html,
    /// The recording itself, as JSON.
    Json,
}

fn parse_report_format(s: &str) -> Result<ReportFormat, String> {
    match s {
        "html" => Ok(ReportFormat::Html),
        "json" => Ok(ReportFormat::Json),
        _ => Err(format!("unknown format {s:?}; use html or json")),
    }
}

fn parse_profile_kind(s: &str) -> Result<goroscope_model::profile::ProfileKind, String> {
    goroscope_model::profile::ProfileKind::parse(s)
        .ok_or_else(|| format!("unknown profile kind {s:?}; use cpu, offcpu or wall"))
}

fn parse_profile_format(s: &str) -> Result<goroscope_export::ProfileFormat, String> {
    goroscope_export::ProfileFormat::parse(s)
        .ok_or_else(|| format!("unknown format {s:?}; use pprof, folded, svg or text"))
}

/// `goroscope goroutines`.
#[derive(Debug, Args)]
pub struct GoroutinesArgs {
    /// The Go process to read.
    #[arg(long, value_name = "PID")]
    pub pid: u32,
    /// How long to watch before reporting (leak suspects need time to show). With --watch:
    /// stop after this long (default: until Ctrl-C).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Time between snapshots; also the resolution of goroutine lifetimes.
    #[arg(long, value_name = "I", value_parser = parse_duration, default_value = "100ms")]
    pub interval: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StreamFormat::Text)]
    pub format: StreamFormat,
    /// Keep running and print a fresh report every --report-every (JSON: one object per line).
    #[arg(long)]
    pub watch: bool,
    /// With --watch: time between reports.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "2s")]
    pub report_every: Duration,
    /// A goroutine blocked at least this long can be part of a leak suspect.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "1s")]
    pub leak_after: Duration,
    /// Goroutines alive at least this long count as long-lived in the lifetime summary.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "300ms")]
    pub long_lived: Duration,
    /// Frames unwound per blocked goroutine (0 turns stack unwinding off).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub frames: usize,
}

/// Output formats of `trace` and `syscalls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamFormat {
    /// Readable lines or a table.
    Text,
    /// JSON: one object per line (trace) or one array (syscalls).
    Json,
}

/// Longest duration accepted anywhere (keeps deadline arithmetic far from overflow).
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `--timed-calls`: a positive number per second per thread, or `all`.
pub fn parse_timing(text: &str) -> Result<Timing, String> {
    if text == "all" {
        return Ok(Timing::EveryCall);
    }
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(Timing::PerThreadPerSecond(n)),
        _ => Err(format!(
            "expected a positive number of timed calls per second per thread, or `all`, got `{text}`"
        )),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; write it like 10s, 1m30s or 500ms"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    if d > MAX_DURATION {
        return Err("must be at most a year".into());
    }
    Ok(d)
}

fn parse_event_kind(text: &str) -> Result<EventKind, String> {
    EventKind::from_name(text).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown event kind; known kinds: {}", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_explain() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("ten").unwrap_err().contains("like 10s"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("2years")
            .unwrap_err()
            .contains("at most a year"));
    }

    #[test]
    fn event_kinds_parse_or_list_the_known_ones() {
        assert_eq!(parse_event_kind("open"), Ok(EventKind::Open));
        assert!(parse_event_kind("clone")
            .unwrap_err()
            .contains("exec, exit, fork, open"));
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
