//! Readers of host state from `/proc` and `/sys`: processes with their cgroup and container
//! ([`procfs`], cached by [`process_cache`]), cgroup v2 ids to paths ([`cgroups`]), network interface counters ([`net`]), the TCP ports a process listens on ([`listeners`]), goroscope's own
//! resource usage ([`mod@own_usage`]) and the Go processes running on the host ([`go_discovery`]).
//!
//! Every reader takes the mount point as a parameter ([`ProcFs::new`], [`SysFs::new`]) so tests
//! can build a fake tree in a temporary directory.
#![deny(missing_docs)]

pub mod cgroups;
pub mod error;
mod fsread;
pub mod go_discovery;
pub mod listeners;
pub mod net;
pub mod own_usage;
pub mod process_cache;
pub mod procfs;
pub mod resource;
#[cfg(test)]
mod testfs;

pub use cgroups::{cgroup2_mount, CgroupPaths};
pub use error::HostError;
pub use go_discovery::{GoDiscovery, GoProcessFound};
pub use listeners::{listening_sockets, ListenerScan, ListeningSocket};
pub use net::{InterfaceStats, SysFs};
pub use own_usage::{open_fds, own_usage, process_usage, OwnUsage};
pub use process_cache::ProcessCache;
pub use procfs::{container_id_from_cgroup, ProcFs, ProcessInfo};
