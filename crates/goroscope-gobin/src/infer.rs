//! Runtime struct offsets for a Go release newer than the built-in tables, read off the binary's
//! own runtime machine code: the runtime functions that read and write each field are found
//! through `.gopclntab` (which stripped binaries keep) and decoded with the same linear pass that
//! locates the runtime globals (`locate/decode.rs`).
//!
//! Derived (each rule in `infer/*_rules.rs` names its function and the Go statement it relies on):
//! every `runtime.g` field goroscope reads (size, stack bounds, `sched.{sp,pc,bp}`,
//! `syscall{sp,pc}`, `atomicstatus`, `goid`, `waitsince`, `waitreason`, `gopc`, `startpc`,
//! `parentGoid` from Go 1.21, `trackingSeq`, `labels`), every `runtime.p` field (`id`, `status`,
//! `runqhead`, `runqtail`, `runnext`), `schedt.{npidle,nmspinning,runqsize}`,
//! `mstats.{numgc,pause_ns,pause_total_ns,last_gc_unix}` and
//! `gcControllerState.{heapLive,heapMarked,gcPercentHeapGoal}`.
//!
//! Borrowed from the base layout (the nearest older table line): `schedt.goidgen` (the other
//! schedt offsets are measured from it, so reads stay right even if it moved),
//! `memoryLimitHeapGoal` (not a field in any release so far), and any field whose rule finds
//! nothing or more than one candidate — [`InferredLayout::fields`] says which and why — except
//! `g.labels`, which no live-process invariant checks: it is left unknown instead. The
//! `mstats` offsets assume `heapStats` is mstats' first field, as it is in every release so far.
//!
//! Nothing here is trusted on its own: `goroscope-goprocess` checks an inferred layout against the
//! live process's invariants before reporting anything.

mod g_rules;
mod gc_rules;
mod sched_rules;
mod steps;

use crate::elf::ElfFile;
use crate::locate::{FunctionLookup, Functions};
use crate::offsets::{OffsetSource, RuntimeOffsets};

/// How one field's offset was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldOrigin {
    /// Read off the named runtime function.
    Derived {
        /// The runtime function whose code gave the offset.
        from: &'static str,
    },
    /// Taken from the base layout.
    Borrowed {
        /// Why no rule gave it.
        why: String,
    },
    /// Left unknown (`None`): no rule gave it, and it is a field no live-process check would
    /// catch if a borrowed offset were wrong.
    Unknown {
        /// Why no rule gave it.
        why: String,
    },
}

/// A layout inferred from a binary's code on top of a base layout.
#[derive(Debug, Clone)]
pub struct InferredLayout {
    /// The offsets (source [`OffsetSource::Inferred`]).
    pub offsets: RuntimeOffsets,
    /// Every field, as `struct.field` (e.g. `g.goid`), with where its offset came from.
    pub fields: Vec<(&'static str, FieldOrigin)>,
}

impl InferredLayout {
    /// The fields read off the code.
    pub fn derived(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields
            .iter()
            .filter(|(_, origin)| matches!(origin, FieldOrigin::Derived { .. }))
            .map(|(name, _)| *name)
    }

    /// The fields left unknown.
    pub fn unknown(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields
            .iter()
            .filter(|(_, origin)| matches!(origin, FieldOrigin::Unknown { .. }))
            .map(|(name, _)| *name)
    }

    /// The fields taken from the base layout.
    pub fn borrowed(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields
            .iter()
            .filter(|(_, origin)| matches!(origin, FieldOrigin::Borrowed { .. }))
            .map(|(name, _)| *name)
    }
}

/// Infers the runtime layout of `elf` from its code (functions found through `functions`,
/// normally its `.gopclntab`), starting from `base`, the layout of the nearest older release line
/// (`base_line`). Never fails: what cannot be derived is borrowed from `base`, and the result's
/// `fields` say so.
pub fn infer_layout(
    elf: &ElfFile,
    functions: &dyn FunctionLookup,
    base: &RuntimeOffsets,
    base_line: (u32, u32),
) -> InferredLayout {
    let mut code = Functions::new(elf, functions);
    let mut out = Recorder::default();
    let mut offsets = *base;
    offsets.source = OffsetSource::Inferred {
        major: base_line.0,
        minor: base_line.1,
    };
    infer_g(&mut code, &mut out, &mut offsets);
    infer_p_and_sched(&mut code, &mut out, &mut offsets);
    infer_gc(&mut code, &mut out, &mut offsets);
    InferredLayout {
        offsets,
        fields: out.fields,
    }
}

/// Collects each field's origin while the offsets are filled in.
#[derive(Default)]
struct Recorder {
    fields: Vec<(&'static str, FieldOrigin)>,
}

impl Recorder {
    /// Records `found` for field `name` (derived from function `from`) and returns the offset to
    /// use: the derived one, or `borrowed`.
    fn take(
        &mut self,
        name: &'static str,
        from: &'static str,
        found: Result<u64, String>,
        borrowed: u64,
    ) -> u64 {
        self.optional(name, from, found, Some(borrowed))
            .unwrap_or(borrowed)
    }

    /// Like [`Recorder::take`] for a field that may be absent (`None` in the base layout).
    fn optional(
        &mut self,
        name: &'static str,
        from: &'static str,
        found: Result<u64, String>,
        borrowed: Option<u64>,
    ) -> Option<u64> {
        match found {
            Ok(offset) => {
                self.fields.push((name, FieldOrigin::Derived { from }));
                Some(offset)
            }
            Err(why) => {
                self.fields.push((
                    name,
                    FieldOrigin::Borrowed {
                        why: format!("{from}: {why}"),
                    },
                ));
                borrowed
            }
        }
    }

    /// Records `found` for field `name` (derived from function `from`) and returns it, or `None`
    /// (recorded as unknown) when the rule found nothing: for fields nothing checks on the live
    /// process, where a borrowed offset could be wrong unnoticed.
    fn unless_unknown(
        &mut self,
        name: &'static str,
        from: &'static str,
        found: Result<u64, String>,
    ) -> Option<u64> {
        match found {
            Ok(offset) => {
                self.fields.push((name, FieldOrigin::Derived { from }));
                Some(offset)
            }
            Err(why) => {
                self.fields.push((
                    name,
                    FieldOrigin::Unknown {
                        why: format!("{from}: {why}"),
                    },
                ));
                None
            }
        }
    }

    /// Records a field no rule derives.
    fn borrow(&mut self, name: &'static str, why: &str) {
        self.fields.push((
            name,
            FieldOrigin::Borrowed {
                why: why.to_string(),
            },
        ));
    }
}

/// Splits a result of several offsets into one result per offset.
fn each<const N: usize>(found: Result<[u64; N], String>) -> [Result<u64, String>; N] {
    match found {
        Ok(values) => values.map(Ok),
        Err(why) => std::array::from_fn(|_| Err(why.clone())),
    }
}

fn infer_g(code: &mut Functions, out: &mut Recorder, offsets: &mut RuntimeOffsets) {
    let g = &mut offsets.g;
    g.size = out.take("g.size", "runtime.malg", g_rules::size(code), g.size);
    let [lo, hi] = each(g_rules::stack_bounds(code).map(|(lo, hi)| [lo, hi]));
    g.stack_lo = out.take("g.stack_lo", "runtime.malg.func1", lo, g.stack_lo);
    g.stack_hi = out.take("g.stack_hi", "runtime.malg.func1", hi, g.stack_hi);
    let [sp, pc, bp] = each(g_rules::sched(code).map(|(sp, pc, bp)| [sp, pc, bp]));
    const MCALL: &str = "runtime.mcall and gogo";
    g.sched_sp = out.take("g.sched_sp", MCALL, sp, g.sched_sp);
    g.sched_pc = out.take("g.sched_pc", MCALL, pc, g.sched_pc);
    g.sched_bp = out.take("g.sched_bp", MCALL, bp, g.sched_bp);
    let [syscall_sp, syscall_pc] =
        each(g_rules::syscall_frame(code, g.sched_sp, g.sched_pc).map(|(sp, pc)| [sp, pc]));
    const SYSCALL: &str = "runtime.reentersyscall";
    g.syscallsp = out.take("g.syscallsp", SYSCALL, syscall_sp, g.syscallsp);
    g.syscallpc = out.take("g.syscallpc", SYSCALL, syscall_pc, g.syscallpc);
    let status = g_rules::atomicstatus(code);
    g.atomicstatus = out.take(
        "g.atomicstatus",
        "runtime.casgstatus",
        status,
        g.atomicstatus,
    );

    const NEWPROC: &str = "runtime.newproc1";
    let (gopc, startpc, goid, parent, tracking, labels) = match g_rules::newproc(code) {
        Ok(found) => (
            Ok(found.gopc),
            Ok(found.startpc),
            found.goid,
            found.parent_goid,
            found.tracking_seq,
            found.labels,
        ),
        Err(why) => (
            Err(why.clone()),
            Err(why.clone()),
            Err(why.clone()),
            Err(why.clone()),
            Err(why.clone()),
            Err(why),
        ),
    };
    g.goid = out.take("g.goid", NEWPROC, goid, g.goid);
    let waitsince = g_rules::waitsince(code);
    g.waitsince = out.take("g.waitsince", "runtime.markroot", waitsince, g.waitsince);
    let reason = g_rules::waitreason(code);
    g.waitreason = out.take("g.waitreason", "runtime.gopark", reason, g.waitreason);
    g.gopc = out.take("g.gopc", NEWPROC, gopc, g.gopc);
    g.startpc = out.take("g.startpc", NEWPROC, startpc, g.startpc);
    g.parent_goid = out.optional("g.parent_goid", NEWPROC, parent, g.parent_goid);
    g.tracking_seq = out.optional("g.tracking_seq", NEWPROC, tracking, g.tracking_seq);
    // Cross-checked with runtime_setProfLabel where the binary has it (any program that sets
    // labels does): nothing on the live process would catch a wrong labels offset.
    let (from, labels) = match g_rules::set_prof_label(code) {
        Ok(None) => (NEWPROC, labels),
        Ok(Some(set)) => (
            "runtime.newproc1 and runtime_setProfLabel",
            labels.and_then(|copied| {
                if copied == set {
                    Ok(copied)
                } else {
                    Err(format!(
                        "the inherited labels are at {copied} but runtime_setProfLabel stores at {set}"
                    ))
                }
            }),
        ),
        Err(why) => (
            NEWPROC,
            Err(format!("runtime_setProfLabel does not confirm it: {why}")),
        ),
    };
    g.labels = out.unless_unknown("g.labels", from, labels);
}

fn infer_p_and_sched(code: &mut Functions, out: &mut Recorder, offsets: &mut RuntimeOffsets) {
    let p = &mut offsets.p;
    p.id = out.take("p.id", "runtime.(*p).init", sched_rules::p_id(code), p.id);
    let status = sched_rules::p_status(code);
    p.status = out.take("p.status", "runtime.(*p).init", status, p.status);
    let [head, tail, next] =
        each(sched_rules::run_queue(code).map(|(head, tail, next)| [head, tail, next]));
    p.runqhead = out.take("p.runqhead", "runtime.runqput", head, p.runqhead);
    p.runqtail = out.take("p.runqtail", "runtime.runqput", tail, p.runqtail);
    p.runnext = out.take("p.runnext", "runtime.runqput", next, p.runnext);

    let sched = &mut offsets.sched;
    out.borrow(
        "sched.goidgen",
        "schedt's first field, the anchor the other schedt offsets are measured from",
    );
    let base = sched_rules::sched_base(code, sched.goidgen);
    let with_base = |rule: fn(&mut Functions, u64) -> Result<u64, String>, code: &mut Functions| {
        base.clone()
            .map_err(|why| format!("runtime.sched not found ({why})"))
            .and_then(|base| rule(code, base))
    };
    let npidle = with_base(sched_rules::npidle, code);
    sched.npidle = out.take("sched.npidle", "runtime.pidleput", npidle, sched.npidle);
    let spinning = with_base(sched_rules::nmspinning, code);
    sched.nmspinning = out.take(
        "sched.nmspinning",
        "runtime.wakep",
        spinning,
        sched.nmspinning,
    );
    let runqsize = with_base(sched_rules::runqsize, code);
    sched.runqsize = out.take(
        "sched.runqsize",
        "runtime.goschedImpl",
        runqsize,
        sched.runqsize,
    );
}

fn infer_gc(code: &mut Functions, out: &mut Recorder, offsets: &mut RuntimeOffsets) {
    const TERMINATION: &str = "runtime.gcMarkTermination";
    let record = gc_rules::memstats_base(code)
        .map_err(|why| format!("runtime.memstats not found ({why})"))
        .and_then(|base| gc_rules::pause_record(code, base));
    let (numgc, pauses, last) = match record {
        Ok(record) => (record.numgc, record.pauses, record.last_gc_unix),
        Err(why) => (Err(why.clone()), Err(why.clone()), Err(why)),
    };
    let [pause_ns, pause_total] = each(pauses.map(|(ns, total)| [ns, total]));
    let m = &mut offsets.memstats;
    m.numgc = out.take("memstats.numgc", TERMINATION, numgc, m.numgc);
    m.pause_ns = out.take("memstats.pause_ns", TERMINATION, pause_ns, m.pause_ns);
    m.pause_total_ns = out.optional(
        "memstats.pause_total_ns",
        TERMINATION,
        pause_total,
        m.pause_total_ns,
    );
    m.last_gc_unix = out.optional("memstats.last_gc_unix", TERMINATION, last, m.last_gc_unix);

    const RESET: &str = "runtime.(*gcControllerState).resetLive";
    let reset = gc_rules::reset_live(code)
        .and_then(|(marked, live)| gc_rules::heap_live_agrees(code, live).map(|()| (marked, live)));
    let [marked, live] = each(reset.map(|(marked, live)| [marked, live]));
    let goal = gc_rules::heap_goal(code);
    let c = &mut offsets.gc_controller;
    c.heap_live = out.optional("gc_controller.heap_live", RESET, live, c.heap_live);
    c.heap_marked = out.optional("gc_controller.heap_marked", RESET, marked, c.heap_marked);
    c.heap_goal = out.optional(
        "gc_controller.heap_goal",
        "runtime.(*gcControllerState).heapGoalInternal",
        goal,
        c.heap_goal,
    );
    out.borrow(
        "gc_controller.memory_limit_heap_goal",
        "not a field of gcControllerState in any release so far",
    );
}
