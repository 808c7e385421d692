//! Off-CPU time (bpf/offcpu.bpf.c): on every context switch the kernel remembers where a
//! followed thread left the CPU (user stack, kernel stack, goroutine) and, when it runs again,
//! adds the time it spent blocked and waiting for a CPU to that place's row. [`OffCpuSampler`]
//! reads the rows and the stacks' raw addresses; symbolizing them is the caller's job.

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, OpenObject};

use crate::attach::{attach_all, choose_attach_mode, AttachMode};
use crate::batch::BatchReader;
use crate::error::BpfError;
use crate::filter::{configure_filter, fill_target_pids, ProcessFilter};
use crate::go_processes;
use crate::libbpf_log;
use crate::losses::Losses;
use crate::pod;
use crate::profile::{GoLayout, SampleCount};
use crate::skel::offcpu::types::{offcpu_key, offcpu_stats};
use crate::skel::offcpu::{OffcpuSkel, OffcpuSkelBuilder};
use crate::stacks::StackReader;

const OBJECT: &str = "offcpu";
const ROWS: &str = "offcpu_rows";
/// Its reasons in `enum loss_reason` (bpf/common.h).
const LOSS_USER_STACK: usize = 16;
const LOSS_KERNEL_STACK: usize = 17;
const LOSS_ROWS_FULL: usize = 18;
const LOSS_THREADS: usize = 19;

/// Time off CPU that threads spent after leaving it at the same place: summed over the
/// intervals that ended (the thread ran again) and lasted at least the sampler's minimum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffCpuSample {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// The goroutine it was running when it left, for processes given to
    /// [`OffCpuSampler::watch_go_process`] (0: none, or not watched).
    pub goid: u64,
    /// That goroutine's `runtime.g.labels` pointer (its pprof labels), 0 when none.
    pub labels: u64,
    /// User-space return addresses where it left, innermost first (empty when lost, or for a
    /// new thread's wait for its first CPU).
    pub user: Vec<u64>,
    /// Kernel return addresses where it left, innermost first (empty when lost, or for a new
    /// thread's wait for its first CPU). The innermost frames are the tracing plumbing that ran
    /// the BPF program (on Linux 6.18: the program itself, `bpf_trace_run4`), then
    /// `__schedule`; a view drops the frames before `__schedule`.
    pub kernel: Vec<u64>,
    /// Time blocked: from leaving the CPU not runnable to the wakeup (all of the interval when
    /// no wakeup was seen).
    pub blocked_ns: u64,
    /// Time runnable and waiting for a CPU: from the wakeup, or from leaving the CPU while
    /// runnable (preempted, yielding), to running again.
    pub runqueue_ns: u64,
    /// Intervals.
    pub count: u64,
}

/// What the off-CPU sampler lost in the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffCpuLosses {
    /// Intervals whose user stack could not be read or stored (stack map full).
    pub user_stacks: u64,
    /// Intervals whose kernel stack could not be stored.
    pub kernel_stacks: u64,
    /// Intervals dropped because the row map was full.
    pub rows: u64,
    /// Intervals not measured because no per-thread state could be kept.
    pub threads: u64,
}

/// Off-CPU time being summed in the kernel. Dropping it detaches.
pub struct OffCpuSampler<'obj> {
    // Field order is drop order: detach before the maps go.
    _links: Vec<Link>,
    skel: OffcpuSkel<'obj>,
    mode: AttachMode,
    min_duration_ns: u64,
}

impl<'obj> OffCpuSampler<'obj> {
    /// Starts summing the off-CPU time of the threads of the processes `filter` selects,
    /// leaving out intervals shorter than `min_duration_ns`; attaches with tp_btf when the
    /// kernel allows it, else raw_tp.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        filter: &ProcessFilter,
        min_duration_ns: u64,
    ) -> Result<Self, BpfError> {
        let mode = choose_attach_mode()?;
        Self::start_in_mode(storage, mode, filter, min_duration_ns)
    }

    /// As [`start`](Self::start), attached in the given mode.
    pub fn start_in_mode(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
        min_duration_ns: u64,
    ) -> Result<Self, BpfError> {
        let mut sampler = Self::load(storage, mode, filter, min_duration_ns)?;
        let progs = &sampler.skel.progs;
        let handlers = if mode == AttachMode::TpBtf {
            [
                &progs.handle__sched_switch,
                &progs.handle__sched_wakeup,
                &progs.handle__sched_wakeup_new,
            ]
        } else {
            [
                &progs.handle__sched_switch_raw,
                &progs.handle__sched_wakeup_raw,
                &progs.handle__sched_wakeup_new_raw,
            ]
        };
        let names = [
            "handle__sched_switch",
            "handle__sched_wakeup",
            "handle__sched_wakeup_new",
        ];
        let named: Vec<_> = names.into_iter().zip(handlers).collect();
        sampler._links = attach_all(mode, &named)?;
        Ok(sampler)
    }

    /// Loads the programs for `mode` and fills the filter, attaching nothing.
    fn load(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
        min_duration_ns: u64,
    ) -> Result<Self, BpfError> {
        let mut open = OffcpuSkelBuilder::default()
            .open(storage)
            .map_err(|source| BpfError::Open {
                object: OBJECT,
                source,
            })?;
        let btf = mode == AttachMode::TpBtf;
        let progs = &mut open.progs;
        progs.handle__sched_switch.set_autoload(btf);
        progs.handle__sched_wakeup.set_autoload(btf);
        progs.handle__sched_wakeup_new.set_autoload(btf);
        progs.handle__sched_switch_raw.set_autoload(!btf);
        progs.handle__sched_wakeup_raw.set_autoload(!btf);
        progs.handle__sched_wakeup_new_raw.set_autoload(!btf);
        let rodata = configure_filter!(open, OBJECT, filter);
        rodata.typed_args = btf;
        rodata.min_duration_ns = min_duration_ns;
        if btf {
            // Task storage holds the threads; the tid-keyed fallback is unused.
            open.maps
                .offcpu_threads_by_tid
                .set_max_entries(1)
                .map_err(|source| BpfError::Map {
                    map: "offcpu_threads_by_tid",
                    source,
                })?;
        }

        libbpf_log::clear();
        let skel = open.load().map_err(|source| BpfError::Load {
            object: OBJECT,
            mode,
            source,
            verifier_log: libbpf_log::take_trimmed(),
        })?;
        fill_target_pids(&skel.maps.target_pids, &filter.pids)?;
        Ok(Self {
            _links: Vec::new(),
            skel,
            mode,
            min_duration_ns,
        })
    }

    /// How the programs are attached.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Intervals shorter than this are not counted.
    pub fn min_duration_ns(&self) -> u64 {
        self.min_duration_ns
    }

    /// Attributes the off-CPU time of Go process `pid` to goroutines from now on: `layout` says
    /// where its `runtime.g` keeps the goroutine id and the labels. Fails when the map of
    /// watched processes is full (`MAX_GO_PROCESSES`).
    pub fn watch_go_process(&self, pid: u32, layout: GoLayout) -> Result<(), BpfError> {
        go_processes::watch(&self.skel.maps.go_processes, pid, layout)
    }

    /// Stops reading goroutines of `pid` (it exited); a no-op when it was not watched.
    pub fn forget_go_process(&self, pid: u32) {
        go_processes::forget(&self.skel.maps.go_processes, pid);
    }

    /// The (process, label-set address) pairs samples carried for the first time since the last
    /// call, for reading while their goroutines still hold them.
    pub fn new_label_sets(&self) -> Vec<(u32, u64)> {
        crate::go_processes::new_label_sets(&self.skel.maps.new_label_sets)
    }

    /// Intervals per (process, goroutine, label set) so far, without reading stacks: cheap
    /// enough to call every second while timing.
    pub fn counts(&self) -> Result<Vec<SampleCount>, BpfError> {
        Ok(self
            .rows()?
            .into_iter()
            .map(|(key, stats)| SampleCount {
                pid: key.tgid,
                goid: key.goid,
                labels: key.labels,
                count: stats.count,
            })
            .collect())
    }

    fn rows(&self) -> Result<Vec<(offcpu_key, offcpu_stats)>, BpfError> {
        let mut rows = Vec::new();
        BatchReader::default().for_each(&self.skel.maps.offcpu_rows, ROWS, |key, value| {
            rows.push((pod::read(key, ROWS)?, pod::read(value, ROWS)?));
            Ok(())
        })?;
        Ok(rows)
    }

    /// Every (thread, stacks, goroutine) with off-CPU time so far, unsorted.
    pub fn samples(&self) -> Result<Vec<OffCpuSample>, BpfError> {
        let rows = self.rows()?;
        let mut stacks = StackReader::new(&self.skel.maps.stacks, "stacks");
        let mut out = Vec::with_capacity(rows.len());
        for (key, stats) in rows {
            out.push(OffCpuSample {
                pid: key.tgid,
                tid: key.tid,
                goid: key.goid,
                labels: key.labels,
                user: stacks.frames(key.user_stack)?,
                kernel: stacks.frames(key.kernel_stack)?,
                blocked_ns: stats.blocked_ns,
                runqueue_ns: stats.runqueue_ns,
                count: stats.count,
            });
        }
        Ok(out)
    }

    /// Intervals the kernel side closed at the thread's next switch-out because the kernel
    /// never reported the switch-in that ended them (see bpf/offcpu.bpf.c): measured from the
    /// thread's run time, so counted, not lost.
    pub fn unseen_switch_ins(&self) -> u64 {
        self.skel.maps.bss_data.as_deref().map_or(0, |bss| {
            // SAFETY: the reference points at the object's mmapped .bss, alive as long as the
            // skeleton, and the u64 in it is aligned; the kernel adds to it atomically, so a
            // volatile load reads a whole value, never one cached from an earlier read.
            unsafe { std::ptr::read_volatile(&bss.unseen_switch_ins) }
        })
    }

    /// What was lost in the kernel so far.
    pub fn losses(&self) -> Result<OffCpuLosses, BpfError> {
        let losses = Losses::read(&self.skel.maps.losses)?;
        Ok(OffCpuLosses {
            user_stacks: losses.counts[LOSS_USER_STACK],
            kernel_stacks: losses.counts[LOSS_KERNEL_STACK],
            rows: losses.counts[LOSS_ROWS_FULL],
            threads: losses.counts[LOSS_THREADS],
        })
    }
}

#[cfg(test)]
mod tests {
    //! The kernel half's answer to a switch-in the kernel never reports (needs root), driven
    //! by running the raw_tp switch handler by hand on this thread with nothing attached:
    //! the only switches it sees are the two it is given.

    use std::time::{Duration, Instant};

    use libbpf_rs::ProgramInput;

    use super::*;

    /// `prev_state` of a thread going to sleep.
    const TASK_INTERRUPTIBLE: u64 = 1;
    /// The scheduler's run-time count of a running thread lags by at most one tick (4 ms at
    /// CONFIG_HZ=250), at either end of the interval.
    const TICK_NS: u64 = 4_000_000;

    /// Runs the sched_switch handler as if this thread went to sleep now.
    fn switch_out_of_this_thread(sampler: &OffCpuSampler<'_>) {
        // raw_tp arguments: preempt, prev (unused: current is prev), next (none), prev_state.
        let mut ctx: Vec<u8> = [0u64, 0, 0, TASK_INTERRUPTIBLE]
            .iter()
            .flat_map(|arg| arg.to_ne_bytes())
            .collect();
        let input = ProgramInput {
            context_in: Some(&mut ctx),
            ..ProgramInput::default()
        };
        let run = sampler.skel.progs.handle__sched_switch_raw.test_run(input);
        assert_eq!(
            run.map(|out| out.return_value).ok(),
            Some(0),
            "the switch handler should run and return 0"
        );
    }

    #[test]
    fn an_interval_whose_switch_in_went_unseen_ends_where_the_thread_ran_again() {
        let mut storage = MaybeUninit::uninit();
        let filter = ProcessFilter {
            pids: vec![std::process::id()],
            comm: None,
            include_self: true,
        };
        let sampler = match OffCpuSampler::load(&mut storage, AttachMode::RawTp, &filter, 0) {
            Ok(sampler) => sampler,
            Err(e) => panic!("cannot load the off-CPU programs (run as root): {e}"),
        };
        // SAFETY: gettid takes no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;

        switch_out_of_this_thread(&sampler);
        // Off CPU for 30 ms, then running for 20 ms, neither seen by the handler.
        std::thread::sleep(Duration::from_millis(30));
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        switch_out_of_this_thread(&sampler);

        assert_eq!(sampler.unseen_switch_ins(), 1);
        let rows = match sampler.rows() {
            Ok(rows) => rows,
            Err(e) => panic!("cannot read the off-CPU rows: {e}"),
        };
        let mine: Vec<&offcpu_stats> = rows
            .iter()
            .filter(|(key, _)| key.tid == tid)
            .map(|(_, stats)| stats)
            .collect();
        assert_eq!(mine.len(), 1, "one row for this thread: {rows:?}");
        let stats = mine[0];
        assert_eq!(stats.count, 1);
        // No wakeup was seen: all of it is blocked.
        assert_eq!(stats.runqueue_ns, 0);
        // The 30 ms off CPU, not the 50 ms between the two switch-outs. Above it by up to a
        // tick of run-time lag, and on a loaded machine by a wait for a CPU after the sleep
        // (off CPU too): allowed up to 12 ms, still far from the 50 ms of not correcting.
        let slept = 30_000_000;
        assert!(
            (slept - TICK_NS..=slept + 3 * TICK_NS).contains(&stats.blocked_ns),
            "blocked {} ns, expected 30 ms, at most a tick under or 12 ms over",
            stats.blocked_ns
        );
    }
}
