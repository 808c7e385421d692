//! The goroutine wall-clock profile: snapshots of a Go process's goroutines at the profile's
//! interval, every live goroutine's stack weighted by the time since the previous snapshot,
//! under a root frame naming what it was doing (`[chan receive]`, `[IO wait]`, `[runnable]`,
//! `[syscall]`, `[running]`). Goroutines that were running have no stack in memory to read:
//! their time is spread over the CPU samples their thread took of them while the profile ran,
//! and counted under `[running]` alone when there were none (the profile says how much).

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::path::Path;

use goroscope_bpf::profile::{CpuSampler, GoLayout, StackSample};
use goroscope_bpf::{BpfError, ProcessFilter};
use goroscope_goprocess::{AttachError, GoProcess, MemoryError, SnapshotOptions};
use goroscope_model::goroutines::{Activity, GoroutineSnapshot, GoroutineState};
use goroscope_model::profile::{Label, Profile, ProfileKind};
use libbpf_rs::OpenObject;

use crate::assemble::{Assembler, RawStack};
use crate::symbols::Symbols;
use crate::targets::GoTargets;

/// Frames unwound per goroutine.
const MAX_FRAMES: usize = 64;
/// Root frame of goroutines on a CPU.
const RUNNING: &str = "[running]";

/// Why a wall-clock profile could not start.
#[derive(Debug, thiserror::Error)]
pub enum WallError {
    /// The process could not be attached as a Go process.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// CPU sampling (for running goroutines' stacks) could not start.
    #[error(transparent)]
    Bpf(#[from] BpfError),
}

/// What a goroutine was doing in one snapshot, and where: small ids into the profile's tables,
/// so weighing a goroutine copies no stack and formats no name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Observation {
    goid: u64,
    /// Its root frame, an index into `WallProfile::roots`.
    root: u32,
    /// Its stack (innermost return address first; empty for running goroutines), an index into
    /// `WallProfile::stacks`.
    stack: u32,
    start_pc: u64,
    creation_pc: u64,
    /// Its pprof labels, an index into `WallProfile::label_sets`.
    labels: u32,
}

/// Distinct values, each stored once, by a `u32` id.
struct Interned<T> {
    values: Vec<T>,
    ids: HashMap<T, u32>,
}

impl<T: Clone + Eq + std::hash::Hash> Interned<T> {
    /// A table holding `first` as id 0.
    fn with_first(first: T) -> Interned<T> {
        Interned {
            values: vec![first.clone()],
            ids: HashMap::from([(first, 0)]),
        }
    }

    /// The id of `value`, stored on first sight.
    fn id(&mut self, value: &T) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value.clone());
        self.ids.insert(value.clone(), id);
        id
    }

    fn get(&self, id: u32) -> Option<&T> {
        self.values.get(id as usize)
    }
}

/// A wall-clock profile being taken of one Go process.
pub struct WallProfile<'obj> {
    pid: u32,
    process: GoProcess,
    sampler: CpuSampler<'obj>,
    targets: GoTargets,
    symbols: Symbols,
    /// Observations and their (snapshots, nanoseconds).
    weights: HashMap<Observation, (u64, u64)>,
    /// Distinct label sets seen (the first is "no labels").
    label_sets: Interned<Vec<(String, String)>>,
    /// Distinct stacks seen (the first is "no stack").
    stacks: Interned<Vec<u64>>,
    /// Distinct root frames seen (the first is `[running]`).
    roots: Interned<String>,
    last_ns: Option<u64>,
    interval_ns: u64,
    started_wall_ns: i64,
    first_ns: Option<u64>,
    snapshots: u64,
}

impl<'obj> WallProfile<'obj> {
    /// Attaches to Go process `pid`, to be read every `interval_ns`, and starts sampling its
    /// threads at `cpu_frequency` Hz for the stacks of running goroutines.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        proc_root: &Path,
        pid: u32,
        interval_ns: u64,
        cpu_frequency: u32,
    ) -> Result<WallProfile<'obj>, WallError> {
        let process = GoProcess::attach(proc_root, pid)?;
        let filter = ProcessFilter {
            pids: vec![pid],
            comm: None,
            include_self: false,
        };
        let sampler = CpuSampler::start(storage, &filter, cpu_frequency)?;
        let g = process.g_layout();
        if let Ok(goid_offset) = u32::try_from(g.goid) {
            sampler.watch_go_process(
                pid,
                GoLayout {
                    goid_offset,
                    labels_offset: g.labels.and_then(|offset| u32::try_from(offset).ok()),
                    // Running goroutines' CPU samples: their skipped callers are not put back.
                    text_start: 0,
                    text_end: 0,
                },
            )?;
        }
        let mut symbols = Symbols::new(proc_root);
        symbols.capture(pid);
        let mut targets = GoTargets::new(proc_root);
        targets.attach(pid);
        Ok(WallProfile {
            pid,
            process,
            sampler,
            targets,
            symbols,
            weights: HashMap::new(),
            label_sets: Interned::with_first(Vec::new()),
            stacks: Interned::with_first(Vec::new()),
            roots: Interned::with_first(RUNNING.to_string()),
            last_ns: None,
            interval_ns,
            started_wall_ns: crate::unix_now_ns(),
            first_ns: None,
            snapshots: 0,
        })
    }

    /// Takes one snapshot and weighs every live goroutine by the time since the previous one
    /// (the interval, for the first), and returns it for other uses (the health model of
    /// `goroscope record`). Fails when the process is gone.
    pub fn snapshot(&mut self) -> Result<GoroutineSnapshot, MemoryError> {
        let snapshot = self.process.snapshot(&SnapshotOptions {
            max_frames: MAX_FRAMES,
        })?;
        let now = snapshot.taken_at_ns;
        let weight = match self.last_ns {
            Some(last) => now.saturating_sub(last),
            None => self.interval_ns,
        };
        self.last_ns = Some(now);
        self.first_ns.get_or_insert(now);
        self.snapshots += 1;
        self.observe(&snapshot, weight);
        Ok(snapshot)
    }

    /// The process being read (its build, its symbolizer).
    pub fn process(&self) -> &GoProcess {
        &self.process
    }

    fn observe(&mut self, snapshot: &GoroutineSnapshot, weight: u64) {
        // Each distinct label set, stack and root of a snapshot is looked up once: label sets
        // are read then, while their goroutines hold them.
        let mut sets_here: HashMap<u64, u32> = HashMap::from([(0, 0)]);
        let mut stacks_here: HashMap<u32, u32> = HashMap::new();
        let mut roots_here: HashMap<Activity, u32> = HashMap::new();
        for record in &snapshot.goroutines {
            if !record.state.is_live() {
                continue;
            }
            let root = *roots_here.entry(record.activity()).or_insert_with(|| {
                let name = format!("[{}]", snapshot.activity_name(record.activity()));
                self.roots.id(&name)
            });
            let stack = match (record.state, record.stack) {
                (GoroutineState::Running, _) | (_, None) => 0,
                (_, Some(index)) => *stacks_here.entry(index).or_insert_with(|| {
                    let pcs = snapshot.stacks.get(index as usize);
                    pcs.map_or(0, |pcs| self.stacks.id(pcs))
                }),
            };
            let labels = *sets_here.entry(record.labels).or_insert_with(|| {
                let pairs = self.process.read_labels(record.labels).unwrap_or_default();
                self.label_sets.id(&pairs)
            });
            let entry = self
                .weights
                .entry(Observation {
                    goid: record.goid,
                    root,
                    stack,
                    start_pc: record.start_pc,
                    creation_pc: record.creation_pc,
                    labels,
                })
                .or_default();
            entry.0 += 1;
            entry.1 += weight;
        }
    }

    /// Snapshots taken so far.
    pub fn snapshots(&self) -> u64 {
        self.snapshots
    }

    /// Stops and builds the profile.
    pub fn finish(mut self) -> Result<Profile, BpfError> {
        let samples = self.sampler.samples()?;
        drop(self.sampler);
        let mut by_goroutine: HashMap<u64, Vec<StackSample>> = HashMap::new();
        for sample in samples {
            if sample.goid != 0 && sample.pid == self.pid {
                by_goroutine.entry(sample.goid).or_default().push(sample);
            }
        }
        let mut profile = Profile::new(ProfileKind::Wall);
        profile.period = i64::try_from(self.interval_ns).unwrap_or(i64::MAX);
        profile.time_ns = self.started_wall_ns;
        profile.duration_ns = match (self.first_ns, self.last_ns) {
            (Some(first), Some(last)) => {
                i64::try_from(last - first + self.interval_ns).unwrap_or(i64::MAX)
            }
            _ => 0,
        };
        let mut without_stack = 0u64;
        let pid = self.pid;
        let mut assembler = Assembler::new(&mut self.symbols, profile);
        for (observation, (count, nanos)) in self.weights {
            let mut labels = self.targets.labels_of(
                pid,
                observation.goid,
                observation.start_pc,
                observation.creation_pc,
                0,
            );
            let root = self
                .roots
                .get(observation.root)
                .cloned()
                .unwrap_or_default();
            let state = root.trim_matches(['[', ']']).to_string();
            labels.push(Label::text("state", &state));
            if let Some(pairs) = self.label_sets.get(observation.labels) {
                labels.extend(pairs.iter().map(|(k, v)| Label::text(k, v)));
            }
            let count = i64::try_from(count).unwrap_or(i64::MAX);
            let nanos = i64::try_from(nanos).unwrap_or(i64::MAX);
            if root != RUNNING {
                assembler.add(RawStack {
                    pid,
                    user: self
                        .stacks
                        .get(observation.stack)
                        .cloned()
                        .unwrap_or_default(),
                    user_leaf_is_return: true,
                    kernel: Vec::new(),
                    roots: vec![root],
                    values: vec![count, nanos],
                    labels,
                });
                continue;
            }
            // A running goroutine's time goes to the stacks its CPU samples show.
            let cpu = by_goroutine.get(&observation.goid);
            let total: u64 = cpu.map_or(0, |s| s.iter().map(|s| s.count).sum());
            if total == 0 {
                without_stack += u64::try_from(nanos).unwrap_or(0);
                assembler.add(RawStack {
                    pid,
                    roots: vec![root],
                    values: vec![count, nanos],
                    labels,
                    ..RawStack::default()
                });
                continue;
            }
            for sample in cpu.into_iter().flatten() {
                let share = |value: i64| {
                    i64::try_from(i128::from(value) * i128::from(sample.count) / i128::from(total))
                        .unwrap_or(0)
                };
                assembler.add(RawStack {
                    pid,
                    user: sample.user.clone(),
                    user_leaf_is_return: false,
                    kernel: sample.kernel.clone(),
                    roots: vec![root.clone()],
                    values: vec![share(count), share(nanos)],
                    labels: labels.clone(),
                });
            }
        }
        let mut profile = assembler.finish();
        profile.comments.push(format!(
            "{} goroutine snapshots of process {pid}, one every {:.1}ms",
            self.snapshots,
            self.interval_ns as f64 / 1e6
        ));
        if without_stack > 0 {
            profile.comments.push(format!(
                "{:.3}s of running goroutines had no CPU sample to take a stack from: counted under [running] without a stack",
                without_stack as f64 / 1e9
            ));
        }
        Ok(profile)
    }
}
