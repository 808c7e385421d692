//! Prints what the inference from runtime code makes of a Go binary: every field's offset, whether
//! it was derived (and from which function) or borrowed from the base table line (and why), how it
//! compares with the binary's DWARF when it has some, and how long the inference took. Use it when
//! a new Go release lands, before adding its table line.
//!
//! Usage: `cargo run --release -p goroscope-gobin --example infer_offsets -- <go binary> [1.26]`
//! (the optional argument is the base line; by default the newest table line older than the
//! binary's release).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use goroscope_gobin::dwarf::GoTypes;
use goroscope_gobin::infer::{infer_layout, FieldOrigin};
use goroscope_gobin::offsets::{OffsetTables, RuntimeOffsets};
use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::{buildinfo, ElfFile, GoVersion};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("infer_offsets: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let path = args
        .first()
        .ok_or("usage: infer_offsets <go binary> [base line, e.g. 1.26]")?;
    let elf = ElfFile::open(Path::new(path)).map_err(|e| e.to_string())?;
    let build = buildinfo::read(&elf).map_err(|e| e.to_string())?;
    let version = GoVersion::parse(&build.go_version)
        .ok_or_else(|| format!("{path}: unreadable Go version {}", build.go_version))?;
    let tables = OffsetTables::all();
    let base_line = match args.get(1) {
        Some(line) => {
            let (major, minor) = line
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .ok_or_else(|| format!("{line}: expected a release line like 1.26"))?;
            (major, minor)
        }
        None => *tables
            .lines()
            .iter()
            .rev()
            .find(|line| **line < version.line())
            .ok_or_else(|| format!("no table line older than {version}"))?,
    };
    let base = tables
        .lookup(base_line)
        .ok_or_else(|| format!("no table line go{}.{}", base_line.0, base_line.1))?;
    let pclntab = Pclntab::read(&elf).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let layout = infer_layout(&elf, &pclntab, &base, base_line);
    let elapsed = started.elapsed();
    let dwarf = GoTypes::load(&elf)
        .ok()
        .flatten()
        .and_then(|types| RuntimeOffsets::from_dwarf(&types));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{path}: {version}, {} on top of go{}.{} in {elapsed:?}",
        layout.offsets.source.describe(),
        base_line.0,
        base_line.1
    );
    let values = layout.offsets.named_fields();
    let truth = dwarf.map(|offsets| offsets.named_fields());
    for (name, origin) in &layout.fields {
        let value = values.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v);
        let check = truth
            .as_ref()
            .and_then(|truth| truth.iter().find(|(n, _)| n == name))
            .map_or(String::new(), |(_, want)| {
                if *want == value {
                    "  = DWARF".to_string()
                } else {
                    format!("  != DWARF {want:?}")
                }
            });
        let how = match origin {
            FieldOrigin::Derived { from } => format!("derived from {from}"),
            FieldOrigin::Borrowed { why } => format!("borrowed: {why}"),
            FieldOrigin::Unknown { why } => format!("unknown: {why}"),
        };
        let shown = value.map_or("-".to_string(), |offset| offset.to_string());
        let _ = writeln!(out, "  {name:<38} {shown:>6}  {how}{check}");
    }
    // A closed pipe (`| head`) is not an error.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(())
}
