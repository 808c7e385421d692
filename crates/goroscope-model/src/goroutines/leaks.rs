//! Leak suspect scoring and wording.
//!
//! # Score
//!
//! `leak_score = kind × released × duration × evidence`, each factor in `[0, 1]`:
//!
//! - `kind` (what the goroutines wait for): 1.0 for channel, `select`, `sync.*`, `semacquire`
//!   and coroutine waits (a goroutine parked there forever is the classic leak); 0.3 for `sleep`,
//!   for `IO wait` with a single goroutine (a listener's accept, a long-poll) and for runtime
//!   housekeeping waits (GC, finalizer, trace, …); 0.6 for `IO wait` with several goroutines
//!   (idle keep-alive connections pile up like this, but so do legitimate ones); 0.7 for anything
//!   else.
//! - `released = count / (count + released)`, where `released` counts members of the group that
//!   had been blocked at least `leak_after_ns` and then woke or exited during the window: evidence
//!   that this wait does end (a slow timeout, a busy worker pool), not a leak.
//! - `duration = 1 − 2^(−min_blocked / leak_after)`: 0.5 at the threshold, 0.75 at twice it,
//!   saturating towards 1.
//! - `evidence = 0.2 + 0.8 × (1 − (1 − 0.8 × size) × (1 − growth))`, a noisy-or of
//!   `size = 1 − 2^(−count / 4)` (one goroutine 0.16, four 0.5, dozens ≈ 1) and
//!   `growth = 1 − 2^(−max(growth, 0) / 2)` (one more goroutine 0.29, ten more 0.97).
//!
//! The score is monotone (non-decreasing) in growth, blocked duration and count. A single
//! goroutine stuck on a channel for long scores about 0.3; dozens stuck with a growing count score
//! close to 1.

/// The wait reasons that count as strong evidence, as prefixes of the runtime's names.
const STRONG_PREFIXES: [&str; 5] = ["chan ", "select", "sync.", "semacquire", "coroutine"];

/// Runtime housekeeping waits, as prefixes.
const HOUSEKEEPING_PREFIXES: [&str; 13] = [
    "GC ",
    "garbage collection",
    "finalizer wait",
    "force gc",
    "trace ",
    "wait for GC cycle",
    "preempted",
    "debug call",
    "cleanup wait",
    "timer goroutine",
    "stopping the world",
    "flushing proc caches",
    "panicwait",
];

/// The `kind` factor for `count` goroutines waiting with `wait_reason`.
pub(crate) fn kind_weight(wait_reason: &str, count: u64) -> f64 {
    if STRONG_PREFIXES.iter().any(|p| wait_reason.starts_with(p)) {
        1.0
    } else if wait_reason == "IO wait" {
        if count <= 1 {
            0.3
        } else {
            0.6
        }
    } else if wait_reason == "sleep"
        || HOUSEKEEPING_PREFIXES
            .iter()
            .any(|p| wait_reason.starts_with(p))
    {
        0.3
    } else {
        0.7
    }
}

/// What the score is computed from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScoreInputs<'a> {
    /// Members blocked at least `leak_after_ns`.
    pub count: u64,
    /// Members that had been blocked that long and then woke or exited.
    pub released: u64,
    /// Group size change over the window.
    pub growth: i64,
    /// Shortest blocked time among the counted members.
    pub min_blocked_ns: u64,
    /// The leak threshold.
    pub leak_after_ns: u64,
    /// Wait reason name.
    pub wait_reason: &'a str,
}

/// The leak score in `[0, 1]`; see the module docs.
pub(crate) fn leak_score(inputs: &ScoreInputs<'_>) -> f64 {
    let kind = kind_weight(inputs.wait_reason, inputs.count);
    let count = inputs.count as f64;
    let released = if inputs.count == 0 {
        0.0
    } else {
        count / (count + inputs.released as f64)
    };
    let threshold = inputs.leak_after_ns.max(1) as f64;
    let duration = 1.0 - (-(inputs.min_blocked_ns as f64) / threshold).exp2();
    let size = 1.0 - (-count / 4.0).exp2();
    let growth = 1.0 - (-(inputs.growth.max(0) as f64) / 2.0).exp2();
    let evidence = 0.2 + 0.8 * (1.0 - (1.0 - 0.8 * size) * (1.0 - growth));
    let score = kind * released * duration * evidence;
    if score.is_finite() {
        score.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Formats a duration for humans: `850ms`, `2.1s`, `3m05s`.
pub(crate) fn format_duration(ns: u64) -> String {
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    if ns < S {
        format!("{}ms", ns / MS)
    } else if ns < 60 * S {
        format!("{:.1}s", ns as f64 / S as f64)
    } else {
        let seconds = ns / S;
        format!("{}m{:02}s", seconds / 60, seconds % 60)
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

/// What the reason line says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReasonInputs<'a> {
    pub count: u64,
    pub wait_reason: &'a str,
    pub min_blocked_ns: u64,
    pub growth: i64,
    pub window_ns: u64,
    pub stable_ns: u64,
    pub created_at: &'a str,
    pub blocked_at: &'a str,
}

/// One line, e.g. `37 goroutines blocked on chan send for ≥ 2.1s, count stable over 2.0s;
/// created at main.go:52, blocked at main.go:60`.
pub(crate) fn reason_line(r: &ReasonInputs<'_>) -> String {
    let noun = if r.count == 1 {
        "goroutine"
    } else {
        "goroutines"
    };
    let trend = if r.growth > 0 {
        format!(
            "count grew by {} over {}",
            r.growth,
            format_duration(r.window_ns)
        )
    } else {
        format!("count stable over {}", format_duration(r.stable_ns))
    };
    format!(
        "{} {noun} blocked on {} for ≥ {}, {trend}; created at {}, blocked at {}",
        r.count,
        r.wait_reason,
        format_duration(r.min_blocked_ns),
        r.created_at,
        r.blocked_at
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(count: u64, growth: i64, blocked_s: f64, reason: &str) -> ScoreInputs<'_> {
        ScoreInputs {
            count,
            released: 0,
            growth,
            min_blocked_ns: (blocked_s * 1e9) as u64,
            leak_after_ns: 1_000_000_000,
            wait_reason: reason,
        }
    }

    #[test]
    fn score_is_bounded_and_monotone() {
        let mut previous = 0.0;
        for growth in [-5, 0, 1, 2, 5, 20, 1000] {
            let s = leak_score(&inputs(10, growth, 2.0, "chan send"));
            assert!((0.0..=1.0).contains(&s));
            assert!(s >= previous, "growth {growth}");
            previous = s;
        }
        previous = 0.0;
        for blocked in [1.0, 1.5, 3.0, 60.0, 1e6] {
            let s = leak_score(&inputs(3, 0, blocked, "select"));
            assert!((0.0..=1.0).contains(&s));
            assert!(s >= previous, "blocked {blocked}");
            previous = s;
        }
        previous = 0.0;
        for count in [1, 2, 10, 100, u64::MAX] {
            let s = leak_score(&inputs(count, 0, 2.0, "chan receive"));
            assert!((0.0..=1.0).contains(&s));
            assert!(s >= previous, "count {count}");
            previous = s;
        }
        let extreme = ScoreInputs {
            count: u64::MAX,
            released: 0,
            growth: i64::MAX,
            min_blocked_ns: u64::MAX,
            leak_after_ns: 0,
            wait_reason: "chan send",
        };
        assert!((0.0..=1.0).contains(&leak_score(&extreme)));
    }

    #[test]
    fn weak_reasons_and_releases_score_lower() {
        let strong = leak_score(&inputs(1, 0, 5.0, "chan receive"));
        assert!(leak_score(&inputs(1, 0, 5.0, "IO wait")) < strong);
        assert!(leak_score(&inputs(1, 0, 5.0, "sleep")) < strong);
        assert!(
            leak_score(&inputs(5, 0, 5.0, "IO wait")) > leak_score(&inputs(1, 0, 5.0, "IO wait"))
        );
        let mut released = inputs(4, 0, 5.0, "chan receive");
        let before = leak_score(&released);
        released.released = 12;
        assert!(leak_score(&released) < before / 3.0);
        assert!(leak_score(&inputs(40, 40, 5.0, "chan send")) > 0.9);
        assert!(leak_score(&inputs(1, 0, 1.0, "chan send")) < 0.3);
    }

    #[test]
    fn wording() {
        assert_eq!(format_duration(850_000_000), "850ms");
        assert_eq!(format_duration(2_100_000_000), "2.1s");
        assert_eq!(format_duration(185_000_000_000), "3m05s");
        assert_eq!(short_location("/src/app/main.go", 52), "main.go:52");
        assert_eq!(short_location("", 0), "?");
        let line = reason_line(&ReasonInputs {
            count: 37,
            wait_reason: "chan send",
            min_blocked_ns: 2_100_000_000,
            growth: 0,
            window_ns: 3_000_000_000,
            stable_ns: 2_000_000_000,
            created_at: "main.go:52",
            blocked_at: "main.go:60",
        });
        assert_eq!(
            line,
            "37 goroutines blocked on chan send for ≥ 2.1s, count stable over 2.0s; \
             created at main.go:52, blocked at main.go:60"
        );
    }
}
