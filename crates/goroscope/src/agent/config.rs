//! The agent's configuration file: a YAML file read once at start (and again on SIGHUP),
//! validated into one typed [`AgentConfig`] before anything touches the kernel.
//!
//! Every field is optional and has a default; `config/agent.example.yaml` at the repository
//! root lists them all with their defaults. An empty file (or one holding only comments) and a
//! field written with no value (`interval:`) both mean "the defaults". Unknown fields are
//! errors, so a typo never silently turns into a default.
//!
//! Every error names the file, the line and column, and the field, and says what to do
//! (see [`ConfigError`]). The work is split by job:
//! - `node`: the YAML text as a plain tree whose nodes know where they start (more than one
//!   document is refused there), with `scalar` saying what each scalar means and `syntax`
//!   saying what is wrong with text that is not YAML (an unclosed bracket or quote is
//!   reported where it was opened);
//! - `read`: that tree checked section by section into an [`AgentConfig`], with `values`
//!   reading the single values (booleans, durations, numbers, sizes, addresses, patterns);
//! - `otlp`: `exporters.otlp`, merged with the standard `OTEL_EXPORTER_OTLP_*` variables
//!   (read through an [`Environment`], so tests set their own) into one exporter config;
//! - `locate`: where in the tree a field sits, so validation errors can point at it;
//! - `glob`: the patterns of `targets` and `collectors.network`;
//! - `error`: [`ConfigError`] and the field paths it reports.

mod error;
mod file;
pub mod glob;
mod locate;
mod node;
mod otlp;
mod otlp_env;
mod otlp_yaml;
mod read;
mod scalar;
mod syntax;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_malformed;
#[cfg(test)]
mod tests_otlp;
#[cfg(test)]
mod tests_otlp_env;
#[cfg(test)]
mod tests_syntax;
mod values;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use goroscope_bpf::syscalls::Timing;

pub use error::ConfigError;
pub use glob::{Glob, GlobKind};

/// The agent's settled configuration: every value parsed, typed and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
    /// How often kernel maps and /proc are read (100 ms to 10 min).
    pub interval: Duration,
    /// Which collectors run, and their settings.
    pub collectors: Collectors,
    /// Which processes are observed.
    pub targets: Targets,
    /// Which process labels every per-process series carries.
    pub labels: LabelSet,
    /// Which latency bucket boundaries histograms expose.
    pub histograms: Histograms,
    /// Caps on the number of series.
    pub limits: Limits,
    /// What goroscope measures about itself.
    pub self_monitoring: SelfMonitoring,
    /// Where telemetry is pushed, besides the Prometheus endpoint.
    pub exporters: Exporters,
    /// Where this configuration came from.
    pub source: ConfigSource,
}

/// Where a configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// Read from this file.
    File(PathBuf),
    /// Built in: no file was given.
    Defaults,
}

/// The collectors and their settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Collectors {
    /// Syscall counts, errors and latency.
    pub syscalls: SyscallsCollector,
    /// Exec and exit counts.
    pub processes: Toggle,
    /// File opens by result.
    pub files: Toggle,
    /// Run-queue latency and context switches.
    pub scheduler: Toggle,
    /// TCP connections, retransmits and round-trip times.
    pub tcp: TcpCollector,
    /// Per-interface network counters.
    pub network: NetworkCollector,
    /// Goroutine health of Go processes, read from their memory.
    pub go: GoCollector,
}

/// A collector with nothing to set but whether it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Toggle {
    /// Whether the collector runs.
    pub enabled: bool,
}

/// The syscall collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallsCollector {
    /// Whether the collector runs.
    pub enabled: bool,
    /// Which calls have their latency measured (`timed_calls`: N per second per thread, or
    /// `all`). Changing it restarts the collector; its counters continue.
    pub timed_calls: Timing,
}

/// The TCP collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpCollector {
    /// Whether the collector runs.
    pub enabled: bool,
    /// Whether to export one series per remote endpoint (the service map).
    pub edges: bool,
    /// An edge unused this long is aged out of the kernel map, and its series ends once no
    /// process of its owner has used it this long (1 s to 7 days).
    pub edge_idle: std::time::Duration,
}

/// The network interface collector.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkCollector {
    /// Whether the collector runs.
    pub enabled: bool,
    /// Interfaces to report (globs on the interface name); never empty.
    pub interfaces: Vec<Glob>,
    /// Interfaces never reported, even when `interfaces` names them.
    pub exclude: Vec<Glob>,
}

impl NetworkCollector {
    /// True when interface `name` is reported: some `interfaces` pattern matches it and no
    /// `exclude` pattern does.
    pub fn includes(&self, name: &str) -> bool {
        self.interfaces.iter().any(|g| g.matches(name))
            && !self.exclude.iter().any(|g| g.matches(name))
    }
}

/// The Go runtime collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoCollector {
    /// Whether the collector runs.
    pub enabled: bool,
    /// Time between memory snapshots of one Go process (100 ms to 10 min).
    pub interval: Duration,
    /// Most Go processes watched at once (1 to 4096).
    pub max_processes: usize,
    /// A goroutine blocked at least this long can be part of a leak suspect (1 s to 24 h).
    pub leak_after: Duration,
    /// Time between scans of /proc for new Go processes (1 s to 1 h).
    pub discover_every: Duration,
}

/// Which processes are observed: a process is a target when its PID is listed, OR its comm
/// matches a `comms` pattern, OR its cgroup matches a `cgroups` pattern. All lists empty means
/// every process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Targets {
    /// Process IDs, ascending, without repeats.
    pub pids: Vec<u32>,
    /// Globs on /proc/PID/comm (at most 15 bytes); `*` matches anything.
    pub comms: Vec<Glob>,
    /// Globs on the cgroup v2 path (as in /proc/PID/cgroup after `0::`); `*` stops at `/`,
    /// `**` does not.
    pub cgroups: Vec<Glob>,
}

impl Targets {
    /// True when no list is given: every process is a target.
    pub fn is_all(&self) -> bool {
        self.pids.is_empty() && self.comms.is_empty() && self.cgroups.is_empty()
    }

    /// True when process `pid`, named `comm` (as read from /proc/PID/comm, a trailing newline
    /// is ignored) in cgroup `cgroup`, is a target.
    pub fn matches(&self, pid: u32, comm: &str, cgroup: &str) -> bool {
        if self.is_all() {
            return true;
        }
        let comm = comm.strip_suffix('\n').unwrap_or(comm);
        self.pids.binary_search(&pid).is_ok()
            || self.comms.iter().any(|g| g.matches(comm))
            || self.cgroups.iter().any(|g| g.matches(cgroup))
    }
}

/// A process label a per-process series can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    /// The process name (always present).
    Comm,
    /// The process ID: one series per process instead of per name.
    Pid,
    /// The cgroup v2 path.
    Cgroup,
    /// The container ID, from the cgroup path.
    ContainerId,
}

impl Label {
    /// Every label, in exposition order.
    pub const ALL: [Label; 4] = [Label::Comm, Label::Pid, Label::Cgroup, Label::ContainerId];

    /// The label's name, as written in the config and exposed.
    pub fn name(self) -> &'static str {
        match self {
            Label::Comm => "comm",
            Label::Pid => "pid",
            Label::Cgroup => "cgroup",
            Label::ContainerId => "container_id",
        }
    }

    /// The label named `name`, if any.
    pub fn from_name(name: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// The process labels of per-process series. `comm` is always on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelSet {
    /// A `pid` label.
    pub pid: bool,
    /// A `cgroup` label.
    pub cgroup: bool,
    /// A `container_id` label.
    pub container_id: bool,
}

/// Which kernel latency bucket boundaries histograms expose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histograms {
    /// Boundaries per doubling of latency: 1, 2 or 4 (the kernel keeps 4).
    pub buckets_per_octave: u32,
    /// Lowest boundary exposed (1 ns to 1 h, below `max`).
    pub min: Duration,
    /// Highest boundary exposed (1 ns to 1 h, above `min`).
    pub max: Duration,
}

/// Caps on the number of series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most series one metric family exposes (1 to 1 000 000); the rest are dropped and counted.
    pub max_series_per_family: usize,
    /// Most TCP remote endpoints tracked as edges (1 to 1 000 000).
    pub max_tcp_edges: usize,
}

/// What goroscope measures about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfMonitoring {
    /// Kernel accounting of goroscope's own BPF CPU time (costs about 20 ns per program run).
    pub bpf_stats: bool,
}

/// Where telemetry is pushed, besides the Prometheus endpoint. Applied live on SIGHUP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exporters {
    /// OTLP export; `None`: no OTLP export.
    pub otlp: Option<OtlpExport>,
    /// The file or the environment asked for OTLP export and `OTEL_SDK_DISABLED=true`
    /// turned it off (so `otlp` is `None`).
    pub sdk_disabled: bool,
}

/// Why OTLP export that was asked for is off when [`Exporters::sdk_disabled`].
pub const SDK_DISABLED_SENTENCE: &str =
    "OTEL_SDK_DISABLED=true turns it off (exporters.otlp.enabled: true in the file exports anyway)";

/// OTLP export: the exporter's settings, and what the agent sends through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpExport {
    /// Where each signal goes, how, and within which bounds.
    pub exporter: goroscope_otlp::ExporterConfig,
    /// Continuous profiles sent as OTLP profiles (only when the profiles signal is on): every
    /// `every`, a CPU profile of `duration` of each Go target.
    pub profiles: Option<ProfileExport>,
}

impl OtlpExport {
    /// Where each signal goes, for the operator: `OTLP (grpc): metrics and logs to
    /// http://collector:4317`, or one `SIGNAL to URL` per signal when they differ.
    pub fn describe(&self) -> String {
        let sent: Vec<(goroscope_otlp::Signal, String)> = goroscope_otlp::Signal::ALL
            .into_iter()
            .filter_map(|s| Some((s, self.exporter.endpoint(s)?.to_string())))
            .collect();
        let protocol = self.exporter.protocol.name();
        let same = sent.windows(2).all(|pair| pair[0].1 == pair[1].1);
        let names: Vec<&str> = sent.iter().map(|(s, _)| s.name()).collect();
        let names = match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        };
        match sent.first() {
            Some((_, url)) if same => format!("OTLP ({protocol}): {names} to {url}"),
            _ => {
                let each: Vec<String> = sent
                    .iter()
                    .map(|(s, url)| format!("{} to {url}", s.name()))
                    .collect();
                format!("OTLP ({protocol}): {}", each.join(", "))
            }
        }
    }
}

/// How continuous profiles are taken for OTLP export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileExport {
    /// Time between the starts of two profiles of one target (above `duration`, at most 24 h).
    pub every: Duration,
    /// How long each CPU profile samples (1 s to 5 min).
    pub duration: Duration,
}

/// Reads a variable of the agent's own environment: the [`Environment`] of a running agent.
pub fn process_environment(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Where the standard `OTEL_*` variables are read from: [`process_environment`] in the
/// agent, a fixed table in tests.
pub type Environment<'a> = &'a dyn Fn(&str) -> Option<OsString>;

impl AgentConfig {
    /// The configuration used without a file; also what every absent field means.
    pub fn defaults() -> AgentConfig {
        let on = Toggle { enabled: true };
        AgentConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9949),
            interval: Duration::from_secs(5),
            collectors: Collectors {
                syscalls: SyscallsCollector {
                    enabled: true,
                    timed_calls: Timing::default(),
                },
                processes: on,
                files: on,
                scheduler: on,
                tcp: TcpCollector {
                    enabled: true,
                    edges: true,
                    edge_idle: std::time::Duration::from_secs(600),
                },
                network: NetworkCollector {
                    enabled: true,
                    interfaces: vec![Glob::everything(GlobKind::Name)],
                    exclude: vec![Glob::literal("lo", GlobKind::Name)],
                },
                go: GoCollector {
                    enabled: true,
                    interval: Duration::from_secs(10),
                    max_processes: 64,
                    leak_after: Duration::from_secs(120),
                    discover_every: Duration::from_secs(30),
                },
            },
            targets: Targets::default(),
            labels: LabelSet {
                pid: false,
                cgroup: true,
                container_id: false,
            },
            histograms: Histograms {
                buckets_per_octave: 1,
                min: Duration::from_micros(1),
                max: Duration::from_secs(100),
            },
            limits: Limits {
                max_series_per_family: 10_000,
                max_tcp_edges: 2_000,
            },
            self_monitoring: SelfMonitoring { bpf_stats: true },
            exporters: Exporters::default(),
            source: ConfigSource::Defaults,
        }
    }

    /// The configuration without a file: the defaults, with OTLP export when the standard
    /// `OTEL_EXPORTER_OTLP_*` variables of `env` ask for it.
    pub fn from_environment(env: Environment) -> Result<AgentConfig, ConfigError> {
        let mut config = AgentConfig::defaults();
        config.exporters = otlp::settle(otlp::Section::Absent, env, config.interval)
            .map_err(|e| e.in_environment())?;
        Ok(config)
    }

    /// Reads, parses and validates the file at `path`; `env` fills what the file leaves out
    /// of `exporters.otlp`.
    pub fn load(path: &Path, env: Environment) -> Result<AgentConfig, ConfigError> {
        let text = file::read_text(path)?;
        AgentConfig::parse(&text, path, env)
    }

    /// Parses and validates `text`; `origin` is the file it came from, named in errors; `env`
    /// fills what the file leaves out of `exporters.otlp`.
    pub fn parse(text: &str, origin: &Path, env: Environment) -> Result<AgentConfig, ConfigError> {
        let root = node::parse_document(text).map_err(|e| e.in_file(origin, None))?;
        let mut config = read::read(&root, env).map_err(|e| e.in_file(origin, Some(&root)))?;
        config.source = ConfigSource::File(origin.to_path_buf());
        Ok(config)
    }

    /// What changed between `self` (running) and `new` that cannot be applied without a
    /// restart, as operator-facing sentences. Everything else (collectors, targets, labels,
    /// histograms, limits, intervals, self-monitoring, exporters) is applied by the running
    /// agent.
    pub fn restart_required(&self, new: &AgentConfig) -> Vec<String> {
        let mut sentences = Vec::new();
        if self.listen != new.listen {
            sentences.push(format!(
                "listen changed from {} to {}: the metrics server keeps serving on {} until \
                 goroscope agent is restarted",
                self.listen, new.listen, self.listen
            ));
        }
        sentences
    }
}
