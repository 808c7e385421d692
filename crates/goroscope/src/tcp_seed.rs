//! Seeding the TCP collector with servers that were already listening when it started: the
//! kernel learns listeners only from the `listen()` calls it sees, so without this a service
//! started before goroscope (every real one) would have none of its accepted connections
//! counted. One pass over `/proc`, each network namespace's socket tables read once.

use anyhow::Context;
use goroscope_bpf::tcp::TcpCollector;
use goroscope_bpf::ProcessFilter;
use goroscope_host::{ListenerScan, ProcFs};

/// What [`seed_listeners`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Listeners added to the collector.
    pub added: usize,
    /// Listeners already known to it (learnt from a `listen()` it saw since it started).
    pub known: usize,
    /// Selected processes that could not be read (exited meanwhile, or access denied).
    pub unreadable: usize,
}

/// Adds to `collector` the TCP ports every process `filter` selects listens on (the pids it
/// names, or else every process under `procfs`), as [`TcpCollector::add_listener`] does. Call
/// it once, right after the collector starts: a `listen()` the collector sees wins. Processes
/// that vanish or cannot be read are skipped (and counted); failing to list `procfs` or to
/// write the map is an error.
pub fn seed_listeners(
    collector: &TcpCollector<'_>,
    procfs: &ProcFs,
    filter: &ProcessFilter,
) -> anyhow::Result<Seeded> {
    let pids = if filter.pids.is_empty() {
        procfs
            .pids()
            .context("listing processes to find servers already listening")?
    } else {
        filter.pids.clone()
    };
    let mut scan = ListenerScan::new(procfs);
    let mut seeded = Seeded::default();
    for pid in pids {
        let Ok(comm) = procfs.comm(pid) else {
            seeded.unreadable += 1;
            continue;
        };
        if !filter.selects(pid, &comm) {
            continue;
        }
        let Ok(sockets) = scan.listening_sockets(pid) else {
            seeded.unreadable += 1;
            continue;
        };
        for socket in sockets {
            let added = collector
                .add_listener(pid, &comm, socket.netns, socket.port)
                .with_context(|| {
                    format!(
                        "adding the listener of process {pid} ({comm}) on port {} (netns {})",
                        socket.port, socket.netns
                    )
                })?;
            if added {
                seeded.added += 1;
            } else {
                seeded.known += 1;
            }
        }
    }
    Ok(seeded)
}
