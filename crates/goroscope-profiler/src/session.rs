//! One profile of any kind, from start to finished [`Profile`]: what the command line and the
//! agent's `/debug/pprof/profile` both run. The caller drives it — [`Session::tick`] every
//! [`Session::period`] until it wants to stop — so it decides about progress, signals and time.

use std::mem::MaybeUninit;
use std::path::Path;
use std::time::Duration;

use goroscope_bpf::{BpfError, ProcessFilter};
use goroscope_goprocess::MemoryError;
use goroscope_model::profile::{Profile, ProfileKind};
use libbpf_rs::OpenObject;

use crate::cpu::CpuProfile;
use crate::offcpu::OffCpuProfile;
use crate::wall::{WallError, WallProfile};

/// How often a sampling profile reads the label sets samples carried for the first time.
const LABELS_TICK: Duration = Duration::from_millis(100);
/// How many label ticks make one full tick (new processes, goroutines): one a second.
const FULL_TICK_EVERY: u32 = 10;
/// CPU samples per second taken during a wall-clock profile, for running goroutines' stacks.
const WALL_CPU_FREQUENCY: u32 = 99;

/// What to profile.
#[derive(Clone, Debug)]
pub struct Request {
    /// What to measure.
    pub kind: ProfileKind,
    /// Which processes (`wall`: exactly one pid).
    pub filter: ProcessFilter,
    /// Samples per second per CPU; for `wall`, snapshots per second.
    pub frequency: u32,
    /// `offcpu`: shortest interval off CPU counted.
    pub min_off_cpu_ns: u64,
}

/// Why a profile could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The request cannot be served as asked: the operator must change it.
    #[error("{0}")]
    Request(String),
    /// The kernel side failed.
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// Reading the target's memory failed.
    #[error("reading goroutines: {0}")]
    Memory(#[from] MemoryError),
}

/// What a finished profile holds, in a line, and what it lost.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// E.g. "2,345 samples from 1 processes (1 Go)".
    pub summary: String,
    /// What was lost, one line each; empty when nothing was.
    pub lost: Vec<String>,
}

/// A profile being taken.
pub struct Session<'obj> {
    running: Running<'obj>,
    frequency: u32,
    ticks: u32,
}

enum Running<'obj> {
    Cpu(Box<CpuProfile<'obj>>),
    OffCpu(Box<OffCpuProfile<'obj>>),
    Wall(Box<WallProfile<'obj>>),
}

impl<'obj> Session<'obj> {
    /// Starts profiling. A wall-clock profile needs exactly one Go process.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        request: &Request,
        proc_root: &Path,
    ) -> Result<Session<'obj>, SessionError> {
        let frequency = request.frequency.max(1);
        let running = match request.kind {
            ProfileKind::Cpu => Running::Cpu(Box::new(CpuProfile::start(
                storage,
                &request.filter,
                frequency,
                proc_root,
            )?)),
            ProfileKind::Wall => {
                let [pid] = request.filter.pids[..] else {
                    return Err(SessionError::Request(
                        "a wall-clock profile reads one Go process's goroutines: name exactly one process".into(),
                    ));
                };
                let interval_ns = 1_000_000_000 / u64::from(frequency);
                match WallProfile::start(storage, proc_root, pid, interval_ns, WALL_CPU_FREQUENCY) {
                    Ok(wall) => Running::Wall(Box::new(wall)),
                    Err(WallError::Attach(e)) => {
                        return Err(SessionError::Request(format!(
                            "cannot read the goroutines of PID {pid}: {e}"
                        )))
                    }
                    Err(WallError::Bpf(e)) => return Err(e.into()),
                }
            }
            ProfileKind::OffCpu => Running::OffCpu(Box::new(OffCpuProfile::start(
                storage,
                &request.filter,
                request.min_off_cpu_ns,
                proc_root,
            )?)),
        };
        Ok(Session {
            running,
            frequency,
            ticks: 0,
        })
    }

    /// What is being done, for the operator ("profiling CPU at 99 Hz").
    pub fn describe(&self) -> String {
        match &self.running {
            Running::Cpu(_) => format!("profiling CPU at {} Hz", self.frequency),
            Running::OffCpu(offcpu) => format!(
                "profiling time off CPU (intervals of {:.3}ms and more)",
                offcpu.min_duration_ns() as f64 / 1e6
            ),
            Running::Wall(_) => format!(
                "profiling goroutine wall time, {} snapshots a second",
                self.frequency
            ),
        }
    }

    /// How often [`Session::tick`] is due.
    pub fn period(&self) -> Duration {
        match &self.running {
            Running::Cpu(_) | Running::OffCpu(_) => LABELS_TICK,
            Running::Wall(_) => Duration::from_nanos(1_000_000_000 / u64::from(self.frequency)),
        }
    }

    /// Does the periodic work. Returns true when the one process profiled is found gone.
    pub fn tick(&mut self) -> Result<bool, SessionError> {
        self.ticks = self.ticks.wrapping_add(1);
        let full = self.ticks.is_multiple_of(FULL_TICK_EVERY);
        match &mut self.running {
            Running::Cpu(cpu) if full => {
                cpu.tick()?;
                Ok(false)
            }
            Running::Cpu(cpu) => {
                cpu.read_new_labels();
                Ok(false)
            }
            Running::OffCpu(offcpu) if full => {
                offcpu.tick()?;
                Ok(false)
            }
            Running::OffCpu(offcpu) => {
                offcpu.read_new_labels();
                Ok(false)
            }
            Running::Wall(wall) => match wall.snapshot() {
                Ok(_) => Ok(false),
                Err(MemoryError::Exited { .. } | MemoryError::Exec { .. }) => Ok(true),
                // A torn read (a list being reallocated): the next snapshot tries again.
                Err(MemoryError::Unmapped { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Progress so far ("1,234 samples", "57 snapshots").
    pub fn progress(&self) -> String {
        match &self.running {
            Running::Cpu(cpu) => format!("{} samples", cpu.samples_so_far()),
            Running::OffCpu(offcpu) => format!("{} intervals off CPU", offcpu.intervals_so_far()),
            Running::Wall(wall) => format!("{} snapshots", wall.snapshots()),
        }
    }

    /// Stops and builds the profile.
    pub fn finish(self) -> Result<(Profile, Outcome), SessionError> {
        match self.running {
            Running::Cpu(cpu) => {
                let (profile, summary) = cpu.finish()?;
                let lost = summary.losses;
                let lost = if lost.samples + lost.user_stacks + lost.kernel_stacks == 0 {
                    Vec::new()
                } else {
                    profile.comments.clone()
                };
                let summary = format!(
                    "{} samples ({} distinct stacks, symbolized in {:.3}s) from {} processes ({} Go)",
                    summary.samples,
                    summary.stacks,
                    summary.symbolize_time.as_secs_f64(),
                    summary.processes,
                    summary.go_processes
                );
                Ok((profile, Outcome { summary, lost }))
            }
            Running::OffCpu(offcpu) => {
                let (profile, summary) = offcpu.finish()?;
                let lost = &summary.losses;
                let lost = if lost.rows + lost.threads + lost.user_stacks + lost.kernel_stacks == 0
                {
                    Vec::new()
                } else {
                    profile.comments.clone()
                };
                let summary = format!(
                    "{} intervals off CPU, {:.3}s in all",
                    summary.intervals,
                    summary.off_cpu_ns as f64 / 1e9
                );
                Ok((profile, Outcome { summary, lost }))
            }
            Running::Wall(wall) => {
                let snapshots = wall.snapshots();
                let profile = wall.finish()?;
                let summary = format!("{snapshots} goroutine snapshots");
                Ok((
                    profile,
                    Outcome {
                        summary,
                        lost: Vec::new(),
                    },
                ))
            }
        }
    }
}
