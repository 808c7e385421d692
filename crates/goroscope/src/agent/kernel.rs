//! Starting the kernel collectors the config enables. Each one that fails is reported and
//! marked down; the others run. libbpf needs storage that outlives a collector: the agent
//! gives each start its own small leaked allocation (a few hundred bytes, once per collector
//! start, so only reloads that turn collectors on again add to it).

use std::mem::MaybeUninit;

use anyhow::Context;
use goroscope_bpf::sched::SchedCollector;
use goroscope_bpf::syscalls::{SyscallOptions, Timing};
use goroscope_bpf::tcp::TcpCollector;
use goroscope_bpf::{
    AttachMode, EventCollector, EventObjects, EventOptions, ProcessFilter, SyscallCollector,
};
use goroscope_host::ProcFs;
use goroscope_model::EventKind;
use libbpf_rs::OpenObject;

use crate::tcp_seed::seed_listeners;

/// Storage for one skeleton, alive as long as the agent.
fn storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

/// The kernel-side process filter: every process but goroscope.
pub fn host_wide() -> ProcessFilter {
    ProcessFilter::default()
}

/// Starts the syscall collector, timing calls as `timing` says. (Its handlers are raw
/// tracepoints whatever the attach mode: see `SyscallCollector::start`.)
pub fn syscalls(
    mode: AttachMode,
    filter: &ProcessFilter,
    timing: Timing,
) -> anyhow::Result<SyscallCollector<'static>> {
    let _ = mode;
    let options = SyscallOptions {
        timing,
        ..SyscallOptions::default()
    };
    SyscallCollector::start_with(storage(), filter, options)
        .context("starting the syscall collector")
}

/// Starts the scheduler collector.
pub fn sched(mode: AttachMode, filter: &ProcessFilter) -> anyhow::Result<SchedCollector<'static>> {
    SchedCollector::start(storage(), mode, filter).context("starting the scheduler collector")
}

/// Starts the TCP collector and seeds it with the servers already listening (found under
/// `procfs`), so their accepted connections count. A failed seeding is reported in one line;
/// the collector runs anyway (it still learns every listen() from now on).
pub fn tcp(
    mode: AttachMode,
    filter: &ProcessFilter,
    procfs: &ProcFs,
) -> anyhow::Result<TcpCollector<'static>> {
    let collector =
        TcpCollector::start(storage(), mode, filter).context("starting the TCP collector")?;
    if let Err(error) = seed_listeners(&collector, procfs, filter) {
        eprintln!("goroscope: agent: servers listening before the start may be missed: {error:#}");
    }
    Ok(collector)
}

/// Starts the process event collector (exec, exit, fork; never file opens, never arguments).
pub fn processes(
    mode: AttachMode,
    filter: &ProcessFilter,
) -> anyhow::Result<EventCollector<'static>> {
    let objects: &'static mut EventObjects = Box::leak(Box::default());
    EventCollector::start(
        objects,
        mode,
        &EventOptions {
            kinds: vec![EventKind::Exec, EventKind::Exit, EventKind::Fork],
            capture_args: false,
            filter: filter.clone(),
            ring_bytes: goroscope_bpf::PROCESS_RING_BYTES,
        },
    )
    .context("starting the process event collector")
}
