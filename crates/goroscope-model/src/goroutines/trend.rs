//! A group's recent history for the leak rule: how many of its members that had been blocked
//! past the leak threshold left it (woke, moved or ended) — a running count sampled at each
//! snapshot and kept over a sliding horizon in at most [`MAX_POINTS`] points, so a tracker that
//! runs for months (the agent's) stays the same size — and how many members joined it during the
//! horizon and stayed.

/// Points kept per group; older ones are thinned (every other one dropped) when full.
const MAX_POINTS: usize = 64;

/// The running count of releases at one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Point {
    at_ns: u64,
    released: u64,
}

/// How a group grew over the horizon: members that joined it after the horizon began (or after
/// the first snapshot, whichever is later) and have stayed blocked past the leak threshold since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Growth {
    /// Such members that joined in the first half of the horizon.
    pub(super) early: u64,
    /// Such members that joined in the second half (up to `leak_after` ago: later ones cannot
    /// have stayed that long yet).
    pub(super) late: u64,
    /// The time they were counted over: from the horizon's start to `leak_after` ago.
    pub(super) span_ns: u64,
}

impl Growth {
    /// Members that joined and stayed.
    pub(super) fn net(&self) -> u64 {
        self.early.saturating_add(self.late)
    }

    /// True when members joined and stayed in both halves of the horizon: growth that is still
    /// going on, not a pool that filled up once and stopped.
    pub(super) fn sustained(&self) -> bool {
        self.early > 0 && self.late > 0
    }

    /// Joined-and-stayed members per minute (0 for a span of 0).
    pub(super) fn per_minute(&self) -> f64 {
        if self.span_ns == 0 {
            return 0.0;
        }
        self.net() as f64 * 60e9 / self.span_ns as f64
    }
}

/// Where the growth horizon lies at one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Horizon {
    /// A member joined during the horizon when it started waiting in its group after this.
    pub(super) start_ns: u64,
    /// Members that joined at or before this count as joining in the first half.
    pub(super) middle_ns: u64,
    /// The latest join that can count: `leak_after` before now.
    pub(super) last_join_ns: u64,
    /// The snapshot's time.
    pub(super) now_ns: u64,
}

impl Horizon {
    /// The horizon at `now_ns`: the last `window_ns`, not before `first_ns` (the first snapshot:
    /// members already there then have an unknown joining time), halved up to `leak_after_ns`
    /// ago.
    pub(super) fn at(now_ns: u64, first_ns: u64, window_ns: u64, leak_after_ns: u64) -> Horizon {
        let start_ns = now_ns.saturating_sub(window_ns).max(first_ns);
        let last_join = now_ns.saturating_sub(leak_after_ns).max(start_ns);
        Horizon {
            start_ns,
            middle_ns: start_ns + (last_join - start_ns) / 2,
            last_join_ns: last_join,
            now_ns,
        }
    }

    /// The time joins are counted over.
    pub(super) fn join_span_ns(&self) -> u64 {
        self.last_join_ns - self.start_ns
    }

    /// Counts a member blocked past the threshold that started waiting in its group at
    /// `joined_ns`.
    pub(super) fn count(&self, joined_ns: u64, growth: &mut Growth) {
        if joined_ns <= self.start_ns {
            return;
        }
        if joined_ns <= self.middle_ns {
            growth.early += 1;
        } else {
            growth.late += 1;
        }
    }
}

/// Releases over the horizon, oldest point first.
#[derive(Debug, Clone, Default)]
pub(super) struct Releases {
    points: Vec<Point>,
}

impl Releases {
    /// Forgets everything (the group was absent from a snapshot: its history restarts).
    pub(super) fn clear(&mut self) {
        self.points.clear();
    }

    /// Adds the running count at `at_ns` and drops what fell out of the horizon (which starts at
    /// `start_ns`), keeping the newest point at or before its start as the baseline.
    pub(super) fn push(&mut self, at_ns: u64, released: u64, start_ns: u64) {
        let expired = self
            .points
            .iter()
            .skip(1)
            .take_while(|p| p.at_ns <= start_ns)
            .count();
        self.points.drain(..expired);
        if self.points.len() >= MAX_POINTS {
            // Thin the history: keep the baseline and every other point after it.
            let mut index = 0;
            self.points.retain(|_| {
                index += 1;
                index == 1 || index % 2 == 0
            });
        }
        self.points.push(Point { at_ns, released });
    }

    /// Releases during the horizon (0 without points).
    pub(super) fn during_horizon(&self) -> u64 {
        match (self.points.first(), self.points.last()) {
            (Some(first), Some(last)) => last.released.saturating_sub(first.released),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn joins_are_split_into_halves_of_the_horizon() {
        // 10 s of snapshots, 1 s threshold: joins after 0 and up to 4.5 s are early, up to 9 s late.
        let horizon = Horizon::at(10 * S, 0, 600 * S, S);
        assert_eq!(horizon.start_ns, 0);
        assert_eq!(horizon.middle_ns, 4_500_000_000);
        assert_eq!(horizon.join_span_ns(), 9 * S);
        let mut growth = Growth::default();
        for joined in [0, S, 4 * S, 5 * S, 8 * S] {
            horizon.count(joined, &mut growth);
        }
        assert_eq!(
            (growth.early, growth.late),
            (2, 2),
            "the one there at first is not counted"
        );
        growth.span_ns = horizon.join_span_ns();
        assert!(growth.sustained());
        assert!((growth.per_minute() - 4.0 * 60.0 / 9.0).abs() < 1e-9);
        let filled_once = Growth {
            early: 16,
            late: 0,
            span_ns: 10 * S,
        };
        assert!(!filled_once.sustained());
        // The horizon slides.
        let later = Horizon::at(3600 * S, 0, 600 * S, S);
        assert_eq!(later.start_ns, 3000 * S);
    }

    #[test]
    fn releases_slide_and_stay_bounded() {
        let mut releases = Releases::default();
        for t in 0..1000u64 {
            releases.push(t * S, t / 10, (t * S).saturating_sub(100 * S));
            assert!(releases.points.len() <= MAX_POINTS);
        }
        let released = releases.during_horizon();
        assert!((9..=12).contains(&released), "{released}");
        releases.clear();
        assert_eq!(releases.during_horizon(), 0);
    }
}
