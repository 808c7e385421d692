//! The TCP collector: attaches bpf/tcp.bpf.c and turns its maps into one row
//! per (process, direction) and one service-map edge per (process,
//! direction, remote address, port) when asked.

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use goroscope_model::tcp_stats::{merge_edges, TcpDirection, TcpEdge, TcpRow};
use goroscope_model::until_nul;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

use crate::attach::{attach_all, AttachMode};
use crate::error::BpfError;
use crate::evict;
use crate::filter::{configure_filter, fill_target_pids, ProcessFilter};
use crate::libbpf_log;
use crate::losses::Losses;
use crate::pod::{self, chars, Pod};
use crate::skel::tcp::types::{
    tcp_conn, tcp_edge_key, tcp_edge_stats, tcp_listener, tcp_listener_key, tcp_row_key, tcp_stats,
};
use crate::skel::tcp::{TcpSkel, TcpSkelBuilder};

const OBJECT: &str = "tcp";

/// `TCP_OUTBOUND` and `TCP_INBOUND` in bpf/tcp.h.
const TCP_OUTBOUND: u32 = 0;
const TCP_INBOUND: u32 = 1;
/// Address families as the kernel numbers them.
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

// SAFETY: generated from C structs of integers and integer arrays only.
unsafe impl Pod for tcp_row_key {}
// SAFETY: as above.
unsafe impl Pod for tcp_stats {}
// SAFETY: as above.
unsafe impl Pod for tcp_edge_key {}
// SAFETY: as above.
unsafe impl Pod for tcp_edge_stats {}
// SAFETY: as above.
unsafe impl Pod for tcp_conn {}
// SAFETY: as above.
unsafe impl Pod for tcp_listener {}
// SAFETY: as above.
unsafe impl Pod for tcp_listener_key {}

// The C side asserts the same sizes (_Static_assert in bpf/tcp.h).
const _: () = assert!(std::mem::size_of::<tcp_row_key>() == 8);
const _: () =
    assert!(std::mem::size_of::<tcp_stats>() == 104 + 3 * 8 * goroscope_model::LATENCY_BUCKETS);
const _: () = assert!(std::mem::size_of::<tcp_edge_key>() == 28);
const _: () = assert!(std::mem::size_of::<tcp_edge_stats>() == 48);
const _: () = assert!(std::mem::size_of::<tcp_conn>() == 64);
const _: () = assert!(std::mem::size_of::<tcp_listener_key>() == 8);
const _: () = assert!(std::mem::size_of::<tcp_listener>() == 32);

/// The tracepoints the collector attaches to, by handler name.
const HANDLERS: [&str; 5] = [
    "handle__inet_sock_set_state",
    "handle__tcp_destroy_sock",
    "handle__tcp_send_reset",
    "handle__tcp_receive_reset",
    "handle__tcp_retransmit_skb",
];

/// TCP statistics being collected in the kernel. Dropping it detaches.
pub struct TcpCollector<'obj> {
    skel: TcpSkel<'obj>,
    _links: Vec<Link>,
    mode: AttachMode,
}

impl<'obj> TcpCollector<'obj> {
    /// Loads and attaches the TCP programs for the processes `filter` selects.
    /// Outbound connections are filtered by the process calling `connect()`,
    /// inbound ones by the process that called `listen()` on the listening socket.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
    ) -> Result<Self, BpfError> {
        let mut open =
            TcpSkelBuilder::default()
                .open(storage)
                .map_err(|source| BpfError::Open {
                    object: OBJECT,
                    source,
                })?;
        let btf = mode == AttachMode::TpBtf;
        {
            let p = &mut open.progs;
            p.handle__inet_sock_set_state.set_autoload(btf);
            p.handle__tcp_destroy_sock.set_autoload(btf);
            p.handle__tcp_send_reset.set_autoload(btf);
            p.handle__tcp_receive_reset.set_autoload(btf);
            p.handle__tcp_retransmit_skb.set_autoload(btf);
            p.handle__inet_sock_set_state_raw.set_autoload(!btf);
            p.handle__tcp_destroy_sock_raw.set_autoload(!btf);
            p.handle__tcp_send_reset_raw.set_autoload(!btf);
            p.handle__tcp_receive_reset_raw.set_autoload(!btf);
            p.handle__tcp_retransmit_skb_raw.set_autoload(!btf);
        }
        configure_filter!(open, OBJECT, filter);

        libbpf_log::clear();
        let skel = open.load().map_err(|source| BpfError::Load {
            object: OBJECT,
            mode,
            source,
            verifier_log: libbpf_log::take_trimmed(),
        })?;
        fill_target_pids(&skel.maps.target_pids, &filter.pids)?;

        let p = &skel.progs;
        let progs = if btf {
            [
                &p.handle__inet_sock_set_state,
                &p.handle__tcp_destroy_sock,
                &p.handle__tcp_send_reset,
                &p.handle__tcp_receive_reset,
                &p.handle__tcp_retransmit_skb,
            ]
        } else {
            [
                &p.handle__inet_sock_set_state_raw,
                &p.handle__tcp_destroy_sock_raw,
                &p.handle__tcp_send_reset_raw,
                &p.handle__tcp_receive_reset_raw,
                &p.handle__tcp_retransmit_skb_raw,
            ]
        };
        let named: Vec<_> = HANDLERS.into_iter().zip(progs).collect();
        let links = attach_all(mode, &named)?;
        Ok(Self {
            skel,
            _links: links,
            mode,
        })
    }

    /// How the programs are attached.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// What was lost in the kernel so far.
    pub fn losses(&self) -> Result<Losses, BpfError> {
        Losses::read(&self.skel.maps.losses)
    }

    /// One row per (process, direction) collected so far, unsorted.
    pub fn rows(&self) -> Result<Vec<TcpRow>, BpfError> {
        let map = &self.skel.maps.tcp_rows;
        let mut rows = Vec::new();
        for key_bytes in map.keys() {
            let key: tcp_row_key = pod::read(&key_bytes, "tcp_rows")?;
            let Some(direction) = direction(key.direction) else {
                continue;
            };
            let Some(value) = lookup(map, &key_bytes, "tcp_rows")? else {
                continue; // deleted between keys() and lookup
            };
            let stats: tcp_stats = pod::read(&value, "tcp_rows")?;
            rows.push(row_from(key.tgid, direction, &stats));
        }
        Ok(rows)
    }

    /// One edge per (process, direction, remote address, port) collected so
    /// far, sorted by that key. IPv4-mapped IPv6 peers count as IPv4.
    pub fn edges(&self) -> Result<Vec<TcpEdge>, BpfError> {
        let map = &self.skel.maps.tcp_edges;
        let mut edges = Vec::new();
        for key_bytes in map.keys() {
            let key: tcp_edge_key = pod::read(&key_bytes, "tcp_edges")?;
            let (Some(direction), Some(remote)) = (
                direction(u32::from(key.direction)),
                remote_addr(key.family, key.remote),
            ) else {
                continue;
            };
            let Some(value) = lookup(map, &key_bytes, "tcp_edges")? else {
                continue;
            };
            let stats: tcp_edge_stats = pod::read(&value, "tcp_edges")?;
            edges.push(edge_from(&key, direction, remote, &stats));
        }
        Ok(merge_edges(edges))
    }

    /// Deletes the edges not updated since `idle_since_ns` (CLOCK_MONOTONIC) and returns their
    /// final values, merged and sorted as [`TcpCollector::edges`] returns them, for the caller
    /// to keep. Each is read and deleted in one step (lookup-and-delete), so nothing counted
    /// before the delete is lost; a connection that updates an edge after it is aged out
    /// starts a new one. (A program that looked the edge up just before the delete and adds
    /// just after would add to the deleted entry: the edge would have to be idle for the
    /// whole idle time and become active in that instant.)
    pub fn age_edges(&self, idle_since_ns: u64) -> Result<Vec<TcpEdge>, BpfError> {
        let map = &self.skel.maps.tcp_edges;
        let mut idle = Vec::new();
        for key_bytes in map.keys() {
            let Some(value) = lookup(map, &key_bytes, "tcp_edges")? else {
                continue;
            };
            let stats: tcp_edge_stats = pod::read(&value, "tcp_edges")?;
            if stats.last_ns < idle_since_ns {
                idle.push(key_bytes);
            }
        }
        let mut aged = Vec::with_capacity(idle.len());
        for key_bytes in idle {
            let value = match map.lookup_and_delete(&key_bytes) {
                Ok(Some(value)) => value,
                Ok(None) => continue, // deleted meanwhile (the process exited)
                Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(BpfError::Map {
                        map: "tcp_edges",
                        source,
                    })
                }
            };
            let key: tcp_edge_key = pod::read(&key_bytes, "tcp_edges")?;
            let stats: tcp_edge_stats = pod::read(&value, "tcp_edges")?;
            let (Some(direction), Some(remote)) = (
                direction(u32::from(key.direction)),
                remote_addr(key.family, key.remote),
            ) else {
                continue;
            };
            aged.push(edge_from(&key, direction, remote, &stats));
        }
        Ok(merge_edges(aged))
    }

    /// Records that process `tgid` (named `comm`) listens on TCP `port` in the network namespace
    /// whose inode is `netns`, so connections it accepts there count as its inbound ones. For
    /// servers that were already listening when the collector started (their `listen()` was
    /// never seen): the caller finds them in `/proc` (`goroscope_host::listening_sockets`).
    /// Never replaces a listener learnt from a real `listen()`: returns whether this one was
    /// added (`false` when the (netns, port) is already known). The listening socket is
    /// unknown, so the entry's `sk` is 0: closing the socket does not remove it (the kernel
    /// matches closes by `sk`); a later `listen()` on the port replaces it, and
    /// [`TcpCollector::forget`] of the pid drops it.
    pub fn add_listener(
        &self,
        tgid: u32,
        comm: &str,
        netns: u32,
        port: u16,
    ) -> Result<bool, BpfError> {
        let key = listener_key(netns, port);
        let value = seeded_listener(tgid, comm);
        let map = &self.skel.maps.tcp_listeners;
        match map.update(&key, &value, MapFlags::NO_EXIST) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(BpfError::Map {
                map: "tcp_listeners",
                source,
            }),
        }
    }

    /// Deletes rows and edges of these processes (they exited; the caller
    /// folded their last values). Their connections and listeners still being
    /// followed are dropped too, so a late close cannot bring a row back;
    /// listeners go by tgid, so those added by [`TcpCollector::add_listener`]
    /// (whose `sk` is 0) go as well. Returns the rows and edges deleted.
    pub fn forget(&self, pids: &[u32]) -> Result<usize, BpfError> {
        if pids.is_empty() {
            return Ok(0);
        }
        let sorted = evict::sorted(pids);
        let maps = &self.skel.maps;
        let mut deleted = evict::forget_by_tgid(&maps.tcp_rows, "tcp_rows", &sorted)?.len();
        deleted += evict::forget_by_tgid(&maps.tcp_edges, "tcp_edges", &sorted)?.len();
        let pids: HashSet<u32> = sorted.into_iter().collect();

        let mut conns = Vec::new();
        for key in maps.tcp_conns.keys() {
            if let Some(value) = lookup(&maps.tcp_conns, &key, "tcp_conns")? {
                if pod::read::<tcp_conn>(&value, "tcp_conns").is_ok_and(|c| pids.contains(&c.tgid))
                {
                    conns.push(key);
                }
            }
        }
        delete_all(&maps.tcp_conns, &conns, "tcp_conns")?;

        let mut listeners = Vec::new();
        for key in maps.tcp_listeners.keys() {
            if let Some(value) = lookup(&maps.tcp_listeners, &key, "tcp_listeners")? {
                if pod::read::<tcp_listener>(&value, "tcp_listeners")
                    .is_ok_and(|l| pids.contains(&l.tgid))
                {
                    listeners.push(key);
                }
            }
        }
        delete_all(&maps.tcp_listeners, &listeners, "tcp_listeners")?;
        Ok(deleted)
    }
}

// forget() reads the tgid from the first four bytes of each key.
const _: () = assert!(std::mem::offset_of!(tcp_row_key, tgid) == 0);
const _: () = assert!(std::mem::offset_of!(tcp_edge_key, tgid) == 0);

// add_listener() writes struct tcp_listener_key as (netns u32, port u32) and struct
// tcp_listener as (sk u64, tgid u32, pad u32, comm [16]).
const _: () = assert!(std::mem::offset_of!(tcp_listener_key, netns) == 0);
const _: () = assert!(std::mem::offset_of!(tcp_listener_key, port) == 4);
const _: () = assert!(std::mem::offset_of!(tcp_listener, sk) == 0);
const _: () = assert!(std::mem::offset_of!(tcp_listener, tgid) == 8);
const _: () = assert!(std::mem::offset_of!(tcp_listener, comm) == 16);

/// The bytes of a `struct tcp_listener_key`.
fn listener_key(netns: u32, port: u16) -> [u8; 8] {
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&netns.to_ne_bytes());
    key[4..].copy_from_slice(&u32::from(port).to_ne_bytes());
    key
}

/// The bytes of a `struct tcp_listener` whose socket is unknown (`sk` 0): `comm` cut to the
/// kernel's 15 bytes and NUL-padded.
fn seeded_listener(tgid: u32, comm: &str) -> [u8; 32] {
    let mut value = [0u8; 32];
    value[8..12].copy_from_slice(&tgid.to_ne_bytes());
    for (dst, &src) in value[16..]
        .iter_mut()
        .zip(comm.as_bytes().iter().take(crate::filter::COMM_LEN - 1))
    {
        *dst = src;
    }
    value
}

fn lookup(map: &dyn MapCore, key: &[u8], name: &'static str) -> Result<Option<Vec<u8>>, BpfError> {
    map.lookup(key, MapFlags::ANY)
        .map_err(|source| BpfError::Map { map: name, source })
}

/// Deletes these keys; one already gone (deleted by the kernel meanwhile) is
/// not an error. Returns how many this call deleted.
fn delete_all(map: &dyn MapCore, keys: &[Vec<u8>], name: &'static str) -> Result<usize, BpfError> {
    let mut deleted = 0;
    for key in keys {
        deleted += usize::from(evict::delete(map, key, name)?);
    }
    Ok(deleted)
}

/// Now on the clock edges are stamped with (CLOCK_MONOTONIC, as `bpf_ktime_get_ns`).
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

fn edge_from(
    key: &tcp_edge_key,
    direction: TcpDirection,
    remote: IpAddr,
    stats: &tcp_edge_stats,
) -> TcpEdge {
    TcpEdge {
        pid: key.tgid,
        comm: comm(&stats.comm),
        direction,
        remote,
        port: key.port,
        connections: stats.connections,
        bytes_sent: stats.bytes_sent,
        bytes_received: stats.bytes_received,
        last_active_ns: stats.last_ns,
    }
}

fn direction(raw: u32) -> Option<TcpDirection> {
    match raw {
        TCP_OUTBOUND => Some(TcpDirection::Outbound),
        TCP_INBOUND => Some(TcpDirection::Inbound),
        _ => None,
    }
}

/// The peer address of an edge key; IPv4-mapped IPv6 addresses become IPv4.
fn remote_addr(family: u32, bytes: [u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical()),
        _ => None,
    }
}

fn comm(field: &[i8]) -> String {
    String::from_utf8_lossy(until_nul(chars(field))).into_owned()
}

fn row_from(pid: u32, direction: TcpDirection, s: &tcp_stats) -> TcpRow {
    let mut row = TcpRow {
        pid,
        comm: comm(&s.comm),
        direction,
        opened: s.opened,
        closed: s.closed,
        connect_failures: s.connect_failures,
        resets_sent: s.resets_sent,
        resets_received: s.resets_received,
        retransmits: s.retransmits,
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        connect_latency_total_ns: s.connect_latency_total_ns,
        duration_total_ns: s.duration_total_ns,
        rtt_total_ns: s.rtt_total_ns,
        ..TcpRow::default()
    };
    row.connect_latency.add_bucket_counts(&s.connect_latency);
    row.duration.add_bucket_counts(&s.duration);
    row.rtt.add_bucket_counts(&s.rtt);
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addresses_decode_and_canonicalize() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            remote_addr(AF_INET, v4),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            remote_addr(AF_INET6, Ipv6Addr::LOCALHOST.octets()),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        let mapped = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets();
        assert_eq!(
            remote_addr(AF_INET6, mapped),
            Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))
        );
        assert_eq!(remote_addr(1, v4), None);
    }

    #[test]
    fn seeded_listeners_have_the_c_layout() {
        let key: tcp_listener_key = pod::read(&listener_key(4026531840, 8080), "test")
            .unwrap_or_else(|e| panic!("reading the key back: {e}"));
        assert_eq!((key.netns, key.port), (4026531840, 8080));
        let value: tcp_listener =
            pod::read(&seeded_listener(77, "a-very-long-process-name"), "test")
                .unwrap_or_else(|e| panic!("reading the value back: {e}"));
        assert_eq!((value.sk, value.tgid), (0, 77));
        assert_eq!(
            comm(&value.comm),
            "a-very-long-pro",
            "cut to 15 bytes, NUL-terminated"
        );
    }

    #[test]
    fn directions_match_the_c_header() {
        assert_eq!(direction(0), Some(TcpDirection::Outbound));
        assert_eq!(direction(1), Some(TcpDirection::Inbound));
        assert_eq!(direction(2), None);
    }
}
