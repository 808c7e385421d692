//! TCP per process and direction (outbound: the process connected; inbound: it accepted):
//! connections, connect latency and failures, duration, bytes, resets, retransmits, RTT, and
//! the edges of a service map (which process talks to which remote endpoint).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use goroscope_bpf::tcp::{monotonic_now_ns, TcpCollector};
use goroscope_bpf::Losses;
use goroscope_export::{BucketLayout, Exposition, Family, Labels};
use goroscope_model::tcp_stats::{TcpDirection, TcpEdge, TcpRow};
use goroscope_model::LatencyHistogram;

use crate::agent::ledger::{Ledger, Owner, Tally};
use crate::agent::owners::{Fate, Owners};
use crate::agent::probe::Source;
use crate::agent::series::{sum_by_labels, LabelPlan, LiveRow};

/// One process's TCP totals in one direction.
#[derive(Clone, Debug, Default)]
pub struct TcpTally {
    opened: u64,
    closed: u64,
    connect_failures: u64,
    resets_sent: u64,
    resets_received: u64,
    retransmits: u64,
    bytes_sent: u64,
    bytes_received: u64,
    connect_latency: LatencyHistogram,
    connect_latency_ns: u64,
    duration: LatencyHistogram,
    duration_ns: u64,
    rtt: LatencyHistogram,
    rtt_ns: u64,
}

impl Tally for TcpTally {
    fn add(&mut self, o: &Self) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.opened, o.opened);
        add(&mut self.closed, o.closed);
        add(&mut self.connect_failures, o.connect_failures);
        add(&mut self.resets_sent, o.resets_sent);
        add(&mut self.resets_received, o.resets_received);
        add(&mut self.retransmits, o.retransmits);
        add(&mut self.bytes_sent, o.bytes_sent);
        add(&mut self.bytes_received, o.bytes_received);
        self.connect_latency.merge(&o.connect_latency);
        add(&mut self.connect_latency_ns, o.connect_latency_ns);
        self.duration.merge(&o.duration);
        add(&mut self.duration_ns, o.duration_ns);
        self.rtt.merge(&o.rtt);
        add(&mut self.rtt_ns, o.rtt_ns);
    }
}

impl From<&TcpRow> for TcpTally {
    fn from(r: &TcpRow) -> Self {
        Self {
            opened: r.opened,
            closed: r.closed,
            connect_failures: r.connect_failures,
            resets_sent: r.resets_sent,
            resets_received: r.resets_received,
            retransmits: r.retransmits,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
            connect_latency: r.connect_latency.clone(),
            connect_latency_ns: r.connect_latency_total_ns,
            duration: r.duration.clone(),
            duration_ns: r.duration_total_ns,
            rtt: r.rtt.clone(),
            rtt_ns: r.rtt_total_ns,
        }
    }
}

/// One process's traffic with one remote endpoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct EdgeTally {
    connections: u64,
    bytes_sent: u64,
    bytes_received: u64,
    /// When any of it last changed (CLOCK_MONOTONIC ns).
    last_active_ns: u64,
}

impl Tally for EdgeTally {
    fn add(&mut self, o: &Self) {
        self.connections = self.connections.saturating_add(o.connections);
        self.bytes_sent = self.bytes_sent.saturating_add(o.bytes_sent);
        self.bytes_received = self.bytes_received.saturating_add(o.bytes_received);
        self.last_active_ns = self.last_active_ns.max(o.last_active_ns);
    }
}

impl From<&TcpEdge> for EdgeTally {
    fn from(e: &TcpEdge) -> Self {
        Self {
            connections: e.connections,
            bytes_sent: e.bytes_sent,
            bytes_received: e.bytes_received,
            last_active_ns: e.last_active_ns,
        }
    }
}

/// How long an edge may stay unused before it is aged out, unless the config says otherwise.
const DEFAULT_EDGE_IDLE: Duration = Duration::from_secs(600);

/// An edge's key: direction, remote address, port (remote for outbound, local for inbound).
type EdgeKey = (Direction, IpAddr, u16);

/// A hashable copy of the model's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Direction(bool);

impl Direction {
    fn of(d: TcpDirection) -> Self {
        Self(matches!(d, TcpDirection::Outbound))
    }

    fn name(self) -> &'static str {
        if self.0 {
            "outbound"
        } else {
            "inbound"
        }
    }
}

/// The TCP collector and what it has retired.
pub struct TcpSource {
    collector: TcpCollector<'static>,
    rows: Ledger<Direction, TcpTally>,
    edges: Ledger<EdgeKey, EdgeTally>,
    live_rows: Vec<LiveRow<Direction, TcpTally>>,
    live_edges: Vec<LiveRow<EdgeKey, EdgeTally>>,
    edge_idle: Duration,
    /// Edges aged out of the kernel map so far.
    pub edges_aged: u64,
}

/// What the TCP source keeps while its collector is off (see `probe.rs`).
#[derive(Default)]
pub struct TcpKept {
    rows: Ledger<Direction, TcpTally>,
    edges: Ledger<EdgeKey, EdgeTally>,
}

impl Source for TcpSource {
    type Kept = TcpKept;

    fn losses(&self) -> Option<anyhow::Result<Losses>> {
        Some(TcpSource::losses(self))
    }

    fn park(mut self, owners: &mut Owners) -> TcpKept {
        if let Err(error) = self.collect(owners) {
            eprintln!("goroscope: agent: last read of the TCP collector failed: {error:#}");
        }
        self.rows.carry(self.live_rows);
        self.edges.carry(self.live_edges);
        TcpKept {
            rows: self.rows,
            edges: self.edges,
        }
    }
}

impl TcpSource {
    /// Wraps a started collector, continuing from what an earlier one counted.
    pub fn new(collector: TcpCollector<'static>, kept: TcpKept) -> Self {
        Self {
            collector,
            rows: kept.rows,
            edges: kept.edges,
            live_rows: Vec::new(),
            live_edges: Vec::new(),
            edge_idle: DEFAULT_EDGE_IDLE,
            edges_aged: 0,
        }
    }

    /// Sets how long an edge may stay unused: longer, and it is deleted from the kernel map
    /// (its values kept in the ledger); once no process of its owner has used it that long,
    /// its series ends.
    pub fn set_edge_idle(&mut self, idle: Duration) {
        self.edge_idle = idle;
    }

    /// Forgets what dead processes of owners the new targets exclude counted.
    pub fn retain_owners(&mut self, mut keep: impl FnMut(&Owner) -> bool) {
        self.rows.retain_owners(|owner| keep(owner));
        self.edges.retain_owners(|owner| keep(owner));
    }

    /// Kernel-side losses so far.
    pub fn losses(&self) -> anyhow::Result<Losses> {
        Ok(self.collector.losses()?)
    }

    /// Reads the kernel rows and edges; retires and deletes those of processes gone since the
    /// last cycle, and deletes those of untargeted processes.
    pub fn collect(&mut self, owners: &mut Owners) -> anyhow::Result<()> {
        self.rows.settle(owners);
        self.edges.settle(owners);
        let idle_ns = u64::try_from(self.edge_idle.as_nanos()).unwrap_or(u64::MAX);
        let idle_since = monotonic_now_ns().saturating_sub(idle_ns);
        // Idle edges leave the kernel map with their final values, which the ledger keeps, so
        // a server's many clients cannot fill it and no count is lost.
        for edge in self.collector.age_edges(idle_since)? {
            self.edges_aged += 1;
            let seen = owners.see(edge.pid, &edge.comm);
            if seen.targeted {
                let key = (Direction::of(edge.direction), edge.remote, edge.port);
                self.edges
                    .retire(&seen.owner, &key, &EdgeTally::from(&edge));
            }
        }
        let rows = self.collector.rows()?;
        let edges = self.collector.edges()?;
        self.live_rows.clear();
        self.live_edges.clear();
        let mut forget = Vec::new();
        let mut keep = std::collections::HashSet::new();
        let mut retiring_rows = Vec::new();
        let mut retiring_edges = Vec::new();
        for row in &rows {
            let seen = owners.see(row.pid, &row.comm);
            let key = Direction::of(row.direction);
            if seen.fate == Fate::Pending {
                continue; // its place is not known yet: counted next cycle
            } else if !seen.targeted {
                forget.push(row.pid);
            } else if seen.fate == Fate::Retire {
                forget.push(row.pid);
                retiring_rows.push((row.pid, seen.owner, key, TcpTally::from(row)));
            } else {
                keep.insert(row.pid);
                self.live_rows.push(LiveRow {
                    pid: row.pid,
                    owner: seen.owner,
                    key,
                    value: TcpTally::from(row),
                });
            }
        }
        for edge in &edges {
            let seen = owners.see(edge.pid, &edge.comm);
            let key = (Direction::of(edge.direction), edge.remote, edge.port);
            if seen.fate == Fate::Pending {
                continue;
            } else if !seen.targeted {
                forget.push(edge.pid);
            } else if seen.fate == Fate::Retire {
                forget.push(edge.pid);
                retiring_edges.push((edge.pid, seen.owner, key, EdgeTally::from(edge)));
            } else {
                keep.insert(edge.pid);
                self.live_edges.push(LiveRow {
                    pid: edge.pid,
                    owner: seen.owner,
                    key,
                    value: EdgeTally::from(edge),
                });
            }
        }
        forget.sort_unstable();
        forget.dedup();
        // Delete by pid only when none of its rows is targeted: a process's rows from before
        // an exec carry the old name, which the targets may not name.
        forget.retain(|pid| !keep.contains(pid));
        if !forget.is_empty() {
            self.collector.forget(&forget)?;
        }
        for (pid, owner, key, tally) in retiring_rows {
            self.rows.retire_process(pid, &owner, &key, &tally);
        }
        for (pid, owner, key, tally) in retiring_edges {
            self.edges.retire_process(pid, &owner, &key, &tally);
        }
        // A retired edge's series ends once no process of its owner has used it for the idle
        // time (then nothing adds to it: it cannot go back).
        let live: HashSet<(&Owner, &EdgeKey)> =
            self.live_edges.iter().map(|r| (&r.owner, &r.key)).collect();
        self.edges.retain(|owner, key, tally| {
            tally.last_active_ns >= idle_since || live.contains(&(owner, key))
        });
        Ok(())
    }

    /// Last values of ended processes not kept for an export (see the ledger), ever.
    pub fn departed_lost(&self) -> u64 {
        self.rows.departed_lost() + self.edges.departed_lost()
    }

    /// Whether the last values of ended processes wait for an export (see the ledger).
    pub fn set_keep_departed(&mut self, keep: bool) {
        self.rows.set_keep_departed(keep);
        self.edges.set_keep_departed(keep);
    }

    /// Forgets the last values of ended processes once exported (see the ledger).
    pub fn clear_departed(&mut self) {
        self.rows.clear_departed();
        self.edges.clear_departed();
    }

    /// The processes in `individual` have their own resource in an OTLP export (see the
    /// ledger).
    pub fn mark_exported(&mut self, individual: &HashSet<u32>) {
        self.rows.mark_exported(individual);
        self.edges.mark_exported(individual);
    }

    /// The processes with live rows.
    pub fn live_pids(&self) -> impl Iterator<Item = u32> + '_ {
        let first = self.live_rows.iter().map(|row| row.pid);
        first.chain(self.live_edges.iter().map(|row| row.pid))
    }

    /// Adds the TCP families; the edge families only when `edges`, keeping the `max_edges`
    /// edges with the most connections. Returns how many edges that cut.
    pub fn families(
        &self,
        plan: &LabelPlan,
        layout: &BucketLayout,
        edges: bool,
        max_edges: usize,
        out: &mut Exposition,
    ) -> usize {
        let mut connections = Family::counter(
            "goroscope_tcp_connections_total",
            "TCP connections by direction (outbound: connected by the process, inbound: \
             accepted by it) and event (opened: established, closed).",
        );
        let mut failures = Family::counter(
            "goroscope_tcp_connect_failures_total",
            "Outbound connects that never got established (refused, reset or timed out).",
        );
        let mut resets = Family::counter(
            "goroscope_tcp_resets_total",
            "TCP resets on the process's connections, sent or received.",
        );
        let mut retransmits = Family::counter(
            "goroscope_tcp_retransmits_total",
            "TCP segments retransmitted on the process's connections.",
        );
        let mut bytes = Family::counter(
            "goroscope_tcp_bytes_total",
            "Bytes sent (acknowledged by the peer) and received on connections, counted when \
             each connection closes.",
        );
        let mut connect = Family::histogram(
            "goroscope_tcp_connect_latency_seconds",
            "Time from connect() to established, outbound connections.",
        );
        let mut duration = Family::histogram(
            "goroscope_tcp_connection_duration_seconds",
            "Time connections stayed open, from established to closed.",
        );
        let mut rtt = Family::histogram(
            "goroscope_tcp_rtt_seconds",
            "Smoothed round-trip time of each connection when it closed.",
        );
        for ((labels, dir), t) in sum_by_labels(plan, &self.live_rows, &self.rows) {
            let l = labels.push("direction", dir.name());
            let with = |name: &'static str, value: &str| l.clone().push(name, value);
            connections.add_counter(with("event", "opened"), t.opened as f64);
            connections.add_counter(with("event", "closed"), t.closed as f64);
            resets.add_counter(with("origin", "sent"), t.resets_sent as f64);
            resets.add_counter(with("origin", "received"), t.resets_received as f64);
            bytes.add_counter(with("traffic", "sent"), t.bytes_sent as f64);
            bytes.add_counter(with("traffic", "received"), t.bytes_received as f64);
            retransmits.add_counter(l.clone(), t.retransmits as f64);
            duration.add_latency(l.clone(), layout, &t.duration, t.duration_ns);
            rtt.add_latency(l.clone(), layout, &t.rtt, t.rtt_ns);
            if dir.0 {
                failures.add_counter(labels_without_direction(&l), t.connect_failures as f64);
                connect.add_latency(
                    labels_without_direction(&l),
                    layout,
                    &t.connect_latency,
                    t.connect_latency_ns,
                );
            }
        }
        for family in [
            connections,
            failures,
            resets,
            retransmits,
            bytes,
            connect,
            duration,
            rtt,
        ] {
            out.push(family);
        }
        if edges {
            let mut edge_connections = Family::counter(
                "goroscope_tcp_edge_connections_total",
                "Connections per remote endpoint (the edges of a service map): port is the \
                 remote port for outbound, the local listening port for inbound.",
            );
            let mut edge_bytes = Family::counter(
                "goroscope_tcp_edge_bytes_total",
                "Bytes per remote endpoint, counted when each connection closes.",
            );
            let mut all: Vec<_> = sum_by_labels(plan, &self.live_edges, &self.edges)
                .into_iter()
                .collect();
            let cut = all.len().saturating_sub(max_edges);
            if cut > 0 {
                all.sort_unstable_by_key(|e| std::cmp::Reverse(e.1.connections));
                all.truncate(max_edges);
            }
            for ((labels, (dir, remote, port)), t) in all {
                let l = labels
                    .push("direction", dir.name())
                    .push("remote", remote.to_string())
                    .push("port", port.to_string());
                edge_connections.add_counter(l.clone(), t.connections as f64);
                edge_bytes.add_counter(l.clone().push("traffic", "sent"), t.bytes_sent as f64);
                edge_bytes.add_counter(l.push("traffic", "received"), t.bytes_received as f64);
            }
            out.push(edge_connections);
            out.push(edge_bytes);
            let mut aged = Family::counter(
                "goroscope_tcp_edges_aged_out_total",
                "Service-map edges deleted from the kernel map after collectors.tcp.edge_idle \
                 without use (their counts are kept).",
            );
            aged.add_counter(Labels::new(), self.edges_aged as f64);
            out.push(aged);
            return cut;
        }
        0
    }
}

/// Connect failures and latency are outbound only: no direction label.
fn labels_without_direction(labels: &Labels) -> Labels {
    let mut out = Labels::new();
    for (name, value) in labels.iter() {
        if name != "direction" {
            out = out.push(name, value);
        }
    }
    out
}
