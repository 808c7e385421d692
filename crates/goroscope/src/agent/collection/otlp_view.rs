//! The collection as an OTLP export sees it: one series per process (the process becomes the
//! series' resource), latency histograms with the kernel's buckets, the last values of
//! processes that ended since the previous export, and, per owner, what processes that
//! started and ended between two collections counted.

use std::collections::HashSet;

use goroscope_export::Exposition;

use super::Collection;
use crate::agent::ledger::individual_processes;
use crate::agent::series::LabelPlan;

impl Collection {
    /// The latest collection as an OTLP export sends it: every source's series per process
    /// (with `pid`, `cgroup` and `container_id` labels, which become the process's resource),
    /// latency histograms keeping the kernel's buckets, and the agent's own families. Returns
    /// (sources, agent, series left out by `limits.max_series_per_family`).
    pub fn otlp_exposition(&self) -> (Exposition, Exposition, u64) {
        let plan = LabelPlan::every_label();
        let layout = self.layout.clone().keeping_kernel_buckets();
        let (mut sources, _) = self.sources_exposition(&plan, &layout);
        let capped = sources
            .cap_series(self.config.limits.max_series_per_family)
            .iter()
            .map(|(_, dropped)| *dropped as u64)
            .sum();
        let mut agent = Exposition::new();
        self.self_families(&mut agent);
        (sources, agent, capped)
    }

    /// Whether the last values of processes that end wait for [`Collection::clear_departed`]
    /// (an OTLP export sends them under the process) instead of not being kept at all.
    pub fn keep_departed(&mut self, keep: bool) {
        if let Some(s) = self.syscalls.get_mut() {
            s.set_keep_departed(keep);
        }
        if let Some(s) = self.sched.get_mut() {
            s.set_keep_departed(keep);
        }
        if let Some(s) = self.tcp.get_mut() {
            s.set_keep_departed(keep);
        }
    }

    /// Last values of ended processes not kept for an export (more waited than a ledger holds).
    pub fn departed_lost(&self) -> u64 {
        self.syscalls.get().map_or(0, |s| s.departed_lost())
            + self.sched.get().map_or(0, |s| s.departed_lost())
            + self.tcp.get().map_or(0, |s| s.departed_lost())
    }

    /// After every collection while metrics are exported: the processes this collection saw
    /// running get a resource of their own, keep it while they have rows and have their last
    /// values exported under it when they end; the rest fold into per-owner series (see the
    /// ledger). A process found gone in this collection still has live rows (its final read is
    /// the next one's) but was never seen running, so it folds.
    pub fn mark_exported(&mut self) {
        let mut live: HashSet<u32> = HashSet::new();
        if let Some(s) = self.syscalls.get() {
            live.extend(s.live_pids());
        }
        if let Some(s) = self.sched.get() {
            live.extend(s.live_pids());
        }
        if let Some(s) = self.tcp.get() {
            live.extend(s.live_pids());
        }
        let owners = &self.owners;
        let live = live.into_iter().map(|pid| (pid, !owners.gone_before(pid)));
        self.individual = individual_processes(live, &self.individual);
        if let Some(s) = self.syscalls.get_mut() {
            s.mark_exported(&self.individual);
        }
        if let Some(s) = self.sched.get_mut() {
            s.mark_exported(&self.individual);
        }
        if let Some(s) = self.tcp.get_mut() {
            s.mark_exported(&self.individual);
        }
    }

    /// Forgets the last values of processes that ended (they were exported).
    pub fn clear_departed(&mut self) {
        if let Some(s) = self.syscalls.get_mut() {
            s.clear_departed();
        }
        if let Some(s) = self.sched.get_mut() {
            s.clear_departed();
        }
        if let Some(s) = self.tcp.get_mut() {
            s.clear_departed();
        }
    }
}
