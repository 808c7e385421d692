//! The config tree checked section by section into an [`AgentConfig`]: the schema (which
//! fields exist, their ranges) and the checks that span fields (`histograms.min` below
//! `histograms.max`, `comm` among the labels). Absent fields keep their defaults.
//! `exporters` is read by `otlp`.

use std::time::Duration;

use goroscope_bpf::syscalls::Timing;
use goroscope_export::BucketLayout;

use super::error::{echo, FieldPath, Problem};
use super::node::{Node, Value};
use super::otlp::{exporters, settle, Section};
use super::values::{duration, fields, flag, globs, items, listen, show, text, whole};
use super::values::{Bounds, Patterns};
use super::{
    AgentConfig, Collectors, Environment, GoCollector, Histograms, Label, LabelSet, Limits,
    NetworkCollector, SelfMonitoring, SyscallsCollector, Targets, TcpCollector, Toggle,
};

const fn seconds(s: u64) -> Duration {
    Duration::from_secs(s)
}

const INTERVAL: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: seconds(600),
};
const GO_INTERVAL: Bounds = INTERVAL;
const LEAK_AFTER: Bounds = Bounds {
    min: seconds(1),
    max: seconds(24 * 3600),
};
const EDGE_IDLE: Bounds = Bounds {
    min: seconds(1),
    max: seconds(7 * 24 * 3600),
};
const DISCOVER_EVERY: Bounds = Bounds {
    min: seconds(1),
    max: seconds(3600),
};
const HISTOGRAM_BOUND: Bounds = Bounds {
    min: Duration::from_nanos(1),
    max: seconds(3600),
};
const MAX_GO_PROCESSES: u64 = 4096;
const MAX_SERIES: u64 = 1_000_000;
/// The largest PID Linux hands out (PID_MAX_LIMIT on 64-bit).
const MAX_PID: u64 = 4_194_304;

/// Checks `root` (a mapping, or null for "all defaults") into a configuration whose `source`
/// is [`super::ConfigSource::Defaults`]; the caller sets it.
/// `env` fills what `exporters.otlp` leaves out.
pub(super) fn read(root: &Node, env: Environment) -> Result<AgentConfig, Problem> {
    let top = FieldPath::root();
    if !matches!(root.value, Value::Map(_) | Value::Null) {
        return Err(Problem::value(
            &top,
            format!(
                "not a YAML mapping (found {}); write fields like `listen:` and `collectors:`, \
                 as in config/agent.example.yaml",
                root.describe()
            ),
        ));
    }
    let names = [
        "listen",
        "interval",
        "collectors",
        "targets",
        "labels",
        "histograms",
        "limits",
        "self_monitoring",
        "exporters",
    ];
    let mut config = AgentConfig::defaults();
    let mut otlp = Section::Absent;
    for (name, value, at) in fields(root, &top, &names, "")? {
        match name {
            "listen" => listen(value, &at, &mut config.listen)?,
            "interval" => duration(value, &at, INTERVAL, &mut config.interval)?,
            "collectors" => collectors(value, &at, &mut config.collectors)?,
            "targets" => targets(value, &at, &mut config.targets)?,
            "labels" => labels(value, &at, &mut config.labels)?,
            "histograms" => histograms(value, &at, &mut config.histograms)?,
            "limits" => limits(value, &at, &mut config.limits)?,
            "self_monitoring" => self_monitoring(value, &at, &mut config.self_monitoring)?,
            "exporters" => otlp = exporters(value, &at)?,
            _ => {} // `fields` admits only the names above
        }
    }
    // After the loop: the export interval is checked against the collection interval.
    config.exporters = settle(otlp, env, config.interval)?;
    Ok(config)
}

fn collectors(node: &Node, at: &FieldPath, c: &mut Collectors) -> Result<(), Problem> {
    let names = [
        "syscalls",
        "processes",
        "files",
        "scheduler",
        "tcp",
        "network",
        "go",
    ];
    for (name, value, at) in fields(node, at, &names, "{ tcp: { enabled: false } }")? {
        match name {
            "syscalls" => syscalls(value, &at, &mut c.syscalls)?,
            "processes" => toggle(value, &at, &mut c.processes)?,
            "files" => toggle(value, &at, &mut c.files)?,
            "scheduler" => toggle(value, &at, &mut c.scheduler)?,
            "tcp" => tcp(value, &at, &mut c.tcp)?,
            "network" => network(value, &at, &mut c.network)?,
            "go" => go(value, &at, &mut c.go)?,
            _ => {}
        }
    }
    Ok(())
}

fn toggle(node: &Node, at: &FieldPath, t: &mut Toggle) -> Result<(), Problem> {
    for (_, value, at) in fields(node, at, &["enabled"], "{ enabled: false }")? {
        flag(value, &at, &mut t.enabled)?;
    }
    Ok(())
}

fn syscalls(node: &Node, at: &FieldPath, t: &mut SyscallsCollector) -> Result<(), Problem> {
    let example = "{ enabled: true, timed_calls: 10000 }";
    for (name, value, at) in fields(node, at, &["enabled", "timed_calls"], example)? {
        match name {
            "enabled" => flag(value, &at, &mut t.enabled)?,
            "timed_calls" => timed_calls(value, &at, &mut t.timed_calls)?,
            _ => {}
        }
    }
    Ok(())
}

/// `timed_calls`: calls timed per second per thread, or `all`.
fn timed_calls(node: &Node, at: &FieldPath, slot: &mut Timing) -> Result<(), Problem> {
    if matches!(&node.value, Value::Str(text) if text == "all") {
        *slot = Timing::EveryCall;
        return Ok(());
    }
    let rate = whole(node, at, 1, u64::from(u32::MAX)).map_err(|_| {
        Problem::value(
            at,
            format!(
                "expected calls timed per second per thread (1 to {}) or `all`, found {}",
                u32::MAX,
                node.describe()
            ),
        )
    })?;
    if let Some(n) = rate {
        *slot = Timing::PerThreadPerSecond(u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok(())
}

fn tcp(node: &Node, at: &FieldPath, t: &mut TcpCollector) -> Result<(), Problem> {
    let example = "{ enabled: true, edges: false }";
    let names = ["enabled", "edges", "edge_idle"];
    for (name, value, at) in fields(node, at, &names, example)? {
        match name {
            "enabled" => flag(value, &at, &mut t.enabled)?,
            "edges" => flag(value, &at, &mut t.edges)?,
            "edge_idle" => duration(value, &at, EDGE_IDLE, &mut t.edge_idle)?,
            _ => {}
        }
    }
    Ok(())
}

fn network(node: &Node, at: &FieldPath, n: &mut NetworkCollector) -> Result<(), Problem> {
    let names = ["enabled", "interfaces", "exclude"];
    let example = "{ enabled: true, interfaces: [\"*\"], exclude: [\"lo\"] }";
    for (name, value, at) in fields(node, at, &names, example)? {
        match name {
            "enabled" => flag(value, &at, &mut n.enabled)?,
            "interfaces" => {
                globs(value, &at, Patterns::Interface, &mut n.interfaces)?;
                if n.interfaces.is_empty() {
                    return Err(Problem::value(
                        &at,
                        "an empty list matches no interface; write [\"*\"] for all of them, \
                         or turn the collector off with enabled: false",
                    ));
                }
            }
            "exclude" => globs(value, &at, Patterns::Interface, &mut n.exclude)?,
            _ => {}
        }
    }
    Ok(())
}

fn go(node: &Node, at: &FieldPath, g: &mut GoCollector) -> Result<(), Problem> {
    let names = [
        "enabled",
        "interval",
        "max_processes",
        "leak_after",
        "discover_every",
    ];
    for (name, value, at) in fields(node, at, &names, "{ enabled: true, interval: 10s }")? {
        match name {
            "enabled" => flag(value, &at, &mut g.enabled)?,
            "interval" => duration(value, &at, GO_INTERVAL, &mut g.interval)?,
            "max_processes" => {
                if let Some(n) = whole(value, &at, 1, MAX_GO_PROCESSES)? {
                    g.max_processes = n as usize;
                }
            }
            "leak_after" => duration(value, &at, LEAK_AFTER, &mut g.leak_after)?,
            "discover_every" => duration(value, &at, DISCOVER_EVERY, &mut g.discover_every)?,
            _ => {}
        }
    }
    Ok(())
}

fn targets(node: &Node, at: &FieldPath, t: &mut Targets) -> Result<(), Problem> {
    let example = "{ comms: [\"nginx\"] }";
    for (name, value, at) in fields(node, at, &["pids", "comms", "cgroups"], example)? {
        match name {
            "pids" => {
                let Some(list) = items(value, &at, "[1234, 5678]")? else {
                    continue;
                };
                let mut pids = Vec::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    let at = at.index(i);
                    let pid = whole(item, &at, 1, MAX_PID)?.ok_or_else(|| {
                        Problem::value(&at, "expected a process ID, found nothing (null)")
                    })?;
                    pids.push(pid as u32);
                }
                pids.sort_unstable();
                pids.dedup();
                t.pids = pids;
            }
            "comms" => globs(value, &at, Patterns::Comm, &mut t.comms)?,
            "cgroups" => globs(value, &at, Patterns::Cgroup, &mut t.cgroups)?,
            _ => {}
        }
    }
    Ok(())
}

fn labels(node: &Node, at: &FieldPath, set: &mut LabelSet) -> Result<(), Problem> {
    let Some(list) = items(node, at, "[comm, cgroup]")? else {
        return Ok(());
    };
    let allowed = Label::ALL.map(Label::name).join(", ");
    let mut seen = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = at.index(i);
        let name = text(item, &at, "comm")?;
        let Some(label) = Label::from_name(name) else {
            return Err(Problem::value(
                &at,
                format!("unknown label {}; the labels are {allowed}", echo(name)),
            ));
        };
        if seen.contains(&label) {
            return Err(Problem::value(
                &at,
                format!("{} is listed twice; list each label once", echo(name)),
            ));
        }
        seen.push(label);
    }
    if !seen.contains(&Label::Comm) {
        return Err(Problem::value(
            at,
            "comm is missing; every series is labelled with its process name: add comm to \
             the list",
        ));
    }
    *set = LabelSet {
        pid: seen.contains(&Label::Pid),
        cgroup: seen.contains(&Label::Cgroup),
        container_id: seen.contains(&Label::ContainerId),
    };
    Ok(())
}

fn histograms(node: &Node, at: &FieldPath, h: &mut Histograms) -> Result<(), Problem> {
    let names = ["buckets_per_octave", "min", "max"];
    let (mut min_at, mut max_at) = (None, None);
    for (name, value, at) in fields(node, at, &names, "{ min: 1us, max: 100s }")? {
        match name {
            "buckets_per_octave" => {
                if let Some(n) = whole(value, &at, 1, 4)? {
                    if n == 3 {
                        return Err(Problem::value(
                            &at,
                            "3 is not allowed; use 1, 2 or 4 (bucket boundaries per doubling \
                             of latency)",
                        ));
                    }
                    h.buckets_per_octave = n as u32;
                }
            }
            "min" => {
                duration(value, &at, HISTOGRAM_BOUND, &mut h.min)?;
                min_at = Some(at);
            }
            "max" => {
                duration(value, &at, HISTOGRAM_BOUND, &mut h.max)?;
                max_at = Some(at);
            }
            _ => {}
        }
    }
    // Point at min when the file sets it, else at max (the defaults agree with each other).
    let (min, max) = (show(h.min), show(h.max));
    let blame = |message: String| match (&min_at, &max_at) {
        (Some(at), _) => Problem::value(at, message),
        (None, Some(at)) => Problem::value(at, message),
        (None, None) => Problem::value(&FieldPath::root().key("histograms"), message),
    };
    if h.min >= h.max {
        return Err(blame(if min_at.is_some() {
            format!("{min:?} must be below histograms.max {max:?}; lower min or raise max")
        } else {
            format!("{max:?} must be above histograms.min {min:?}; raise max or lower min")
        }));
    }
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    if BucketLayout::new(h.buckets_per_octave, nanos(h.min), nanos(h.max)).is_err() {
        return Err(blame(format!(
            "no bucket boundary lies between histograms.min {min:?} and histograms.max \
             {max:?} at {} per octave; widen the range or raise buckets_per_octave",
            h.buckets_per_octave
        )));
    }
    Ok(())
}

fn limits(node: &Node, at: &FieldPath, l: &mut Limits) -> Result<(), Problem> {
    let names = ["max_series_per_family", "max_tcp_edges"];
    for (name, value, at) in fields(node, at, &names, "{ max_series_per_family: 10000 }")? {
        let Some(n) = whole(value, &at, 1, MAX_SERIES)? else {
            continue;
        };
        match name {
            "max_series_per_family" => l.max_series_per_family = n as usize,
            "max_tcp_edges" => l.max_tcp_edges = n as usize,
            _ => {}
        }
    }
    Ok(())
}

fn self_monitoring(node: &Node, at: &FieldPath, s: &mut SelfMonitoring) -> Result<(), Problem> {
    for (_, value, at) in fields(node, at, &["bpf_stats"], "{ bpf_stats: true }")? {
        flag(value, &at, &mut s.bpf_stats)?;
    }
    Ok(())
}
