//! A CPU profile in progress: the kernel samples every CPU and counts stacks; once a second
//! [`CpuProfile::tick`] records the code mappings of processes seen for the first time (so they
//! can be symbolized after they exit), attaches to new Go processes so their samples carry
//! goroutines, and reads goroutines and their labels. [`CpuProfile::finish`] symbolizes and
//! builds the [`Profile`].

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use goroscope_bpf::profile::{CpuSampler, ProfileLosses, StackSample};
use goroscope_bpf::BpfError;
use goroscope_bpf::ProcessFilter;
use goroscope_model::profile::{Label, Profile, ProfileKind};
use libbpf_rs::OpenObject;

use crate::assemble::{Assembler, RawStack};
use crate::symbols::Symbols;
use crate::targets::GoTargets;

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
}

/// A CPU profile being taken.
pub struct CpuProfile<'obj> {
    sampler: CpuSampler<'obj>,
    symbols: Symbols,
    targets: GoTargets,
    seen: HashSet<u32>,
    label_sets: HashSet<(u32, u64)>,
    started: Instant,
    started_wall_ns: i64,
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
        let mut symbols = Symbols::new(proc_root);
        let mut targets = GoTargets::new(proc_root);
        let mut layouts = Vec::new();
        for &pid in &filter.pids {
            symbols.capture(pid);
            if let Some(layout) = targets.attach(pid) {
                layouts.push((pid, layout));
            }
        }
        let sampler = CpuSampler::start(storage, filter, frequency)?;
        for (pid, layout) in layouts {
            sampler.watch_go_process(pid, layout)?;
        }
        Ok(CpuProfile {
            sampler,
            symbols,
            targets,
            seen: filter.pids.iter().copied().collect(),
            label_sets: HashSet::new(),
            started: Instant::now(),
            started_wall_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        })
    }

    /// Records a process seen for the first time: its mappings, and its goroutines if it is Go.
    fn see(&mut self, pid: u32) -> Result<(), BpfError> {
        if !self.seen.insert(pid) {
            return Ok(());
        }
        self.symbols.capture(pid);
        if let Some(layout) = self.targets.attach(pid) {
            self.sampler.watch_go_process(pid, layout)?;
        }
        Ok(())
    }

    /// Looks at what was sampled since the last tick; call about once a second. Returns the
    /// samples taken so far.
    pub fn tick(&mut self) -> Result<u64, BpfError> {
        let counts = self.sampler.counts()?;
        let mut total = 0;
        for row in &counts {
            total += row.count;
            self.see(row.pid)?;
        }
        for pid in self.targets.refresh() {
            self.sampler.forget_go_process(pid);
        }
        for row in &counts {
            if row.labels != 0 && self.label_sets.insert((row.pid, row.labels)) {
                // LABELS-MERGE: self.targets.read_labels(row.pid, row.labels);
            }
        }
        Ok(total)
    }

    /// True when `pid` was attached as a Go process.
    pub fn is_go(&self, pid: u32) -> bool {
        self.targets.is_attached(pid)
    }

    /// Stops sampling and builds the profile.
    pub fn finish(mut self) -> Result<(Profile, CpuSummary), BpfError> {
        self.tick()?;
        let duration = self.started.elapsed();
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
            .map(|sample| with_skipped_caller(&self.symbols, sample))
            .collect();
        let mut assembler = Assembler::new(&mut self.symbols, profile);
        for (sample, user) in samples.into_iter().zip(users) {
            processes.insert(sample.pid);
            summary.samples += sample.count;
            let count = i64::try_from(sample.count).unwrap_or(i64::MAX);
            let mut labels = vec![
                Label::number("pid", i64::from(sample.pid)),
                Label::number("thread", i64::from(sample.tid)),
            ];
            labels.extend(self.targets.labels(sample.pid, sample.goid, sample.labels));
            assembler.add(RawStack {
                pid: sample.pid,
                user,
                kernel: sample.kernel,
                roots: Vec::new(),
                values: vec![count, count.saturating_mul(period)],
                labels,
            });
        }
        let mut profile = assembler.finish();
        summary.processes = processes.len();
        summary.go_processes = processes
            .iter()
            .filter(|&&pid| self.targets.is_attached(pid))
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
            "{} samples have no user stack (stack map full or collided)",
            losses.user_stacks
        ));
    }
    if losses.kernel_stacks > 0 {
        comments.push(format!(
            "{} samples have no kernel stack (stack map full or collided)",
            losses.kernel_stacks
        ));
    }
    comments
}
