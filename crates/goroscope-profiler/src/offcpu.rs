//! An off-CPU profile in progress: the kernel times every interval a thread spends off CPU
//! (longer than a minimum) by stack, split into blocked (switched out until woken) and waiting
//! for a CPU (woken or preempted, until switched in). The profile's values are the intervals,
//! the total time, and the two parts, so `go tool pprof -sample_index=blocked|runqueue` shows
//! either.

use std::mem::MaybeUninit;
use std::path::Path;
use std::time::Instant;

use goroscope_bpf::offcpu::{OffCpuLosses, OffCpuSampler};
use goroscope_bpf::{BpfError, ProcessFilter};
use goroscope_model::profile::{Label, Profile, ProfileKind};
use libbpf_rs::OpenObject;

use crate::assemble::{Assembler, RawStack};
use crate::watched::Watched;

/// Kernel functions of the tracing machinery itself, above the scheduler in every stack taken
/// at a context switch: left out so stacks start where the thread really stopped. The BPF
/// program's own frame, leafward of them, has no reliable name (kallsyms may give it a
/// neighbour's), so everything up to the last of them near the leaf goes.
const TRACING_FRAMES: &[&str] = &["bpf_trace_run", "__bpf_trace_", "__traceiter_"];
/// How close to the leaf the tracing frames are looked for.
const TRACING_DEPTH: usize = 6;

/// What a finished off-CPU profile holds besides the profile.
#[derive(Clone, Debug, Default)]
pub struct OffCpuSummary {
    /// Intervals off CPU counted.
    pub intervals: u64,
    /// Their total time.
    pub off_cpu_ns: u64,
    /// What the kernel side lost.
    pub losses: OffCpuLosses,
    /// Intervals whose end the kernel did not report, measured from the thread's run time.
    pub unseen_switch_ins: u64,
}

/// An off-CPU profile being taken.
pub struct OffCpuProfile<'obj> {
    sampler: OffCpuSampler<'obj>,
    watched: Watched,
    started: Instant,
    started_wall_ns: i64,
    intervals_so_far: u64,
}

impl<'obj> OffCpuProfile<'obj> {
    /// Starts timing what `filter` selects, keeping intervals of at least `min_duration_ns`.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        filter: &ProcessFilter,
        min_duration_ns: u64,
        proc_root: &Path,
    ) -> Result<OffCpuProfile<'obj>, BpfError> {
        let sampler = OffCpuSampler::start(storage, filter, min_duration_ns)?;
        let mut profile = OffCpuProfile {
            sampler,
            watched: Watched::new(proc_root),
            started: Instant::now(),
            started_wall_ns: crate::unix_now_ns(),
            intervals_so_far: 0,
        };
        for &pid in &filter.pids {
            profile.see(pid)?;
        }
        Ok(profile)
    }

    fn see(&mut self, pid: u32) -> Result<(), BpfError> {
        let sampler = &self.sampler;
        self.watched
            .see(pid, |pid, layout| sampler.watch_go_process(pid, layout))
    }

    /// Reads the label sets intervals carried for the first time since the last call; call
    /// often (every 100 ms or so), so sets made per request are read while still held.
    pub fn read_new_labels(&mut self) {
        for (pid, labels) in self.sampler.new_label_sets() {
            self.watched.saw_labels(pid, labels);
        }
    }

    /// Looks at what was recorded since the last tick; call about once a second.
    pub fn tick(&mut self) -> Result<(), BpfError> {
        self.read_new_labels();
        let rows = self.sampler.counts()?;
        self.intervals_so_far = rows.iter().map(|r| r.count).sum();
        for row in &rows {
            self.see(row.pid)?;
        }
        for pid in self.watched.targets.refresh() {
            self.sampler.forget_go_process(pid);
        }
        for row in &rows {
            self.watched.saw_labels(row.pid, row.labels);
        }
        Ok(())
    }

    /// The shortest interval counted.
    pub fn min_duration_ns(&self) -> u64 {
        self.sampler.min_duration_ns()
    }

    /// Intervals counted at the last tick.
    pub fn intervals_so_far(&self) -> u64 {
        self.intervals_so_far
    }

    /// Stops and builds the profile.
    pub fn finish(mut self) -> Result<(Profile, OffCpuSummary), BpfError> {
        self.tick()?;
        let duration = self.started.elapsed();
        let rows = self.sampler.samples()?;
        let losses = self.sampler.losses()?;
        let unseen_switch_ins = self.sampler.unseen_switch_ins();
        drop(self.sampler);

        let mut profile = Profile::new(ProfileKind::OffCpu);
        profile.period = 1;
        profile.time_ns = self.started_wall_ns;
        profile.duration_ns = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        let mut summary = OffCpuSummary {
            losses,
            unseen_switch_ins,
            ..OffCpuSummary::default()
        };
        let mut assembler = Assembler::new(&mut self.watched.symbols, profile);
        let value = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for row in rows {
            let total = row.blocked_ns.saturating_add(row.runqueue_ns);
            summary.intervals += row.count;
            summary.off_cpu_ns = summary.off_cpu_ns.saturating_add(total);
            let mut labels = vec![
                Label::number("pid", i64::from(row.pid)),
                Label::number("thread", i64::from(row.tid)),
            ];
            labels.extend(self.watched.targets.labels(row.pid, row.goid, row.labels));
            assembler.add(RawStack {
                pid: row.pid,
                user: row.user,
                // Taken at a context switch: in the kernel, the user stack is at a syscall's
                // return point.
                user_leaf_is_return: true,
                kernel: row.kernel,
                roots: Vec::new(),
                values: vec![
                    value(row.count),
                    value(total),
                    value(row.blocked_ns),
                    value(row.runqueue_ns),
                ],
                labels,
            });
        }
        let mut profile = assembler.finish();
        drop_tracing_frames(&mut profile);
        profile.comments.extend(loss_comments(&summary.losses));
        if summary.unseen_switch_ins > 0 {
            profile.comments.push(format!(
                "{} off-CPU intervals ended in a switch the kernel did not report; each was \
                 ended where the thread's run time says it ran again",
                summary.unseen_switch_ins
            ));
        }
        Ok((profile, summary))
    }
}

/// Removes the tracing machinery's frames from the leaf end of every stack.
fn drop_tracing_frames(profile: &mut Profile) {
    let tracing: Vec<bool> = profile
        .locations
        .iter()
        .map(|location| {
            location.lines.first().is_some_and(|line| {
                TRACING_FRAMES
                    .iter()
                    .any(|prefix| line.function.starts_with(prefix))
            })
        })
        .collect();
    for sample in &mut profile.samples {
        let last_tracing = sample
            .locations
            .iter()
            .take(TRACING_DEPTH)
            .rposition(|&l| tracing.get(l).copied().unwrap_or(false));
        if let Some(last) = last_tracing {
            sample.locations.drain(..=last);
        }
    }
}

/// What was lost, said in the profile itself.
fn loss_comments(losses: &OffCpuLosses) -> Vec<String> {
    let mut comments = Vec::new();
    let mut say = |n: u64, what: &str| {
        if n > 0 {
            comments.push(format!("{n} {what}"));
        }
    };
    say(
        losses.rows,
        "off-CPU intervals dropped: the kernel's row map was full",
    );
    say(
        losses.threads,
        "off-CPU intervals not timed: the kernel's thread table was full",
    );
    say(
        losses.user_stacks,
        "intervals have no user stack (unreadable, or the stack map was full)",
    );
    say(
        losses.kernel_stacks,
        "intervals have no kernel stack (unreadable, or the stack map was full)",
    );
    comments
}
