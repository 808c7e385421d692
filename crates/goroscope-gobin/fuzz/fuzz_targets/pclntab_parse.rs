//! Fuzz target: arbitrary bytes as a `.gopclntab` (with inline-tree bytes) must parse or fail, and
//! every lookup on a parsed table must answer or give nothing, never panic.
//!
//! Input: `[n: u16 LE][table bytes][funcdata: the last n bytes]`, the same format
//! `tests/binaries.rs` writes its seeds in.

#![no_main]

use goroscope_gobin::pclntab::Pclntab;
use libfuzzer_sys::fuzz_target;

/// Text start used when the header has none.
const TEXT: u64 = 0x1000;

fuzz_target!(|input: &[u8]| {
    let Some((len, rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let split = rest
        .len()
        .saturating_sub(usize::from(u16::from_le_bytes(*len)));
    let (table, funcdata) = rest.split_at(split);
    let pcs = [TEXT + 0x25];
    exercise(
        Pclntab::parse_with_funcdata(table.to_vec(), TEXT, funcdata.to_vec()).ok(),
        &pcs,
    );
    exercise(Pclntab::parse(table.to_vec(), TEXT).ok(), &pcs);
});

fn exercise(table: Option<Pclntab>, pcs: &[u64]) {
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
        }
    }
    for &pc in pcs {
        let _ = table.function_at(pc);
        let _ = table.frames_at(pc);
    }
    let _ = table.function_by_name("main.main");
}
