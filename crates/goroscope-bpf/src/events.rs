//! The event stream: process lifecycle (bpf/process.bpf.c) and file opens
//! (bpf/files.bpf.c) arrive through one shared ring buffer, which a named reader thread
//! copies into a bounded queue without allocating. A full queue drops the
//! record and counts it; nothing is lost silently.

use std::mem::{offset_of, MaybeUninit};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use goroscope_model::{until_nul, Event, EventDetail, EventHeader, EventKind, ExitStatus};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use std::os::fd::AsFd;

use libbpf_rs::{Link, MapHandle, MapType, OpenObject, RingBufferBuilder};

use crate::attach::AttachMode;
use crate::error::BpfError;
use crate::filter::{configure_filter, fill_target_pids, ProcessFilter};
use crate::libbpf_log;
use crate::losses::Losses;
use crate::pod;
use crate::skel::files::types::open_event;
use crate::skel::files::{FilesSkel, FilesSkelBuilder};
use crate::skel::process::types::{event_header, exec_event, exit_event, fork_event};
use crate::skel::process::{ProcessSkel, ProcessSkelBuilder};

/// The largest record any program emits.
pub const MAX_EVENT_BYTES: usize = max(
    std::mem::size_of::<exec_event>(),
    std::mem::size_of::<open_event>(),
);
const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// The ring buffer's size for commands that stream every event (`trace`): bursts of file
/// opens fill it fastest.
pub const RING_BYTES: u32 = 8 * 1024 * 1024;
/// A smaller ring for process events only (the agent): a few hundred bytes per exec, exit
/// or fork, drained continuously by the reader thread. The consumer maps the data twice, so
/// every byte of ring is two bytes of the consumer's RSS once the ring has wrapped.
pub const PROCESS_RING_BYTES: u32 = 1024 * 1024;

/// How many records the user-side queue holds before it drops.
const QUEUE_CAPACITY: usize = 4096;
/// How long the reader waits for a wakeup before reading anyway; the kernel
/// wakes it only once 64 KiB are waiting, so this bounds an event's delay.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

// Kind numbers from `enum event_kind` in bpf/common.h.
const EVENT_EXEC: u32 = 1;
const EVENT_EXIT: u32 = 2;
const EVENT_FORK: u32 = 3;
const EVENT_OPEN: u32 = 4;

/// The storage libbpf needs for the objects of an event stream; it must
/// outlive the [`EventCollector`].
pub struct EventObjects {
    process: MaybeUninit<OpenObject>,
    files: MaybeUninit<OpenObject>,
}

impl Default for EventObjects {
    fn default() -> Self {
        Self {
            process: MaybeUninit::uninit(),
            files: MaybeUninit::uninit(),
        }
    }
}

/// What to stream.
#[derive(Clone, Debug, Default)]
pub struct EventOptions {
    /// Which kinds of event.
    pub kinds: Vec<EventKind>,
    /// Copy command lines into exec events (they can hold secrets).
    pub capture_args: bool,
    /// Which processes.
    pub filter: ProcessFilter,
    /// The ring buffer's size in bytes: a power of two, at least a page ([`RING_BYTES`]
    /// for streaming commands, [`PROCESS_RING_BYTES`] for process events only).
    pub ring_bytes: u32,
}

/// The attached event programs. Dropping it detaches them.
pub struct EventCollector<'obj> {
    ring: MapHandle,
    process: Option<ProcessSkel<'obj>>,
    files: Option<FilesSkel<'obj>>,
    _links: Vec<Link>,
}

/// A record as the kernel wrote it, held by value so queueing allocates nothing.
#[derive(Clone)]
pub struct RawEvent {
    len: usize,
    bytes: [u8; MAX_EVENT_BYTES],
}

impl<'obj> EventCollector<'obj> {
    /// Loads and attaches the programs the requested kinds need.
    pub fn start(
        objects: &'obj mut EventObjects,
        mode: AttachMode,
        options: &EventOptions,
    ) -> Result<Self, BpfError> {
        let wants = |k: EventKind| options.kinds.contains(&k);
        let btf = mode == AttachMode::TpBtf;
        let mut links = Vec::new();
        // One ring for all objects keeps events from different objects in order.
        let ring = MapHandle::create(
            MapType::RingBuf,
            Some("events"), // the skeletons look maps up by this name
            0,
            0,
            options.ring_bytes,
            &libbpf_rs::libbpf_sys::bpf_map_create_opts {
                sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
                ..Default::default()
            },
        )
        .map_err(|source| BpfError::Map {
            map: "events",
            source,
        })?;
        let share_ring = |map: &mut libbpf_rs::OpenMapMut<'_>| {
            // libbpf reuses a map only when its definition matches, size included.
            map.set_max_entries(options.ring_bytes)
                .and_then(|()| map.reuse_fd(ring.as_fd()))
                .map_err(|source| BpfError::Map {
                    map: "events",
                    source,
                })
        };

        let process = if wants(EventKind::Exec) || wants(EventKind::Exit) || wants(EventKind::Fork)
        {
            const OBJECT: &str = "process";
            let mut open = ProcessSkelBuilder::default()
                .open(&mut objects.process)
                .map_err(|source| BpfError::Open {
                    object: OBJECT,
                    source,
                })?;
            let p = &mut open.progs;
            p.handle__sched_process_exec
                .set_autoload(btf && wants(EventKind::Exec));
            p.handle__sched_process_exec_raw
                .set_autoload(!btf && wants(EventKind::Exec));
            p.handle__sched_process_exit
                .set_autoload(btf && wants(EventKind::Exit));
            p.handle__sched_process_exit_raw
                .set_autoload(!btf && wants(EventKind::Exit));
            p.handle__sched_process_fork
                .set_autoload(btf && wants(EventKind::Fork));
            p.handle__sched_process_fork_raw
                .set_autoload(!btf && wants(EventKind::Fork));
            let rodata = configure_filter!(open, OBJECT, options.filter);
            rodata.capture_args = options.capture_args;
            share_ring(&mut open.maps.events)?;
            let skel = load(open, OBJECT, mode)?;
            fill_target_pids(&skel.maps.target_pids, &options.filter.pids)?;
            let p = &skel.progs;
            let handlers = [
                (
                    EventKind::Exec,
                    &p.handle__sched_process_exec,
                    &p.handle__sched_process_exec_raw,
                ),
                (
                    EventKind::Exit,
                    &p.handle__sched_process_exit,
                    &p.handle__sched_process_exit_raw,
                ),
                (
                    EventKind::Fork,
                    &p.handle__sched_process_fork,
                    &p.handle__sched_process_fork_raw,
                ),
            ];
            for (kind, typed, raw) in handlers {
                if wants(kind) {
                    links.push(attach(if btf { typed } else { raw }, mode)?);
                }
            }
            Some(skel)
        } else {
            None
        };

        let files = if wants(EventKind::Open) {
            const OBJECT: &str = "files";
            let mut open = FilesSkelBuilder::default()
                .open(&mut objects.files)
                .map_err(|source| BpfError::Open {
                    object: OBJECT,
                    source,
                })?;
            let p = &mut open.progs;
            p.handle__sys_enter.set_autoload(btf);
            p.handle__sys_exit.set_autoload(btf);
            p.handle__sys_enter_raw.set_autoload(!btf);
            p.handle__sys_exit_raw.set_autoload(!btf);
            configure_filter!(open, OBJECT, options.filter);
            share_ring(&mut open.maps.events)?;
            let skel = load(open, OBJECT, mode)?;
            fill_target_pids(&skel.maps.target_pids, &options.filter.pids)?;
            let p = &skel.progs;
            if btf {
                links.push(attach(&p.handle__sys_enter, mode)?);
                links.push(attach(&p.handle__sys_exit, mode)?);
            } else {
                links.push(attach(&p.handle__sys_enter_raw, mode)?);
                links.push(attach(&p.handle__sys_exit_raw, mode)?);
            }
            Some(skel)
        } else {
            None
        };

        Ok(Self {
            ring,
            process,
            files,
            _links: links,
        })
    }

    /// Starts the reader thread; events arrive on the returned stream.
    pub fn stream(&self) -> Result<EventStream, BpfError> {
        let ring = MapHandle::try_from(&self.ring).map_err(|source| BpfError::Map {
            map: "events",
            source,
        })?;
        EventStream::start(ring)
    }

    /// What the kernel lost so far, all objects together.
    pub fn losses(&self) -> Result<Losses, BpfError> {
        let mut total = Losses::default();
        if let Some(skel) = &self.process {
            total.add(&Losses::read(&skel.maps.losses)?);
        }
        if let Some(skel) = &self.files {
            total.add(&Losses::read(&skel.maps.losses)?);
        }
        Ok(total)
    }
}

fn load<'obj, T: OpenSkel<'obj>>(
    open: T,
    object: &'static str,
    mode: AttachMode,
) -> Result<T::Output, BpfError> {
    libbpf_log::clear();
    open.load().map_err(|source| BpfError::Load {
        object,
        mode,
        source,
        verifier_log: libbpf_log::take_trimmed(),
    })
}

fn attach(prog: &libbpf_rs::ProgramMut<'_>, mode: AttachMode) -> Result<Link, BpfError> {
    prog.attach().map_err(|source| BpfError::Attach {
        program: prog.name().to_string_lossy().into_owned(),
        mode,
        source,
    })
}

/// Events on their way from the kernel. Dropping it stops the reader thread.
pub struct EventStream {
    queue: Receiver<RawEvent>,
    queue_drops: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Result<(), BpfError>>>,
}

impl EventStream {
    fn start(ring: MapHandle) -> Result<Self, BpfError> {
        let (tx, queue) = mpsc::sync_channel(QUEUE_CAPACITY);
        let queue_drops = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let queue_drops = Arc::clone(&queue_drops);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("goroscope-ringbuf".into())
                .spawn(move || read_ring(ring, tx, &queue_drops, &stop))
                .map_err(|source| BpfError::Thread {
                    name: "goroscope-ringbuf",
                    source,
                })?
        };
        Ok(Self {
            queue,
            queue_drops,
            stop,
            reader: Some(reader),
        })
    }

    /// The next event, waiting at most `timeout`. `Ok(None)` on timeout;
    /// an error when the reader stopped.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<RawEvent>, BpfError> {
        match self.queue.recv_timeout(timeout) {
            Ok(event) => Ok(Some(event)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => match self.reader.take() {
                Some(reader) => match reader.join() {
                    Ok(Err(err)) => Err(err),
                    _ => Ok(None),
                },
                None => Ok(None),
            },
        }
    }

    /// Stops reading, then hands over what is still queued.
    pub fn finish(&mut self) -> Result<Vec<RawEvent>, BpfError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            if let Ok(Err(err)) = reader.join() {
                return Err(err);
            }
        }
        Ok(self.queue.try_iter().collect())
    }

    /// Records dropped because the queue was full (the consumer fell behind).
    pub fn queue_drops(&self) -> u64 {
        self.queue_drops.load(Ordering::Relaxed)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn read_ring(
    ring: MapHandle,
    tx: SyncSender<RawEvent>,
    queue_drops: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(), BpfError> {
    let mut builder = RingBufferBuilder::new();
    {
        builder
            .add(&ring, move |data: &[u8]| {
                // Never panic here: this runs inside libbpf's C callback.
                let len = data.len().min(MAX_EVENT_BYTES);
                let mut event = RawEvent {
                    len,
                    bytes: [0; MAX_EVENT_BYTES],
                };
                event.bytes[..len].copy_from_slice(&data[..len]);
                if let Err(TrySendError::Full(_)) = tx.try_send(event) {
                    queue_drops.fetch_add(1, Ordering::Relaxed);
                }
                0
            })
            .map_err(|source| BpfError::RingBuffer { source })?;
    }
    let rb = builder
        .build()
        .map_err(|source| BpfError::RingBuffer { source })?;
    while !stop.load(Ordering::Relaxed) {
        // A timeout is normal: the kernel wakes us only for bulk data.
        let polled = rb.poll(POLL_INTERVAL);
        let consumed = rb.consume();
        if let Err(source) = polled.and(consumed) {
            if source.kind() != libbpf_rs::ErrorKind::Interrupted {
                return Err(BpfError::RingBuffer { source });
            }
        }
    }
    rb.consume()
        .map_err(|source| BpfError::RingBuffer { source })
}

/// A record that is not one of the shared event structs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event record: {0}")]
pub struct MalformedEvent(&'static str);

impl RawEvent {
    /// The event, as a view of this record's bytes.
    pub fn decode(&self) -> Result<Event<'_>, MalformedEvent> {
        let bytes = &self.bytes[..self.len];
        let h: event_header =
            pod::read(bytes, "events").map_err(|_| MalformedEvent("shorter than its header"))?;
        let comm_at = offset_of!(event_header, comm);
        let header = EventHeader {
            ts_ns: h.ts_ns,
            cgroup_id: h.cgroup_id,
            pid: h.pid,
            tid: h.tid,
            comm: until_nul(&bytes[comm_at..comm_at + h.comm.len()]),
        };
        let short = |_| MalformedEvent("shorter than its kind");
        let detail = match h.kind {
            EVENT_EXEC => {
                let e: exec_event = pod::read(bytes, "events").map_err(short)?;
                let name_at = offset_of!(exec_event, filename);
                let args_at = offset_of!(exec_event, args);
                let name_len = (e.filename_len as usize).min(e.filename.len());
                let args_len = (e.args_len as usize).min(e.args.len());
                EventDetail::Exec {
                    ppid: e.ppid,
                    filename: &bytes[name_at..name_at + name_len],
                    args: (args_len > 0).then(|| &bytes[args_at..args_at + args_len]),
                    args_truncated: e.args_truncated != 0,
                }
            }
            EVENT_EXIT => {
                let e: exit_event = pod::read(bytes, "events").map_err(short)?;
                EventDetail::Exit {
                    ppid: e.ppid,
                    status: ExitStatus::from_wait_status(e.wait_status),
                    lifetime_ns: e.lifetime_ns,
                }
            }
            EVENT_FORK => {
                let e: fork_event = pod::read(bytes, "events").map_err(short)?;
                EventDetail::Fork {
                    child_pid: e.child_pid,
                }
            }
            EVENT_OPEN => {
                let e: open_event = pod::read(bytes, "events").map_err(short)?;
                let path_at = offset_of!(open_event, path);
                let path_len = (e.path_len as usize).min(e.path.len());
                EventDetail::Open {
                    syscall_nr: e.syscall_nr,
                    dirfd: e.dirfd,
                    path: &bytes[path_at..path_at + path_len],
                    // The kernel read as much as fits: the path may continue.
                    path_truncated: path_len + 1 >= e.path.len(),
                    flags: e.flags,
                    mode: e.mode,
                    ret: e.ret,
                }
            }
            _ => return Err(MalformedEvent("unknown kind")),
        };
        Ok(Event { header, detail })
    }
}
