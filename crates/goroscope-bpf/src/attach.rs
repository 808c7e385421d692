//! What this kernel lets goroscope attach: each program type is tried by
//! loading and attaching an empty program of that type (bpf/probe.bpf.c), on
//! its own, so one refusal says nothing about the others.

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, OpenObject, UprobeOpts};

use crate::error::BpfError;
use crate::libbpf_log;
use crate::skel::probe::{OpenProbeSkel, ProbeSkel, ProbeSkelBuilder};
use crate::tracefs::{self, Tracefs};

/// How goroscope's tracepoint handlers are attached; each handler is
/// compiled in both forms and exactly one is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// BTF-typed raw tracepoints: the cheapest, with typed arguments.
    TpBtf,
    /// Untyped raw tracepoints: the fallback.
    RawTp,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TpBtf => "tp_btf",
            Self::RawTp => "raw_tp",
        })
    }
}

/// A kind of BPF program attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// Classic tracepoints (perf_event_open on a tracefs event id).
    Tracepoint,
    /// BTF-typed raw tracepoints.
    TpBtf,
    /// Raw tracepoints.
    RawTp,
    /// User-space probes.
    Uprobe,
    /// Many uprobes through one link.
    UprobeMulti,
    /// Programs run by perf events (CPU sampling).
    PerfEvent,
    /// BPF trampolines on kernel function entry.
    Fentry,
    /// Kernel probes.
    Kprobe,
}

impl ProgramKind {
    /// Every kind, in the order `doctor` lists them.
    pub const ALL: [ProgramKind; 8] = [
        Self::Tracepoint,
        Self::TpBtf,
        Self::RawTp,
        Self::Uprobe,
        Self::UprobeMulti,
        Self::PerfEvent,
        Self::Fentry,
        Self::Kprobe,
    ];

    /// Its usual name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tracepoint => "tracepoint",
            Self::TpBtf => "tp_btf",
            Self::RawTp => "raw_tp",
            Self::Uprobe => "uprobe",
            Self::UprobeMulti => "uprobe_multi",
            Self::PerfEvent => "perf_event",
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
        }
    }

    /// What goroscope uses it for, for `doctor`.
    pub fn used_for(self) -> &'static str {
        match self {
            Self::Tracepoint => "not needed yet (collectors use tp_btf, else raw_tp)",
            Self::TpBtf => "syscall, process, file, scheduler, TCP collectors and off-CPU profiling (preferred)",
            Self::RawTp => "syscall, process, file, scheduler, TCP collectors and off-CPU profiling (fallback)",
            Self::Uprobe => "rare Go runtime events (planned)",
            Self::UprobeMulti => "many uprobes at once (planned)",
            Self::PerfEvent => "CPU profiling (planned)",
            Self::Fentry => "never required (refused under kernel lockdown)",
            Self::Kprobe => "never required (often not compiled in)",
        }
    }
}

fn select_only(open: &mut OpenProbeSkel<'_>, kind: ProgramKind) {
    let progs = &mut open.progs;
    progs
        .probe_tracepoint
        .set_autoload(kind == ProgramKind::Tracepoint);
    progs.probe_tp_btf.set_autoload(kind == ProgramKind::TpBtf);
    progs.probe_raw_tp.set_autoload(kind == ProgramKind::RawTp);
    progs.probe_uprobe.set_autoload(kind == ProgramKind::Uprobe);
    progs
        .probe_uprobe_multi
        .set_autoload(kind == ProgramKind::UprobeMulti);
    progs
        .probe_perf_event
        .set_autoload(kind == ProgramKind::PerfEvent);
    progs.probe_fentry.set_autoload(kind == ProgramKind::Fentry);
    progs.probe_kprobe.set_autoload(kind == ProgramKind::Kprobe);
}

/// Attaches each loaded program, named for error messages; the links keep them attached.
pub(crate) fn attach_all(
    mode: AttachMode,
    programs: &[(&str, &libbpf_rs::ProgramMut<'_>)],
) -> Result<Vec<Link>, BpfError> {
    programs
        .iter()
        .map(|(name, program)| {
            program.attach().map_err(|source| BpfError::Attach {
                program: (*name).to_owned(),
                mode,
                source,
            })
        })
        .collect()
}

/// Loads and attaches an empty program of `kind`, then detaches it.
/// `Err` says why the kernel (or this machine) refused, with the verifier log.
pub fn probe_program(kind: ProgramKind) -> Result<(), String> {
    if kind == ProgramKind::Tracepoint {
        if let Tracefs::Unavailable(why) = tracefs::ensure_mounted() {
            return Err(why);
        }
    }
    let mut storage = MaybeUninit::<OpenObject>::uninit();
    let mut open = ProbeSkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| format!("opening the probe object: {e}"))?;
    select_only(&mut open, kind);
    libbpf_log::clear();
    let skel = open.load().map_err(|e| {
        let log = libbpf_log::take_trimmed();
        if log.is_empty() {
            format!("load refused: {e}")
        } else {
            format!("load refused: {e}\n{log}")
        }
    })?;
    let _link = attach_probe(&skel, kind).map_err(|e| format!("attach refused: {e}"))?;
    Ok(())
}

fn attach_probe(skel: &ProbeSkel<'_>, kind: ProgramKind) -> Result<Link, String> {
    let progs = &skel.progs;
    let me = i32::try_from(std::process::id()).map_err(|e| e.to_string())?;
    match kind {
        ProgramKind::Tracepoint => progs.probe_tracepoint.attach().map_err(|e| e.to_string()),
        ProgramKind::TpBtf => progs.probe_tp_btf.attach().map_err(|e| e.to_string()),
        ProgramKind::RawTp => progs.probe_raw_tp.attach().map_err(|e| e.to_string()),
        ProgramKind::Fentry => progs.probe_fentry.attach().map_err(|e| e.to_string()),
        ProgramKind::Kprobe => progs.probe_kprobe.attach().map_err(|e| e.to_string()),
        ProgramKind::Uprobe => progs
            .probe_uprobe
            .attach_uprobe_with_opts(
                me,
                "libc.so.6",
                0,
                UprobeOpts {
                    func_name: Some("getpid".into()),
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string()),
        ProgramKind::UprobeMulti => progs
            .probe_uprobe_multi
            .attach_uprobe_multi(me, "libc.so.6", "getpid", false, false)
            .map_err(|e| e.to_string()),
        ProgramKind::PerfEvent => {
            let fd = open_cpu_clock_event()?;
            let link = progs
                .probe_perf_event
                .attach_perf_event(std::os::fd::AsRawFd::as_raw_fd(&fd))
                .map_err(|e| e.to_string());
            // The link holds its own reference to the event.
            drop(fd);
            link
        }
    }
}

/// From linux/perf_event.h.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// A software cpu-clock sampling event on this process, as a profiler would use.
fn open_cpu_clock_event() -> Result<OwnedFd, String> {
    // SAFETY: perf_event_attr is plain data; all-zero is a valid starting value.
    let mut attr: libbpf_rs::libbpf_sys::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = libbpf_rs::libbpf_sys::PERF_TYPE_SOFTWARE;
    attr.size = std::mem::size_of_val(&attr) as u32;
    attr.config = u64::from(libbpf_rs::libbpf_sys::PERF_COUNT_SW_CPU_CLOCK);
    attr.__bindgen_anon_1.sample_freq = 19;
    attr.set_freq(1);
    // SAFETY: attr is a valid perf_event_attr that outlives the call; pid 0 is
    // this process, cpu -1 any CPU, no group, no flags.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const _,
            0,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(format!(
            "perf_event_open(cpu-clock): {}",
            std::io::Error::last_os_error()
        ));
    }
    let fd = i32::try_from(fd).map_err(|e| e.to_string())?;
    // SAFETY: perf_event_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Chooses how collectors attach: tp_btf when the kernel allows it, else raw_tp.
pub fn choose_attach_mode() -> Result<AttachMode, BpfError> {
    let tp_btf = match probe_program(ProgramKind::TpBtf) {
        Ok(()) => return Ok(AttachMode::TpBtf),
        Err(why) => why,
    };
    match probe_program(ProgramKind::RawTp) {
        Ok(()) => Ok(AttachMode::RawTp),
        Err(raw_tp) => Err(BpfError::NoAttachMode {
            detail: format!("tp_btf: {tp_btf}; raw_tp: {raw_tp}"),
        }),
    }
}
