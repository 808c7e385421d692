//! The leak rule, its score and its wording.
//!
//! # What is a leak
//!
//! A leak is goroutines that accumulate. A long wait alone is not one: healthy services park
//! idle worker pools on a job channel, ticker and `select` loops, accept loops, idle keep-alive
//! connections in `IO wait`, timers, condition-variable pools and `WaitGroup` waiters for hours.
//! A group (same creation site, start function, blocking frame and wait reason; the runtime's own
//! goroutines are never in one) is a leak suspect when its members have been blocked at least
//! `leak_after` and either:
//!
//! - **stuck**: they wait on an operation healthy code does not wait on for long — a channel send
//!   nobody receives (`chan send`), any operation on a nil channel, `select {}` (outside the main
//!   goroutine, where it is the idiom for "run forever"), a `sync.Mutex` or `RWMutex` lock held
//!   far past any critical section (named `semacquire` before Go 1.20; told apart from
//!   `WaitGroup.Wait` by the lock call on the stack) — or the runtime's GC proved them leaked
//!   (Go 1.26's `leaked` state); or
//! - **growing**: at least [`MIN_GROWTH`] members joined the group during the growth horizon (the
//!   last `growth_window`, not before the first snapshot) and have stayed blocked past
//!   `leak_after` since — some that joined in the first half of the horizon *and* some in the
//!   second (a pool that filled up once and stopped does not keep growing) — while fewer than a
//!   quarter as many long-blocked members left it. Counting members that joined and stayed, rather
//!   than the group's size, keeps load ramps (many short waits) and groups that were already
//!   there when observation began (their members only look new) out of it.
//!
//! For either, members that left after a long wait count against the group: when at least a
//! quarter as many long-blocked members left during the horizon as are blocked now, the wait
//! evidently ends (a slow consumer, a contended lock) and the group is not a suspect.
//!
//! # Score
//!
//! `leak_score = 1 − (1 − stuck) × (1 − growth)`, a noisy-or of the two kinds of evidence, each
//! in `[0, 1]`:
//! - `stuck = kind × duration × size` for stuck groups (0 otherwise), with `kind` 1.0 for a nil
//!   channel, `select {}` or a GC-proven leak, 0.9 for a channel send and 0.8 for a lock;
//!   `duration = 1 − 2^(−min_blocked / leak_after)` (0.5 at the threshold, towards 1 after) and
//!   `size = 0.7 + 0.3 × (1 − 2^(−count / 4))`;
//! - `growth = (1 − 2^(−joined / 4)) × (1 − released / joined)` for growing groups (0
//!   otherwise), `joined` being the members that joined and stayed.
//!
//! The score is monotone in growth, blocked duration and count.

/// Least net growth (members blocked past the threshold) that counts as a group growing.
pub(crate) const MIN_GROWTH: u64 = 3;

use super::trend::Growth;

/// What a group waits on, as far as the leak rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitKind {
    /// Proven leaked by the runtime's GC (Go 1.26's `leaked` state).
    ProvenLeaked,
    /// An operation on a nil channel: it can never complete.
    NilChannel,
    /// `select {}` outside the main goroutine: it can never complete.
    EmptySelect,
    /// A channel send nobody receives.
    ChanSend,
    /// A `sync.Mutex` or `RWMutex` lock.
    Lock,
    /// Anything healthy code may wait on for as long as it likes.
    LongWait,
}

impl WaitKind {
    /// The kind of a wait named `wait_reason`; `lock_wait` says the stack holds a lock call,
    /// `main` that the goroutines are the main goroutine, `leaked` that the GC proved them so.
    pub(crate) fn of(wait_reason: &str, lock_wait: bool, main: bool, leaked: bool) -> WaitKind {
        if leaked {
            return WaitKind::ProvenLeaked;
        }
        match wait_reason {
            "chan send (nil chan)" | "chan receive (nil chan)" => WaitKind::NilChannel,
            "select (no cases)" if !main => WaitKind::EmptySelect,
            "chan send" => WaitKind::ChanSend,
            "sync.Mutex.Lock" | "sync.RWMutex.RLock" | "sync.RWMutex.Lock" => WaitKind::Lock,
            "semacquire" if lock_wait => WaitKind::Lock,
            _ => WaitKind::LongWait,
        }
    }

    /// The weight of being stuck on this kind of wait; 0 for long waits.
    fn weight(self) -> f64 {
        match self {
            WaitKind::ProvenLeaked | WaitKind::NilChannel | WaitKind::EmptySelect => 1.0,
            WaitKind::ChanSend => 0.9,
            WaitKind::Lock => 0.8,
            WaitKind::LongWait => 0.0,
        }
    }

    /// How the reason line names what they are stuck on.
    fn phrase(self, wait_reason: &str) -> String {
        match self {
            WaitKind::ProvenLeaked => format!("{wait_reason} (proven leaked by the GC)"),
            WaitKind::NilChannel => format!("{wait_reason}: a nil channel never becomes ready"),
            WaitKind::EmptySelect => "select {} (no cases: it never returns)".to_owned(),
            WaitKind::ChanSend => "chan send with no receiver".to_owned(),
            WaitKind::Lock => format!("{wait_reason} (a mutex held that long)"),
            WaitKind::LongWait => wait_reason.to_owned(),
        }
    }
}

/// Everything the rule looks at for one group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Evidence<'a> {
    /// Wait reason name.
    pub wait_reason: &'a str,
    /// What kind of wait it is.
    pub kind: WaitKind,
    /// Members blocked at least `leak_after_ns` now.
    pub count: u64,
    /// Shortest blocked time among them.
    pub min_blocked_ns: u64,
    /// Long-blocked members that left during the horizon.
    pub released: u64,
    /// Members that joined during the horizon and stayed.
    pub growth: Growth,
    /// The leak threshold.
    pub leak_after_ns: u64,
}

/// What the rule concluded about a suspect group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// Stuck on an operation that does not end.
    pub stuck: bool,
    /// Growing while its members stay.
    pub growing: bool,
    /// Members that joined during the horizon and stayed.
    pub growth: u64,
    /// That growth per minute.
    pub growth_per_minute: f64,
    /// In `[0, 1]`.
    pub score: f64,
}

/// Applies the rule (see the module docs): `None` when the group is not a suspect.
pub(crate) fn judge(e: &Evidence<'_>) -> Option<Verdict> {
    if e.count == 0 {
        return None;
    }
    let stays = |base: u64| e.released.saturating_mul(4) < base.max(1);
    let stuck = e.kind != WaitKind::LongWait && stays(e.count);
    let net = e.growth.net();
    let growing = e.growth.sustained() && net >= MIN_GROWTH && stays(net);
    if !stuck && !growing {
        return None;
    }
    let stuck_evidence = if stuck {
        let threshold = e.leak_after_ns.max(1) as f64;
        let duration = 1.0 - (-(e.min_blocked_ns as f64) / threshold).exp2();
        let size = 0.7 + 0.3 * (1.0 - (-(e.count as f64) / 4.0).exp2());
        e.kind.weight() * duration * size
    } else {
        0.0
    };
    let growth_evidence = if growing {
        let net = net as f64;
        (1.0 - (-net / 4.0).exp2()) * (1.0 - e.released as f64 / net).max(0.0)
    } else {
        0.0
    };
    let score = 1.0 - (1.0 - stuck_evidence) * (1.0 - growth_evidence);
    Some(Verdict {
        stuck,
        growing,
        growth: net,
        growth_per_minute: e.growth.per_minute(),
        score: if score.is_finite() {
            score.clamp(0.0, 1.0)
        } else {
            0.0
        },
    })
}

/// Formats a duration for humans: `850ms`, `2.1s`, `3m05s`, `2h05m`.
pub(crate) fn format_duration(ns: u64) -> String {
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    if ns < S {
        format!("{}ms", ns / MS)
    } else if ns < 60 * S {
        format!("{:.1}s", ns as f64 / S as f64)
    } else if ns < 3600 * S {
        let seconds = ns / S;
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        let minutes = ns / (60 * S);
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    }
}

/// `file:line` with the file's directories stripped, or `?` when unknown.
pub(crate) fn short_location(file: &str, line: u32) -> String {
    if file.is_empty() {
        return "?".to_owned();
    }
    let base = file.rsplit('/').next().unwrap_or(file);
    format!("{base}:{line}")
}

/// One line showing the evidence, e.g. `37 goroutines stuck on chan send with no receiver for ≥
/// 2.1s, none left; created at main.go:52, blocked at main.go:60`, or `36 joined over 5.0s and
/// stayed ≥ 1.0s (+432/min), none left; 40 goroutines blocked on chan receive for ≥ 1.0s;
/// created at …`.
pub(crate) fn reason_line(
    e: &Evidence<'_>,
    verdict: &Verdict,
    created_at: &str,
    blocked_at: &str,
) -> String {
    let noun = if e.count == 1 {
        "goroutine"
    } else {
        "goroutines"
    };
    let released = match e.released {
        0 => "none left".to_owned(),
        n => format!("{n} left"),
    };
    let mut parts = Vec::new();
    if verdict.growing {
        parts.push(format!(
            "{} joined over {} and stayed ≥ {} ({:+.0}/min), {released}",
            e.growth.net(),
            format_duration(e.growth.span_ns),
            format_duration(e.leak_after_ns),
            verdict.growth_per_minute
        ));
    }
    let wait = if verdict.stuck {
        format!(
            "{} {noun} stuck on {} for ≥ {}",
            e.count,
            e.kind.phrase(e.wait_reason),
            format_duration(e.min_blocked_ns)
        )
    } else {
        format!(
            "{} {noun} blocked on {} for ≥ {}",
            e.count,
            e.wait_reason,
            format_duration(e.min_blocked_ns)
        )
    };
    if verdict.growing {
        parts.push(wait);
    } else {
        parts.push(format!("{wait}, {released}"));
    }
    format!(
        "{}; created at {created_at}, blocked at {blocked_at}",
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::trend::Growth;
    use super::*;

    const S: u64 = 1_000_000_000;

    fn evidence(kind: WaitKind, count: u64, blocked_s: f64) -> Evidence<'static> {
        Evidence {
            wait_reason: "chan send",
            kind,
            count,
            min_blocked_ns: (blocked_s * 1e9) as u64,
            released: 0,
            growth: Growth::default(),
            leak_after_ns: S,
        }
    }

    fn growing(early: u64, late: u64) -> Growth {
        Growth {
            early,
            late,
            span_ns: 10 * S,
        }
    }

    #[test]
    fn kinds_from_wait_reasons_and_stacks() {
        assert_eq!(
            WaitKind::of("chan send", false, false, false),
            WaitKind::ChanSend
        );
        assert_eq!(
            WaitKind::of("chan receive (nil chan)", false, false, false),
            WaitKind::NilChannel
        );
        assert_eq!(
            WaitKind::of("select (no cases)", false, false, false),
            WaitKind::EmptySelect
        );
        assert_eq!(
            WaitKind::of("select (no cases)", false, true, false),
            WaitKind::LongWait,
            "select {{}} in main is the idiom for running forever"
        );
        assert_eq!(
            WaitKind::of("semacquire", true, false, false),
            WaitKind::Lock
        );
        assert_eq!(
            WaitKind::of("semacquire", false, false, false),
            WaitKind::LongWait,
            "WaitGroup.Wait before Go 1.25"
        );
        for healthy in [
            "chan receive",
            "select",
            "IO wait",
            "sleep",
            "sync.Cond.Wait",
            "sync.WaitGroup.Wait",
        ] {
            assert_eq!(
                WaitKind::of(healthy, false, false, false),
                WaitKind::LongWait
            );
        }
        assert_eq!(
            WaitKind::of("chan receive", false, false, true),
            WaitKind::ProvenLeaked
        );
    }

    #[test]
    fn long_waits_alone_are_never_suspects() {
        let mut pool = evidence(WaitKind::LongWait, 16, 3600.0);
        assert_eq!(judge(&pool), None, "an idle pool, however long it waits");
        pool.growth = growing(0, 0);
        assert_eq!(judge(&pool), None, "a steady pool");
        pool.growth = growing(16, 0);
        assert_eq!(judge(&pool), None, "a pool that filled up once");
        pool.growth = growing(1, 1);
        assert_eq!(judge(&pool), None, "two new members are not a trend");
        pool.growth = growing(16, 20);
        let verdict = judge(&pool).expect("keeps growing");
        assert!(verdict.growing && !verdict.stuck);
        assert_eq!(verdict.growth, 36);
        pool.released = 9;
        assert_eq!(judge(&pool), None, "members finish: a busy pool");
    }

    #[test]
    fn stuck_waits_are_suspects_unless_they_end() {
        let mut send = evidence(WaitKind::ChanSend, 37, 2.0);
        let verdict = judge(&send).expect("stuck");
        assert!(verdict.stuck && !verdict.growing);
        send.released = 10;
        assert_eq!(judge(&send), None, "a slow consumer: the sends do complete");
    }

    #[test]
    fn score_is_bounded_and_monotone() {
        let mut previous = 0.0;
        for late in [2, 3, 10, 100, 10_000] {
            let mut e = evidence(WaitKind::LongWait, late + 2, 2.0);
            e.growth = growing(2, late);
            let s = judge(&e).map_or(0.0, |v| v.score);
            assert!((0.0..=1.0).contains(&s));
            assert!(s >= previous, "growth {late}");
            previous = s;
        }
        previous = 0.0;
        for blocked in [1.0, 1.5, 3.0, 60.0, 1e6] {
            let s = judge(&evidence(WaitKind::ChanSend, 3, blocked)).map_or(0.0, |v| v.score);
            assert!((0.0..=1.0).contains(&s));
            assert!(s >= previous, "blocked {blocked}");
            previous = s;
        }
        previous = 0.0;
        for count in [1, 2, 10, 100, u64::MAX] {
            let s = judge(&evidence(WaitKind::Lock, count, 2.0)).map_or(0.0, |v| v.score);
            assert!((0.0..=1.0).contains(&s));
            assert!(s >= previous, "count {count}");
            previous = s;
        }
        let mut extreme = evidence(WaitKind::NilChannel, u64::MAX, 1e12);
        extreme.leak_after_ns = 0;
        extreme.growth = Growth {
            early: u64::MAX / 2,
            late: u64::MAX,
            span_ns: 1,
        };
        let s = judge(&extreme).map_or(-1.0, |v| v.score);
        assert!((0.0..=1.0).contains(&s), "{s}");
        let stuck_and_growing = {
            let mut e = evidence(WaitKind::ChanSend, 40, 5.0);
            e.growth = growing(16, 20);
            judge(&e).map_or(0.0, |v| v.score)
        };
        assert!(stuck_and_growing > 0.95, "{stuck_and_growing}");
    }

    #[test]
    fn wording() {
        assert_eq!(format_duration(850_000_000), "850ms");
        assert_eq!(format_duration(2_100_000_000), "2.1s");
        assert_eq!(format_duration(185_000_000_000), "3m05s");
        assert_eq!(format_duration(7_500 * S), "2h05m");
        assert_eq!(short_location("/src/app/main.go", 52), "main.go:52");
        assert_eq!(short_location("", 0), "?");
        let e = evidence(WaitKind::ChanSend, 37, 2.1);
        let verdict = judge(&e).unwrap();
        assert_eq!(
            reason_line(&e, &verdict, "main.go:52", "main.go:60"),
            "37 goroutines stuck on chan send with no receiver for ≥ 2.1s, none left; \
             created at main.go:52, blocked at main.go:60"
        );
        let mut e = evidence(WaitKind::LongWait, 40, 1.0);
        e.wait_reason = "chan receive";
        e.growth = growing(16, 20);
        let verdict = judge(&e).unwrap();
        assert_eq!(
            reason_line(&e, &verdict, "main.go:52", "main.go:60"),
            "36 joined over 10.0s and stayed ≥ 1.0s (+216/min), none left; 40 goroutines \
             blocked on chan receive for ≥ 1.0s; created at main.go:52, blocked at main.go:60"
        );
    }
}
