//! The stricter invariants an inferred layout (offsets read off the binary's runtime code, see
//! `goroscope_gobin::infer`) must pass on the live process before anything is reported: every
//! live goroutine's `startpc` is exactly a function entry and its `gopc` lies inside a function,
//! every parked goroutine's saved `sched.sp` (of the first 16k records) lies on its own stack, wait reasons are within the
//! target's table, goids are unique, records are not torn more than a race explains, every P has a
//! known status and a run queue no longer than 256, and the scheduler, mstats and gcController
//! values are plausible.
//!
//! The target keeps running while it is read, so a goroutine can change between two reads of it:
//! a failure must show up in two observations taken a moment apart to count.

use std::collections::HashSet;
use std::time::Duration;

use goroscope_model::goroutines::{GoroutineSnapshot, GoroutineState};

use crate::attach::GoProcess;
use crate::error::MemoryError;
use crate::g_record::g_read_span;
use crate::memory::{LeBytes, ReadRange};
use crate::snapshot::SnapshotOptions;

/// Largest GOMAXPROCS believed.
const MAX_PROCS: u64 = 1 << 16;
/// Largest heap believed (256 TiB).
const MAX_HEAP: u64 = 1 << 48;
/// Longest single GC pause believed.
const MAX_PAUSE_NS: u64 = 60_000_000_000;
/// 2001-09-09 in Unix ns: no GC of a running process ended before it.
const MIN_UNIX_NS: u64 = 1_000_000_000_000_000_000;
/// P statuses: idle, running, syscall, gcstop, dead.
const MAX_P_STATUS: u32 = 4;
/// How many goroutine records the stack check reads at most (the first ones of `runtime.allgs`,
/// where the runtime's own parked goroutines are): a sample bounds the cost on huge processes.
const MAX_STACK_SAMPLE: u64 = 16_384;

/// One invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Failure {
    /// The invariant, as the refusal names it.
    check: &'static str,
    /// What it is about (a goid, a P id, or 0 for a global).
    subject: u64,
    /// What was seen.
    detail: String,
}

/// Checks `process` (whose offsets are inferred) against the invariants above, starting from
/// `snapshot`. Returns the failed invariants, described for the operator.
pub(super) fn check(
    process: &mut GoProcess,
    snapshot: &GoroutineSnapshot,
) -> Result<Result<(), String>, MemoryError> {
    let first = observe(process, snapshot)?;
    if first.is_empty() {
        return Ok(Ok(()));
    }
    std::thread::sleep(Duration::from_millis(30));
    let again = process.snapshot(&SnapshotOptions { max_frames: 0 })?;
    let second = observe(process, &again)?;
    let seen_again: HashSet<(&'static str, u64)> = second
        .iter()
        .map(|failure| (failure.check, failure.subject))
        .collect();
    let lasting: Vec<&Failure> = first
        .iter()
        .filter(|failure| seen_again.contains(&(failure.check, failure.subject)))
        .collect();
    if lasting.is_empty() {
        return Ok(Ok(()));
    }
    let mut checks: Vec<&'static str> = Vec::new();
    for failure in &lasting {
        if !checks.contains(&failure.check) {
            checks.push(failure.check);
        }
    }
    let described: Vec<String> = checks
        .iter()
        .map(|check| {
            let failed: Vec<&&Failure> = lasting.iter().filter(|f| f.check == *check).collect();
            let example = failed.first().map_or("", |f| f.detail.as_str());
            match failed.len() {
                1 => format!("{check} ({example})"),
                n => format!("{check} ({n} times, e.g. {example})"),
            }
        })
        .collect();
    Ok(Err(described.join("; ")))
}

/// Every invariant that fails in one observation.
fn observe(
    process: &mut GoProcess,
    snapshot: &GoroutineSnapshot,
) -> Result<Vec<Failure>, MemoryError> {
    let mut failures = goroutine_failures(process, snapshot);
    failures.extend(stack_failures(process)?);
    failures.extend(scheduler_failures(process, snapshot)?);
    failures.extend(gc_failures(process)?);
    Ok(failures)
}

/// Checks on the goroutine records of the snapshot.
fn goroutine_failures(process: &GoProcess, snapshot: &GoroutineSnapshot) -> Vec<Failure> {
    let mut failures = Vec::new();
    let live = snapshot.goroutines.len() as u64;
    if snapshot.dropped_records > (live / 50).max(2) {
        failures.push(Failure {
            check: "goroutine records with known statuses and goids up to sched.goidgen",
            subject: 0,
            detail: format!(
                "{} of {} records are not",
                snapshot.dropped_records,
                live + snapshot.dropped_records
            ),
        });
    }
    let bias = process.info.load_bias;
    let reasons = snapshot.wait_reasons.len();
    let mut seen = HashSet::with_capacity(snapshot.goroutines.len());
    for g in &snapshot.goroutines {
        let goid = g.goid;
        if !seen.insert(goid) {
            failures.push(Failure {
                check: "unique goids",
                subject: goid,
                detail: format!("goid {goid} appears twice"),
            });
        }
        if g.state == GoroutineState::Waiting && usize::from(g.wait_reason) >= reasons {
            failures.push(Failure {
                check: "wait reasons within the target's table",
                subject: goid,
                detail: format!(
                    "goroutine {goid} waits for reason {} of {reasons}",
                    g.wait_reason
                ),
            });
        }
        let start = g.start_pc.wrapping_sub(bias);
        if process.pclntab.function_at(start).map(|f| f.entry) != Some(start) {
            failures.push(Failure {
                check: "startpc is a function entry",
                subject: goid,
                detail: format!("goroutine {goid} has startpc {:#x}", g.start_pc),
            });
        }
        if process
            .pclntab
            .function_at(g.creation_pc.wrapping_sub(bias))
            .is_none()
        {
            failures.push(Failure {
                check: "gopc inside a function",
                subject: goid,
                detail: format!("goroutine {goid} has gopc {:#x}", g.creation_pc),
            });
        }
    }
    failures
}

/// Every parked goroutine's saved stack pointer lies on its own stack (read from the raw records of
/// up to [`MAX_STACK_SAMPLE`] goroutines: the snapshot keeps neither).
fn stack_failures(process: &mut GoProcess) -> Result<Vec<Failure>, MemoryError> {
    let globals = process.globals.clone();
    let offsets = process.offsets;
    let g = offsets.g;
    let allglen = process.memory.read_u64(globals.allglen)?;
    let mut header = [0u8; 24];
    process.memory.read_exact(globals.allgs, &mut header)?;
    let (pointer, cap) = (header.u64_at(0), header.u64_at(16));
    let count = allglen.min(cap).min(MAX_STACK_SAMPLE);
    let mut pointers = vec![0u8; (count * 8) as usize];
    process.memory.read_exact(pointer, &mut pointers)?;
    let span = g_read_span(&offsets) as usize;
    let ranges: Vec<ReadRange> = (0..count)
        .map(|index| ReadRange {
            address: pointers.u64_at(index * 8),
            len: span,
            offset: index as usize * span,
        })
        .filter(|range| range.address != 0)
        .collect();
    let mut bytes = vec![0u8; span * count as usize];
    let mut ok = vec![false; ranges.len()];
    process.memory.read_ranges(&ranges, &mut bytes, &mut ok)?;
    let mut failures = Vec::new();
    let mut parked = 0;
    for (range, read) in ranges.iter().zip(ok) {
        let record = &bytes[range.offset..range.offset + span];
        let state = GoroutineState::from_status(record.u32_at(g.atomicstatus));
        if !read || state != Some(GoroutineState::Waiting) {
            continue;
        }
        parked += 1;
        let (lo, hi, sp) = (
            record.u64_at(g.stack_lo),
            record.u64_at(g.stack_hi),
            record.u64_at(g.sched_sp),
        );
        if !(lo..hi).contains(&sp) {
            let goid = record.u64_at(g.goid);
            failures.push(Failure {
                check: "a parked goroutine's sched.sp within [stack.lo, stack.hi)",
                subject: goid,
                detail: format!("goroutine {goid}: sp {sp:#x}, stack [{lo:#x}, {hi:#x})"),
            });
        }
    }
    if parked == 0 {
        failures.push(Failure {
            check: "parked goroutines to check sched.sp against",
            subject: 0,
            detail: "none found".into(),
        });
    }
    Ok(failures)
}

/// schedt values within what GOMAXPROCS and the goroutine list allow; every P's status known and
/// its run queue no longer than its ring.
fn scheduler_failures(
    process: &mut GoProcess,
    snapshot: &GoroutineSnapshot,
) -> Result<Vec<Failure>, MemoryError> {
    let mut failures = Vec::new();
    let globals = process.globals.clone();
    let offsets = process.offsets;
    let mut allp = [0u8; 16];
    process.memory.read_exact(globals.allp, &mut allp)?;
    let (allp_ptr, procs) = (allp.u64_at(0), allp.u64_at(8));
    let allglen = process.memory.read_u64(globals.allglen)?;
    let mut read_u32 = |offset: u64| -> Result<u64, MemoryError> {
        let mut word = [0u8; 4];
        process
            .memory
            .read_exact(globals.sched.wrapping_add(offset), &mut word)?;
        Ok(u64::from(u32::from_le_bytes(word)))
    };
    let sched = offsets.sched;
    let values = [
        ("sched.npidle", read_u32(sched.npidle)?, procs),
        ("sched.nmspinning", read_u32(sched.nmspinning)?, procs),
        (
            "the global run queue's length",
            read_u32(sched.runqsize)?,
            allglen,
        ),
    ];
    for (name, value, limit) in values {
        if value > limit {
            failures.push(Failure {
                check: "plausible scheduler values",
                subject: 0,
                detail: format!("{name} is {value}, more than {limit}"),
            });
        }
    }
    if procs == 0 || procs > MAX_PROCS || snapshot.scheduler.local_runqueues.len() as u64 != procs {
        failures.push(Failure {
            check: "every P's id equal to its slot in runtime.allp",
            subject: 0,
            detail: format!("runtime.allp holds {procs} Ps"),
        });
        return Ok(failures);
    }
    let mut pointers = vec![0u8; (procs * 8) as usize];
    process.memory.read_exact(allp_ptr, &mut pointers)?;
    let p = offsets.p;
    for index in 0..procs {
        let at = pointers.u64_at(index * 8);
        let mut word = [0u8; 4];
        let mut field = |offset: u64| -> Result<u32, MemoryError> {
            process
                .memory
                .read_exact(at.wrapping_add(offset), &mut word)?;
            Ok(u32::from_le_bytes(word))
        };
        let status = field(p.status)?;
        let queued = field(p.runqtail)?.wrapping_sub(field(p.runqhead)?);
        if status > MAX_P_STATUS || queued > 256 {
            failures.push(Failure {
                check: "every P with a known status and at most 256 queued goroutines",
                subject: index,
                detail: format!("P {index}: status {status}, {queued} queued"),
            });
        }
    }
    Ok(failures)
}

/// The GC figures goroscope reports: pauses shorter than a minute that add up to no more than the
/// total, a last-GC time that is a date (or 0 before the first cycle), a heap below 256 TiB and a
/// goal above what was marked.
fn gc_failures(process: &mut GoProcess) -> Result<Vec<Failure>, MemoryError> {
    let mut failures = Vec::new();
    let mut fail = |detail: String| {
        failures.push(Failure {
            check: "plausible GC values",
            subject: 0,
            detail,
        })
    };
    let offsets = process.offsets;
    if let Some(memstats) = process.globals.memstats {
        let m = offsets.memstats;
        let mut word = [0u8; 4];
        process
            .memory
            .read_exact(memstats.wrapping_add(m.numgc), &mut word)?;
        let cycles = u64::from(u32::from_le_bytes(word));
        let mut ring = vec![0u8; 256 * 8];
        process
            .memory
            .read_exact(memstats.wrapping_add(m.pause_ns), &mut ring)?;
        let recent: Vec<u64> = (0..cycles.min(256))
            .map(|cycle| ring.u64_at(cycle * 8))
            .collect();
        if let Some(longest) = recent.iter().copied().filter(|p| *p > MAX_PAUSE_NS).max() {
            fail(format!("a GC pause of {longest} ns"));
        }
        if let Some(total) = m.pause_total_ns {
            let total = process.memory.read_u64(memstats.wrapping_add(total))?;
            let sum: u64 = recent.iter().fold(0u64, |sum, p| sum.saturating_add(*p));
            if total < sum {
                fail(format!(
                    "pause_total_ns {total} below the recent pauses' {sum}"
                ));
            }
        }
        if let Some(last) = m.last_gc_unix {
            let last = process.memory.read_u64(memstats.wrapping_add(last))?;
            let now = unix_now_ns();
            let believable = if cycles == 0 {
                last == 0
            } else {
                (MIN_UNIX_NS..=now.saturating_add(86_400_000_000_000)).contains(&last)
            };
            if !believable {
                fail(format!("last_gc_unix {last} after {cycles} cycles"));
            }
        }
    }
    if let Some(controller) = process.globals.gc_controller {
        let c = offsets.gc_controller;
        let mut read = |offset: Option<u64>| -> Result<Option<u64>, MemoryError> {
            offset
                .map(|offset| process.memory.read_u64(controller.wrapping_add(offset)))
                .transpose()
        };
        let (live, marked, goal) = (read(c.heap_live)?, read(c.heap_marked)?, read(c.heap_goal)?);
        if let Some(live) = live.filter(|live| *live == 0 || *live > MAX_HEAP) {
            fail(format!("heapLive {live}"));
        }
        if let Some(goal) =
            goal.filter(|goal| *goal == 0 || (*goal > MAX_HEAP && *goal != u64::MAX))
        {
            fail(format!("heap goal {goal}"));
        }
        if let (Some(marked), Some(goal)) = (marked, goal) {
            if marked > goal || marked > MAX_HEAP {
                fail(format!("heapMarked {marked} above the goal {goal}"));
            }
        }
    }
    Ok(failures)
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}
