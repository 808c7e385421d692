//! Tests of the findings: the fd climb rule on climbing, flat noisy, jumping and short series,
//! and the sentences of the leak, GC, scheduler, CPU, syscall and window findings.

use goroscope_model::recording::Ended;

use super::super::fixtures::{go_recording, not_go_recording};
use super::*;

fn series(values: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    values
        .enumerate()
        .map(|(i, fds)| (i as u64 * 100_000_000, fds))
        .collect()
}

#[test]
fn a_steady_climb_of_fds_is_a_climb() {
    // One more fd every second, with churn of up to two on top.
    let points = series((0..300u64).map(|i| 20 + i / 10 + (i * 7) % 3));
    let Some(climb) = fd_climb(&points) else {
        panic!("no climb found in {points:?}");
    };
    assert_eq!(climb.from, 20);
    assert_eq!(climb.to, 20 + 29 + (299 * 7) % 3);
    assert_eq!((climb.rising_steps, climb.steps), (9, 9));
    assert!(
        (climb.per_minute - 60.0 * 31.0 / 29.9).abs() < 0.5,
        "{climb:?}"
    );
}

#[test]
fn a_slow_leak_under_heavy_churn_is_a_climb() {
    // One fd every 3 s, with churn of up to 8 fds opened and closed.
    let points = series((0..600u64).map(|i| 100 + i / 30 + (i * 13) % 9));
    assert!(fd_climb(&points).is_some());
}

#[test]
fn flat_noisy_jumping_or_short_series_are_not_climbs() {
    let flat_noisy = series((0..300u64).map(|i| 50 + (i * 7919) % 11));
    assert_eq!(fd_climb(&flat_noisy), None, "flat noise");
    let one_jump = series((0..300u64).map(|i| if i < 150 { 20 } else { 80 }));
    assert_eq!(fd_climb(&one_jump), None, "a pool filled once");
    let falling = series((0..300u64).map(|i| 400 - i));
    assert_eq!(fd_climb(&falling), None, "falling");
    let short = series((0..9u64).map(|i| 10 + i));
    assert_eq!(fd_climb(&short), None, "too few points");
    let sawtooth = series((0..300u64).map(|i| 20 + (i % 60)));
    assert_eq!(fd_climb(&sawtooth), None, "sawtooth");
}

#[test]
fn the_go_recording_reads_as_an_engineers_verdict() {
    let found = findings(&go_recording());
    let texts: Vec<String> = found
        .iter()
        .map(|f| format!("{:?} {:?}: {}", f.severity, f.kind, f.text))
        .collect();
    let all = texts.join("\n");
    // Worst first.
    for pair in found.windows(2) {
        assert!(pair[0].severity >= pair[1].severity, "{all}");
    }
    let leak = found
        .iter()
        .find(|f| f.kind == FindingKind::Leak && f.text.contains("chan send"))
        .unwrap_or_else(|| panic!("no leak finding in\n{all}"));
    assert_eq!(leak.severity, Severity::Bad, "{all}");
    assert!(
        leak.text.contains("1\u{202f}234 goroutines"),
        "count: {}",
        leak.text
    );
    assert!(leak.text.contains("+96/min"), "growth: {}", leak.text);
    assert!(
        leak.text.contains("/src/app/workers.go:42"),
        "creation site: {}",
        leak.text
    );
    let fds = found.iter().find(|f| f.kind == FindingKind::Fds);
    assert!(
        fds.is_some_and(|f| f.severity == Severity::Bad
            && f.text.contains("20 → ")
            && f.text.contains("/min")),
        "{all}"
    );
    let gc = found.iter().find(|f| f.kind == FindingKind::Gc);
    assert!(
        gc.is_some_and(|f| f.severity == Severity::Warn && f.text.contains("p99 2.22 ms")),
        "{all}"
    );
    let cpu = found.iter().find(|f| f.kind == FindingKind::Cpu);
    assert!(
        cpu.is_some_and(
            |f| f.text.contains("main.parse 47 %") && f.text.contains("encoding/json.Marshal 24 %")
        ),
        "{all}"
    );
    let syscalls = found.iter().find(|f| f.kind == FindingKind::Syscalls);
    assert!(
        syscalls.is_some_and(|f| f.severity == Severity::Warn && f.text.contains("EPIPE")),
        "{all}"
    );
    let waits = found.iter().find(|f| f.kind == FindingKind::Waits);
    assert!(
        waits.is_some_and(|f| f.text.contains("network I/O") && f.text.contains("channels")),
        "{all}"
    );
    assert!(
        found.iter().any(|f| f.kind == FindingKind::Scheduler),
        "{all}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.kind == FindingKind::Ended && f.severity == Severity::Ok),
        "{all}"
    );
}

#[test]
fn a_process_that_is_not_go_and_exited_says_so() {
    let found = findings(&not_go_recording());
    let all = format!("{found:#?}");
    assert!(
        found
            .iter()
            .any(|f| f.kind == FindingKind::NotGo && f.text.contains("no Go build info")),
        "{all}"
    );
    assert!(
        found.iter().any(|f| f.kind == FindingKind::Ended
            && f.severity == Severity::Bad
            && f.text.contains("exited 21 s")),
        "{all}"
    );
    assert!(!found.iter().any(|f| f.kind == FindingKind::Leak), "{all}");
    let fds = found.iter().find(|f| f.kind == FindingKind::Fds);
    assert!(fds.is_some_and(|f| f.severity == Severity::Ok), "{all}");
}

#[test]
fn backlogs_and_interruptions_are_flagged() {
    let mut recording = go_recording();
    for point in &mut recording.timeline {
        if let Some(go) = &mut point.go {
            go.global_runqueue = 30;
            go.local_runqueues = 20;
            go.idle_ps = 0;
        }
    }
    recording.window.ended = Ended::Interrupted {
        after_ns: 5_000_000_000,
    };
    let found = findings(&recording);
    let all = format!("{found:#?}");
    assert!(
        found.iter().any(|f| f.kind == FindingKind::Scheduler
            && f.severity == Severity::Bad
            && f.text.contains("GOMAXPROCS=8")),
        "{all}"
    );
    assert!(
        found.iter().any(|f| f.kind == FindingKind::Ended
            && f.severity == Severity::Warn
            && f.text.contains("Interrupted after 5 s")),
        "{all}"
    );
}
