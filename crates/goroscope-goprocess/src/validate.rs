//! Invariants checked once at attach, so goroscope refuses a target whose memory does not look like
//! the runtime layout it expects, instead of reporting garbage: the goroutine list is a sane slice,
//! goroutine records have known statuses and plausible ids, every P's id matches its slot, and the
//! GC pause record holds durations, not addresses. A layout inferred from the binary's code must
//! also pass the stricter checks in `validate/inferred.rs`, and any failure refuses the target.

mod inferred;

use goroscope_gobin::offsets::OffsetSource;
use goroscope_model::goroutines::GoroutineState;

use crate::attach::GoProcess;
use crate::error::AttachError;
use crate::snapshot::SnapshotOptions;

/// Longest believable single GC pause.
const MAX_PAUSE_NS: u64 = 60_000_000_000;

/// Checks the runtime state of a freshly attached process.
pub(crate) fn check_attach(process: &mut GoProcess) -> Result<(), AttachError> {
    let source = process.offsets.source;
    if !matches!(source, OffsetSource::Inferred { .. }) {
        return check_common(process, false);
    }
    let rejected = |process: &GoProcess, what: String| AttachError::InferredLayoutRejected {
        pid: process.info.pid,
        version: process.info.version.to_string(),
        layout: source.describe(),
        what,
    };
    match check_common(process, true) {
        Ok(()) => {}
        Err(AttachError::Implausible { what, .. }) => return Err(rejected(process, what)),
        Err(other) => return Err(other),
    }
    let snapshot = process.snapshot(&SnapshotOptions { max_frames: 0 })?;
    match inferred::check(process, &snapshot)? {
        Ok(()) => Ok(()),
        Err(what) => Err(rejected(process, what)),
    }
}

/// The checks every layout must pass. `strict` (an inferred layout) refuses impossible GC pauses
/// instead of dropping the GC figures with a warning.
fn check_common(process: &mut GoProcess, strict: bool) -> Result<(), AttachError> {
    let globals = process.globals.clone();
    let allglen = process.memory.read_u64(globals.allglen)?;
    let mut slice = [0u8; 24];
    process.memory.read_exact(globals.allgs, &mut slice)?;
    let word = |i: usize| u64::from_le_bytes(slice[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (pointer, len, cap) = (word(0), word(1), word(2));
    if len > cap || allglen > cap || cap > 50_000_000 || (len > 0 && pointer == 0) {
        return Err(process.implausible(format!(
            "runtime.allgs is {{ptr {pointer:#x}, len {len}, cap {cap}}} with allglen {allglen}"
        )));
    }
    if len == 0 {
        return Err(process.implausible("runtime.allgs is empty".into()));
    }

    // A P caught mid-resize (GOMAXPROCS changing) makes one snapshot look wrong: look again.
    let mut snapshot = process.snapshot(&SnapshotOptions { max_frames: 0 })?;
    for _ in 0..2 {
        let scheduler = &snapshot.scheduler;
        if scheduler.local_runqueues.len() == scheduler.gomaxprocs as usize {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        snapshot = process.snapshot(&SnapshotOptions { max_frames: 0 })?;
    }
    let live = snapshot.goroutines.len() as u64;
    if live == 0 {
        return Err(process.implausible("no live goroutine found in runtime.allgs".into()));
    }
    if snapshot.dropped_records > live {
        return Err(process.implausible(format!(
            "{} of {} goroutine records have unknown statuses or ids beyond sched.goidgen ({})",
            snapshot.dropped_records,
            live + snapshot.dropped_records,
            snapshot.created_total
        )));
    }
    let reasons = process.wait_reasons.len();
    let bad_reason = snapshot
        .goroutines
        .iter()
        .filter(|g| g.state == GoroutineState::Waiting && usize::from(g.wait_reason) >= reasons)
        .count();
    if bad_reason * 10 > snapshot.goroutines.len() {
        return Err(process.implausible(format!(
            "{bad_reason} waiting goroutines have wait reasons beyond the target's table of {reasons}"
        )));
    }
    let scheduler = &snapshot.scheduler;
    if scheduler.gomaxprocs == 0 || scheduler.local_runqueues.len() != scheduler.gomaxprocs as usize
    {
        return Err(process.implausible(format!(
            "runtime.allp holds {} Ps whose ids do not match their slots",
            scheduler.gomaxprocs
        )));
    }
    if snapshot
        .gc
        .recent_pauses_ns
        .iter()
        .any(|&pause| pause > MAX_PAUSE_NS)
    {
        if strict {
            return Err(
                process.implausible("plausible GC values (a GC pause longer than a minute)".into())
            );
        }
        // The GC figures are wrong but goroutines are fine: drop GC rather than refuse.
        process.globals.memstats = None;
        process
            .info
            .warnings
            .push("GC pause record unreadable for this binary; GC pauses not reported".into());
    }
    Ok(())
}
