//! The Go function table (`.gopclntab`, Go 1.18 and newer): function names and entry addresses,
//! and, per pc, the source file, line and stack of inlined calls.
//!
//! Layout, as written by Go's linker (`cmd/link/internal/ld/pcln.go`) and read by the runtime
//! (`runtime/symtab.go`): a header (magic `0xfffffff0` for Go 1.18–1.19, `0xfffffff1` from 1.20; min
//! instruction size; pointer size; function count; the address of the text segment (zero since Go
//! 1.26); and the offsets of the sub-tables), then the function names, the per-compilation-unit file
//! indexes (`cutab`), the file names, the pc-value tables, and the function table: pairs of (entry
//! offset from the text start, offset of the function's `_func` record) sorted by entry, followed by
//! the end offset of the last function. A `_func` record names its pc-value tables (file, line,
//! `pcdata`) and its `funcdata`, which are offsets from the `go:func.*` symbol; `funcdata[3]` is the
//! inline tree and `pcdata[2]` maps each pc to its index in that tree.
//!
//! Nothing is decoded at load beyond the header; each lookup decodes what it needs. Measured on the
//! go1.26.8 sample binary (1,946 functions, release build, `examples/pclntab_speed.rs`): `read`
//! ~0.5 ms (mostly copying the table), `function_at` ~0.14 µs, `frames_at` ~0.45 µs,
//! `function_by_name` up to ~10 µs (a linear scan comparing names in place).

mod find;
mod format;
mod frames;

use format::{c_string, read_u32, read_varint, Header};

use crate::bytes::SharedBytes;
use crate::elf::ElfFile;
use crate::error::GobinError;

/// `pcdata` index of the table mapping a pc to its index in the inline tree.
const PCDATA_INL_TREE_INDEX: u32 = 2;
/// `funcdata` index of the inline tree.
const FUNCDATA_INL_TREE: u32 = 3;
/// Most inlined frames followed at one pc (guards against cycles in corrupt tables).
const MAX_INLINE_DEPTH: usize = 256;
/// Most steps read from one pc-value table (guards against corrupt tables).
const MAX_PC_STEPS: usize = 1 << 16;

/// Go 1.18–1.19 table magic.
const MAGIC_GO118: u32 = 0xffff_fff0;
/// Go 1.20 and newer table magic.
const MAGIC_GO120: u32 = 0xffff_fff1;
/// Size of the header on 64-bit targets: 8 bytes, then 8 pointer-sized fields.
const HEADER_SIZE: usize = 8 + 8 * 8;

/// A function in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncInfo {
    /// Full Go name, e.g. `main.main`, `runtime.newproc1`, `main.(*T).m`.
    pub name: String,
    /// Linked entry address.
    pub entry: u64,
    /// Linked address just past the function (the next function's entry, or the table's end).
    pub end: u64,
    /// The runtime's `funcID`: 0 for ordinary functions, a per-release number for special ones
    /// (see [`Pclntab::wrapper_func_id`] for the one that marks compiler-generated wrappers).
    pub func_id: u8,
}

/// One source-level frame at a pc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function's name.
    pub function: String,
    /// Its source file (`?` if unknown).
    pub file: String,
    /// The line in `file` (0 if unknown).
    pub line: u32,
    /// True when this call was inlined into the frame after it.
    pub inlined: bool,
    /// True for compiler-generated code (method wrappers, `go` statement wrappers, hash and
    /// equality functions): frames Go's own tracebacks and profiles leave out.
    pub wrapper: bool,
}

/// Why a function table could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PclntabError {
    /// No table was found in the binary.
    #[error("no .gopclntab section, and no Go function table found in the binary's data")]
    NotFound,
    /// The table is shorter than its header.
    #[error("the table is {len} bytes, shorter than its {HEADER_SIZE}-byte header")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// The table comes from Go 1.2–1.17.
    #[error("the table has magic {magic:#010x}: the binary was built by Go older than 1.18; goroscope reads Go 1.19 and newer")]
    TooOld {
        /// The magic found.
        magic: u32,
    },
    /// The magic is not one of Go's.
    #[error("the table has magic {magic:#010x}, which is not a Go 1.18+ function table")]
    BadMagic {
        /// The magic found.
        magic: u32,
    },
    /// The header's fields are inconsistent.
    #[error("the table header is malformed: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Where the bytes the `funcdata` offsets point into (the `go:func.*` symbol) are.
#[derive(Debug, Clone)]
enum FuncData {
    /// Not found: inline trees cannot be read.
    Missing,
    /// Inside the table copy, at this offset (Go 1.26+ puts `go:func.*` in `.gopclntab`).
    InTable(usize),
    /// The bytes starting at `go:func.*`, outside the table.
    Separate(SharedBytes),
}

/// A parsed function table. Shares the table bytes (and the inline trees when found) with the
/// binary's mapping: nothing is copied.
#[derive(Debug, Clone)]
pub struct Pclntab {
    data: SharedBytes,
    go120: bool,
    quantum: u64,
    nfunc: usize,
    text_start: u64,
    funcname: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    functab: usize,
    funcdata: FuncData,
    /// The `funcID` of wrappers, found on first use (see [`Pclntab::wrapper_func_id`]).
    wrapper_id: std::sync::OnceLock<Option<u8>>,
}

/// The fixed fields of one `_func` record.
#[derive(Debug, Clone, Copy)]
struct RawFunc {
    /// Offset of the record in the table.
    at: usize,
    entry: u64,
    name_off: u32,
    pcsp: u32,
    pcfile: u32,
    pcln: u32,
    npcdata: u32,
    cu_offset: u32,
    func_id: u8,
    flag: u8,
    nfuncdata: u8,
}

/// Finds and parses the function table of `elf`; the same as [`Pclntab::read`].
pub fn read(elf: &ElfFile) -> Result<Pclntab, GobinError> {
    Pclntab::read(elf)
}

impl Pclntab {
    /// Finds and parses the function table of `elf`: the `.gopclntab` (or `.data.rel.ro.gopclntab`)
    /// section, or a table found by its header in the loadable segments of a file without section
    /// headers. The text start comes from `runtime.text`, the runtime's module data, the header or
    /// the `.text` section, in that order; the inline trees from `go:func.*` or the module data.
    pub fn read(elf: &ElfFile) -> Result<Pclntab, GobinError> {
        find::read(elf).map_err(|source| GobinError::Pclntab {
            path: elf.path().to_path_buf(),
            source,
        })
    }

    /// Parses table bytes alone. The header's text start is used when non-zero, else
    /// `text_start_fallback`. Inline trees are not available (frames have no inlined calls).
    pub fn parse(bytes: Vec<u8>, text_start_fallback: u64) -> Result<Pclntab, PclntabError> {
        Pclntab::parse_parts(SharedBytes::from_vec(bytes), None, text_start_fallback)
    }

    /// Like [`Pclntab::parse`], with `funcdata`: the bytes starting at the binary's `go:func.*`
    /// symbol (where the `funcdata` offsets point), so `frames_at` reports inlined calls.
    pub fn parse_with_funcdata(
        bytes: Vec<u8>,
        text_start_fallback: u64,
        funcdata: Vec<u8>,
    ) -> Result<Pclntab, PclntabError> {
        let mut table =
            Pclntab::parse_parts(SharedBytes::from_vec(bytes), None, text_start_fallback)?;
        table.funcdata = FuncData::Separate(SharedBytes::from_vec(funcdata));
        Ok(table)
    }

    /// Parses table bytes; `text_start` overrides the header when given.
    fn parse_parts(
        data: SharedBytes,
        text_start: Option<u64>,
        text_start_fallback: u64,
    ) -> Result<Pclntab, PclntabError> {
        let header = Header::parse(&data)?;
        let text_start = text_start.unwrap_or(if header.text_start != 0 {
            header.text_start
        } else {
            text_start_fallback
        });
        Ok(Pclntab {
            go120: header.go120,
            quantum: header.quantum,
            nfunc: header.nfunc,
            text_start,
            funcname: header.funcname,
            cutab: header.cutab,
            filetab: header.filetab,
            pctab: header.pctab,
            functab: header.functab,
            funcdata: FuncData::Missing,
            wrapper_id: std::sync::OnceLock::new(),
            data,
        })
    }

    /// Gives the table's pages this process touched back to the page cache (see
    /// [`SharedBytes::release_resident`]): after the linear scans of attaching, and now and then
    /// in a long-running reader, so RSS holds what lookups use, not every page ever read.
    pub fn release_resident(&self) {
        self.data.release_resident();
        if let FuncData::Separate(bytes) = &self.funcdata {
            bytes.release_resident();
        }
    }

    /// Number of functions in the table.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// True if the table lists no function.
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// Linked address the entry offsets are relative to (`runtime.text`).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// Linked address just past the last function's code (the table's end entry), `None` when
    /// the table cannot say.
    pub fn text_end(&self) -> Option<u64> {
        self.entry_of(self.nfunc)
    }

    /// True when the inline trees were found, so `frames_at` reports inlined calls.
    pub fn has_inline_trees(&self) -> bool {
        !matches!(self.funcdata, FuncData::Missing)
    }

    /// The function named `name` (the first if several share it). A linear scan of the names.
    pub fn function_by_name(&self, name: &str) -> Option<FuncInfo> {
        let index = (0..self.nfunc).find(|&index| {
            self.record_at(index)
                .and_then(|at| self.u32_at(at.checked_add(4)?))
                .is_some_and(|name_off| self.name_is(name_off, name.as_bytes()))
        })?;
        self.info(index, &self.raw_func(index)?)
    }

    /// The function whose code contains linked address `pc`.
    pub fn function_at(&self, pc: u64) -> Option<FuncInfo> {
        let index = self.index_at(pc)?;
        let func = self.raw_func(index)?;
        self.info(index, &func)
    }

    /// Every function in address order (records that cannot be decoded are skipped).
    pub fn functions(&self) -> impl Iterator<Item = FuncInfo> + '_ {
        (0..self.nfunc).filter_map(|index| self.info(index, &self.raw_func(index)?))
    }

    /// Index of the function containing `pc`, by binary search of the sorted entry offsets.
    fn index_at(&self, pc: u64) -> Option<usize> {
        let offset = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        let (mut low, mut high) = (0, self.nfunc);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.entry_offset(middle)? <= offset {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let index = low.checked_sub(1)?;
        (offset < self.entry_offset(index + 1)?).then_some(index)
    }

    /// Entry offset of function `index` (`index == nfunc` gives the end of the last function).
    fn entry_offset(&self, index: usize) -> Option<u32> {
        self.u32_at(self.functab.checked_add(index.checked_mul(8)?)?)
    }

    fn entry_of(&self, index: usize) -> Option<u64> {
        self.text_start
            .checked_add(u64::from(self.entry_offset(index)?))
    }

    fn info(&self, index: usize, func: &RawFunc) -> Option<FuncInfo> {
        Some(FuncInfo {
            name: String::from_utf8_lossy(self.name_bytes(func.name_off)?).into_owned(),
            entry: func.entry,
            end: self.entry_of(index + 1)?,
            func_id: func.func_id,
        })
    }

    /// Decodes the fixed fields of the `_func` record of function `index`.
    fn raw_func(&self, index: usize) -> Option<RawFunc> {
        if index >= self.nfunc {
            return None;
        }
        let entry = self.entry_of(index)?;
        let at = self.record_at(index)?;
        let word = |field: usize| self.u32_at(at.checked_add(field * 4)?);
        let flags_at = at.checked_add(if self.go120 { 40 } else { 36 })?;
        Some(RawFunc {
            at,
            entry,
            name_off: word(1)?,
            pcsp: word(4)?,
            pcfile: word(5)?,
            pcln: word(6)?,
            npcdata: word(7)?,
            cu_offset: word(8)?,
            func_id: *self.data.get(flags_at)?,
            flag: *self.data.get(flags_at.checked_add(1)?)?,
            nfuncdata: *self.data.get(flags_at.checked_add(3)?)?,
        })
    }

    /// Offset in the table of the `_func` record of function `index`.
    fn record_at(&self, index: usize) -> Option<usize> {
        let func_off = self.u32_at(
            self.functab
                .checked_add(index.checked_mul(8)?.checked_add(4)?)?,
        )?;
        self.functab.checked_add(usize::try_from(func_off).ok()?)
    }

    /// Size of the fixed part of a `_func` record.
    fn func_header_size(&self) -> usize {
        if self.go120 {
            44
        } else {
            40
        }
    }

    /// Offset in `pctab` of the function's pcdata table `table`, if it has one.
    fn pcdata(&self, func: &RawFunc, table: u32) -> Option<u32> {
        if table >= func.npcdata {
            return None;
        }
        let at = func
            .at
            .checked_add(self.func_header_size())?
            .checked_add(usize::try_from(table).ok()? * 4)?;
        self.u32_at(at).filter(|&offset| offset != 0)
    }

    /// The function's funcdata `slot` as an offset from `go:func.*`, if present.
    fn funcdata_offset(&self, func: &RawFunc, slot: u32) -> Option<u32> {
        if slot >= u32::from(func.nfuncdata) {
            return None;
        }
        let at = func
            .at
            .checked_add(self.func_header_size())?
            .checked_add(usize::try_from(func.npcdata).ok()?.checked_mul(4)?)?
            .checked_add(usize::try_from(slot).ok()? * 4)?;
        self.u32_at(at).filter(|&offset| offset != u32::MAX)
    }

    /// A u32 at `offset` from `go:func.*`.
    fn funcdata_u32(&self, offset: usize) -> Option<u32> {
        match &self.funcdata {
            FuncData::Missing => None,
            FuncData::InTable(base) => self.u32_at(base.checked_add(offset)?),
            FuncData::Separate(bytes) => read_u32(bytes, offset),
        }
    }

    /// File and line of `pc` in `func` (innermost inlined position), `("?", 0)` if unknown.
    fn file_line(&self, func: &RawFunc, pc: u64) -> (String, u32) {
        let line = self
            .pc_value(func.pcln, func.entry, pc)
            .and_then(|line| u32::try_from(line).ok())
            .unwrap_or(0);
        let file = self
            .pc_value(func.pcfile, func.entry, pc)
            .and_then(|fileno| self.file_name(func.cu_offset, fileno))
            .unwrap_or_else(|| "?".to_string());
        (file, line)
    }

    fn file_name(&self, cu_offset: u32, fileno: i32) -> Option<String> {
        let slot = usize::try_from(cu_offset)
            .ok()?
            .checked_add(usize::try_from(fileno).ok()?)?;
        let offset = self.u32_at(self.cutab.checked_add(slot.checked_mul(4)?)?)?;
        if offset == u32::MAX {
            return None;
        }
        let start = self.filetab.checked_add(usize::try_from(offset).ok()?)?;
        Some(String::from_utf8_lossy(c_string(&self.data, start)?).into_owned())
    }

    /// Decodes pc-value table `table` (an offset in `pctab`) of a function entering at `entry` and
    /// returns the value at `target`. Tables start at value -1 and hold (value delta, pc delta)
    /// varint pairs; a zero value delta after the first pair ends the table.
    fn pc_value(&self, table: u32, entry: u64, target: u64) -> Option<i32> {
        if table == 0 {
            return None;
        }
        let mut at = self.pctab.checked_add(usize::try_from(table).ok()?)?;
        let mut value: i32 = -1;
        let mut pc = entry;
        let mut first = true;
        loop {
            let (value_delta, used) = read_varint(&self.data, at)?;
            if value_delta == 0 && !first {
                return None;
            }
            first = false;
            at += used;
            let delta = (value_delta >> 1) as i32 ^ -((value_delta & 1) as i32);
            value = value.wrapping_add(delta);
            let (pc_delta, used) = read_varint(&self.data, at)?;
            at += used;
            pc = pc.checked_add(u64::from(pc_delta).checked_mul(self.quantum)?)?;
            if target < pc {
                return Some(value);
            }
        }
    }

    /// Every `(pc, value)` step of pc-value table `table` of a function entering at `entry`,
    /// up to `end`: the value holds from that pc to the next step's.
    fn pc_values(&self, table: u32, entry: u64, end: u64) -> Vec<(u64, i32)> {
        let mut steps = Vec::new();
        if table == 0 {
            return steps;
        }
        let Some(mut at) = usize::try_from(table)
            .ok()
            .and_then(|table| self.pctab.checked_add(table))
        else {
            return steps;
        };
        let mut value: i32 = -1;
        let mut pc = entry;
        let mut first = true;
        while pc < end && steps.len() < MAX_PC_STEPS {
            let Some((value_delta, used)) = read_varint(&self.data, at) else {
                break;
            };
            if value_delta == 0 && !first {
                break;
            }
            first = false;
            at += used;
            value = value.wrapping_add((value_delta >> 1) as i32 ^ -((value_delta & 1) as i32));
            let Some((pc_delta, used)) = read_varint(&self.data, at) else {
                break;
            };
            at += used;
            steps.push((pc, value));
            match u64::from(pc_delta)
                .checked_mul(self.quantum)
                .and_then(|delta| pc.checked_add(delta))
            {
                Some(next) => pc = next,
                None => break,
            }
        }
        steps
    }

    fn name(&self, name_off: u32) -> String {
        self.name_bytes(name_off)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_else(|| "?".to_string())
    }

    fn name_bytes(&self, name_off: u32) -> Option<&[u8]> {
        c_string(
            &self.data,
            self.funcname.checked_add(usize::try_from(name_off).ok()?)?,
        )
    }

    /// True if the name at `name_off` is exactly `name` (without scanning for its end).
    fn name_is(&self, name_off: u32, name: &[u8]) -> bool {
        let Some(start) = usize::try_from(name_off)
            .ok()
            .and_then(|off| self.funcname.checked_add(off))
        else {
            return false;
        };
        let end = start.saturating_add(name.len());
        self.data.get(start..end) == Some(name) && self.data.get(end) == Some(&0)
    }

    fn u32_at(&self, offset: usize) -> Option<u32> {
        read_u32(&self.data, offset)
    }
}
