//! An inferred layout is accepted only if it passes the live process's invariants. The newest Go's
//! stripped leaky program is attached with the layout inferred from its code (accepted), then with
//! that layout sabotaged one field at a time, as a wrong rule or a wrong borrowed field would be:
//! each must be refused with `InferredLayoutRejected` naming the invariant that failed. The same
//! wrong offsets under a table source go through the ordinary, weaker checks only.

use std::path::Path;

use goroscope_gobin::infer::infer_layout;
use goroscope_gobin::offsets::{OffsetSource, OffsetTables, RuntimeOffsets};
use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::{ElfFile, GoVersion};
use goroscope_goprocess::{AttachError, GoProcess};
use gotest::{BuildMode, NEWEST_TOOLCHAIN};

/// The layout of `binary` inferred on top of the line before its own.
fn inferred(binary: &Path) -> RuntimeOffsets {
    let elf = ElfFile::open(binary).unwrap_or_else(|e| panic!("{e}"));
    let pclntab = Pclntab::read(&elf).unwrap_or_else(|e| panic!("{e}"));
    let (major, minor) = GoVersion::parse(NEWEST_TOOLCHAIN.version)
        .expect("toolchain versions parse")
        .line();
    let base_line = (major, minor - 1);
    let base = OffsetTables::all()
        .lookup(base_line)
        .expect("the line before the newest");
    infer_layout(&elf, &pclntab, &base, base_line).offsets
}

#[test]
fn wrong_inferred_offsets_are_refused_naming_the_failed_invariant() {
    let binary = gotest::build("leaky", NEWEST_TOOLCHAIN, BuildMode::Stripped);
    let leaky = gotest::Running::start(&binary, &[]);
    let pid = leaky.pid();
    let proc_root = Path::new("/proc");
    let good = inferred(&binary);
    assert!(matches!(good.source, OffsetSource::Inferred { .. }));
    let process = GoProcess::attach_with_offsets(proc_root, pid, good)
        .unwrap_or_else(|e| panic!("the inferred layout is refused: {e}"));
    assert_eq!(process.info().offsets_source, good.source);

    let g = good.g;
    let sabotaged: Vec<(&str, RuntimeOffsets, &str)> = vec![
        (
            "startpc one word off",
            with(good, |o| o.g.startpc += 8),
            "startpc is a function entry",
        ),
        (
            "gopc reading parentGoid",
            with(good, |o| o.g.gopc = g.parent_goid.unwrap_or(g.goid)),
            "gopc inside a function",
        ),
        (
            "sched.sp reading sched.pc",
            with(good, |o| o.g.sched_sp = g.sched_pc),
            "sched.sp within [stack.lo, stack.hi)",
        ),
        (
            "npidle reading goidgen",
            with(good, |o| o.sched.npidle = o.sched.goidgen),
            "plausible scheduler values",
        ),
        (
            "pause_ns reading last_gc_unix",
            with(good, |o| {
                o.memstats.pause_ns = o.memstats.last_gc_unix.unwrap_or(o.memstats.numgc)
            }),
            "plausible GC values",
        ),
        (
            "pause_total_ns reading pause_ns[0]",
            with(good, |o| {
                o.memstats.pause_total_ns = Some(o.memstats.pause_ns)
            }),
            "plausible GC values",
        ),
    ];
    for (what, offsets, check) in sabotaged {
        match GoProcess::attach_with_offsets(proc_root, pid, offsets) {
            Err(error @ AttachError::InferredLayoutRejected { .. }) => {
                let message = error.to_string();
                eprintln!("{what}: refused: {message}");
                assert!(message.contains(check), "{what}: {message}");
                assert!(message.contains("inferred (go1."), "{what}: {message}");
                assert!(
                    message.contains(NEWEST_TOOLCHAIN.version),
                    "{what}: {message}"
                );
                assert!(message.contains("without -ldflags=-w"), "{what}: {message}");
            }
            Err(other) => panic!("{what}: refused for another reason: {other}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }

    // The same wrong startpc from a table goes through the ordinary checks only.
    let table = with(good, |o| {
        o.g.startpc += 8;
        o.source = OffsetSource::Table {
            major: 1,
            minor: 99,
        };
    });
    let process = GoProcess::attach_with_offsets(proc_root, pid, table);
    assert!(process.is_ok(), "{:?}", process.err());
}

fn with(offsets: RuntimeOffsets, change: impl FnOnce(&mut RuntimeOffsets)) -> RuntimeOffsets {
    let mut changed = offsets;
    change(&mut changed);
    changed
}
