//! Tests of the health model with a fake symbolizer.

use super::*;
use std::cell::Cell;
use std::collections::HashMap;

pub(super) const MS: u64 = 1_000_000;
pub(super) const S: u64 = 1_000_000_000;

pub(super) const CHAN_RECV: u8 = 1;
pub(super) const CHAN_SEND: u8 = 2;
pub(super) const SELECT: u8 = 3;
pub(super) const MUTEX: u8 = 6;

/// Frames by the pc passed to `frames_at` (return address - 1), functions by start pc.
#[derive(Default)]
pub(super) struct FakeSymbolizer {
    frames: HashMap<u64, Vec<CodeLocation>>,
    functions: HashMap<u64, String>,
    pub(super) calls: Cell<u64>,
}

pub(super) fn loc(function: &str, file: &str, line: u32) -> CodeLocation {
    CodeLocation {
        function: function.to_owned(),
        file: file.to_owned(),
        line,
    }
}

impl FakeSymbolizer {
    /// Frames for return address `ret`.
    fn ret(&mut self, ret: u64, frames: &[(&str, &str, u32)]) {
        let frames = frames.iter().map(|&(f, file, l)| loc(f, file, l)).collect();
        self.frames.insert(ret - 1, frames);
    }

    fn func(&mut self, pc: u64, name: &str) {
        self.functions.insert(pc, name.to_owned());
    }
}

impl Symbolizer for FakeSymbolizer {
    fn frames_at(&self, pc: u64) -> Vec<CodeLocation> {
        self.calls.set(self.calls.get() + 1);
        self.frames.get(&pc).cloned().unwrap_or_default()
    }

    fn function_at(&self, pc: u64) -> Option<String> {
        self.calls.set(self.calls.get() + 1);
        self.functions.get(&pc).cloned()
    }
}

// Creation pcs, start pcs and stacks of the fake program.
pub(super) const GO_MAIN_52: u64 = 0x1000;
pub(super) const GO_MAIN_52_AGAIN: u64 = 0x1010; // another pc on the same line
pub(super) const GO_SPAWN_80: u64 = 0x1020;
pub(super) const START_PRODUCER: u64 = 0x2000;
pub(super) const START_WORKER: u64 = 0x2100;
pub(super) const START_BGSWEEP: u64 = 0x2200;
pub(super) const S_SEND: u32 = 0;
pub(super) const S_SEND2: u32 = 1;
pub(super) const S_MUTEX: u32 = 2;
pub(super) const S_HTTP: u32 = 3;
pub(super) const S_NET: u32 = 4;
pub(super) const S_RT: u32 = 5;
pub(super) const S_UNKNOWN: u32 = 6;

fn stacks() -> Vec<Vec<u64>> {
    vec![
        vec![0x3000, 0x3010, 0x3020, 0x3030],
        vec![0x3000, 0x3010, 0x3090, 0x3030],
        vec![0x3000, 0x3040, 0x3030],
        vec![0x3000, 0x3050],
        vec![0x3000, 0x3060, 0x3070, 0x3030],
        vec![0x3000, 0x3080],
        vec![0x9999],
    ]
}

pub(super) fn symbolizer() -> FakeSymbolizer {
    let mut s = FakeSymbolizer::default();
    s.ret(GO_MAIN_52, &[("main.main", "/app/main.go", 52)]);
    s.ret(GO_MAIN_52_AGAIN, &[("main.main", "/app/main.go", 52)]);
    s.ret(GO_SPAWN_80, &[("main.spawn", "/app/main.go", 80)]);
    s.func(START_PRODUCER, "main.producer");
    s.func(START_WORKER, "main.worker");
    s.func(START_BGSWEEP, "runtime.bgsweep");
    s.ret(0x3000, &[("runtime.gopark", "proc.go", 400)]);
    s.ret(0x3010, &[("runtime.chansend1", "chan.go", 140)]);
    s.ret(0x3020, &[("main.producer", "/app/main.go", 60)]);
    s.ret(0x3090, &[("main.producer", "/app/main.go", 60)]);
    s.ret(0x3030, &[("runtime.goexit", "asm.s", 1700)]);
    s.ret(
        0x3040,
        &[
            ("sync.(*Mutex).Lock", "mutex.go", 90),
            ("main.worker", "/app/main.go", 70),
        ],
    );
    s.ret(
        0x3050,
        &[
            ("main.helper", "/app/helper.go", 5),
            ("net/http.(*conn).serve", "server.go", 100),
        ],
    );
    s.ret(
        0x3060,
        &[("internal/poll.(*pollDesc).wait", "fd_poll.go", 84)],
    );
    s.ret(0x3070, &[("net.(*conn).Read", "net.go", 179)]);
    s.ret(0x3080, &[("runtime.bgsweep", "mgcsweep.go", 280)]);
    s
}

pub(super) fn waiting(
    goid: u64,
    reason: u8,
    creation_pc: u64,
    start_pc: u64,
    stack: u32,
) -> GoroutineRecord {
    GoroutineRecord {
        goid,
        state: GoroutineState::Waiting,
        wait_reason: reason,
        wait_since_ns: 0,
        creation_pc,
        start_pc,
        stack: Some(stack),
        tracking_seq: None,
    }
}

pub(super) fn other(
    goid: u64,
    state: GoroutineState,
    creation_pc: u64,
    start_pc: u64,
) -> GoroutineRecord {
    GoroutineRecord {
        goid,
        state,
        wait_reason: 0,
        wait_since_ns: 0,
        creation_pc,
        start_pc,
        stack: None,
        tracking_seq: None,
    }
}

pub(super) fn snap(t_ns: u64, goroutines: Vec<GoroutineRecord>) -> GoroutineSnapshot {
    GoroutineSnapshot {
        taken_at_ns: t_ns,
        read_duration_ns: MS,
        goroutines,
        stacks: stacks(),
        wait_reasons: [
            "",
            "chan receive",
            "chan send",
            "select",
            "sleep",
            "IO wait",
            "sync.Mutex.Lock",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..GoroutineSnapshot::default()
    }
}

pub(super) fn run(snapshots: &[GoroutineSnapshot], sym: &FakeSymbolizer) -> HealthReport {
    let mut tracker = HealthTracker::new(HealthSettings::default());
    for s in snapshots {
        tracker.observe(s, sym);
    }
    assert_eq!(tracker.snapshots_seen(), snapshots.len() as u64);
    tracker.report(sym)
}

pub(super) fn find<'a>(report: &'a HealthReport, function: &str, wait: &str) -> &'a GoroutineGroup {
    report
        .groups
        .iter()
        .find(|g| g.blocked_at.function == function && g.wait_reason == wait)
        .unwrap_or_else(|| panic!("no group {function} {wait}: {:#?}", report.groups))
}

#[test]
fn grouping_merges_by_symbolized_key_and_picks_blocking_frames() {
    let sym = symbolizer();
    let mut gs: Vec<GoroutineRecord> = (1..=3)
        .map(|g| waiting(g, CHAN_SEND, GO_MAIN_52, START_PRODUCER, S_SEND))
        .collect();
    // Different creation pc and stack pcs, same symbolized key: merged.
    gs.push(waiting(
        4,
        CHAN_SEND,
        GO_MAIN_52_AGAIN,
        START_PRODUCER,
        S_SEND2,
    ));
    gs.push(waiting(
        5,
        CHAN_SEND,
        GO_MAIN_52_AGAIN,
        START_PRODUCER,
        S_SEND2,
    ));
    gs.push(waiting(6, MUTEX, GO_SPAWN_80, START_WORKER, S_MUTEX));
    gs.push(waiting(7, SELECT, GO_SPAWN_80, START_WORKER, S_HTTP));
    gs.push(waiting(8, 5, GO_SPAWN_80, START_WORKER, S_NET));
    gs.push(waiting(9, CHAN_RECV, 0, START_BGSWEEP, S_RT));
    gs.push(waiting(10, CHAN_RECV, GO_SPAWN_80, 0x7777, S_UNKNOWN));
    gs.push(other(
        11,
        GoroutineState::Running,
        GO_SPAWN_80,
        START_WORKER,
    ));
    gs.push(other(
        12,
        GoroutineState::Runnable,
        GO_SPAWN_80,
        START_WORKER,
    ));
    gs.push(other(13, GoroutineState::Dead, GO_SPAWN_80, START_WORKER));
    let r = run(&[snap(0, gs)], &sym);

    assert_eq!(r.goroutines_total, 12);
    assert_eq!(r.groups.len(), 7);
    let send = find(&r, "main.producer", "chan send");
    assert_eq!(send.count, 5);
    assert_eq!(send.creation, loc("main.main", "/app/main.go", 52));
    assert_eq!(send.start_function, "main.producer");
    assert_eq!(send.blocked_at, loc("main.producer", "/app/main.go", 60));
    assert_eq!(send.by_state, vec![("waiting".to_string(), 5)]);
    assert_eq!(r.groups[0].count, 5, "largest first");
    // Inlined sync frame skipped for the user frame it is inlined into.
    assert_eq!(find(&r, "main.worker", "sync.Mutex.Lock").count, 1);
    // Inlined user frame inside a library function.
    assert_eq!(
        find(&r, "main.helper", "select").blocked_at.file,
        "/app/helper.go"
    );
    // No user frame: first frame outside runtime and internal/.
    assert_eq!(find(&r, "net.(*conn).Read", "IO wait").count, 1);
    // Only runtime frames: the innermost.
    let rt = find(&r, "runtime.gopark", "chan receive");
    assert_eq!(rt.start_function, "runtime.bgsweep");
    assert_eq!(rt.creation.function, "", "creation pc 0 is unknown");
    // Nothing symbolizes.
    let unknown = find(&r, "", "chan receive");
    assert_eq!(unknown.start_function, "");
    assert_eq!(unknown.blocked_at.line, 0);
    // Not waiting: no stack, no wait reason, states mixed.
    let running = find(&r, "", "");
    assert_eq!(running.count, 2);
    assert_eq!(
        running.by_state,
        vec![("runnable".to_string(), 1), ("running".to_string(), 1)]
    );
    assert_eq!(
        r.by_state,
        vec![
            ("waiting".to_string(), 10),
            ("runnable".to_string(), 1),
            ("running".to_string(), 1)
        ]
    );
    assert_eq!(r.by_wait_reason[0], ("chan send".to_string(), 5));
    assert_eq!(r.by_wait_reason.len(), 5);
}

#[test]
fn suspects_have_exact_counts_and_ignore_churn_and_shrinking_groups() {
    let sym = symbolizer();
    let mut snapshots = Vec::new();
    for k in 0..=20u64 {
        let mut gs: Vec<GoroutineRecord> = (1000..1037)
            .map(|g| waiting(g, CHAN_SEND, GO_MAIN_52, START_PRODUCER, S_SEND))
            .collect();
        // Churn: each lives 4 snapshots (300 ms observed), blocked the whole time.
        for j in k.saturating_sub(3)..=k {
            gs.push(waiting(
                5000 + j,
                CHAN_RECV,
                GO_SPAWN_80,
                START_WORKER,
                S_MUTEX,
            ));
        }
        // Shrinks from 10 to 5 halfway: blocked 2 s at the end but not a suspect.
        let n = if k < 10 { 10 } else { 5 };
        for g in 2000..2000 + n {
            gs.push(waiting(g, SELECT, GO_SPAWN_80, START_WORKER, S_HTTP));
        }
        // A runtime goroutine blocked forever: not a suspect.
        gs.push(waiting(3, CHAN_RECV, 0, START_BGSWEEP, S_RT));
        gs.push(other(4, GoroutineState::Running, GO_SPAWN_80, START_WORKER));
        snapshots.push(snap(k * 100 * MS, gs));
    }
    let r = run(&snapshots, &sym);
    assert_eq!(r.leak_suspects.len(), 1, "{:#?}", r.leak_suspects);
    let s = &r.leak_suspects[0];
    assert_eq!(s.count, 37);
    assert_eq!(s.recently_blocked, 0);
    assert_eq!(s.wait_reason, "chan send");
    assert_eq!(s.start_function, "main.producer");
    assert_eq!(s.creation, loc("main.main", "/app/main.go", 52));
    assert_eq!(s.blocked_at, loc("main.producer", "/app/main.go", 60));
    assert_eq!(s.min_blocked_ns, 2 * S);
    assert_eq!(s.growth, 0);
    assert!(
        s.leak_score > 0.5 && s.leak_score <= 1.0,
        "{}",
        s.leak_score
    );
    assert_eq!(
        s.reason,
        "37 goroutines blocked on chan send for ≥ 2.0s, count stable over 2.0s; \
         created at main.go:52, blocked at main.go:60"
    );
    assert_eq!(find(&r, "main.helper", "select").count, 5);
    assert_eq!(find(&r, "main.worker", "chan receive").count, 4);
}

#[test]
fn growth_raises_the_score() {
    let sym = symbolizer();
    let build = |start: u64| -> Vec<GoroutineSnapshot> {
        (0..=10u64)
            .map(|k| {
                let n = (start + k).min(10);
                let t = 10 * S + k * 200 * MS;
                let gs = (0..n)
                    .map(|g| GoroutineRecord {
                        wait_since_ns: 5 * S as i64,
                        ..waiting(100 + g, CHAN_SEND, GO_MAIN_52, START_PRODUCER, S_SEND)
                    })
                    .collect();
                snap(t, gs)
            })
            .collect()
    };
    let stable = run(&build(10), &sym);
    let growing = run(&build(2), &sym);
    let (a, b) = (&stable.leak_suspects[0], &growing.leak_suspects[0]);
    assert_eq!((a.count, b.count), (10, 10));
    assert_eq!((a.growth, b.growth), (0, 8));
    assert_eq!(a.min_blocked_ns, b.min_blocked_ns);
    assert_eq!(a.min_blocked_ns, 7 * S);
    assert!(
        b.leak_score > a.leak_score,
        "{} {}",
        b.leak_score,
        a.leak_score
    );
    assert!((0.0..=1.0).contains(&a.leak_score) && (0.0..=1.0).contains(&b.leak_score));
    assert!(
        b.reason.contains("count grew by 8 over 2.0s"),
        "{}",
        b.reason
    );
}

#[test]
fn lifetimes_and_long_lived_share() {
    let sym = symbolizer();
    let alive = |goid: u64, from: u64, to: u64, k: u64| (from..=to).contains(&k).then_some(goid);
    let snapshots: Vec<GoroutineSnapshot> = (0..=10u64)
        .map(|k| {
            let goids = [
                alive(1, 0, 10, k),
                alive(2, 1, 3, k),
                alive(3, 2, 8, k),
                alive(4, 5, 10, k),
                alive(5, 9, 10, k),
                alive(6, 4, 4, k),
            ];
            let gs = goids
                .iter()
                .flatten()
                .map(|&g| other(g, GoroutineState::Runnable, GO_SPAWN_80, START_WORKER))
                .collect();
            snap(k * 100 * MS, gs)
        })
        .collect();
    let r = run(&snapshots, &sym);
    let l = &r.lifetimes;
    assert_eq!(l.count, 3);
    assert_eq!(l.max_ns, Some(600 * MS));
    let p50 = l.p50_ns.unwrap_or(0);
    assert!(p50 <= 200 * MS && p50 as f64 >= 200.0 * MS as f64 * (1.0 - 1.0 / 128.0));
    assert_eq!(l.p99_ns.map(|v| v > 590 * MS), Some(true));
    assert_eq!(l.resolution_ns, Some(100 * MS));
    assert_eq!(l.appeared, 5);
    assert_eq!(l.long_lived, 2, "600 ms ended, 500 ms alive");
    assert_eq!(l.long_lived_share, Some(0.4));
    assert_eq!(l.long_lived_threshold_ns, 300 * MS);
    assert_eq!(r.window.interval_ns, Some(100 * MS));
    assert_eq!(r.window.snapshots, 11);
    assert_eq!((r.window.first_ns, r.window.last_ns), (0, S));
}

#[test]
fn one_snapshot_window() {
    let sym = symbolizer();
    let now = 100 * S;
    let stamped = GoroutineRecord {
        wait_since_ns: (now - 5 * S) as i64,
        ..waiting(1, CHAN_SEND, GO_MAIN_52, START_PRODUCER, S_SEND)
    };
    let unstamped = waiting(2, MUTEX, GO_SPAWN_80, START_WORKER, S_MUTEX);
    let mut s = snap(now, vec![stamped, unstamped]);
    s.created_total = 50;
    s.gc.recent_pauses_ns = vec![7];
    let r = run(&[s], &sym);
    assert_eq!(r.window.snapshots, 1);
    assert_eq!(r.window.interval_ns, None);
    assert_eq!(r.created_total, 50);
    assert_eq!(r.created_per_second, None);
    assert_eq!(r.lifetimes.count, 0);
    assert_eq!(r.lifetimes.appeared, 0);
    assert_eq!(r.lifetimes.long_lived_share, None);
    assert_eq!(r.gc.cycles_in_window, 0);
    assert_eq!((r.gc.pause_p50_ns, r.gc.pause_max_ns), (Some(7), Some(7)));
    // The runtime's own stamp is enough evidence; one goroutine scores low.
    assert_eq!(r.leak_suspects.len(), 1);
    assert_eq!(r.leak_suspects[0].min_blocked_ns, 5 * S);
    assert_eq!(r.leak_suspects[0].count, 1);
    assert!(r.leak_suspects[0].leak_score < 0.5);
    assert!(r.leak_suspects[0]
        .reason
        .starts_with("1 goroutine blocked on chan send for ≥ 5.0s"));
}

#[test]
fn gc_cycles_without_a_waitsince_stamp_mean_the_goroutine_ran() {
    let sym = symbolizer();
    let build = |stamp_other: bool| -> Vec<GoroutineSnapshot> {
        (0..=20u64)
            .map(|k| {
                let busy = waiting(1, CHAN_RECV, GO_SPAWN_80, START_WORKER, S_MUTEX);
                let stamped = GoroutineRecord {
                    wait_since_ns: if stamp_other { 1 } else { 0 },
                    ..waiting(2, SELECT, GO_SPAWN_80, START_WORKER, S_HTTP)
                };
                let mut s = snap(S + k * 100 * MS, vec![busy, stamped]);
                s.gc.cycles = if k < 15 { 0 } else { 3 };
                s
            })
            .collect()
    };
    // The reader supports waitsince: goroutine 1 must have run since the GC saw it.
    let r = run(&build(true), &sym);
    assert!(
        r.leak_suspects
            .iter()
            .all(|s| s.wait_reason != "chan receive"),
        "{r:#?}"
    );
    // No stamps anywhere: the reader cannot tell; trust the sampling.
    let r = run(&build(false), &sym);
    let s = r
        .leak_suspects
        .iter()
        .find(|s| s.wait_reason == "chan receive");
    assert_eq!(s.map(|s| s.count), Some(1));
}

#[test]
fn a_moving_tracking_seq_means_the_goroutine_ran_between_snapshots() {
    let sym = symbolizer();
    let build = |moving: bool| -> Vec<GoroutineSnapshot> {
        (0..=20u64)
            .map(|k| {
                // A ticker loop: always seen blocked on the same receive, but it runs in between.
                let seq = if moving { k as u8 } else { 7 };
                let busy = GoroutineRecord {
                    tracking_seq: Some(seq),
                    ..waiting(1, CHAN_RECV, GO_SPAWN_80, START_WORKER, S_MUTEX)
                };
                snap(S + k * 100 * MS, vec![busy])
            })
            .collect()
    };
    let r = run(&build(true), &sym);
    assert!(r.leak_suspects.is_empty(), "{r:#?}");
    let r = run(&build(false), &sym);
    assert_eq!(
        r.leak_suspects.iter().map(|s| s.count).sum::<u64>(),
        1,
        "{r:#?}"
    );
}
