//! A CPU profile in progress: the kernel samples every CPU and counts stacks; once a second
//! [`CpuProfile::tick`] records the code mappings of processes seen for the first time (so they
//! can be symbolized after they exit), attaches to new Go processes so their samples carry
//! goroutines, and reads goroutines and their labels. [`CpuProfile::finish`] symbolizes and
//! builds the [`Profile`].

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::path::Path;
use std::time::Instant;

use goroscope_bpf::profile::{CpuSampler, ProfileLosses, StackSample};
use goroscope_bpf::BpfError;
use goroscope_bpf::ProcessFilter;
use goroscope_model::profile::{Label, Profile, ProfileKind};
use libbpf_rs::OpenObject;

use crate::assemble::{Assembler, RawStack};
use crate::symbols::Symbols;
use crate::watched::Watched;

/// What a finished CPU profile holds besides the profile.
#[derive(Clone, Debug, Default)]
pub struct CpuSummary {
    /// Samples taken.
    pub samples: u64,
    /// What the kernel side lost.
    pub losses: ProfileLosses,
    /// Processes sampled.
    pub processes: usize,
    /// Go processes whose samples were attributed to goroutines.
    pub go_processes: usize,
    /// Distinct stacks (rows) read from the kernel.
    pub stacks: usize,
    /// Time spent reading the stacks and symbolizing them into the profile.
    pub symbolize_time: std::time::Duration,
}

/// A CPU profile being taken.
pub struct CpuProfile<'obj> {
    sampler: CpuSampler<'obj>,
    watched: Watched,
    started: Instant,
    started_wall_ns: i64,
    samples_so_far: u64,
}

impl<'obj> CpuProfile<'obj> {
    /// Starts sampling what `filter` selects at `frequency` Hz. Named Go processes are attached
    /// first, so their first samples already carry goroutines.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        filter: &ProcessFilter,
        frequency: u32,
        proc_root: &Path,
    ) -> Result<CpuProfile<'obj>, BpfError> {
        // Attaching reads the executable and the runtime (a fraction of a second): done before
        // sampling starts, the first samples already carry goroutines and whole stacks.
        let mut watched = Watched::new(proc_root);
        let layouts: Vec<_> = filter
            .pids
            .iter()
            .filter_map(|&pid| watched.first_sight(pid).map(|layout| (pid, layout)))
            .collect();
        let sampler = CpuSampler::start(storage, filter, frequency)?;
        for (pid, layout) in layouts {
            sampler.watch_go_process(pid, layout)?;
        }
        Ok(CpuProfile {
            sampler,
            watched,
            started: Instant::now(),
            samples_so_far: 0,
            started_wall_ns: crate::unix_now_ns(),
        })
    }

    /// Records a process seen for the first time: its mappings, and its goroutines if it is Go.
    fn see(&mut self, pid: u32) -> Result<(), BpfError> {
        let sampler = &self.sampler;
        self.watched
            .see(pid, |pid, layout| sampler.watch_go_process(pid, layout))
    }

    /// Reads the label sets samples carried for the first time since the last call; call
    /// often (every 100 ms or so), so sets made per request are read while still held.
    pub fn read_new_labels(&mut self) {
        for (pid, labels) in self.sampler.new_label_sets() {
            self.watched.saw_labels(pid, labels);
        }
    }

    /// Looks at what was sampled since the last tick; call about once a second. Returns the
    /// samples taken so far.
    pub fn tick(&mut self) -> Result<u64, BpfError> {
        self.read_new_labels();
        let counts = self.sampler.counts()?;
        let mut total = 0;
        for row in &counts {
            total += row.count;
            self.see(row.pid)?;
        }
        self.samples_so_far = total;
        for pid in self.watched.targets.refresh() {
            self.sampler.forget_go_process(pid);
        }
        for row in &counts {
            self.watched.saw_labels(row.pid, row.labels);
        }
        Ok(total)
    }

    /// Samples counted at the last tick.
    pub fn samples_so_far(&self) -> u64 {
        self.samples_so_far
    }

    /// True when `pid` was attached as a Go process.
    pub fn is_go(&self, pid: u32) -> bool {
        self.watched.targets.is_attached(pid)
    }

    /// Stops sampling and builds the profile.
    pub fn finish(mut self) -> Result<(Profile, CpuSummary), BpfError> {
        self.tick()?;
        let duration = self.started.elapsed();
        let symbolizing = Instant::now();
        let samples = self.sampler.samples()?;
        let losses = self.sampler.losses()?;
        let frequency = self.sampler.frequency();
        drop(self.sampler);

        let period = 1_000_000_000 / i64::from(frequency.max(1));
        let mut profile = Profile::new(ProfileKind::Cpu);
        profile.period = period;
        profile.time_ns = self.started_wall_ns;
        profile.duration_ns = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        let mut summary = CpuSummary {
            losses,
            ..CpuSummary::default()
        };
        let mut processes = HashSet::new();
        let users: Vec<Vec<u64>> = samples
            .iter()
            .map(|sample| with_skipped_caller(&self.watched.symbols, sample))
            .collect();
        let assembler_rows = samples.len();
        let mut assembler = Assembler::new(&mut self.watched.symbols, profile);
        for (sample, user) in samples.into_iter().zip(users) {
            processes.insert(sample.pid);
            summary.samples += sample.count;
            let count = i64::try_from(sample.count).unwrap_or(i64::MAX);
            let mut labels = vec![
                Label::number("pid", i64::from(sample.pid)),
                Label::number("thread", i64::from(sample.tid)),
            ];
            labels.extend(
                self.watched
                    .targets
                    .labels(sample.pid, sample.goid, sample.labels),
            );
            assembler.add(RawStack {
                pid: sample.pid,
                user,
                user_leaf_is_return: false,
                kernel: sample.kernel,
                roots: Vec::new(),
                values: vec![count, count.saturating_mul(period)],
                labels,
            });
        }
        summary.stacks = assembler_rows;
        let mut profile = assembler.finish();
        summary.symbolize_time = symbolizing.elapsed();
        summary.processes = processes.len();
        summary.go_processes = processes
            .iter()
            .filter(|&&pid| self.watched.targets.is_attached(pid))
            .count();
        profile.comments.extend(loss_comments(&summary.losses));
        Ok((profile, summary))
    }
}

/// The sample's user stack with the caller the frame-pointer walk skipped put back: when the
/// sampled Go function had not saved the frame pointer (its pcsp table says the return address
/// is at SP: a frameless leaf, or its first or last instruction), the walk starts from its
/// caller's frame and goes straight to the caller's caller. The kernel side read the return
/// address at SP for this.
fn with_skipped_caller(symbols: &Symbols, sample: &StackSample) -> Vec<u64> {
    let mut user = sample.user.clone();
    let Some(&leaf) = user.first() else {
        return user;
    };
    if sample.return_at_sp == 0 {
        return user;
    }
    // In the kernel the first user address is a system call's return point, not the
    // instruction running: look up the call itself, as symbolization does.
    let pc = if sample.kernel.is_empty() {
        leaf
    } else {
        leaf.saturating_sub(1)
    };
    if symbols.go_return_address_at_sp(sample.pid, pc) {
        user.insert(1, sample.return_at_sp);
    }
    user
}

/// What was lost, said in the profile itself.
fn loss_comments(losses: &ProfileLosses) -> Vec<String> {
    let mut comments = Vec::new();
    if losses.samples > 0 {
        comments.push(format!(
            "{} samples dropped: the kernel's sample map was full",
            losses.samples
        ));
    }
    if losses.user_stacks > 0 {
        comments.push(format!(
            "{} samples have no user stack (unreadable, or the stack map was full)",
            losses.user_stacks
        ));
    }
    if losses.kernel_stacks > 0 {
        comments.push(format!(
            "{} samples have no kernel stack (unreadable, or the stack map was full)",
            losses.kernel_stacks
        ));
    }
    comments
}
