//! More tests of the health model: rates and summaries, edge cases, symbol caching, and the
//! cost of observing 100k goroutines.

use super::health_tests::*;
use super::*;

#[test]
fn rates_gc_scheduler_and_read_cost() {
    let sym = symbolizer();
    let mut snapshots = Vec::new();
    for (k, (cycles, runq, read, dropped)) in
        [(5u32, 3u32, 1u64, 1u64), (6, 10, 3, 0), (9, 2, 2, 2)]
            .into_iter()
            .enumerate()
    {
        let mut s = snap(k as u64 * S, vec![]);
        s.created_total = 100 + 100 * k as u64;
        s.gc.cycles = cycles;
        s.gc.recent_pauses_ns = (1..=100).rev().collect();
        s.gc.heap_live_bytes = Some(4096);
        s.gc.heap_goal_bytes = Some(8192);
        s.scheduler.global_runqueue = runq;
        s.scheduler.gomaxprocs = 8;
        s.read_duration_ns = read * MS;
        s.dropped_records = dropped;
        snapshots.push(s);
    }
    let r = run(&snapshots, &sym);
    assert_eq!(r.created_total, 300);
    assert_eq!(r.created_per_second, Some(100.0));
    assert_eq!(r.gc.cycles, 9);
    assert_eq!(r.gc.cycles_in_window, 4);
    assert_eq!(r.gc.pauses_sampled, 100);
    assert_eq!(
        (r.gc.pause_p50_ns, r.gc.pause_p99_ns, r.gc.pause_max_ns),
        (Some(50), Some(99), Some(100))
    );
    assert_eq!(
        (r.gc.heap_live_bytes, r.gc.heap_goal_bytes),
        (Some(4096), Some(8192))
    );
    assert_eq!(r.scheduler.max_global_runqueue, 10);
    assert_eq!(r.scheduler.latest.global_runqueue, 2);
    assert_eq!(r.scheduler.latest.gomaxprocs, 8);
    assert_eq!(r.read_cost.dropped_records, 3);
    assert_eq!(r.read_cost.mean_read_ns, Some(2 * MS));
    assert_eq!(r.read_cost.p50_read_ns, Some(2 * MS));
    assert_eq!(r.read_cost.max_read_ns, Some(3 * MS));
    assert_eq!(r.window.interval_ns, Some(S));
}

#[test]
fn empty_tracker_and_empty_snapshots() {
    let sym = symbolizer();
    let tracker = HealthTracker::new(HealthSettings::default());
    let r = tracker.report(&sym);
    assert_eq!(r.window.snapshots, 0);
    assert_eq!(r.read_cost.mean_read_ns, None);
    assert_eq!(r.lifetimes.long_lived_threshold_ns, 300 * MS);
    let r = run(
        &[GoroutineSnapshot::default(), GoroutineSnapshot::default()],
        &sym,
    );
    assert_eq!(r.goroutines_total, 0);
    assert!(r.groups.is_empty() && r.leak_suspects.is_empty() && r.by_state.is_empty());
    assert_eq!(r.created_per_second, None, "zero span");
    assert_eq!(r.gc.pause_p50_ns, None);
    assert_eq!(r.window.interval_ns, Some(0));
}

#[test]
fn wait_reason_beyond_the_table() {
    let sym = symbolizer();
    let r = run(
        &[snap(
            0,
            vec![waiting(1, 200, GO_MAIN_52, START_PRODUCER, S_SEND)],
        )],
        &sym,
    );
    assert_eq!(r.by_wait_reason, vec![("wait reason 200".to_string(), 1)]);
    assert_eq!(r.groups[0].wait_reason, "wait reason 200");
}

#[test]
fn dropped_records_do_not_end_goroutines() {
    let sym = symbolizer();
    let g = |goid| other(goid, GoroutineState::Runnable, GO_SPAWN_80, START_WORKER);
    let mut missing = snap(200 * MS, vec![g(1)]);
    missing.dropped_records = 1;
    let r = run(
        &[
            snap(0, vec![g(1)]),
            snap(100 * MS, vec![g(1), g(2)]),
            missing,
            snap(300 * MS, vec![g(1), g(2)]),
        ],
        &sym,
    );
    assert_eq!(r.lifetimes.count, 0);
    assert_eq!(r.lifetimes.appeared, 1);
}

#[test]
fn symbolizes_each_pc_once() {
    let sym = symbolizer();
    let s = snap(
        0,
        vec![
            waiting(1, CHAN_SEND, GO_MAIN_52, START_PRODUCER, S_SEND),
            waiting(2, MUTEX, GO_SPAWN_80, START_WORKER, S_MUTEX),
        ],
    );
    let mut tracker = HealthTracker::new(HealthSettings::default());
    tracker.observe(&s, &sym);
    let calls = sym.calls.get();
    assert!(calls > 0);
    let mut later = s.clone();
    later.taken_at_ns = 100 * MS;
    later.goroutines[0].goid = 3;
    tracker.observe(&later, &sym);
    let _ = tracker.report(&sym);
    assert_eq!(sym.calls.get(), calls);
}

/// Symbolizes any pc procedurally: stack pcs below 0x10_0000 are runtime frames, others user.
struct SyntheticSymbolizer;

impl Symbolizer for SyntheticSymbolizer {
    fn frames_at(&self, pc: u64) -> Vec<CodeLocation> {
        let function = if pc < 0x10_0000 {
            format!("runtime.f{pc}")
        } else {
            format!("github.com/x/y.f{}", pc / 16)
        };
        vec![loc(&function, "/src/y.go", (pc % 1000) as u32)]
    }

    fn function_at(&self, pc: u64) -> Option<String> {
        Some(format!("main.start{pc}"))
    }
}

#[test]
fn observe_100k_goroutines() {
    const N: u64 = 100_000;
    let mut base = GoroutineSnapshot {
        wait_reasons: vec!["".into(), "chan receive".into(), "chan send".into()],
        ..GoroutineSnapshot::default()
    };
    for s in 0..2_000u64 {
        let mut stack = vec![0x1000 + s % 7 * 16, 0x2000 + s % 13 * 16];
        stack.extend((0..6).map(|d| 0x10_0000 + s * 256 + d * 16));
        base.stacks.push(stack);
    }
    let record = |goid: u64| GoroutineRecord {
        goid,
        state: match goid % 10 {
            0 => GoroutineState::Running,
            1 => GoroutineState::Runnable,
            _ => GoroutineState::Waiting,
        },
        wait_reason: (goid % 3) as u8,
        wait_since_ns: 0,
        creation_pc: 0x20_0000 + goid % 300 * 16,
        start_pc: 0x30_0000 + goid % 50 * 16,
        stack: (!goid.is_multiple_of(10)).then_some((goid % 2_000) as u32),
        tracking_seq: None,
        labels: 0,
    };
    let mut tracker = HealthTracker::new(HealthSettings::default());
    let mut timings = Vec::new();
    for k in 0..20u64 {
        let mut s = base.clone();
        s.taken_at_ns = S + k * 100 * MS;
        // 1 % churn per snapshot.
        s.goroutines = (k * 1_000..k * 1_000 + N).map(record).collect();
        let start = std::time::Instant::now();
        tracker.observe(&s, &SyntheticSymbolizer);
        timings.push(start.elapsed());
    }
    let start = std::time::Instant::now();
    let r = tracker.report(&SyntheticSymbolizer);
    let report_time = start.elapsed();
    assert_eq!(r.goroutines_total, N);
    assert!(!r.leak_suspects.is_empty());
    let steady = &timings[1..];
    let mean = steady.iter().sum::<std::time::Duration>() / steady.len() as u32;
    let max = steady.iter().max().copied().unwrap_or_default();
    eprintln!(
        "observe(100k goroutines): first {:?}, steady mean {mean:?}, max {max:?}; report {report_time:?}; {} groups",
        timings[0],
        r.groups.len()
    );
    if !cfg!(debug_assertions) {
        assert!(mean < std::time::Duration::from_millis(20), "{mean:?}");
    }
}

#[test]
fn a_go_statement_in_an_inlined_call_is_created_by_the_function_it_was_inlined_into() {
    let mut sym = symbolizer();
    // `go worker()` in main.spawn (/app/spawn.go:12), inlined into main.main at line 30.
    sym.ret(
        0x1500,
        &[
            ("main.spawn", "/app/spawn.go", 12),
            ("main.main", "/app/main.go", 30),
        ],
    );
    let r = run(
        &[snap(
            0,
            vec![waiting(1, CHAN_RECV, 0x1500, START_WORKER, S_MUTEX)],
        )],
        &sym,
    );
    assert_eq!(
        r.groups[0].creation,
        loc("main.main", "/app/spawn.go", 12),
        "as Go prints it: created by main.main at spawn.go:12"
    );
}
