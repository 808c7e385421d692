//! On-CPU sampling (bpf/profile.bpf.c): a software cpu-clock perf event on every CPU runs the
//! program, which counts (process, thread, user stack, kernel stack, goroutine) in kernel maps.
//! The goroutine is read at the sample (bpf/goroutine.h) for the Go processes it is told about. [`CpuSampler::samples`] reads the counts and the stacks' raw addresses; symbolizing them
//! is the caller's job.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{libbpf_sys, Link, OpenObject};

use crate::attach::AttachMode;
use crate::batch::BatchReader;
use crate::error::BpfError;
use crate::filter::{configure_filter, fill_target_pids, ProcessFilter};
use crate::go_processes;
pub use crate::go_processes::GoLayout;
use crate::libbpf_log;
use crate::losses::Losses;
use crate::pod;
use crate::skel::profile::types::profile_key;
use crate::skel::profile::{ProfileSkel, ProfileSkelBuilder};
use crate::stacks::StackReader;

const OBJECT: &str = "profile";
/// From linux/perf_event.h.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// Its reasons in `enum loss_reason` (bpf/common.h).
const LOSS_USER_STACK: usize = 13;
const LOSS_KERNEL_STACK: usize = 14;
const LOSS_SAMPLES_FULL: usize = 15;

/// The sampling frequencies a profile may ask for, in Hz.
pub const FREQUENCIES: std::ops::RangeInclusive<u32> = 1..=1000;

/// Samples with the same thread, stacks and g register, and how many there were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackSample {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// The goroutine running, for processes given to [`CpuSampler::watch_go_process`] (0: none,
    /// e.g. the scheduler's own stack, C code or a process not watched).
    pub goid: u64,
    /// That goroutine's `runtime.g.labels` pointer (its pprof labels), 0 when none.
    pub labels: u64,
    /// User-space return addresses, innermost first (empty for kernel threads or when lost).
    pub user: Vec<u64>,
    /// Kernel return addresses, innermost first (empty when sampled in user space).
    pub kernel: Vec<u64>,
    /// For watched Go processes, the word at the user stack pointer when it is a return address
    /// into the Go code, else 0: the caller the frame-pointer walk in `user` skips when the
    /// function sampled had not saved the frame pointer (a frameless leaf, or at its entry or
    /// return). Only that function's pcsp table can tell whether it had.
    pub return_at_sp: u64,
    /// Samples.
    pub count: u64,
}

/// Samples of one process, goroutine and label set (of any thread and stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleCount {
    /// Process id.
    pub pid: u32,
    /// Goroutine id, 0 for none.
    pub goid: u64,
    /// The goroutine's label set address, 0 for none.
    pub labels: u64,
    /// Samples.
    pub count: u64,
}

/// What the sampler lost in the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProfileLosses {
    /// Samples whose user stack could not be read or stored (stack map full).
    pub user_stacks: u64,
    /// Samples whose kernel stack could not be stored.
    pub kernel_stacks: u64,
    /// Samples dropped because the sample map was full.
    pub samples: u64,
}

/// CPU sampling in progress on every CPU. Dropping it stops sampling.
pub struct CpuSampler<'obj> {
    // Field order is drop order: detach before the maps go.
    _links: Vec<Link>,
    skel: ProfileSkel<'obj>,
    frequency: u32,
    cpus: usize,
}

impl<'obj> CpuSampler<'obj> {
    /// Starts sampling the processes `filter` selects at `frequency` Hz on every online CPU.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        filter: &ProcessFilter,
        frequency: u32,
    ) -> Result<Self, BpfError> {
        if !FREQUENCIES.contains(&frequency) {
            return Err(BpfError::Frequency { frequency });
        }
        let mut open = ProfileSkelBuilder::default()
            .open(storage)
            .map_err(|source| BpfError::Open {
                object: OBJECT,
                source,
            })?;
        configure_filter!(open, OBJECT, filter);
        libbpf_log::clear();
        let skel = open.load().map_err(|source| BpfError::Load {
            object: OBJECT,
            mode: AttachMode::RawTp,
            source,
            verifier_log: libbpf_log::take_trimmed(),
        })?;
        fill_target_pids(&skel.maps.target_pids, &filter.pids)?;

        let possible = libbpf_rs::num_possible_cpus().unwrap_or(1);
        let mut links = Vec::new();
        let mut cpus = 0;
        for cpu in 0..possible {
            let event = match open_cpu_clock(cpu, frequency) {
                Ok(event) => event,
                // An offline CPU has nothing to sample.
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => continue,
                Err(source) => return Err(BpfError::PerfEvent { cpu, source }),
            };
            let link = skel
                .progs
                .handle__cpu_sample
                .attach_perf_event(event.as_raw_fd())
                .map_err(|source| BpfError::Attach {
                    program: format!("handle__cpu_sample on CPU {cpu}"),
                    mode: AttachMode::RawTp,
                    source,
                })?;
            // libbpf's link owns the event's descriptor from here on and closes it on detach;
            // closing it here too would close whatever file reuses the number.
            let _owned_by_link = event.into_raw_fd();
            links.push(link);
            cpus += 1;
        }
        Ok(Self {
            _links: links,
            skel,
            frequency,
            cpus,
        })
    }

    /// Attributes the samples of Go process `pid` to goroutines from now on: `layout` says where
    /// its `runtime.g` keeps the goroutine id and the labels. Fails when the map of watched
    /// processes is full (`MAX_GO_PROCESSES`).
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

    /// The sampling frequency, in Hz per CPU.
    pub fn frequency(&self) -> u32 {
        self.frequency
    }

    /// How many CPUs are sampled.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Every (process, goroutine, label set) sampled so far with its count, without reading
    /// stacks: cheap enough to call every second while sampling.
    pub fn counts(&self) -> Result<Vec<SampleCount>, BpfError> {
        Ok(self
            .rows()?
            .into_iter()
            .map(|(key, count)| SampleCount {
                pid: key.tgid,
                goid: key.goid,
                labels: key.labels,
                count,
            })
            .collect())
    }

    fn rows(&self) -> Result<Vec<(profile_key, u64)>, BpfError> {
        let mut rows: Vec<(profile_key, u64)> = Vec::new();
        BatchReader::default().for_each(&self.skel.maps.samples, "samples", |key, value| {
            let key: profile_key = pod::read(key, "samples")?;
            let count = value
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_ne_bytes);
            rows.push((key, count));
            Ok(())
        })?;
        Ok(rows)
    }

    /// Every (thread, stacks, goroutine) sampled so far with its count, unsorted.
    pub fn samples(&self) -> Result<Vec<StackSample>, BpfError> {
        let rows = self.rows()?;
        let mut stacks = StackReader::new(&self.skel.maps.stacks, "stacks");
        let mut out = Vec::with_capacity(rows.len());
        for (key, count) in rows {
            let user = stacks.frames(key.user_stack)?;
            let kernel = stacks.frames(key.kernel_stack)?;
            out.push(StackSample {
                pid: key.tgid,
                tid: key.tid,
                goid: key.goid,
                labels: key.labels,
                user,
                kernel,
                return_at_sp: key.return_at_sp,
                count,
            });
        }
        Ok(out)
    }

    /// What was lost in the kernel so far.
    pub fn losses(&self) -> Result<ProfileLosses, BpfError> {
        let losses = Losses::read(&self.skel.maps.losses)?;
        Ok(ProfileLosses {
            user_stacks: losses.counts[LOSS_USER_STACK],
            kernel_stacks: losses.counts[LOSS_KERNEL_STACK],
            samples: losses.counts[LOSS_SAMPLES_FULL],
        })
    }
}

/// A software cpu-clock sampling event on `cpu` for every process, at `frequency` Hz.
fn open_cpu_clock(cpu: usize, frequency: u32) -> Result<OwnedFd, std::io::Error> {
    // SAFETY: perf_event_attr is plain data; all-zero is a valid starting value.
    let mut attr: libbpf_sys::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = libbpf_sys::PERF_TYPE_SOFTWARE;
    attr.size = std::mem::size_of_val(&attr) as u32;
    attr.config = u64::from(libbpf_sys::PERF_COUNT_SW_CPU_CLOCK);
    attr.__bindgen_anon_1.sample_freq = u64::from(frequency);
    attr.set_freq(1);
    let cpu = libc::c_int::try_from(cpu).map_err(|_| std::io::Error::other("CPU out of range"))?;
    // SAFETY: attr is a valid perf_event_attr that outlives the call; pid -1 with a CPU is every
    // process on that CPU; no group.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const libbpf_sys::perf_event_attr,
            -1 as libc::c_int,
            cpu,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: perf_event_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
