//! Prints what symbolization costs on a real Go binary (the figures in `pclntab.rs`'s docs):
//! `cargo run --release -p goroscope-gobin --example pclntab_speed`.

use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::ElfFile;
use gotest::BuildMode;

fn main() {
    let newest = gotest::TOOLCHAINS[gotest::TOOLCHAINS.len() - 1];
    let elf =
        ElfFile::open(&gotest::build("sample", newest, BuildMode::Default)).expect("sample binary");
    let start = std::time::Instant::now();
    let table = Pclntab::read(&elf).expect("sample binary");
    println!("read: {:?} ({} functions)", start.elapsed(), table.len());
    let pcs: Vec<u64> = table
        .functions()
        .map(|f| f.entry + (f.end - f.entry) / 2)
        .collect();
    let start = std::time::Instant::now();
    let found = pcs
        .iter()
        .filter(|&&pc| table.function_at(pc).is_some())
        .count();
    println!("function_at: {:?} per pc", start.elapsed() / found as u32);
    let start = std::time::Instant::now();
    let frames: usize = pcs.iter().map(|&pc| table.frames_at(pc).len()).sum();
    println!(
        "frames_at: {:?} per pc ({frames} frames)",
        start.elapsed() / pcs.len() as u32
    );
    let start = std::time::Instant::now();
    for _ in 0..100 {
        assert!(table.function_by_name("main.main").is_some());
    }
    println!("function_by_name(main.main): {:?}", start.elapsed() / 100);
}
