//! Build information and `.gopclntab` symbolization checked against real binaries: the sample
//! program built by every supported Go toolchain in every build mode, plus a synthetic table with a
//! known inline tree, and a no-panic check of both parsers over the fuzz seed corpus and thousands
//! of deterministic mutations of real tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use goroscope_gobin::buildinfo;
use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::ElfFile;
use gotest::{BuildMode, Toolchain};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

macro_rules! per_toolchain {
    ($($name:ident => $version:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_toolchain($version);
            }
        )*
        const TESTED: &[&str] = &[$($version),*];
    };
}

per_toolchain!(
    go1_19 => "go1.19.8",
    go1_20 => "go1.20.14",
    go1_21 => "go1.21.13",
    go1_22 => "go1.22.12",
    go1_23 => "go1.23.12",
    go1_24 => "go1.24.13",
    go1_25 => "go1.25.14",
    go1_26 => "go1.26.8",
    go1_27 => "go1.27.4",
);

#[test]
fn every_supported_toolchain_is_tested() {
    let supported: Vec<&str> = gotest::TOOLCHAINS.iter().map(|t| t.version).collect();
    assert_eq!(
        supported, TESTED,
        "gotest::TOOLCHAINS changed: add the new toolchain to per_toolchain! in tests/binaries.rs"
    );
}

/// With the section headers gone (so no sections and no symbols), both are found by scanning the
/// segments, and the text start and inline trees come from the runtime's module data. The cgo build
/// is the hard case: its `.text` starts with C code before `runtime.text`.
#[test]
fn binaries_without_section_headers() {
    let toolchains = gotest::TOOLCHAINS;
    // The oldest, and the two newest (whose module data layouts differ).
    for toolchain in [
        toolchains[0],
        toolchains[toolchains.len() - 2],
        gotest::NEWEST_TOOLCHAIN,
    ] {
        for mode in [BuildMode::Cgo, BuildMode::Pie, BuildMode::Stripped] {
            let binary = gotest::build("sample", toolchain, mode);
            let mut bytes = std::fs::read(&binary).unwrap_or_else(|e| panic!("{e}"));
            // ELF64 header: e_shoff at 0x28 (8 bytes), e_shnum at 0x3c, e_shstrndx at 0x3e.
            bytes[0x28..0x30].fill(0);
            bytes[0x3c..0x40].fill(0);
            let elf = ElfFile::from_bytes(bytes, &binary).unwrap_or_else(|e| panic!("{e}"));
            assert!(elf.sections().is_empty());
            let what = format!(
                "{} {} without section headers",
                toolchain.version,
                mode.name()
            );
            check_build_info(&elf, toolchain, mode, &what);
            check_pclntab(&elf, BuildMode::Stripped, &what);
        }
    }
}

fn toolchain(version: &str) -> Toolchain {
    *gotest::TOOLCHAINS
        .iter()
        .find(|t| t.version == version)
        .unwrap_or_else(|| panic!("{version} is not in gotest::TOOLCHAINS"))
}

fn check_toolchain(version: &str) {
    let toolchain = toolchain(version);
    for &mode in gotest::BUILD_MODES {
        let binary = gotest::build("sample", toolchain, mode);
        let elf = ElfFile::open(&binary).unwrap_or_else(|e| panic!("{e}"));
        let what = format!("{version} {} ({})", mode.name(), binary.display());
        check_build_info(&elf, toolchain, mode, &what);
        check_pclntab(&elf, mode, &what);
        check_wrappers_and_frame_layouts(&elf, toolchain, &what);
    }
}

/// Wrappers are found as Go marks them (`abi.FuncIDWrapper`, whose number changes between
/// releases), the wrapper Go generates for `go worker(ch)` leads to `main.worker`, and the pcsp
/// table gives the stack-pointer deltas Go's traceback unwinds with.
fn check_wrappers_and_frame_layouts(elf: &ElfFile, toolchain: Toolchain, what: &str) {
    let table = Pclntab::read(elf).unwrap_or_else(|e| panic!("{what}: {e}"));
    let minor: u32 = toolchain.version["go1.".len()..]
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{what}: bad version"));
    // internal/abi.FuncIDWrapper (runtime/symtab.go funcID_wrapper before Go 1.21).
    let expected = match minor {
        ..=21 => 21,
        22..=24 => 22,
        _ => 23,
    };
    assert_eq!(table.wrapper_func_id(), Some(expected), "{what}");
    let wrappers: Vec<_> = table
        .functions()
        .filter(|f| f.name.starts_with("main.main.") && table.is_wrapper(f.func_id))
        .collect();
    assert_eq!(wrappers.len(), 1, "{what}: {wrappers:?}");
    let mut read_code = |address: u64, len: usize| elf.read_at(address, len).map(<[u8]>::to_vec);
    assert_eq!(
        table.wrapper_callee(wrappers[0].entry, &mut read_code),
        Some("main.worker".to_string()),
        "{what}: {:?}",
        wrappers[0]
    );
    let worker = table
        .function_by_name("main.worker")
        .unwrap_or_else(|| panic!("{what}: no main.worker"));
    assert!(!table.is_wrapper(worker.func_id), "{what}");
    let at_entry = table
        .frame_layout(worker.entry)
        .unwrap_or_else(|| panic!("{what}"));
    assert_eq!(at_entry.sp_delta, 0, "{what}: nothing pushed at entry");
    assert!(!at_entry.top_frame, "{what}");
    let deepest = (worker.entry..worker.end)
        .filter_map(|pc| table.frame_layout(pc))
        .map(|layout| layout.sp_delta)
        .max()
        .unwrap_or(0);
    assert!(
        deepest >= 16 && deepest % 8 == 0,
        "{what}: main.worker's frame is {deepest} bytes"
    );
    let goexit = table
        .function_by_name("runtime.goexit")
        .unwrap_or_else(|| panic!("{what}: no runtime.goexit"));
    let layout = table
        .frame_layout(goexit.entry + 1)
        .unwrap_or_else(|| panic!("{what}"));
    assert!(
        layout.top_frame,
        "{what}: goexit ends every goroutine's stack"
    );
}

fn check_build_info(elf: &ElfFile, toolchain: Toolchain, mode: BuildMode, what: &str) {
    let info = buildinfo::read(elf).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(info.go_version, toolchain.version, "{what}: go version");
    assert_eq!(
        info.main_path.as_deref(),
        Some("example.com/sample"),
        "{what}: main path"
    );
    assert_eq!(
        info.main_module.as_deref(),
        Some("example.com/sample"),
        "{what}: main module"
    );
    assert_eq!(info.main_version.as_deref(), Some("(devel)"), "{what}");
    let expect = |key: &str, value: Option<&str>| {
        assert_eq!(
            info.setting(key),
            value,
            "{what}: build setting {key} (all settings: {:?})",
            info.settings
        );
    };
    expect("-ldflags", (mode == BuildMode::Stripped).then_some("-s -w"));
    expect(
        "CGO_ENABLED",
        Some(if mode == BuildMode::Static { "0" } else { "1" }),
    );
    expect("-tags", (mode == BuildMode::Cgo).then_some("cgo_mode"));
    // Go 1.19 does not record -buildmode.
    let buildmode = match mode {
        _ if toolchain.version.starts_with("go1.19.") => None,
        BuildMode::Pie => Some("pie"),
        _ => Some("exe"),
    };
    expect("-buildmode", buildmode);
}

fn check_pclntab(elf: &ElfFile, mode: BuildMode, what: &str) {
    let table = Pclntab::read(elf).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(table.has_inline_trees(), "{what}: inline trees not found");
    for name in [
        "main.worker",
        "main.main",
        "runtime.allgadd",
        "runtime.newproc1",
    ] {
        let func = table
            .function_by_name(name)
            .unwrap_or_else(|| panic!("{what}: {name} is not in the function table"));
        assert!(func.entry < func.end, "{what}: {func:?}");
        assert_eq!(
            table.function_at(func.entry).as_ref(),
            Some(&func),
            "{what}: function_at({:#x})",
            func.entry
        );
        assert_eq!(
            table.function_at(func.end - 1).as_ref(),
            Some(&func),
            "{what}"
        );
    }

    let main = table
        .function_by_name("main.main")
        .unwrap_or_else(|| panic!());
    let go_line = gotest::marked_lines("sample", "main.go", "sample:go-statement")[0];
    let send_line = line_containing("ch <- double(i)");
    let double_line = line_containing("func double(");
    let mut saw_go_statement = false;
    let mut saw_inlined = false;
    for pc in main.entry..main.end {
        let frames = table.frames_at(pc);
        let outer = frames
            .last()
            .unwrap_or_else(|| panic!("{what}: no frames at {pc:#x} in main.main"));
        assert_eq!(outer.function, "main.main", "{what}: {pc:#x}: {frames:?}");
        assert!(!outer.inlined, "{what}: {pc:#x}: {frames:?}");
        if outer.file.ends_with("sample/main.go") && outer.line == go_line && frames.len() == 1 {
            saw_go_statement = true;
        }
        if let [inner, caller] = frames.as_slice() {
            if inner.function == "main.double" {
                assert!(inner.inlined, "{what}: {pc:#x}: {frames:?}");
                assert_eq!(inner.line, double_line, "{what}: {pc:#x}: {frames:?}");
                assert!(inner.file.ends_with("sample/main.go"), "{what}: {frames:?}");
                assert_eq!(caller.line, send_line, "{what}: {pc:#x}: {frames:?}");
                saw_inlined = true;
            }
        }
    }
    assert!(
        saw_go_statement,
        "{what}: no pc in main.main maps to sample/main.go:{go_line}"
    );
    assert!(
        saw_inlined,
        "{what}: no pc in main.main has an inlined main.double frame"
    );

    check_functions_are_consistent(&table, what);
    if mode != BuildMode::Stripped {
        check_symbols_match(elf, &table, what);
    }
}

fn check_functions_are_consistent(table: &Pclntab, what: &str) {
    let functions: Vec<_> = table.functions().collect();
    assert_eq!(
        functions.len(),
        table.len(),
        "{what}: undecodable functions"
    );
    for pair in functions.windows(2) {
        assert!(pair[0].entry < pair[0].end, "{what}: {pair:?}");
        assert_eq!(pair[0].end, pair[1].entry, "{what}: {pair:?}");
    }
    for func in functions.iter().step_by(7) {
        assert_eq!(table.function_at(func.entry).as_ref(), Some(func), "{what}");
    }
}

fn check_symbols_match(elf: &ElfFile, table: &Pclntab, what: &str) {
    let mut entries: HashMap<String, Vec<u64>> = HashMap::new();
    for func in table.functions() {
        entries.entry(func.name).or_default().push(func.entry);
    }
    let object = elf.object().unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut checked = 0;
    for symbol in object.symbols() {
        let Ok(name) = symbol.name() else { continue };
        if symbol.kind() != SymbolKind::Text || !name.contains('.') {
            continue;
        }
        let Some(known) = entries.get(name) else {
            continue;
        };
        assert!(
            known.contains(&symbol.address()),
            "{what}: symbol {name} is at {:#x} but the function table has it at {known:x?}",
            symbol.address()
        );
        checked += 1;
    }
    assert!(
        checked > 1000,
        "{what}: only {checked} Go function symbols were compared"
    );
}

fn line_containing(text: &str) -> u32 {
    let source = std::fs::read_to_string(gotest::program_dir("sample").join("main.go"))
        .unwrap_or_else(|e| panic!("reading sample/main.go: {e}"));
    source
        .lines()
        .position(|line| line.contains(text))
        .map(|index| index as u32 + 1)
        .unwrap_or_else(|| panic!("no line in sample/main.go contains {text:?}"))
}

// ---------------------------------------------------------------------------------------------
// A synthetic Go 1.20-layout table: main.main (0x1000..0x1040) with main.double inlined at
// 0x1020..0x1030, and main.double itself (0x1040..0x1050).

const TEXT: u64 = 0x1000;

fn push_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// `(table, funcdata)` of the synthetic table.
fn synthetic_table() -> (Vec<u8>, Vec<u8>) {
    let names = b"main.main\0main.double\0".to_vec();
    let cutab = 0u32.to_le_bytes().to_vec();
    let files = b"/src/sample/main.go\0".to_vec();
    // pc-value tables: (zigzag value delta, pc delta) pairs, 0-terminated; offset 0 is "none".
    let pctab: Vec<u8> = [
        &[0u8][..],                                 // 0: unused
        &[2, 0x40, 0],                              // 1: file index 0 over 0x40 bytes
        &[46, 0x10, 8, 0x10, 11, 0x10, 8, 0x10, 0], // 4: lines 22, 26, 20, 24
        &[0, 0x20, 2, 0x10, 1, 0x10, 0],            // 13: inline index -1, 0, -1
        &[42, 0x10, 0],                             // 20: line 20
    ]
    .concat();
    let header_size = 72usize;
    let funcname = header_size;
    let cu = funcname + names.len();
    let filetab = cu + cutab.len();
    let pctab_at = filetab + files.len();
    let pcln = pctab_at + pctab.len();

    let mut functab = Vec::new();
    let records_at = 2 * 8 + 4;
    let main_record = 44 + 3 * 4 + 4 * 4;
    for (entry, record) in [(0u32, records_at), (0x40, records_at + main_record)] {
        push_u32(&mut functab, entry);
        push_u32(&mut functab, record as u32);
    }
    push_u32(&mut functab, 0x50);
    // _func: entryOff nameOff args deferreturn pcsp pcfile pcln npcdata cuOffset startLine
    // funcID flag pad nfuncdata, then pcdata[], funcdata[].
    for word in [0, 0, 0, 0, 0, 1, 4, 3, 0, 22] {
        push_u32(&mut functab, word);
    }
    functab.extend_from_slice(&[0, 0, 0, 4]);
    for word in [0, 0, 13, u32::MAX, u32::MAX, u32::MAX, 0] {
        push_u32(&mut functab, word);
    }
    for word in [0x40, 10, 0, 0, 0, 1, 20, 0, 0, 20] {
        push_u32(&mut functab, word);
    }
    functab.extend_from_slice(&[0, 0, 0, 0]);

    let mut table = Vec::new();
    push_u32(&mut table, 0xffff_fff1);
    table.extend_from_slice(&[0, 0, 1, 8]);
    for word in [
        2,
        1,
        TEXT,
        funcname as u64,
        cu as u64,
        filetab as u64,
        pctab_at as u64,
        pcln as u64,
    ] {
        table.extend_from_slice(&word.to_le_bytes());
    }
    for part in [&names, &cutab, &files, &pctab, &functab] {
        table.extend_from_slice(part);
    }
    // Inline tree entry: funcID, pad, nameOff (main.double), parentPc, startLine.
    let mut funcdata = vec![0, 0, 0, 0];
    for word in [10, 0x10, 20] {
        push_u32(&mut funcdata, word);
    }
    (table, funcdata)
}

#[test]
fn synthetic_table_symbolizes_inlined_calls() {
    let (bytes, funcdata) = synthetic_table();
    let table = Pclntab::parse_with_funcdata(bytes, 0, funcdata).unwrap();
    let frame = |function: &str, line, inlined| goroscope_gobin::pclntab::Frame {
        function: function.into(),
        file: "/src/sample/main.go".into(),
        line,
        inlined,
        wrapper: false,
    };
    assert_eq!(
        table.frames_at(TEXT + 5),
        vec![frame("main.main", 22, false)]
    );
    assert_eq!(
        table.frames_at(TEXT + 0x25),
        vec![
            frame("main.double", 20, true),
            frame("main.main", 26, false)
        ]
    );
    assert_eq!(
        table.frames_at(TEXT + 0x35),
        vec![frame("main.main", 24, false)]
    );
    assert_eq!(
        table.frames_at(TEXT + 0x4f),
        vec![frame("main.double", 20, false)]
    );
    assert!(table.frames_at(TEXT + 0x50).is_empty());
    assert!(table.frames_at(TEXT - 1).is_empty());
    let double = table.function_by_name("main.double").unwrap();
    assert_eq!((double.entry, double.end), (TEXT + 0x40, TEXT + 0x50));
    assert_eq!(table.functions().count(), 2);
}

// ---------------------------------------------------------------------------------------------
// No panics on malformed input.

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The `pclntab_parse` fuzz input format: `[n: u16 LE][table][funcdata: last n bytes]`.
fn pclntab_input(table: &[u8], funcdata: &[u8]) -> Vec<u8> {
    let mut input = (funcdata.len().min(0xffff) as u16).to_le_bytes().to_vec();
    input.extend_from_slice(table);
    input.extend_from_slice(&funcdata[..funcdata.len().min(0xffff)]);
    input
}

/// What the `pclntab_parse` fuzz target does with one input (kept identical to it).
fn exercise_pclntab(input: &[u8]) {
    let Some((len, rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let split = rest
        .len()
        .saturating_sub(usize::from(u16::from_le_bytes(*len)));
    let (table, funcdata) = rest.split_at(split);
    let pcs = [TEXT + 0x25];
    exercise_table(
        Pclntab::parse_with_funcdata(table.to_vec(), TEXT, funcdata.to_vec()).ok(),
        &pcs,
    );
    exercise_table(Pclntab::parse(table.to_vec(), TEXT).ok(), &pcs);
}

/// Runs every lookup on `table`: the first functions' boundaries and `pcs`.
fn exercise_table(table: Option<Pclntab>, pcs: &[u64]) {
    let Some(table) = table else { return };
    for func in table.functions().take(16) {
        for pc in [
            func.entry,
            func.entry.wrapping_add(1),
            func.end.wrapping_sub(1),
            func.end,
        ] {
            let _ = table.function_at(pc);
            let _ = table.frames_at(pc);
            let _ = table.frame_layout(pc);
            let _ = table.wrapper_callee(pc, &mut |_, len| Some(vec![0xe8; len]));
        }
    }
    let _ = table.wrapper_func_id();
    for &pc in pcs {
        let _ = table.function_at(pc);
        let _ = table.frames_at(pc);
    }
    let _ = table.function_by_name("main.main");
}

/// Writes the committed seed corpus (run with `GOROSCOPE_WRITE_SEEDS=1` after format changes).
#[test]
fn seed_corpus_runs_without_panics() {
    if std::env::var_os("GOROSCOPE_WRITE_SEEDS").is_some() {
        write_seeds();
    }
    let mut count = 0;
    for (target, run) in [
        (
            "buildinfo_parse",
            (|bytes: &[u8]| drop(buildinfo::parse(bytes))) as fn(&[u8]),
        ),
        ("pclntab_parse", exercise_pclntab as fn(&[u8])),
    ] {
        let dir = corpus_dir(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("seed corpus {} is missing: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            run(&bytes);
            count += 1;
        }
    }
    assert!(count >= 4, "only {count} seed files");
}

fn write_seeds() {
    let newest = gotest::TOOLCHAINS[gotest::TOOLCHAINS.len() - 1];
    let oldest = gotest::TOOLCHAINS[0];
    for (toolchain, name) in [(newest, "newest"), (oldest, "oldest")] {
        let elf = ElfFile::open(&gotest::build("sample", toolchain, BuildMode::Stripped)).unwrap();
        let (_, info) = elf.section_data(".go.buildinfo").unwrap();
        write_seed("buildinfo_parse", &format!("{name}-stripped"), info);
        let (_, table) = elf.section_data(".gopclntab").unwrap();
        write_seed(
            "pclntab_parse",
            &format!("{name}-truncated"),
            &pclntab_input(&table[..2048], &[]),
        );
    }
    let (table, funcdata) = synthetic_table();
    write_seed(
        "pclntab_parse",
        "synthetic",
        &pclntab_input(&table, &funcdata),
    );
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Deterministic xorshift64 generator.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random corruption: bit flips, an overwritten word, or a truncation. Half the time it lands
/// in `hot` (header and function records), where it reaches the most code.
fn mutate(bytes: &mut Vec<u8>, hot: std::ops::Range<usize>, rng: &mut XorShift) {
    let len = bytes.len();
    let position = |rng: &mut XorShift| {
        if rng.next().is_multiple_of(2) && hot.end > hot.start {
            (hot.start + rng.below(hot.end - hot.start)).min(len.saturating_sub(1))
        } else {
            rng.below(len)
        }
    };
    match rng.next() % 4 {
        0 => bytes.truncate(rng.below(len)),
        1 => {
            let at = position(rng);
            let word = match rng.next() % 3 {
                0 => u32::MAX,
                1 => rng.next() as u32 & 0xffff,
                _ => rng.next() as u32,
            };
            for (index, byte) in word.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + index) {
                    *slot = byte;
                }
            }
        }
        _ => {
            for _ in 0..1 + rng.below(8) {
                let at = position(rng);
                if let Some(byte) = bytes.get_mut(at) {
                    *byte ^= 1 << rng.below(8);
                }
            }
        }
    }
}

#[test]
fn mutated_real_tables_do_not_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for toolchain in [
        gotest::TOOLCHAINS[0],
        gotest::TOOLCHAINS[gotest::TOOLCHAINS.len() - 1],
    ] {
        let elf = ElfFile::open(&gotest::build("sample", toolchain, BuildMode::Default)).unwrap();
        let (_, info) = elf.section_data(".go.buildinfo").unwrap();
        for _ in 0..2000 {
            let mut bytes = info.to_vec();
            mutate(&mut bytes, 0..64, &mut rng);
            let _ = buildinfo::parse(&bytes);
        }

        let (_, table) = elf.section_data(".gopclntab").unwrap();
        let object = elf.object().unwrap();
        let gofunc = object
            .symbols()
            .find(|s| matches!(s.name(), Ok("go:func.*") | Ok("go.func.*")))
            .unwrap()
            .address();
        let section = object
            .sections()
            .find(|s| s.address() <= gofunc && gofunc < s.address() + s.size())
            .unwrap();
        let funcdata = elf
            .read_at(
                gofunc,
                (section.address() + section.size() - gofunc) as usize,
            )
            .unwrap();
        let original = Pclntab::read(&elf).unwrap();
        let text = original.text_start();
        let text_len = (original.functions().last().unwrap().end - text) as usize;
        let functab = u64::from_le_bytes(table[64..72].try_into().unwrap()) as usize;
        for round in 0..1500u32 {
            let mut bytes = table.to_vec();
            let hot = if round.is_multiple_of(3) {
                0..72
            } else {
                functab..table.len().min(functab + 0x8000)
            };
            mutate(&mut bytes, hot, &mut rng);
            let mut data = funcdata.to_vec();
            if round.is_multiple_of(2) {
                let all = 0..data.len();
                mutate(&mut data, all, &mut rng);
            }
            let pcs: Vec<u64> = (0..16).map(|_| text + rng.below(text_len) as u64).collect();
            exercise_table(Pclntab::parse_with_funcdata(bytes, text, data).ok(), &pcs);
        }
    }
}
