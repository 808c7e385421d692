//! Aggregated per-process TCP statistics and the edges of a service map,
//! independent of BPF.

use std::net::{IpAddr, Ipv4Addr};

use crate::histogram::LatencyHistogram;

/// Which side of a connection a process is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TcpDirection {
    /// The process opened the connection (called `connect()`).
    #[default]
    Outbound,
    /// A listening socket of the process accepted the connection.
    Inbound,
}

impl TcpDirection {
    /// `"outbound"` or `"inbound"`, as in labels and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }
}

/// TCP statistics of one process in one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpRow {
    /// Process (thread group) id.
    pub pid: u32,
    /// Command name of the process.
    pub comm: String,
    /// Whether these are connections the process opened or accepted.
    pub direction: TcpDirection,
    /// Connections established: outbound, a `connect()` that completed;
    /// inbound, a connection accepted by one of the process's listeners.
    pub opened: u64,
    /// Established connections that have closed.
    pub closed: u64,
    /// Outbound connects that never got established (refused, timed out,
    /// abandoned).
    pub connect_failures: u64,
    /// Resets sent on the process's connections.
    pub resets_sent: u64,
    /// Connections reset by the kernel on an incoming reset (or on data
    /// arriving after the process closed the connection).
    pub resets_received: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Payload bytes sent and acknowledged by the peer, over closed connections.
    pub bytes_sent: u64,
    /// Payload bytes received, over closed connections.
    pub bytes_received: u64,
    /// Distribution of the time from SYN sent to established (outbound only).
    pub connect_latency: LatencyHistogram,
    /// Sum of connect latencies in nanoseconds.
    pub connect_latency_total_ns: u64,
    /// Distribution of the time connections were established before closing.
    pub duration: LatencyHistogram,
    /// Sum of connection durations in nanoseconds.
    pub duration_total_ns: u64,
    /// Distribution of each closed connection's smoothed round-trip time at close.
    pub rtt: LatencyHistogram,
    /// Sum of those round-trip times in nanoseconds.
    pub rtt_total_ns: u64,
}

impl TcpRow {
    /// Connections established and not yet closed (as far as counted).
    pub fn open_now(&self) -> u64 {
        self.opened.saturating_sub(self.closed)
    }

    /// Adds the counters, sums and histograms of `other` into `self`
    /// (saturating). The identity fields (`pid`, `comm`, `direction`) of
    /// `self` are kept.
    pub fn merge(&mut self, other: &TcpRow) {
        let pairs = [
            (&mut self.opened, other.opened),
            (&mut self.closed, other.closed),
            (&mut self.connect_failures, other.connect_failures),
            (&mut self.resets_sent, other.resets_sent),
            (&mut self.resets_received, other.resets_received),
            (&mut self.retransmits, other.retransmits),
            (&mut self.bytes_sent, other.bytes_sent),
            (&mut self.bytes_received, other.bytes_received),
            (
                &mut self.connect_latency_total_ns,
                other.connect_latency_total_ns,
            ),
            (&mut self.duration_total_ns, other.duration_total_ns),
            (&mut self.rtt_total_ns, other.rtt_total_ns),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.saturating_add(theirs);
        }
        self.connect_latency.merge(&other.connect_latency);
        self.duration.merge(&other.duration);
        self.rtt.merge(&other.rtt);
    }
}

/// One edge of a service map: a process's connections to (outbound) or
/// from (inbound) one remote address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEdge {
    /// Process (thread group) id.
    pub pid: u32,
    /// Command name of the process.
    pub comm: String,
    /// Whether the process opened or accepted these connections.
    pub direction: TcpDirection,
    /// The peer's address; IPv4-mapped IPv6 addresses are shown as IPv4.
    pub remote: IpAddr,
    /// Outbound: the remote port; inbound: the local port the process listens on.
    pub port: u16,
    /// Connections established.
    pub connections: u64,
    /// Payload bytes sent, over closed connections.
    pub bytes_sent: u64,
    /// Payload bytes received, over closed connections.
    pub bytes_received: u64,
    /// When the edge last changed (CLOCK_MONOTONIC ns).
    pub last_active_ns: u64,
}

impl Default for TcpEdge {
    fn default() -> Self {
        Self {
            pid: 0,
            comm: String::new(),
            direction: TcpDirection::Outbound,
            remote: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            connections: 0,
            bytes_sent: 0,
            bytes_received: 0,
            last_active_ns: 0,
        }
    }
}

impl TcpEdge {
    /// What identifies an edge: (pid, direction, remote, port).
    pub fn key(&self) -> (u32, TcpDirection, IpAddr, u16) {
        (self.pid, self.direction, self.remote, self.port)
    }

    /// Adds the counters of `other` into `self` (saturating) and keeps the
    /// later activity time; the identity fields of `self` are kept.
    pub fn merge(&mut self, other: &TcpEdge) {
        self.connections = self.connections.saturating_add(other.connections);
        self.bytes_sent = self.bytes_sent.saturating_add(other.bytes_sent);
        self.bytes_received = self.bytes_received.saturating_add(other.bytes_received);
        self.last_active_ns = self.last_active_ns.max(other.last_active_ns);
    }
}

/// Merges edges with the same [`TcpEdge::key`] (for example an IPv4 peer
/// reached over both an IPv4 and a dual-stack IPv6 socket) and returns them
/// sorted by that key.
pub fn merge_edges(edges: impl IntoIterator<Item = TcpEdge>) -> Vec<TcpEdge> {
    let mut merged: std::collections::BTreeMap<(u32, TcpDirection, IpAddr, u16), TcpEdge> =
        std::collections::BTreeMap::new();
    for edge in edges {
        match merged.entry(edge.key()) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&edge),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(edge);
            }
        }
    }
    merged.into_values().collect()
}

/// Orders rows for display: busiest first (connections opened plus
/// failures), then ascending pid and direction, so the order is deterministic.
pub fn sort_by_activity(rows: &mut [TcpRow]) {
    rows.sort_by(|a, b| {
        let activity = |r: &TcpRow| r.opened.saturating_add(r.connect_failures);
        activity(b)
            .cmp(&activity(a))
            .then_with(|| a.pid.cmp(&b.pid))
            .then_with(|| a.direction.cmp(&b.direction))
            .then_with(|| a.comm.cmp(&b.comm))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn row(pid: u32, direction: TcpDirection, opened: u64) -> TcpRow {
        TcpRow {
            pid,
            comm: format!("proc{pid}"),
            direction,
            opened,
            ..TcpRow::default()
        }
    }

    #[test]
    fn direction_names() {
        assert_eq!(TcpDirection::Outbound.as_str(), "outbound");
        assert_eq!(TcpDirection::Inbound.as_str(), "inbound");
    }

    #[test]
    fn merge_sums_every_counter_and_histogram() {
        let mut a = row(1, TcpDirection::Outbound, 2);
        a.closed = 1;
        a.bytes_sent = 100;
        a.connect_latency.record(1000);
        a.connect_latency_total_ns = 1000;
        a.rtt.record(50_000);
        a.rtt_total_ns = 50_000;
        let b = TcpRow {
            pid: 2,
            comm: "other".into(),
            direction: TcpDirection::Inbound,
            opened: 3,
            closed: 3,
            connect_failures: 4,
            resets_sent: 5,
            resets_received: 6,
            retransmits: 7,
            bytes_sent: 8,
            bytes_received: 9,
            connect_latency: LatencyHistogram::new(),
            connect_latency_total_ns: 10,
            duration: {
                let mut h = LatencyHistogram::new();
                h.record(7);
                h
            },
            duration_total_ns: 11,
            rtt: LatencyHistogram::new(),
            rtt_total_ns: 12,
        };
        a.merge(&b);
        assert_eq!((a.pid, a.comm.as_str()), (1, "proc1"));
        assert_eq!(a.direction, TcpDirection::Outbound);
        assert_eq!(
            (a.opened, a.closed, a.connect_failures),
            (5, 4, 4),
            "counts"
        );
        assert_eq!((a.resets_sent, a.resets_received, a.retransmits), (5, 6, 7));
        assert_eq!((a.bytes_sent, a.bytes_received), (108, 9));
        assert_eq!(
            (
                a.connect_latency_total_ns,
                a.duration_total_ns,
                a.rtt_total_ns
            ),
            (1010, 11, 50_012)
        );
        assert_eq!(a.connect_latency.total(), 1);
        assert_eq!(a.duration.total(), 1);
        assert_eq!(a.rtt.total(), 1);
        assert_eq!(a.open_now(), 1);
    }

    #[test]
    fn merge_saturates() {
        let mut a = row(1, TcpDirection::Inbound, u64::MAX);
        a.bytes_received = u64::MAX - 1;
        let mut b = row(1, TcpDirection::Inbound, 1);
        b.bytes_received = 5;
        a.merge(&b);
        assert_eq!(a.opened, u64::MAX);
        assert_eq!(a.bytes_received, u64::MAX);
    }

    fn edge(pid: u32, remote: IpAddr, port: u16, connections: u64) -> TcpEdge {
        TcpEdge {
            pid,
            comm: format!("proc{pid}"),
            remote,
            port,
            connections,
            bytes_sent: connections * 10,
            bytes_received: connections,
            ..TcpEdge::default()
        }
    }

    #[test]
    fn edges_merge_by_key_and_sort() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let edges = vec![
            edge(2, v4, 80, 1),
            edge(1, v6, 443, 2),
            edge(1, v4, 443, 3),
            edge(1, v4, 443, 4),
            TcpEdge {
                direction: TcpDirection::Inbound,
                ..edge(1, v4, 443, 5)
            },
        ];
        let merged = merge_edges(edges);
        let summary: Vec<(u32, TcpDirection, IpAddr, u16, u64, u64)> = merged
            .iter()
            .map(|e| {
                (
                    e.pid,
                    e.direction,
                    e.remote,
                    e.port,
                    e.connections,
                    e.bytes_sent,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, TcpDirection::Outbound, v4, 443, 7, 70),
                (1, TcpDirection::Outbound, v6, 443, 2, 20),
                (1, TcpDirection::Inbound, v4, 443, 5, 50),
                (2, TcpDirection::Outbound, v4, 80, 1, 10),
            ]
        );
    }

    #[test]
    fn rows_sort_busiest_first() {
        let mut rows = vec![
            row(3, TcpDirection::Outbound, 1),
            row(1, TcpDirection::Inbound, 5),
            row(1, TcpDirection::Outbound, 5),
            TcpRow {
                connect_failures: 9,
                ..row(9, TcpDirection::Outbound, 0)
            },
        ];
        sort_by_activity(&mut rows);
        let order: Vec<(u32, TcpDirection)> = rows.iter().map(|r| (r.pid, r.direction)).collect();
        assert_eq!(
            order,
            vec![
                (9, TcpDirection::Outbound),
                (1, TcpDirection::Outbound),
                (1, TcpDirection::Inbound),
                (3, TcpDirection::Outbound),
            ]
        );
    }
}
