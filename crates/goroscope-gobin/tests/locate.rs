//! Runtime globals: `.symtab` lookups, and decoding runtime functions for stripped binaries. The
//! decoding rules are checked against the symbol table of every toolchain in every build mode that
//! keeps one, and stripped builds are checked against the unstripped build of the same toolchain
//! (their variables sit at the same offsets within the same sections).

use std::time::{Duration, Instant};

use goroscope_gobin::infer::infer_layout;
use goroscope_gobin::locate::{
    decode_globals, from_symtab, locate_globals, FunctionLookup, GlobalsSource, RuntimeGlobals,
};
use goroscope_gobin::offsets::{OffsetTables, RuntimeOffsets};
use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::symtab::SymbolTable;
use goroscope_gobin::{ElfFile, GoVersion};
use gotest::{BuildMode, Toolchain, NEWEST_TOOLCHAIN, TOOLCHAINS};

/// Build modes whose binaries keep `.symtab`.
const WITH_SYMTAB: &[BuildMode] = &[
    BuildMode::Default,
    BuildMode::Pie,
    BuildMode::Static,
    BuildMode::Cgo,
];

fn open(toolchain: Toolchain, mode: BuildMode) -> ElfFile {
    let path = gotest::build("sample", toolchain, mode);
    ElfFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn offsets(elf: &ElfFile, toolchain: Toolchain) -> RuntimeOffsets {
    let version = GoVersion::parse(toolchain.version).expect("toolchain versions parse");
    let pclntab = Pclntab::read(elf).unwrap_or_else(|e| panic!("{e}"));
    RuntimeOffsets::for_binary(elf, &version, &pclntab).unwrap_or_else(|e| panic!("{e}"))
}

fn decode_timed(
    elf: &ElfFile,
    functions: &dyn FunctionLookup,
    offsets: &RuntimeOffsets,
) -> (RuntimeGlobals, Duration) {
    let started = Instant::now();
    let globals = decode_globals(elf, functions, offsets).unwrap_or_else(|e| panic!("{e}"));
    (globals, started.elapsed())
}

/// The `(name, decoded, expected)` addresses of every global.
fn pairs(decoded: &RuntimeGlobals, expected: &RuntimeGlobals) -> Vec<(&'static str, u64, u64)> {
    vec![
        ("runtime.allgs", decoded.allgs, expected.allgs),
        ("runtime.allglen", decoded.allglen, expected.allglen),
        ("runtime.sched", decoded.sched, expected.sched),
        ("runtime.allp", decoded.allp, expected.allp),
        (
            "runtime.waitReasonStrings",
            decoded.wait_reason_strings,
            expected.wait_reason_strings,
        ),
        (
            "len(runtime.waitReasonStrings)",
            decoded.wait_reason_count,
            expected.wait_reason_count,
        ),
    ]
}

fn assert_same(what: &str, decoded: &RuntimeGlobals, expected: &RuntimeGlobals) {
    for (name, got, want) in pairs(decoded, expected) {
        assert_eq!(
            got, want,
            "{what}: decoded {name} {got:#x}, expected {want:#x}"
        );
    }
    assert_eq!(
        decoded.memstats, expected.memstats,
        "{what}: runtime.memstats ({:?})",
        decoded.missing
    );
    assert_eq!(
        decoded.gc_controller, expected.gc_controller,
        "{what}: runtime.gcController ({:?})",
        decoded.missing
    );
    assert!(decoded.missing.is_empty(), "{what}: {:?}", decoded.missing);
}

#[test]
fn decoding_finds_the_symtab_addresses_for_every_toolchain_and_mode() {
    let mut slowest = Duration::ZERO;
    for &toolchain in TOOLCHAINS {
        for &mode in WITH_SYMTAB {
            let what = format!("{} {}", toolchain.version, mode.name());
            let elf = open(toolchain, mode);
            let symbols = SymbolTable::read(&elf).unwrap_or_else(|| panic!("{what}: no .symtab"));
            let expected = from_symtab(&symbols)
                .unwrap_or_else(|| panic!("{what}: .symtab lacks a runtime global"));
            assert_eq!(expected.source, GlobalsSource::Symtab);
            let offsets = offsets(&elf, toolchain);

            let (decoded, elapsed) = decode_timed(&elf, &symbols, &offsets);
            assert_eq!(decoded.source, GlobalsSource::Decoded);
            assert_same(&what, &decoded, &expected);
            slowest = slowest.max(elapsed);

            // The same through the function table stripped binaries have to use.
            let pclntab = Pclntab::read(&elf).unwrap_or_else(|e| panic!("{e}"));
            let (through_pclntab, _) = decode_timed(&elf, &pclntab, &offsets);
            assert_same(
                &format!("{what} via .gopclntab"),
                &through_pclntab,
                &expected,
            );

            // With a symbol table, locate_globals just looks the symbols up.
            let located =
                locate_globals(&elf, &pclntab, &offsets).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(located, expected, "{what}");
        }
    }
    eprintln!("slowest decode_globals: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "decoding took {slowest:?}"
    );
}

/// The address `address` of the unstripped build, moved to the stripped build: same offset within
/// the same section (the linker lays out the same variables; only section starts move).
fn moved(unstripped: &ElfFile, stripped: &ElfFile, address: u64) -> Option<u64> {
    let from = unstripped.sections().iter().find(|section| {
        section.size > 0 && address >= section.address && address < section.address + section.size
    })?;
    let to = stripped.section(&from.name)?;
    (to.size == from.size).then(|| address - from.address + to.address)
}

#[test]
fn stripped_binaries_are_decoded_through_the_function_table() {
    for &toolchain in TOOLCHAINS {
        let what = format!("{} stripped", toolchain.version);
        let elf = open(toolchain, BuildMode::Stripped);
        assert!(SymbolTable::read(&elf).is_none(), "{what} has a .symtab");
        let offsets = offsets(&elf, toolchain);
        let pclntab = Pclntab::read(&elf).unwrap_or_else(|e| panic!("{e}"));
        let decoded = locate_globals(&elf, &pclntab, &offsets).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded.source, GlobalsSource::Decoded, "{what}");

        let unstripped = open(toolchain, BuildMode::Default);
        let reference =
            from_symtab(&SymbolTable::read(&unstripped).expect("default keeps .symtab"))
                .expect("default has every global");
        let map = |address: u64| {
            moved(&unstripped, &elf, address)
                .unwrap_or_else(|| panic!("{what}: sections differ from the default build"))
        };
        let expected = RuntimeGlobals {
            allgs: map(reference.allgs),
            allglen: map(reference.allglen),
            sched: map(reference.sched),
            allp: map(reference.allp),
            memstats: reference.memstats.map(map),
            gc_controller: reference.gc_controller.map(map),
            wait_reason_strings: map(reference.wait_reason_strings),
            wait_reason_count: reference.wait_reason_count,
            source: GlobalsSource::Decoded,
            missing: Vec::new(),
        };
        assert_eq!(decoded, expected, "{what}");
    }
}

struct Without<'a>(&'a SymbolTable, &'static str);

impl FunctionLookup for Without<'_> {
    fn function_range(&self, name: &str) -> Option<(u64, u64)> {
        (name != self.1)
            .then(|| self.0.function_range(name))
            .flatten()
    }
}

/// A function table without a function makes the required global fail with a message naming
/// the global and the function; where a second function carries the same pattern it is used.
#[test]
fn fallbacks_and_missing_functions() {
    for &toolchain in TOOLCHAINS {
        let what = toolchain.version;
        let elf = open(toolchain, BuildMode::Default);
        let symbols = SymbolTable::read(&elf).expect("default keeps .symtab");
        let expected = from_symtab(&symbols).expect("default has every global");
        let offsets = offsets(&elf, toolchain);
        let without = |function| decode_globals(&elf, &Without(&symbols, function), &offsets);

        let message = without("runtime.allgadd")
            .expect_err("allgs cannot be found without runtime.allgadd")
            .to_string();
        assert!(message.contains("runtime.allgs"), "{what}: {message}");
        assert!(message.contains("runtime.allgadd"), "{what}: {message}");

        let fallback = without("runtime.preemptall").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            fallback.allp, expected.allp,
            "{what}: allp via gcMarkTinyAllocs"
        );

        let fallback = without("runtime.newproc1").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            fallback.sched, expected.sched,
            "{what}: sched via oneNewExtraM"
        );

        let fallback = without("runtime.gcinit").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            fallback.gc_controller, expected.gc_controller,
            "{what}: gcController via gcControllerCommit ({:?})",
            fallback.missing
        );

        // The optional globals become None with a reason.
        let partial = without("runtime.gcMarkTermination").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(partial.memstats, None, "{what}");
        assert!(
            partial
                .missing
                .iter()
                .any(|missing| missing.symbol == "runtime.memstats"
                    && missing.reason.contains("runtime.gcMarkTermination")),
            "{what}: {:?}",
            partial.missing
        );
    }
}

/// The rules hold with offsets inferred from the code (a release newer than the tables), for the
/// newest toolchain inferred on top of the line before it.
#[test]
fn decoding_works_with_inferred_offsets() {
    let toolchain = NEWEST_TOOLCHAIN;
    let elf = open(toolchain, BuildMode::Default);
    let symbols = SymbolTable::read(&elf).expect("default keeps .symtab");
    let expected = from_symtab(&symbols).expect("default has every global");
    let version = GoVersion::parse(toolchain.version).expect("toolchain versions parse");
    let (major, minor) = version.line();
    let base_line = (major, minor - 1);
    let base = OffsetTables::all()
        .lookup(base_line)
        .expect("the line before the newest");
    let pclntab = Pclntab::read(&elf).unwrap_or_else(|e| panic!("{e}"));
    let inferred = infer_layout(&elf, &pclntab, &base, base_line);
    let (decoded, _) = decode_timed(&elf, &symbols, &inferred.offsets);
    assert_same(toolchain.version, &decoded, &expected);
}

/// Decoding garbage never panics: every function range pointing at arbitrary bytes yields an error.
#[test]
fn decoding_arbitrary_bytes_fails_cleanly() {
    struct Everywhere(u64, u64);
    impl FunctionLookup for Everywhere {
        fn function_range(&self, _name: &str) -> Option<(u64, u64)> {
            Some((self.0, self.1))
        }
    }
    let toolchain = TOOLCHAINS[0];
    let elf = open(toolchain, BuildMode::Default);
    let offsets = offsets(&elf, toolchain);
    for section in [".rodata", ".gopclntab", ".data", ".noptrdata"] {
        let Some(found) = elf.section(section) else {
            continue;
        };
        let end = found.address + found.size.min(64 * 1024);
        let result = decode_globals(&elf, &Everywhere(found.address, end), &offsets);
        assert!(result.is_err(), "{section}: {result:?}");
    }
    // Windows of real code starting mid-instruction: whatever they give, they must not panic.
    let text = elf.section(".text").expect("a .text section");
    for window in 0..300u64 {
        let entry = text.address + window * 997 + window % 7;
        let _ = decode_globals(&elf, &Everywhere(entry, entry + 64 + window * 13), &offsets);
    }
    // Ranges outside the file, reversed or empty.
    for (entry, end) in [
        (0, 16),
        (u64::MAX - 8, u64::MAX),
        (0x500000, 0x400000),
        (5, 5),
    ] {
        assert!(decode_globals(&elf, &Everywhere(entry, end), &offsets).is_err());
    }
}
