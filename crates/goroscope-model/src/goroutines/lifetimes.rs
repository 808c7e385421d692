//! Per-goroutine state across snapshots: when each goroutine was first and last seen, how long it
//! has been blocked, which group it belonged to; and the lifetimes of goroutines that ended.
//! See [`health`](super::health) for the blocked-time rule.

use super::health_report::LifetimeSummary;
use super::quantiles::LogHistogram;
use super::snapshot::{GoroutineRecord, GoroutineSnapshot};
use super::symbols::FxHashMap;

/// One goroutine across the window.
#[derive(Debug, Clone, Copy)]
struct Track {
    first_seen_ns: u64,
    last_seen_ns: u64,
    first_seen_index: u64,
    last_seen_index: u64,
    group: u32,
    waiting: bool,
    waiting_since_ns: u64,
    waiting_gc_cycles: u32,
    long_blocked: bool,
    tracking_seq: Option<u8>,
}

/// What one sighting of a goroutine tells its group.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sighting {
    /// Its blocked time, when it is waiting and blocked at least the leak threshold.
    pub(super) long_blocked_ns: Option<u64>,
    /// When it started waiting in its group as far as the snapshots saw (the first snapshot's
    /// time for goroutines already waiting then), when it is waiting.
    pub(super) joined_ns: Option<u64>,
    /// The group it had been blocked in for at least the threshold and has now left (woke,
    /// changed group or, as far as GC stamps tell, ran in between).
    pub(super) released_from: Option<u32>,
}

/// The snapshot being observed.
#[derive(Debug, Clone, Copy)]
pub(super) struct SnapshotClock {
    /// Snapshot index.
    pub(super) index: u64,
    /// `taken_at_ns`.
    pub(super) now_ns: u64,
    /// Completed GC cycles.
    pub(super) gc_cycles: u32,
}

/// All goroutines alive in the window, by goid, and the lifetimes of those that ended.
#[derive(Debug, Default)]
pub(super) struct GoroutineTracks {
    tracks: FxHashMap<u64, Track>,
    /// Whether any snapshot had a nonzero `wait_since_ns` (the reader supports it).
    wait_since_seen: bool,
    lifetimes: LogHistogram,
    appeared_ended: u64,
    /// Ended goroutines seen in a single snapshot (observed lifetime 0).
    seen_once: u64,
    long_lived_ended: u64,
}

impl GoroutineTracks {
    /// Starts a snapshot.
    pub(super) fn begin_snapshot(&mut self, snapshot: &GoroutineSnapshot) {
        self.wait_since_seen |= snapshot.goroutines.iter().any(|g| g.wait_since_ns != 0);
    }

    /// Records a sighting of a live goroutine in group `gid`.
    pub(super) fn observe(
        &mut self,
        record: &GoroutineRecord,
        gid: u32,
        clock: SnapshotClock,
        leak_after_ns: u64,
    ) -> Sighting {
        let now = clock.now_ns;
        let cycles = clock.gc_cycles;
        let track = self.tracks.entry(record.goid).or_insert(Track {
            first_seen_ns: now,
            last_seen_ns: now,
            first_seen_index: clock.index,
            last_seen_index: clock.index,
            group: gid,
            waiting: false,
            waiting_since_ns: now,
            waiting_gc_cycles: cycles,
            long_blocked: false,
            tracking_seq: record.tracking_seq,
        });
        let mut sighting = Sighting::default();
        let mut ran_since = false;
        if record.state.is_blocked() {
            let continuing = track.waiting && track.group == gid;
            let cycles_since = cycles.wrapping_sub(track.waiting_gc_cycles);
            let stamp_says_ran = self.wait_since_seen
                && record.wait_since_ns == 0
                && (2..1 << 31).contains(&cycles_since);
            // trackingSeq moves every time the goroutine stops running: proof it ran in between
            // even when it blocked again at the same place (a busy consumer, a ticker loop).
            let seq_says_ran = matches!(
                (track.tracking_seq, record.tracking_seq),
                (Some(before), Some(now)) if before != now
            );
            ran_since = continuing && (stamp_says_ran || seq_says_ran);
            if !continuing || ran_since {
                track.waiting = true;
                track.waiting_since_ns = now;
                track.waiting_gc_cycles = cycles;
            }
            let observed = now.saturating_sub(track.waiting_since_ns);
            let stamped = u64::try_from(record.wait_since_ns)
                .ok()
                .filter(|&since| since != 0 && since <= now)
                .map_or(0, |since| now - since);
            let blocked = observed.max(stamped);
            sighting.joined_ns = Some(track.waiting_since_ns);
            if blocked >= leak_after_ns {
                sighting.long_blocked_ns = Some(blocked);
            }
        } else {
            track.waiting = false;
        }
        if track.long_blocked && (track.group != gid || ran_since) {
            sighting.released_from = Some(track.group);
        }
        track.group = gid;
        track.tracking_seq = record.tracking_seq;
        track.long_blocked = sighting.long_blocked_ns.is_some();
        track.last_seen_ns = now;
        track.last_seen_index = clock.index;
        sighting
    }

    /// Ends snapshot `index`: goroutines not seen in it have ended, unless it was incomplete
    /// (records dropped), in which case that is decided at the next complete one. `released` is
    /// called with the group of every ended goroutine that had been blocked past the threshold.
    pub(super) fn end_snapshot(
        &mut self,
        index: u64,
        complete: bool,
        long_lived_ns: u64,
        mut released: impl FnMut(u32),
    ) {
        if !complete {
            return;
        }
        let lifetimes = &mut self.lifetimes;
        let mut appeared_ended = 0;
        let mut long_lived_ended = 0;
        let mut seen_once = 0;
        self.tracks.retain(|_, track| {
            if track.last_seen_index == index {
                return true;
            }
            if track.long_blocked {
                released(track.group);
            }
            if track.first_seen_index > 0 {
                let lifetime = track.last_seen_ns.saturating_sub(track.first_seen_ns);
                lifetimes.record(lifetime);
                appeared_ended += 1;
                seen_once += u64::from(track.first_seen_index == track.last_seen_index);
                if lifetime >= long_lived_ns {
                    long_lived_ended += 1;
                }
            }
            false
        });
        self.appeared_ended += appeared_ended;
        self.long_lived_ended += long_lived_ended;
        self.seen_once += seen_once;
    }

    /// Lifetimes and the long-lived share; see [`LifetimeSummary`].
    pub(super) fn summary(
        &self,
        long_lived_ns: u64,
        resolution_ns: Option<u64>,
    ) -> LifetimeSummary {
        let mut appeared = self.appeared_ended;
        let mut long_lived = self.long_lived_ended;
        for track in self.tracks.values().filter(|t| t.first_seen_index > 0) {
            appeared += 1;
            if track.last_seen_ns.saturating_sub(track.first_seen_ns) >= long_lived_ns {
                long_lived += 1;
            }
        }
        let h = &self.lifetimes;
        LifetimeSummary {
            count: h.count(),
            p50_ns: h.quantile(0.5),
            p90_ns: h.quantile(0.9),
            p99_ns: h.quantile(0.99),
            max_ns: h.max(),
            resolution_ns,
            seen_once: self.seen_once,
            appeared,
            long_lived,
            long_lived_share: (appeared > 0).then(|| long_lived as f64 / appeared as f64),
            long_lived_threshold_ns: long_lived_ns,
            histogram: h.power_of_two_buckets(),
        }
    }
}
