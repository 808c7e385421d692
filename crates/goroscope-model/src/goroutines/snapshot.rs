//! One snapshot of a Go process's runtime as read from its memory: every live goroutine, the
//! goroutine id generator, GC state and scheduler state. Program counters are kept as numbers;
//! turning them into function/file/line is the [`Symbolizer`]'s job, done once per distinct pc.

/// A goroutine's scheduling state, from `runtime.g.atomicstatus` with the GC scan bit removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GoroutineState {
    /// `_Gidle` (0): just allocated, not yet initialized.
    Idle,
    /// `_Grunnable` (1): on a run queue, not running.
    Runnable,
    /// `_Grunning` (2): running on an M.
    Running,
    /// `_Gsyscall` (3): in a system call.
    Syscall,
    /// `_Gwaiting` (4): blocked (see the wait reason).
    Waiting,
    /// `_Gdead` (6): exited or not in use; never counted as live.
    Dead,
    /// `_Gcopystack` (8): its stack is being moved.
    CopyStack,
    /// `_Gpreempted` (9): stopped for a suspendG preemption.
    Preempted,
    /// `_Gleaked` (10, Go 1.26+): blocked forever, as proven by the GC's leak detection (only in
    /// binaries built with the goroutine leak experiment).
    Leaked,
    /// `_Gdeadextra` (11, Go 1.26+): a dead goroutine kept for an extra M (cgo callbacks); not live.
    DeadExtra,
}

/// The GC scan bit OR-ed into a status while the GC scans the goroutine's stack.
pub const STATUS_SCAN_BIT: u32 = 0x1000;

impl GoroutineState {
    /// Maps a raw `atomicstatus`; `None` for values no Go release uses (a torn or stale read).
    pub fn from_status(status: u32) -> Option<GoroutineState> {
        match status & !STATUS_SCAN_BIT {
            0 => Some(GoroutineState::Idle),
            1 => Some(GoroutineState::Runnable),
            2 => Some(GoroutineState::Running),
            3 => Some(GoroutineState::Syscall),
            4 => Some(GoroutineState::Waiting),
            6 => Some(GoroutineState::Dead),
            8 => Some(GoroutineState::CopyStack),
            9 => Some(GoroutineState::Preempted),
            10 => Some(GoroutineState::Leaked),
            11 => Some(GoroutineState::DeadExtra),
            _ => None,
        }
    }

    /// The name users see (`waiting`, `runnable`, …), as Go's tracebacks print them.
    pub fn name(self) -> &'static str {
        match self {
            GoroutineState::Idle => "idle",
            GoroutineState::Runnable => "runnable",
            GoroutineState::Running => "running",
            GoroutineState::Syscall => "syscall",
            GoroutineState::Waiting => "waiting",
            GoroutineState::Dead => "dead",
            GoroutineState::CopyStack => "copystack",
            GoroutineState::Preempted => "preempted",
            GoroutineState::Leaked => "leaked",
            GoroutineState::DeadExtra => "dead",
        }
    }

    /// True for goroutines parked on something (waiting, or proven leaked by the GC).
    pub fn is_blocked(self) -> bool {
        matches!(self, GoroutineState::Waiting | GoroutineState::Leaked)
    }

    /// True for states of a goroutine that exists (everything but the dead and idle ones).
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            GoroutineState::Dead | GoroutineState::DeadExtra | GoroutineState::Idle
        )
    }
}

/// One goroutine as read in one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoroutineRecord {
    /// The goroutine id.
    pub goid: u64,
    /// Its state.
    pub state: GoroutineState,
    /// Index into [`GoroutineSnapshot::wait_reasons`]; meaningful only when `Waiting`.
    pub wait_reason: u8,
    /// The runtime's `waitsince` (its nanotime when the GC first saw it blocked), 0 when unknown.
    pub wait_since_ns: i64,
    /// `gopc`: return address of the `go` statement's call into the runtime.
    pub creation_pc: u64,
    /// `startpc`: entry of the function the goroutine started in.
    pub start_pc: u64,
    /// Index into [`GoroutineSnapshot::stacks`] of its unwound stack, for goroutines that are not
    /// running (running ones have no saved registers to unwind from).
    pub stack: Option<u32>,
    /// The runtime's `trackingSeq`, bumped (mod 256) every time the goroutine stops running; a
    /// change between snapshots proves it ran in between. `None` when the reader has no offset.
    pub tracking_seq: Option<u8>,
    /// The runtime's `labels` pointer (its pprof labels, set by `pprof.Do` or
    /// `pprof.SetGoroutineLabels` and inherited by the goroutines it starts): an address in the
    /// target, 0 when it has none or the reader does not know where the field is. Goroutines
    /// sharing one label set share the pointer; `goroscope-goprocess` reads the set behind it.
    pub labels: u64,
}

/// GC state read from `runtime.memstats` and `runtime.gcController`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcState {
    /// Completed GC cycles (`memstats.numgc`).
    pub cycles: u32,
    /// Up to the 256 most recent stop-the-world pause durations in ns, oldest first, from the
    /// runtime's own `pause_ns` ring.
    pub recent_pauses_ns: Vec<u64>,
    /// Total pause time since start (`pause_total_ns`), when the version has it.
    pub pause_total_ns: Option<u64>,
    /// Heap bytes live or allocated since the last mark (`gcController.heapLive`).
    pub heap_live_bytes: Option<u64>,
    /// The heap size at which the next GC starts.
    pub heap_goal_bytes: Option<u64>,
}

/// Scheduler state read from `runtime.sched` and each `runtime.p`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchedulerState {
    /// GOMAXPROCS: the number of Ps.
    pub gomaxprocs: u32,
    /// Ps with nothing to run (status idle).
    pub idle_ps: u32,
    /// Ms spinning in search of work.
    pub spinning_ms: u32,
    /// Goroutines on the global run queue.
    pub global_runqueue: u32,
    /// Goroutines on each P's local run queue (including its `runnext` slot), by P id.
    pub local_runqueues: Vec<u32>,
}

/// Everything read from one process at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoroutineSnapshot {
    /// CLOCK_MONOTONIC ns when the read started (the same clock as the Go runtime's nanotime).
    pub taken_at_ns: u64,
    /// How long reading took, in ns.
    pub read_duration_ns: u64,
    /// Live goroutines (no `Dead` or `Idle` records).
    pub goroutines: Vec<GoroutineRecord>,
    /// Distinct unwound stacks, innermost pc first; records point here by index.
    pub stacks: Vec<Vec<u64>>,
    /// Wait reason names from the target's own `runtime.waitReasonStrings`, by index.
    pub wait_reasons: Vec<String>,
    /// Goroutine ids handed out so far (`sched.goidgen`): goroutines created since start.
    pub created_total: u64,
    /// GC state.
    pub gc: GcState,
    /// Scheduler state.
    pub scheduler: SchedulerState,
    /// Goroutine records dropped because they changed while being read and a retry did not settle.
    pub dropped_records: u64,
}

/// What a goroutine is doing: its state and, when it waits, its wait reason (0 otherwise), so
/// goroutines doing the same thing share one key.
pub type Activity = (GoroutineState, u8);

impl GoroutineRecord {
    /// Its [`Activity`].
    pub fn activity(&self) -> Activity {
        let reason = if self.state.is_blocked() {
            self.wait_reason
        } else {
            0
        };
        (self.state, reason)
    }
}

impl GcState {
    /// The pauses of the cycles completed since a snapshot that had seen `before` cycles: the
    /// newest entries of the runtime's ring, and how many of those cycles the ring (256 long)
    /// no longer holds. `None` when this snapshot could not read memstats (it says fewer
    /// cycles than before).
    pub fn pauses_since(&self, before: u32) -> Option<(&[u64], u64)> {
        let new = self.cycles.checked_sub(before)? as usize;
        let kept = new.min(self.recent_pauses_ns.len());
        let pauses = &self.recent_pauses_ns[self.recent_pauses_ns.len() - kept..];
        Some((pauses, (new - kept) as u64))
    }
}

impl GoroutineSnapshot {
    /// The name of an [`Activity`]: the wait reason of a waiting goroutine, else its state's
    /// name (`running`, `runnable`, `syscall`).
    pub fn activity_name(&self, (state, reason): Activity) -> String {
        if state.is_blocked() {
            self.wait_reason_name(reason)
        } else {
            state.name().to_string()
        }
    }

    /// The name of wait reason `index`, or `wait reason N` if the target's table has no such entry.
    pub fn wait_reason_name(&self, index: u8) -> String {
        match self.wait_reasons.get(usize::from(index)) {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("wait reason {index}"),
        }
    }
}

/// A source location: one (possibly inlined) frame.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct CodeLocation {
    /// Fully qualified function, e.g. `main.leakChanSend` or `net/http.(*conn).serve`.
    pub function: String,
    /// Source file path as recorded in the binary.
    pub file: String,
    /// Line number, 0 when unknown.
    pub line: u32,
}

/// Turns program counters of the target into source locations.
pub trait Symbolizer {
    /// Frames at `pc`, innermost (most deeply inlined) first; empty when `pc` is in no known
    /// function. `pc` is used as given: callers pass `return address - 1` for call sites.
    fn frames_at(&self, pc: u64) -> Vec<CodeLocation>;

    /// The function whose entry is exactly `pc` or that contains it, if known.
    fn function_at(&self, pc: u64) -> Option<String>;

    /// The function a goroutine starting at `pc` (its `startpc`) runs, as the `go` statement
    /// names it: when `pc` is a compiler-generated wrapper (Go wraps `go f(x)` in one), the
    /// function the wrapper calls. Defaults to [`function_at`](Self::function_at).
    fn start_function(&self, pc: u64) -> Option<String> {
        self.function_at(pc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_pauses_are_the_newest_of_the_ring_and_the_rest_are_missed() {
        let gc = GcState {
            cycles: 10,
            recent_pauses_ns: vec![1, 2, 3, 4],
            ..GcState::default()
        };
        assert_eq!(gc.pauses_since(8), Some((&[3u64, 4][..], 0)));
        assert_eq!(gc.pauses_since(10), Some((&[][..], 0)));
        assert_eq!(gc.pauses_since(4), Some((&[1u64, 2, 3, 4][..], 2)));
        assert_eq!(gc.pauses_since(11), None);
    }

    #[test]
    fn activities_name_the_wait_reason_of_waiting_goroutines_only() {
        let snapshot = GoroutineSnapshot {
            wait_reasons: vec![String::new(), "chan receive".into()],
            ..GoroutineSnapshot::default()
        };
        let record = |state, wait_reason| GoroutineRecord {
            goid: 1,
            state,
            wait_reason,
            wait_since_ns: 0,
            creation_pc: 0,
            start_pc: 0,
            stack: None,
            tracking_seq: None,
            labels: 0,
        };
        let waiting = record(GoroutineState::Waiting, 1).activity();
        assert_eq!(snapshot.activity_name(waiting), "chan receive");
        let running = record(GoroutineState::Running, 1).activity();
        assert_eq!(running, (GoroutineState::Running, 0));
        assert_eq!(snapshot.activity_name(running), "running");
        let leaked = record(GoroutineState::Leaked, 1).activity();
        assert_eq!(snapshot.activity_name(leaked), "chan receive");
    }
}
