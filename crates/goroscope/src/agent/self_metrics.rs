//! goroscope watching itself: what was lost at each stage (kernel, reader, aggregation), which
//! collectors are up, the CPU time of its own BPF programs, its own CPU and memory, reloads,
//! and how long a collection takes. Every drop anywhere is a number here, never only a log line.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use goroscope_bpf::bpf_stats;
use goroscope_bpf::losses::LOSS_REASONS;
use goroscope_bpf::Losses;
use goroscope_export::{Exposition, Family, Labels};
use goroscope_host::{own_usage, ProcFs};

use crate::agent::sources::go::GoSource;

/// Counters the agent keeps about itself.
#[derive(Debug, Default)]
pub struct SelfCounters {
    /// Collection cycles run (the one being built included).
    pub collections: u64,
    /// When the latest cycle began (wall clock).
    pub last_collection: Option<SystemTime>,
    /// Series dropped by the per-family cap, per family.
    pub series_dropped: HashMap<&'static str, u64>,
    /// Failed reads per collector.
    pub collection_errors: HashMap<&'static str, u64>,
    /// Config reloads that took effect.
    pub reloads_ok: u64,
    /// Config reloads refused (the file was invalid).
    pub reloads_failed: u64,
    /// Whether the last reload took effect (true before any).
    pub last_reload_ok: bool,
    /// Time the last collection cycle took.
    pub last_cycle: Duration,
    /// Kernel losses of collectors turned off by a reload.
    pub stopped_losses: Losses,
    /// Samples the exposition refused (duplicate label sets, type conflicts), summed.
    pub refused_samples: u64,
    /// Run time and runs of BPF programs no longer loaded, per name, so the totals never go back.
    pub unloaded_programs: HashMap<String, (u64, u64)>,
    /// The last reading of each loaded program, by id.
    pub loaded_programs: HashMap<u32, (String, u64, u64)>,
}

impl SelfCounters {
    /// Reads the run time of goroscope's loaded BPF programs. Programs that were unloaded since
    /// the last reading (a collector turned off) keep their last figures, so totals never go back.
    pub fn read_programs(&mut self) {
        let Ok(programs) = bpf_stats::own_programs() else {
            return;
        };
        let mut now: HashMap<u32, (String, u64, u64)> = HashMap::with_capacity(programs.len());
        for p in programs {
            now.insert(p.id, (p.name, p.run_time_ns, p.run_count));
        }
        for (id, (name, ns, count)) in self.loaded_programs.drain() {
            if !now.contains_key(&id) {
                let entry = self.unloaded_programs.entry(name).or_default();
                entry.0 = entry.0.saturating_add(ns);
                entry.1 = entry.1.saturating_add(count);
            }
        }
        self.loaded_programs = now;
    }
}

/// What the self metrics are computed from.
pub struct View<'a> {
    /// (collector, up?) — None when turned off.
    pub probes: [(&'static str, Option<bool>); 6],
    /// Kernel-side losses, summed over collectors.
    pub kernel_losses: &'a Losses,
    /// Events dropped between the ring buffer and the agent.
    pub reader_drops: u64,
    /// Process events dropped while counting.
    pub process_aggregation_drops: u64,
    /// The Go collector, when up.
    pub go: Option<&'a GoSource>,
    /// The agent's own counters.
    pub counters: &'a SelfCounters,
    /// Whether the kernel accounts BPF run time.
    pub bpf_stats: bool,
    /// Time since the agent started.
    pub uptime: Duration,
    /// Where to read the agent's own usage.
    pub procfs: &'a ProcFs,
}

/// Adds the self-observability families.
pub fn families(view: &View<'_>, out: &mut Exposition) {
    let mut dropped = Family::counter(
        "goroscope_events_dropped_total",
        "Events or values lost, by stage (kernel: BPF maps or ring buffer full; reader: the \
         queue from the ring buffer was full; aggregation: dropped while summing in the agent) \
         and reason.",
    );
    for (reason, count) in LOSS_REASONS.iter().zip(view.kernel_losses.counts) {
        dropped.add_counter(stage("kernel", reason), count as f64);
    }
    dropped.add_counter(
        stage("reader", "process events: queue full"),
        view.reader_drops as f64,
    );
    dropped.add_counter(
        stage(
            "aggregation",
            "process events: undecodable or over the name cap",
        ),
        view.process_aggregation_drops as f64,
    );
    let capped: u64 = view.counters.series_dropped.values().sum();
    dropped.add_counter(
        stage("aggregation", "series over the per-family cap"),
        capped as f64,
    );
    if let Some(go) = view.go {
        dropped.add_counter(
            stage(
                "aggregation",
                "Go GC pauses overwritten in the runtime's ring",
            ),
            go.pauses_missed as f64,
        );
    }
    out.push(dropped);

    let mut series_dropped = Family::counter(
        "goroscope_series_dropped_total",
        "Series left out of /metrics by limits.max_series_per_family, summed over collections.",
    );
    for (family, count) in &view.counters.series_dropped {
        series_dropped.add_counter(
            Labels::new().push("family", (*family).to_owned()),
            *count as f64,
        );
    }
    out.push(series_dropped);

    let mut up = Family::gauge(
        "goroscope_probe_up",
        "Whether each enabled collector is running (1) or down (0); see the agent's log for why.",
    );
    for (name, state) in view.probes {
        if let Some(state) = state {
            up.add_gauge(
                Labels::new().push("probe", name.to_owned()),
                f64::from(u8::from(state)),
            );
        }
    }
    out.push(up);

    let mut errors = Family::counter(
        "goroscope_collection_errors_total",
        "Collection cycles in which reading a collector failed.",
    );
    for (name, count) in &view.counters.collection_errors {
        errors.add_counter(
            Labels::new().push("probe", (*name).to_owned()),
            *count as f64,
        );
    }
    out.push(errors);

    if view.bpf_stats {
        let mut cpu = Family::counter(
            "goroscope_bpf_program_cpu_seconds_total",
            "CPU time spent in goroscope's own BPF programs, per program.",
        );
        let mut runs = Family::counter(
            "goroscope_bpf_program_runs_total",
            "Times each of goroscope's BPF programs ran.",
        );
        let mut by_name: HashMap<&str, (u64, u64)> = HashMap::new();
        let loaded = view
            .counters
            .loaded_programs
            .values()
            .map(|(n, t, c)| (n, (t, c)));
        let unloaded = view
            .counters
            .unloaded_programs
            .iter()
            .map(|(n, (t, c))| (n, (t, c)));
        for (name, (ns, count)) in loaded.chain(unloaded) {
            let entry = by_name.entry(name).or_default();
            entry.0 = entry.0.saturating_add(*ns);
            entry.1 = entry.1.saturating_add(*count);
        }
        for (name, (ns, count)) in by_name {
            cpu.add_counter(Labels::new().push("program", name), ns as f64 / 1e9);
            runs.add_counter(Labels::new().push("program", name), count as f64);
        }
        out.push(cpu);
        out.push(runs);
    }

    if let Ok(usage) = own_usage(view.procfs) {
        let mut rss = Family::gauge(
            "goroscope_agent_resident_memory_bytes",
            "Resident memory of the goroscope agent.",
        );
        rss.add_gauge(Labels::new(), usage.rss_bytes as f64);
        out.push(rss);
        let mut cpu = Family::counter(
            "goroscope_agent_cpu_seconds_total",
            "CPU time of the goroscope agent's user-space side, by mode.",
        );
        cpu.add_counter(Labels::new().push("mode", "user"), usage.cpu_user_seconds);
        cpu.add_counter(
            Labels::new().push("mode", "system"),
            usage.cpu_system_seconds,
        );
        out.push(cpu);
    }

    let mut reloads = Family::counter(
        "goroscope_config_reloads_total",
        "Config reloads (SIGHUP) by result: applied, or refused because the file was invalid.",
    );
    reloads.add_counter(
        Labels::new().push("result", "applied"),
        view.counters.reloads_ok as f64,
    );
    reloads.add_counter(
        Labels::new().push("result", "refused"),
        view.counters.reloads_failed as f64,
    );
    out.push(reloads);
    let mut last_ok = Family::gauge(
        "goroscope_config_last_reload_successful",
        "1 when the last config reload was applied (or none was tried), 0 when it was refused.",
    );
    last_ok.add_gauge(
        Labels::new(),
        f64::from(u8::from(
            view.counters.last_reload_ok
                || view.counters.reloads_failed == 0 && view.counters.reloads_ok == 0,
        )),
    );
    out.push(last_ok);

    let mut cycle = Family::gauge(
        "goroscope_agent_collection_duration_seconds",
        "How long the last collection cycle took (reading every collector, building /metrics).",
    );
    cycle.add_gauge(Labels::new(), view.counters.last_cycle.as_secs_f64());
    out.push(cycle);
    let mut collections = Family::counter(
        "goroscope_agent_collections_total",
        "Collection cycles run; one every interval, whatever signals arrive.",
    );
    collections.add_counter(Labels::new(), view.counters.collections as f64);
    out.push(collections);
    let mut last = Family::gauge(
        "goroscope_agent_last_collection_timestamp_seconds",
        "When the collection that built this exposition began (Unix time).",
    );
    let began = view
        .counters
        .last_collection
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default();
    last.add_gauge(Labels::new(), began.as_secs_f64());
    out.push(last);
    let mut uptime = Family::gauge(
        "goroscope_agent_uptime_seconds",
        "Time since the agent started.",
    );
    uptime.add_gauge(Labels::new(), view.uptime.as_secs_f64());
    out.push(uptime);
    let mut info = Family::gauge("goroscope_build_info", "goroscope's version (always 1).");
    info.add_gauge(
        Labels::new().push("version", env!("CARGO_PKG_VERSION").to_owned()),
        1.0,
    );
    out.push(info);
    if let Some(go) = view.go {
        let mut failures = Family::counter(
            "goroscope_go_snapshot_failures_total",
            "Snapshots of Go processes that could not be read (retried at the next interval).",
        );
        failures.add_counter(Labels::new(), go.snapshot_failures as f64);
        out.push(failures);
        let mut over = Family::gauge(
            "goroscope_go_processes_not_watched",
            "Go processes found at the last discovery but not watched, because \
             collectors.go.max_processes were already watched.",
        );
        over.add_gauge(Labels::new(), go.over_limit as f64);
        out.push(over);
        go.self_families(out);
    }
}

fn stage(stage: &str, reason: &str) -> Labels {
    Labels::new()
        .push("stage", stage.to_owned())
        .push("reason", reason.to_owned())
}
