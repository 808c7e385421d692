//! Runtime struct offsets: DWARF reading, the per-version tables (checked against the DWARF of every
//! supported toolchain, which is what keeps the generated table honest) and the fallback from one
//! to the other for stripped binaries. Inference from runtime code is tested in `infer.rs`.

use goroscope_gobin::dwarf::GoTypes;
use goroscope_gobin::offsets::{table_lines, OffsetSource, OffsetTables, RuntimeOffsets};
use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::{ElfFile, GoVersion, GobinError};
use gotest::{BuildMode, Toolchain, NEWEST_TOOLCHAIN, TOOLCHAINS};

fn open(toolchain: Toolchain, mode: BuildMode) -> ElfFile {
    let path = gotest::build("sample", toolchain, mode);
    ElfFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn version(toolchain: Toolchain) -> GoVersion {
    GoVersion::parse(toolchain.version).expect("toolchain versions parse")
}

fn dwarf_offsets(elf: &ElfFile) -> RuntimeOffsets {
    let types = GoTypes::load(elf)
        .unwrap_or_else(|e| panic!("{}: {e}", elf.path().display()))
        .unwrap_or_else(|| panic!("{} has no DWARF", elf.path().display()));
    RuntimeOffsets::from_dwarf(&types)
        .unwrap_or_else(|| panic!("{}: DWARF lacks a required field", elf.path().display()))
}

/// `RuntimeOffsets::for_binary` with the binary's own function table.
fn for_binary(elf: &ElfFile, version: &GoVersion) -> Result<RuntimeOffsets, GobinError> {
    let pclntab = Pclntab::read(elf).unwrap_or_else(|e| panic!("{e}"));
    RuntimeOffsets::for_binary(elf, version, &pclntab)
}

fn table_source(version: &GoVersion) -> OffsetSource {
    OffsetSource::Table {
        major: version.major,
        minor: version.minor,
    }
}

#[test]
fn table_matches_the_dwarf_of_every_toolchain() {
    for &toolchain in TOOLCHAINS {
        let version = version(toolchain);
        let elf = open(toolchain, BuildMode::Default);
        let from_dwarf = dwarf_offsets(&elf);
        assert_eq!(from_dwarf.source, OffsetSource::Dwarf);
        let from_table = RuntimeOffsets::from_table(&version)
            .unwrap_or_else(|| panic!("no table entry for {version}"));
        assert_eq!(from_table.source, table_source(&version));
        assert_eq!(
            from_dwarf.with_source(from_table.source),
            from_table,
            "{version}: the table is stale; run scripts/gen-go-offsets.sh"
        );
        let chosen = for_binary(&elf, &version).unwrap();
        assert_eq!(chosen, from_dwarf, "{version}: DWARF is preferred");
    }
}

#[test]
fn go119_offsets_match_known_layout() {
    let toolchain = TOOLCHAINS[0];
    assert_eq!(toolchain.version, "go1.19.8");
    let offsets = dwarf_offsets(&open(toolchain, BuildMode::Default));
    let g = offsets.g;
    assert_eq!((g.stack_lo, g.stack_hi), (0, 8));
    assert_eq!((g.sched_sp, g.sched_pc, g.sched_bp), (56, 64, 104));
    assert_eq!((g.atomicstatus, g.goid), (144, 152));
    assert_eq!((g.waitsince, g.waitreason), (168, 176));
    assert_eq!((g.gopc, g.startpc), (296, 312));
    assert_eq!(g.parent_goid, None, "parentGoid arrived in Go 1.21");
    assert_eq!(g.labels, Some(360));
}

#[test]
fn nested_fields_and_sizes_resolve_through_typedefs() {
    let elf = open(TOOLCHAINS[TOOLCHAINS.len() - 1], BuildMode::Default);
    let types = GoTypes::load(&elf).unwrap().unwrap();
    let sched = types.field_offset("runtime.g", "sched").unwrap();
    assert_eq!(types.field_offset("runtime.g", "sched.sp"), Some(sched));
    assert_eq!(types.field_offset("runtime.g", "sched.pc"), Some(sched + 8));
    // Go 1.25 moved the global run queue's length into the queue.
    let runq = types.field_offset("runtime.schedt", "runq").unwrap();
    assert_eq!(
        types.field_offset("runtime.schedt", "runq.size"),
        Some(runq + 16)
    );
    assert_eq!(types.field_offset("runtime.schedt", "runqsize"), None);
    assert!(types.struct_size("runtime.g").unwrap() > 400);
    assert_eq!(types.field_offset("runtime.g", "nosuchfield"), None);
    assert_eq!(types.field_offset("runtime.g", "goid.deeper"), None);
    assert_eq!(types.field_offset("runtime.nosuchtype", "x"), None);
    assert_eq!(types.struct_size("runtime.nosuchtype"), None);
}

#[test]
fn stripped_builds_fall_back_to_the_table() {
    for &toolchain in TOOLCHAINS {
        let version = version(toolchain);
        let elf = open(toolchain, BuildMode::Stripped);
        assert!(
            GoTypes::load(&elf).unwrap().is_none(),
            "{version}: stripped build has DWARF"
        );
        let offsets = for_binary(&elf, &version).unwrap();
        assert_eq!(offsets.source, table_source(&version));
        assert_eq!(Some(offsets), RuntimeOffsets::from_table(&version));
    }
}

#[test]
fn other_build_modes_share_the_default_layout() {
    let toolchain = TOOLCHAINS[TOOLCHAINS.len() - 1];
    let default = dwarf_offsets(&open(toolchain, BuildMode::Default));
    for mode in [BuildMode::Pie, BuildMode::Static, BuildMode::Cgo] {
        assert_eq!(
            dwarf_offsets(&open(toolchain, mode)),
            default,
            "{}",
            mode.name()
        );
    }
}

/// Without DWARF, a release whose table line is hidden is refused by name unless it is newer than
/// every visible line (then it is inferred, see `infer.rs`); with DWARF, the tables do not matter.
#[test]
fn a_hidden_line_without_dwarf_is_refused_by_name() {
    let toolchain = TOOLCHAINS[TOOLCHAINS.len() - 3];
    let version = version(toolchain);
    let stripped = open(toolchain, BuildMode::Stripped);
    let pclntab = Pclntab::read(&stripped).unwrap_or_else(|e| panic!("{e}"));
    let tables = OffsetTables::all().hiding(version.line());
    match tables.for_binary(&stripped, &version, &pclntab) {
        Err(error @ GobinError::NoOffsets { .. }) => {
            let GobinError::NoOffsets {
                version: named,
                known,
                ..
            } = &error
            else {
                unreachable!()
            };
            assert_eq!(named, toolchain.version);
            let line = format!("go{}.{}", version.major, version.minor);
            assert!(known.contains(&line), "{known} names the hidden {line}");
            let message = error.to_string();
            assert!(message.contains(toolchain.version), "{message}");
            assert!(message.contains("no runtime struct offsets"), "{message}");
            assert!(message.contains("without -ldflags=-w"), "{message}");
        }
        other => panic!("expected NoOffsets, got {other:?}"),
    }

    let newest = version_of_newest();
    let default = open(NEWEST_TOOLCHAIN, BuildMode::Default);
    let default_pclntab = Pclntab::read(&default).unwrap_or_else(|e| panic!("{e}"));
    let offsets = OffsetTables::hiding_spec("all")
        .for_binary(&default, &newest, &default_pclntab)
        .unwrap();
    assert_eq!(offsets.source, OffsetSource::Dwarf);
}

fn version_of_newest() -> GoVersion {
    version(NEWEST_TOOLCHAIN)
}

#[test]
fn table_covers_go119_to_go127() {
    let expected: Vec<(u32, u32)> = (19..=27).map(|minor| (1, minor)).collect();
    assert_eq!(table_lines(), expected.as_slice());
    for &(major, minor) in table_lines() {
        let version = GoVersion::parse(&format!("go{major}.{minor}.0")).unwrap();
        assert!(RuntimeOffsets::from_table(&version).is_some());
    }
    for missing in ["go1.18.10", "go1.28.0", "go2.0.0"] {
        let version = GoVersion::parse(missing).unwrap();
        assert_eq!(RuntimeOffsets::from_table(&version), None, "{missing}");
    }
}

#[test]
fn binaries_without_dwarf_sections_load_as_none() {
    let elf = open(TOOLCHAINS[0], BuildMode::Stripped);
    assert!(elf.section(".debug_info").is_none() && elf.section(".zdebug_info").is_none());
    assert!(GoTypes::load(&elf).unwrap().is_none());
}

#[test]
fn corrupt_dwarf_is_an_error_and_the_table_stands_in() {
    let toolchain = TOOLCHAINS[TOOLCHAINS.len() - 1];
    let version = version(toolchain);
    let elf = open(toolchain, BuildMode::Default);
    let (offset, size) = elf
        .section(".debug_info")
        .and_then(|section| section.file_range)
        .expect(".debug_info has file bytes");
    let mut bytes = elf.bytes().to_vec();
    // Keep the compression header, scramble the compressed stream.
    let start = usize::try_from(offset).unwrap() + 64;
    let end = usize::try_from(offset + size).unwrap() - 64;
    for (index, byte) in bytes[start..end].iter_mut().enumerate() {
        *byte ^= (index as u8).wrapping_mul(31) | 1;
    }
    let corrupt = ElfFile::from_bytes(bytes, elf.path()).unwrap();
    assert!(GoTypes::load(&corrupt).is_err());
    let offsets = for_binary(&corrupt, &version).unwrap();
    assert_eq!(offsets.source, table_source(&version));
}
