//! Continuous CPU profiles for OTLP (`exporters.otlp.profiles`): every `every`, one CPU profile
//! of `duration` (99 Hz) of every watched Go process at once, taken on a thread of its own
//! ("goroscope-otlp-profiles") exactly as `/debug/pprof/profile` takes one, then split into one
//! profile per process (samples carry their `pid` label) for that process's resource.
//!
//! The thread only profiles; the export loop picks finished profiles up after a cycle. At most
//! two finished profiles wait: a third (the export side stalled) is dropped and counted.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use goroscope_bpf::ProcessFilter;
use goroscope_model::profile::{LabelValue, Profile, ProfileKind};
use goroscope_profiler::{Request, Session};

/// CPU samples per second.
const FREQUENCY: u32 = 99;
/// Finished profiles waiting for the export loop.
const WAITING: usize = 2;

/// When and for how long to profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Time between the starts of two profiles.
    pub every: Duration,
    /// How long each profile runs.
    pub duration: Duration,
}

/// The profiling thread and what it hands over.
pub struct ContinuousProfiles {
    schedule: Schedule,
    targets: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    finished: Receiver<Profile>,
    /// Profiles taken but dropped (the export side did not pick them up), or that failed.
    lost: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl ContinuousProfiles {
    /// Starts profiling on `schedule`; the processes are set with [`Self::set_targets`].
    pub fn start(schedule: Schedule, proc_root: &'static Path) -> std::io::Result<Self> {
        let targets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicU64::new(0));
        let (sender, finished) = sync_channel(WAITING);
        let thread = {
            let (targets, stop, lost) =
                (Arc::clone(&targets), Arc::clone(&stop), Arc::clone(&lost));
            std::thread::Builder::new()
                .name("goroscope-otlp-profiles".to_owned())
                .spawn(move || {
                    profile_forever(schedule, proc_root, &targets, &stop, &lost, &sender)
                })?
        };
        Ok(ContinuousProfiles {
            schedule,
            targets,
            stop,
            finished,
            lost,
            thread: Some(thread),
        })
    }

    /// The schedule it runs on.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The processes the next profile covers.
    pub fn set_targets(&self, pids: Vec<u32>) {
        *self.targets.lock().unwrap_or_else(|e| e.into_inner()) = pids;
    }

    /// Profiles finished since the last call, one per process.
    pub fn finished(&self) -> Vec<(u32, Profile)> {
        self.finished
            .try_iter()
            .flat_map(split_by_process)
            .collect()
    }

    /// Profiles lost so far (failed, or not picked up in time).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for ContinuousProfiles {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: a profile every `every` until stopped.
fn profile_forever(
    schedule: Schedule,
    proc_root: &'static Path,
    targets: &Mutex<Vec<u32>>,
    stop: &AtomicBool,
    lost: &AtomicU64,
    finished: &SyncSender<Profile>,
) {
    let mut next = Instant::now() + schedule.every.min(Duration::from_secs(5));
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        next += schedule.every;
        let pids = targets.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if pids.is_empty() {
            continue;
        }
        match profile_once(&pids, schedule.duration, proc_root, stop) {
            Ok(profile) => {
                if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                    finished.try_send(profile)
                {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                lost.fetch_add(1, Ordering::Relaxed);
                eprintln!("goroscope: otlp: a continuous CPU profile failed: {error}");
            }
        }
    }
}

/// One CPU profile of `pids` for `duration` (cut short when the agent stops).
fn profile_once(
    pids: &[u32],
    duration: Duration,
    proc_root: &Path,
    stop: &AtomicBool,
) -> Result<Profile, goroscope_profiler::SessionError> {
    let request = Request {
        kind: ProfileKind::Cpu,
        filter: ProcessFilter {
            pids: pids.to_vec(),
            comm: None,
            include_self: false,
        },
        frequency: FREQUENCY,
        min_off_cpu_ns: 0,
    };
    let mut storage = MaybeUninit::uninit();
    let mut session = Session::start(&mut storage, &request, proc_root)?;
    let end = Instant::now() + duration;
    let period = session.period();
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(period.min(end.saturating_duration_since(Instant::now())));
        session.tick()?;
    }
    let (profile, _) = session.finish()?;
    Ok(profile)
}

/// One profile per process, by the samples' `pid` label (samples without one are left out).
/// Each keeps the whole location table: the encoder writes only what samples reference.
pub fn split_by_process(mut profile: Profile) -> Vec<(u32, Profile)> {
    let samples = std::mem::take(&mut profile.samples);
    let mut parts: BTreeMap<u32, Profile> = BTreeMap::new();
    for sample in samples {
        let pid = sample.labels.iter().find_map(|label| match label.value {
            LabelValue::Number(pid) if label.key == "pid" => u32::try_from(pid).ok(),
            _ => None,
        });
        let Some(pid) = pid else { continue };
        parts
            .entry(pid)
            .or_insert_with(|| profile.clone())
            .samples
            .push(sample);
    }
    parts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use goroscope_model::profile::{Label, Sample};

    #[test]
    fn a_profile_of_two_processes_becomes_one_per_process() {
        let mut profile = Profile::new(ProfileKind::Cpu);
        let sample = |pid: i64, value: i64| Sample {
            locations: vec![],
            values: vec![value, value * 10],
            labels: vec![Label::number("pid", pid), Label::number("thread", pid + 1)],
        };
        profile.samples = vec![sample(7, 1), sample(9, 2), sample(7, 3)];
        profile.samples.push(Sample {
            labels: vec![],
            ..sample(0, 5)
        });
        let parts = split_by_process(profile);
        let values: Vec<(u32, Vec<i64>)> = parts
            .iter()
            .map(|(pid, p)| (*pid, p.samples.iter().map(|s| s.values[0]).collect()))
            .collect();
        assert_eq!(values, vec![(7, vec![1, 3]), (9, vec![2])]);
    }
}
