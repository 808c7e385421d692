//! Inferring runtime struct offsets from a binary's code. For every toolchain from go1.20 to the
//! newest, the STRIPPED build is inferred with its own release line hidden (base = the previous
//! line) and compared field by field with the DWARF of its default build: every field the
//! inference claims to have derived must equal DWARF. Layouts really move between these lines
//! (`atomicstatus`/`goid` in 1.23 and back in 1.25, `gopc`/`startpc`/`parentGoid`, the run queue,
//! schedt, mstats and gcController fields), so a rule that only echoed its base would fail here.

use std::time::{Duration, Instant};

use goroscope_gobin::dwarf::GoTypes;
use goroscope_gobin::infer::{infer_layout, FieldOrigin, InferredLayout};
use goroscope_gobin::offsets::{OffsetSource, OffsetTables, RuntimeOffsets};
use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::{ElfFile, GoVersion, GobinError};
use gotest::{BuildMode, Toolchain, TOOLCHAINS};

fn open(toolchain: Toolchain, mode: BuildMode) -> ElfFile {
    open_program("sample", toolchain, mode)
}

fn open_program(program: &str, toolchain: Toolchain, mode: BuildMode) -> ElfFile {
    let path = gotest::build(program, toolchain, mode);
    ElfFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn line(toolchain: Toolchain) -> (u32, u32) {
    GoVersion::parse(toolchain.version)
        .expect("toolchain versions parse")
        .line()
}

fn dwarf_offsets(elf: &ElfFile) -> RuntimeOffsets {
    let types = GoTypes::load(elf)
        .unwrap_or_else(|e| panic!("{}: {e}", elf.path().display()))
        .unwrap_or_else(|| panic!("{} has no DWARF", elf.path().display()));
    RuntimeOffsets::from_dwarf(&types)
        .unwrap_or_else(|| panic!("{}: DWARF lacks a required field", elf.path().display()))
}

/// Infers `toolchain`'s stripped build on top of the previous line's table.
fn infer_stripped(toolchain: Toolchain, mode: BuildMode) -> (InferredLayout, (u32, u32), Duration) {
    infer_program("sample", toolchain, mode)
}

/// Infers `program` built by `toolchain` in `mode` on top of the previous line's table.
fn infer_program(
    program: &str,
    toolchain: Toolchain,
    mode: BuildMode,
) -> (InferredLayout, (u32, u32), Duration) {
    let (major, minor) = line(toolchain);
    let base_line = (major, minor - 1);
    let base = OffsetTables::all()
        .hiding((major, minor))
        .lookup(base_line)
        .unwrap_or_else(|| panic!("no table line {base_line:?}"));
    let elf = open_program(program, toolchain, mode);
    let pclntab = Pclntab::read(&elf).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let layout = infer_layout(&elf, &pclntab, &base, base_line);
    (layout, base_line, started.elapsed())
}

/// Compares every derived field with DWARF; returns the mismatches, and prints the comparison.
fn compare(what: &str, layout: &InferredLayout, truth: &RuntimeOffsets) -> Vec<String> {
    let truth = truth.named_fields();
    let inferred = layout.offsets.named_fields();
    let mut wrong = Vec::new();
    let mut derived = Vec::new();
    let mut borrowed = Vec::new();
    for (name, origin) in &layout.fields {
        let got = inferred.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let want = truth.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let (got, want) = (got.flatten(), want.flatten());
        match origin {
            FieldOrigin::Derived { from } => {
                derived.push(*name);
                if got != want {
                    wrong.push(format!(
                        "{what}: {name} derived from {from} as {got:?}, DWARF says {want:?}"
                    ));
                }
            }
            FieldOrigin::Unknown { why } => {
                borrowed.push(format!("{name} = None (left unknown, not borrowed; {why})"));
            }
            FieldOrigin::Borrowed { why } => {
                let verdict = if got == want {
                    "same as DWARF"
                } else {
                    "DIFFERS from DWARF"
                };
                borrowed.push(format!("{name} = {got:?} ({verdict}; {why})"));
            }
        }
    }
    eprintln!(
        "{what}: {} derived == DWARF: {}",
        derived.len(),
        derived.join(" ")
    );
    for line in &borrowed {
        eprintln!("{what}:   borrowed {line}");
    }
    wrong
}

#[test]
fn every_field_listed_once() {
    let toolchain = TOOLCHAINS[TOOLCHAINS.len() - 1];
    let (layout, _, _) = infer_stripped(toolchain, BuildMode::Stripped);
    let mut names: Vec<&str> = layout.fields.iter().map(|(name, _)| *name).collect();
    let mut expected: Vec<&str> = layout
        .offsets
        .named_fields()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected);
}

#[test]
fn inferred_from_stripped_builds_equals_dwarf_for_go1_20_to_the_newest() {
    let mut wrong = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut always_derived: Option<Vec<&str>> = None;
    for &toolchain in TOOLCHAINS.iter().filter(|t| line(**t) >= (1, 20)) {
        let truth = dwarf_offsets(&open(toolchain, BuildMode::Default));
        let (layout, base_line, elapsed) = infer_stripped(toolchain, BuildMode::Stripped);
        slowest = slowest.max(elapsed);
        let what = format!(
            "{} (base go1.{}, {elapsed:?})",
            toolchain.version, base_line.1
        );
        assert_eq!(
            layout.offsets.source,
            OffsetSource::Inferred {
                major: base_line.0,
                minor: base_line.1
            }
        );
        assert!(
            layout.offsets.is_plausible(),
            "{what}: {:?}",
            layout.offsets
        );
        wrong.extend(compare(&what, &layout, &truth));
        let derived: Vec<&str> = layout.derived().collect();
        always_derived = Some(match always_derived {
            None => derived,
            Some(before) => before.into_iter().filter(|n| derived.contains(n)).collect(),
        });
    }
    eprintln!("slowest inference: {slowest:?}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What every release derives (parentGoid exists only from 1.21; goidgen and
    // memoryLimitHeapGoal are borrowed by design).
    let always_derived = always_derived.unwrap_or_default();
    let all: Vec<&str> = RuntimeOffsets::from_table(&GoVersion::parse("go1.27.0").unwrap())
        .unwrap()
        .named_fields()
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| {
            ![
                "g.parent_goid",
                "sched.goidgen",
                "gc_controller.memory_limit_heap_goal",
            ]
            .contains(name)
        })
        .collect();
    let missing: Vec<&&str> = all.iter().filter(|n| !always_derived.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "not derived for every release: {missing:?}"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "inference took {slowest:?}"
    );
}

/// `g.labels`, derived from `runtime.newproc1` (the copy of the creator's labels), is confirmed
/// by `runtime_setProfLabel` in a program that sets labels (and so links it): for every release
/// from 1.20, stripped, it equals DWARF and names both functions.
#[test]
fn the_labels_offset_is_confirmed_where_labels_are_set() {
    for &toolchain in TOOLCHAINS.iter().filter(|t| line(**t) >= (1, 20)) {
        let truth = dwarf_offsets(&open_program("labels", toolchain, BuildMode::Default));
        let (layout, _, _) = infer_program("labels", toolchain, BuildMode::Stripped);
        let what = toolchain.version;
        assert_eq!(layout.offsets.g.labels, truth.g.labels, "{what}");
        assert!(truth.g.labels.is_some(), "{what}");
        let origin = layout
            .fields
            .iter()
            .find(|(name, _)| *name == "g.labels")
            .map(|(_, origin)| origin.clone());
        assert_eq!(
            origin,
            Some(FieldOrigin::Derived {
                from: "runtime.newproc1 and runtime_setProfLabel"
            }),
            "{what}"
        );
    }
}

/// The other build modes of the newest toolchain infer the same layout as its stripped build.
#[test]
fn every_build_mode_of_the_newest_toolchain_infers_its_dwarf() {
    let toolchain = TOOLCHAINS[TOOLCHAINS.len() - 1];
    let truth = dwarf_offsets(&open(toolchain, BuildMode::Default));
    let mut wrong = Vec::new();
    for &mode in gotest::BUILD_MODES {
        let (layout, _, _) = infer_stripped(toolchain, mode);
        let what = format!("{} {}", toolchain.version, mode.name());
        wrong.extend(compare(&what, &layout, &truth));
        assert_eq!(
            layout.borrowed().collect::<Vec<_>>(),
            ["sched.goidgen", "gc_controller.memory_limit_heap_goal"],
            "{what}"
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Through `for_binary`: with the newest line hidden, a stripped newest build is inferred on top of
/// the line before; with every line hidden there is nothing to infer from and it is refused by
/// name; an older release whose line is hidden is not inferred (only newer ones are).
#[test]
fn for_binary_infers_only_past_the_newest_visible_line() {
    let toolchain = TOOLCHAINS[TOOLCHAINS.len() - 1];
    let (major, minor) = line(toolchain);
    let version = GoVersion::parse(toolchain.version).unwrap();
    let stripped = open(toolchain, BuildMode::Stripped);
    let pclntab = Pclntab::read(&stripped).unwrap_or_else(|e| panic!("{e}"));

    let tables = OffsetTables::all();
    let offsets = tables.for_binary(&stripped, &version, &pclntab).unwrap();
    assert_eq!(offsets.source, OffsetSource::Table { major, minor });

    let hidden = OffsetTables::all().hiding((major, minor));
    let offsets = hidden.for_binary(&stripped, &version, &pclntab).unwrap();
    assert_eq!(
        offsets.source,
        OffsetSource::Inferred {
            major,
            minor: minor - 1
        }
    );
    assert_eq!(
        offsets.source.describe(),
        format!("inferred (go{major}.{} layout + runtime code)", minor - 1)
    );
    let truth = dwarf_offsets(&open(toolchain, BuildMode::Default));
    assert_eq!(offsets.with_source(OffsetSource::Dwarf), truth);

    match OffsetTables::hiding_spec("all").for_binary(&stripped, &version, &pclntab) {
        Err(error @ GobinError::NoOffsets { .. }) => {
            let message = error.to_string();
            assert!(message.contains(toolchain.version), "{message}");
            assert!(message.contains("no runtime struct offsets"), "{message}");
        }
        other => panic!("expected NoOffsets, got {other:?}"),
    }

    let older = TOOLCHAINS[TOOLCHAINS.len() - 3];
    let older_version = GoVersion::parse(older.version).unwrap();
    let older_stripped = open(older, BuildMode::Stripped);
    let older_pclntab = Pclntab::read(&older_stripped).unwrap_or_else(|e| panic!("{e}"));
    let result = OffsetTables::all().hiding(line(older)).for_binary(
        &older_stripped,
        &older_version,
        &older_pclntab,
    );
    assert!(
        matches!(result, Err(GobinError::NoOffsets { .. })),
        "{result:?}"
    );

    // With DWARF, nothing is hidden that matters.
    let default = open(toolchain, BuildMode::Default);
    let default_pclntab = Pclntab::read(&default).unwrap_or_else(|e| panic!("{e}"));
    let offsets = OffsetTables::hiding_spec("all")
        .for_binary(&default, &version, &default_pclntab)
        .unwrap();
    assert_eq!(offsets.source, OffsetSource::Dwarf);
}
