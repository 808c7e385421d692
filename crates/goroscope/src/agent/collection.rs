//! The agent's collection: which collectors run (and why one is down), one collection cycle
//! (read every source, retire dead processes, build the exposition), and reloading the config
//! without resetting any counter.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use goroscope_bpf::bpf_stats::RunTimeStats;
use goroscope_bpf::{AttachMode, Losses};
use goroscope_export::{BucketLayout, Exposition};
use goroscope_host::{ProcFs, SysFs};

use crate::agent::config::AgentConfig;
use crate::agent::kernel;
use crate::agent::ledger::Owner;
use crate::agent::owners::Owners;
use crate::agent::probe::Probe;
use crate::agent::self_metrics::{self, SelfCounters};
use crate::agent::series::LabelPlan;
use crate::agent::sources::go::{GoSettings, GoSource};
use crate::agent::sources::network::NetworkSource;
use crate::agent::sources::processes::ProcessSource;
use crate::agent::sources::sched::SchedSource;
use crate::agent::sources::syscalls::SyscallSource;
use crate::agent::sources::tcp::TcpSource;

mod otlp_view;

/// How often retired values of cgroups that no longer exist are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(300);
/// Where cgroup v2 is mounted when /proc/self/mountinfo does not say.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Where the process table and sysfs are.
const PROC_ROOT: &str = "/proc";
const SYS_ROOT: &str = "/sys";

/// Everything the agent collects.
pub struct Collection {
    config: AgentConfig,
    mode: Result<AttachMode, String>,
    owners: Owners,
    syscalls: Probe<SyscallSource>,
    processes: Probe<ProcessSource>,
    sched: Probe<SchedSource>,
    tcp: Probe<TcpSource>,
    network: Probe<NetworkSource>,
    go: Probe<GoSource>,
    bpf_stats: Option<RunTimeStats>,
    counters: SelfCounters,
    started: Instant,
    last_prune: Instant,
    layout: BucketLayout,
    /// The processes with a resource of their own in an OTLP export (see the ledger).
    individual: HashSet<u32>,
}

/// The histogram bounds a config asks for (its validation already built them once).
fn layout_of(config: &AgentConfig) -> anyhow::Result<BucketLayout> {
    let h = &config.histograms;
    BucketLayout::new(h.buckets_per_octave, duration_ns(h.min), duration_ns(h.max))
        .map_err(|e| anyhow::anyhow!("histograms: {e}"))
}

impl Collection {
    /// Starts every collector the config enables and the kernel allows.
    pub fn start(config: AgentConfig) -> anyhow::Result<Collection> {
        let layout = layout_of(&config)?;
        let mode = goroscope_bpf::choose_attach_mode().map_err(|e| format!("{e:#}"));
        let procfs = ProcFs::new(PROC_ROOT);
        // /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host.
        let cgroup_root = goroscope_host::cgroup2_mount(&procfs)
            .unwrap_or_else(|| std::path::PathBuf::from(CGROUP_ROOT));
        let owners = Owners::new(procfs, &cgroup_root, config.targets.clone());
        let mut collection = Collection {
            mode,
            owners,
            syscalls: Probe::default(),
            processes: Probe::default(),
            sched: Probe::default(),
            tcp: Probe::default(),
            network: Probe::default(),
            go: Probe::default(),
            bpf_stats: None,
            counters: SelfCounters::default(),
            started: Instant::now(),
            last_prune: Instant::now(),
            layout,
            individual: HashSet::new(),
            config,
        };
        collection.start_missing();
        Ok(collection)
    }

    /// The config in force.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Starts enabled collectors that are off, stops disabled ones. A collector stopped keeps
    /// what it counted (`probe.rs`), so turning it on again continues every counter.
    fn start_missing(&mut self) {
        let c = &self.config.collectors;
        // Targets are applied in user space (the kernel filter is fixed at load, and reloads
        // must not restart collectors): every process is traced, untargeted rows are deleted.
        let filter = kernel::host_wide();
        let mode = self.mode.clone();
        let bpf = |what: &str| -> anyhow::Result<AttachMode> {
            mode.clone()
                .map_err(|e| anyhow::anyhow!("no BPF attach mode for {what}: {e}"))
        };
        let owners = &mut self.owners;
        let mut stopped = Losses::default();
        if c.syscalls.enabled || c.files.enabled {
            let timing = c.syscalls.timed_calls;
            if self.syscalls.get().is_some_and(|s| s.timing() != timing) {
                // Timing is fixed at load: restart; the counters continue (probe.rs).
                stopped.add(&self.syscalls.turn_off(owners));
            }
            self.syscalls.turn_on(
                "syscall",
                || kernel::syscalls(bpf("syscalls")?, &filter, timing),
                SyscallSource::new,
            );
        } else {
            stopped.add(&self.syscalls.turn_off(owners));
        }
        if c.processes.enabled {
            self.processes.turn_on(
                "process",
                || {
                    let collector = kernel::processes(bpf("processes")?, &filter)?;
                    let stream = collector.stream()?;
                    Ok((collector, stream))
                },
                ProcessSource::new,
            );
        } else {
            stopped.add(&self.processes.turn_off(owners));
        }
        if c.scheduler.enabled {
            self.sched.turn_on(
                "scheduler",
                || kernel::sched(bpf("scheduler")?, &filter),
                SchedSource::new,
            );
        } else {
            stopped.add(&self.sched.turn_off(owners));
        }
        if c.tcp.enabled {
            self.tcp.turn_on(
                "TCP",
                || kernel::tcp(bpf("tcp")?, &filter, owners.procfs()),
                TcpSource::new,
            );
            if let Some(tcp) = self.tcp.get_mut() {
                tcp.set_edge_idle(c.tcp.edge_idle);
            }
        } else {
            stopped.add(&self.tcp.turn_off(owners));
        }
        if c.network.enabled {
            self.network.turn_on(
                "network",
                || Ok(SysFs::new(SYS_ROOT)),
                |sysfs, ()| NetworkSource::new(sysfs),
            );
        } else {
            self.network.turn_off(owners);
        }
        // Losses of stopped collectors stay counted: the counter never goes back.
        self.counters.stopped_losses.add(&stopped);
        let go_settings = go_settings(&self.config);
        if !c.go.enabled {
            self.go.turn_off(owners);
        } else if let Some(go) = self.go.get_mut() {
            go.set_settings(go_settings);
        } else {
            self.go.turn_on(
                "Go",
                || Ok(()),
                |(), kept| match kept {
                    Some(mut go) => {
                        go.set_settings(go_settings);
                        go
                    }
                    None => GoSource::new(go_settings),
                },
            );
        }
        self.owners.set_events(self.processes.get().is_some());
        let want_stats = self.config.self_monitoring.bpf_stats;
        if want_stats && self.bpf_stats.is_none() {
            match RunTimeStats::enable() {
                Ok(stats) => self.bpf_stats = Some(stats),
                Err(error) => eprintln!(
                    "goroscope: agent: BPF run-time accounting is unavailable ({error}); \
                     goroscope_bpf_program_cpu_seconds_total will be missing"
                ),
            }
        } else if !want_stats {
            self.bpf_stats = None;
        }
    }

    /// Which collectors are up, down or off, for the start-up line.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, up) in self.probe_states() {
            parts.push(match up {
                Some(true) => format!("{name} up"),
                Some(false) => format!("{name} DOWN"),
                None => format!("{name} off"),
            });
        }
        parts.join(", ")
    }

    /// Why each collector that is down is down.
    pub fn down_reasons(&self) -> Vec<(&'static str, &str)> {
        [
            ("syscalls", self.syscalls.reason()),
            ("processes", self.processes.reason()),
            ("scheduler", self.sched.reason()),
            ("tcp", self.tcp.reason()),
            ("network", self.network.reason()),
            ("go", self.go.reason()),
        ]
        .into_iter()
        .filter_map(|(name, why)| why.map(|why| (name, why)))
        .collect()
    }

    fn probe_states(&self) -> [(&'static str, Option<bool>); 6] {
        [
            ("syscalls", self.syscalls.up()),
            ("processes", self.processes.up()),
            ("scheduler", self.sched.up()),
            ("tcp", self.tcp.up()),
            ("network", self.network.up()),
            ("go", self.go.up()),
        ]
    }

    /// Counts process events until `deadline` (or sleeps, when that collector is off).
    pub fn wait(&mut self, until: Instant) {
        let wait = until.saturating_duration_since(Instant::now());
        match self.processes.get_mut() {
            Some(processes) => {
                if let Err(error) = processes.drain(&mut self.owners, wait) {
                    eprintln!("goroscope: agent: process events stopped: {error:#}");
                    let losses = self.processes.fail(format!("{error:#}"), &mut self.owners);
                    self.counters.stopped_losses.add(&losses);
                    self.owners.set_events(false);
                }
            }
            None => std::thread::sleep(wait),
        }
    }

    /// One collection cycle: reads every source and returns the exposition to publish.
    pub fn cycle(&mut self) -> Exposition {
        let began = Instant::now();
        self.counters.collections += 1;
        self.counters.last_collection = Some(std::time::SystemTime::now());
        if let Some(processes) = self.processes.get_mut() {
            // Places processes whose rows this cycle reads (see owners.rs).
            if let Err(error) = processes.drain_queued(&mut self.owners) {
                eprintln!("goroscope: agent: reading process events failed: {error:#}");
            }
        }
        self.owners.begin_cycle();
        let owners = &mut self.owners;
        let mut failed: Vec<(&'static str, String)> = Vec::new();
        if let Some(s) = self.syscalls.get_mut() {
            if let Err(e) = s.collect(owners) {
                failed.push(("syscalls", format!("{e:#}")));
            }
        }
        if let Some(s) = self.sched.get_mut() {
            if let Err(e) = s.collect(owners) {
                failed.push(("scheduler", format!("{e:#}")));
            }
        }
        if let Some(s) = self.tcp.get_mut() {
            if let Err(e) = s.collect(owners) {
                failed.push(("tcp", format!("{e:#}")));
            }
        }
        if let Some(s) = self.network.get_mut() {
            let net = &self.config.collectors.network;
            if let Err(e) = s.collect(|name| net.includes(name)) {
                failed.push(("network", format!("{e:#}")));
            }
        }
        if let Some(s) = self.go.get_mut() {
            if let Err(e) = s.collect(owners, Path::new(PROC_ROOT)) {
                failed.push(("go", format!("{e:#}")));
            }
        }
        self.owners.end_cycle();
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            self.last_prune = Instant::now();
            self.prune_gone_cgroups();
        }
        for (source, error) in failed {
            // A failed read is counted and said once per cycle; the collector stays up and the
            // next cycle tries again.
            *self.counters.collection_errors.entry(source).or_default() += 1;
            eprintln!("goroscope: agent: reading {source} failed: {error}");
        }
        let exposition = self.exposition();
        self.counters.last_cycle = began.elapsed();
        exposition
    }

    fn exposition(&mut self) -> Exposition {
        let plan = LabelPlan::from_config(&self.config.labels);
        let (mut out, cut) = self.sources_exposition(&plan, &self.layout);
        if cut > 0 {
            *self
                .counters
                .series_dropped
                .entry("goroscope_tcp_edge_connections_total")
                .or_default() += cut as u64;
        }
        for (family, dropped) in out.cap_series(self.config.limits.max_series_per_family) {
            *self.counters.series_dropped.entry(family).or_default() += dropped as u64;
        }
        self.counters.refused_samples += out.dropped_samples() as u64;
        if self.bpf_stats.is_some() {
            self.counters.read_programs();
        }
        self.self_families(&mut out);
        out
    }

    /// Every source's families under `plan` and `layout`, and how many TCP edges were cut by
    /// `limits.max_tcp_edges`.
    fn sources_exposition(&self, plan: &LabelPlan, layout: &BucketLayout) -> (Exposition, usize) {
        let c = &self.config.collectors;
        let mut out = Exposition::new();
        let mut cut = 0;
        if let Some(s) = self.syscalls.get() {
            s.families(plan, layout, c.syscalls.enabled, c.files.enabled, &mut out);
        }
        if let Some(s) = self.processes.get() {
            s.families(plan, &mut out);
        }
        if let Some(s) = self.sched.get() {
            s.families(plan, layout, &mut out);
        }
        if let Some(s) = self.tcp.get() {
            cut = s.families(
                plan,
                layout,
                c.tcp.edges,
                self.config.limits.max_tcp_edges,
                &mut out,
            );
        }
        if let Some(s) = self.network.get() {
            s.families(&mut out);
        }
        if let Some(s) = self.go.get() {
            s.families(plan, layout, &mut out);
        }
        (out, cut)
    }

    /// The agent's own families (losses, probes, usage, collections).
    fn self_families(&self, out: &mut Exposition) {
        let losses = self.kernel_losses();
        let view = self_metrics::View {
            probes: self.probe_states(),
            kernel_losses: &losses,
            reader_drops: self.processes.get().map_or(0, ProcessSource::reader_drops),
            process_aggregation_drops: self
                .processes
                .get()
                .map_or(0, ProcessSource::aggregation_drops),
            go: self.go.get(),
            counters: &self.counters,
            bpf_stats: self.bpf_stats.is_some(),
            uptime: self.started.elapsed(),
            procfs: self.owners.procfs(),
        };
        self_metrics::families(&view, out);
    }

    /// The Go collector, when up.
    pub fn go(&self) -> Option<&GoSource> {
        self.go.get()
    }

    /// The process table the agent reads.
    pub fn procfs(&self) -> &ProcFs {
        self.owners.procfs()
    }

    /// Kernel-side losses of every collector, running or stopped, summed per reason.
    fn kernel_losses(&self) -> Losses {
        let mut total = self.counters.stopped_losses;
        for losses in [
            self.syscalls.get().map(SyscallSource::losses),
            self.processes.get().map(ProcessSource::losses),
            self.sched.get().map(SchedSource::losses),
            self.tcp.get().map(TcpSource::losses),
        ]
        .into_iter()
        .flatten()
        .flatten()
        {
            total.add(&losses);
        }
        total
    }

    /// Applies a reloaded config: collectors turned on or off, targets, labels, buckets and
    /// limits take effect at the next cycle; counters keep counting. Returns what could not be
    /// applied (needs a restart).
    pub fn reload(&mut self, config: AgentConfig) -> anyhow::Result<Vec<String>> {
        self.layout = layout_of(&config)?;
        let not_applied = self.config.restart_required(&config);
        let targets_changed = self.config.targets != config.targets;
        let listen = self.config.listen;
        self.config = config;
        self.config.listen = listen;
        self.owners.set_targets(self.config.targets.clone());
        if targets_changed {
            // Series of processes the new targets leave out end now, retired ones included. A
            // dead process's pid is not kept, so with pid targets only live pids are matched.
            // Retired owners are matched by comm and cgroup (a dead process's pid is not
            // kept); with pid targets, retired values are kept, as they were targeted then.
            let targets = self.config.targets.clone();
            let by_pid = !targets.pids.is_empty();
            let keep = |owner: &Owner| by_pid || targets.matches(0, &owner.comm, &owner.cgroup);
            if let Some(s) = self.syscalls.get_mut() {
                s.retain_owners(keep);
            }
            if let Some(s) = self.sched.get_mut() {
                s.retain_owners(keep);
            }
            if let Some(s) = self.tcp.get_mut() {
                s.retain_owners(keep);
            }
            if let Some(s) = self.processes.get_mut() {
                s.retain_owners(keep);
            }
        }
        self.start_missing();
        Ok(not_applied)
    }

    /// Drops what dead processes of cgroups that no longer exist counted (a container or pod
    /// that is gone): their series end, as they would in Prometheus, and the ledgers stay
    /// bounded however many containers come and go.
    fn prune_gone_cgroups(&mut self) {
        let mut exists: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        let root = self.owners.cgroup_root().to_owned();
        let mut keep = |owner: &Owner| {
            owner.cgroup.is_empty()
                || *exists
                    .entry(owner.cgroup.clone())
                    .or_insert_with(|| root.join(owner.cgroup.trim_start_matches('/')).is_dir())
        };
        if let Some(s) = self.syscalls.get_mut() {
            s.retain_owners(&mut keep);
        }
        if let Some(s) = self.sched.get_mut() {
            s.retain_owners(&mut keep);
        }
        if let Some(s) = self.tcp.get_mut() {
            s.retain_owners(&mut keep);
        }
        if let Some(s) = self.processes.get_mut() {
            s.retain_owners(&mut keep);
        }
        if let Some(s) = self.go.get_mut() {
            s.retain_owners(&mut keep);
        }
    }

    /// Counts a reload attempt.
    pub fn count_reload(&mut self, ok: bool) {
        if ok {
            self.counters.reloads_ok += 1;
        } else {
            self.counters.reloads_failed += 1;
        }
        self.counters.last_reload_ok = ok;
    }
}

fn go_settings(config: &AgentConfig) -> GoSettings {
    let go = &config.collectors.go;
    GoSettings {
        interval: go.interval,
        discover_every: go.discover_every,
        max_processes: go.max_processes,
        leak_after: go.leak_after,
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
