//! Finding the function table in an ELF file, and the two things the table does not say reliably
//! about itself: the text start its entry offsets are relative to (the header's copy is zero since
//! Go 1.26 and needs a relocation in PIE builds) and where `go:func.*`, which holds the inline
//! trees, starts.
//!
//! Both come from the `.symtab` symbols when present (`runtime.text`, `go:func.*`/`go.func.*`), else
//! from the runtime's module data (`runtime.firstmoduledata`), which the linker fills in the file
//! even for PIE: it is found as the 8-aligned word equal to the table's address followed by the
//! address of the function-name table. Field offsets in it (64-bit): `text` at 176 in every
//! supported version; `gofunc` at 304 (Go 1.18–1.19), 320 (1.20–1.26) or 344 (1.27).

use object::{Object, ObjectSymbol};

use super::format::{read_u32, read_u64, Header};
use super::{FuncData, Pclntab, PclntabError, MAGIC_GO118, MAGIC_GO120};
use crate::elf::ElfFile;
use crate::version::GoVersion;

/// Offset of `moduledata.text`.
const MODULEDATA_TEXT: u64 = 176;

/// Symbols worth looking up, when the file has a symbol table.
#[derive(Debug, Default)]
struct Symbols {
    text: Option<u64>,
    gofunc: Option<u64>,
    moduledata: Option<u64>,
}

impl Symbols {
    fn collect(elf: &ElfFile) -> Symbols {
        let mut found = Symbols::default();
        let Ok(object) = elf.object() else {
            return found;
        };
        for symbol in object.symbols() {
            let slot = match symbol.name() {
                Ok("runtime.text") => &mut found.text,
                Ok("go:func.*") | Ok("go.func.*") => &mut found.gofunc,
                Ok("runtime.firstmoduledata") => &mut found.moduledata,
                _ => continue,
            };
            if symbol.address() != 0 {
                *slot = Some(symbol.address());
            }
        }
        found
    }
}

/// Locates and parses the table of `elf`, with its text start and inline trees.
pub(super) fn read(elf: &ElfFile) -> Result<Pclntab, PclntabError> {
    let (table_address, bytes) = locate_table(elf).ok_or(PclntabError::NotFound)?;
    let header = Header::parse(bytes)?;
    let symbols = Symbols::collect(elf);
    let moduledata = symbols
        .moduledata
        .or_else(|| scan_moduledata(elf, table_address, header.funcname));

    let text_start = symbols
        .text
        .or_else(|| moduledata.and_then(|at| elf.read_u64_at(at.checked_add(MODULEDATA_TEXT)?)))
        .filter(|&text| text != 0)
        .or((header.text_start != 0).then_some(header.text_start))
        .or_else(|| elf.section(".text").map(|text| text.address))
        .unwrap_or(0);

    let gofunc = symbols
        .gofunc
        .or_else(|| moduledata.and_then(|at| gofunc_from_moduledata(elf, at, bytes)));

    let table_len = bytes.len();
    let shared = elf.share(bytes).ok_or(PclntabError::NotFound)?;
    let mut table = Pclntab::parse_parts(shared, Some(text_start), 0)?;
    table.funcdata = match gofunc {
        Some(address) if address >= table_address && address - table_address < table_len as u64 => {
            usize::try_from(address - table_address).map_or(FuncData::Missing, FuncData::InTable)
        }
        Some(address) => region_from(elf, address)
            .and_then(|bytes| elf.share(bytes))
            .map_or(FuncData::Missing, FuncData::Separate),
        None => FuncData::Missing,
    };
    Ok(table)
}

/// The table's linked address and bytes (to the end of its section, or of its segment when found
/// by scanning).
fn locate_table(elf: &ElfFile) -> Option<(u64, &[u8])> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(found) = elf.section_data(name) {
            return Some(found);
        }
    }
    for segment in elf.segments() {
        let Some(bytes) = usize::try_from(segment.file_size)
            .ok()
            .and_then(|len| elf.read_at(segment.address, len))
        else {
            continue;
        };
        let first = ((8 - segment.address % 8) % 8) as usize;
        for at in (first..bytes.len()).step_by(8) {
            let Some(candidate) = bytes.get(at..) else {
                break;
            };
            if looks_like_header(candidate) && Header::parse(candidate).is_ok_and(|h| h.nfunc > 0) {
                return Some((segment.address.checked_add(at as u64)?, candidate));
            }
        }
    }
    None
}

/// A cheap first test: magic, zero padding, instruction size 1, pointer size 8.
fn looks_like_header(bytes: &[u8]) -> bool {
    let magic = read_u32(bytes, 0);
    (magic == Some(MAGIC_GO118) || magic == Some(MAGIC_GO120))
        && bytes.get(4..8) == Some(&[0, 0, 1, 8])
}

/// Finds `runtime.firstmoduledata` by its first two fields: the table's address and the address
/// of the function-name table inside it. It lives in `.noptrdata`, in the last loadable segment:
/// segments are scanned last first, so the text and read-only data (most of a binary) are never
/// read for it.
fn scan_moduledata(elf: &ElfFile, table_address: u64, funcname: usize) -> Option<u64> {
    let names = table_address.checked_add(funcname as u64)?;
    for segment in elf.segments().iter().rev() {
        let Some(bytes) = usize::try_from(segment.file_size)
            .ok()
            .and_then(|len| elf.read_at(segment.address, len))
        else {
            continue;
        };
        let first = ((8 - segment.address % 8) % 8) as usize;
        let word = |at: usize| read_u64(bytes, at);
        for at in (first..bytes.len()).step_by(8) {
            if word(at) == Some(table_address) && word(at + 8) == Some(names) {
                return segment.address.checked_add(at as u64);
            }
        }
    }
    None
}

/// `moduledata.gofunc`, whose offset depends on the Go version: tried in the order the version
/// suggests, accepting the first value that points at file bytes.
fn gofunc_from_moduledata(elf: &ElfFile, moduledata: u64, table: &[u8]) -> Option<u64> {
    let candidates: &[u64] = if read_u32(table, 0) == Some(MAGIC_GO118) {
        &[304]
    } else {
        let newer = crate::buildinfo::read(elf)
            .ok()
            .and_then(|info| GoVersion::parse(&info.go_version))
            .is_some_and(|version| version.at_least(1, 27));
        if newer {
            &[344, 320]
        } else {
            &[320, 344]
        }
    };
    candidates.iter().find_map(|&offset| {
        let address = elf.read_u64_at(moduledata.checked_add(offset)?)?;
        (address != 0 && elf.read_at(address, 1).is_some()).then_some(address)
    })
}

/// The file bytes from `address` to the end of the section (or, without sections, the segment)
/// holding it.
fn region_from(elf: &ElfFile, address: u64) -> Option<&[u8]> {
    let section = elf.sections().iter().find(|section| {
        section.file_range.is_some()
            && section.address != 0
            && address >= section.address
            && address - section.address < section.size
    });
    let len = match section {
        Some(section) => section.address.checked_add(section.size)? - address,
        None => {
            let segment = elf.segments().iter().find(|segment| {
                address >= segment.address && address - segment.address < segment.file_size
            })?;
            segment.address.checked_add(segment.file_size)? - address
        }
    };
    elf.read_at(address, usize::try_from(len).ok()?)
}
