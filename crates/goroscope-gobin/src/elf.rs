//! The ELF file of a Go program, loaded once: its bytes (mapped, not read: see `bytes.rs`), section
//! table and loadable segments, so the other modules can ask for a section by name or for the bytes
//! at a virtual address.

use std::path::{Path, PathBuf};

use object::{Object, ObjectKind, ObjectSection, ObjectSegment};

use crate::bytes::SharedBytes;
use crate::error::GobinError;

/// One section of the file.
#[derive(Debug, Clone)]
pub struct Section {
    /// Section name, e.g. `.gopclntab`.
    pub name: String,
    /// Virtual address the section is linked at (before any PIE load bias).
    pub address: u64,
    /// Size in memory.
    pub size: u64,
    /// Offset and length in the file; `None` for sections with no file bytes (`.bss`).
    pub file_range: Option<(u64, u64)>,
}

/// One loadable segment (PT_LOAD) of the file.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// Linked virtual address.
    pub address: u64,
    /// Size in memory.
    pub size: u64,
    /// Offset of the file bytes.
    pub file_offset: u64,
    /// Number of bytes backed by the file (the rest is zero-filled).
    pub file_size: u64,
}

/// A parsed ELF file with its bytes.
#[derive(Debug)]
pub struct ElfFile {
    path: PathBuf,
    data: SharedBytes,
    sections: Vec<Section>,
    segments: Vec<Segment>,
    position_independent: bool,
    pointer_size: u8,
    little_endian: bool,
    x86_64: bool,
}

impl ElfFile {
    /// Maps and parses the file at `path`.
    pub fn open(path: &Path) -> Result<ElfFile, GobinError> {
        let read = |source| GobinError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        ElfFile::from_file(&file, path)
    }

    /// Maps and parses an open file; `path` is used only in messages. Nothing is copied: the
    /// pages the callers touch are read in by the kernel (see `bytes.rs`).
    pub fn from_file(file: &std::fs::File, path: &Path) -> Result<ElfFile, GobinError> {
        let data = SharedBytes::map(file).map_err(|source| GobinError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ElfFile::from_shared(data, path)
    }

    /// Parses bytes already in memory; `path` is used only in messages.
    pub fn from_bytes(data: Vec<u8>, path: &Path) -> Result<ElfFile, GobinError> {
        ElfFile::from_shared(SharedBytes::from_vec(data), path)
    }

    fn from_shared(data: SharedBytes, path: &Path) -> Result<ElfFile, GobinError> {
        let file = object::File::parse(&*data).map_err(|error| GobinError::NotElf {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(GobinError::NotElf {
                path: path.to_path_buf(),
                reason: format!("it is a {:?} file", file.format()),
            });
        }
        let sections = file
            .sections()
            .map(|section| Section {
                name: section.name().unwrap_or("").to_string(),
                address: section.address(),
                size: section.size(),
                file_range: section.file_range(),
            })
            .collect();
        let segments = file
            .segments()
            .map(|segment| {
                let (file_offset, file_size) = segment.file_range();
                Segment {
                    address: segment.address(),
                    size: segment.size(),
                    file_offset,
                    file_size,
                }
            })
            .collect();
        let position_independent = file.kind() == ObjectKind::Dynamic;
        let pointer_size = if file.is_64() { 8 } else { 4 };
        let little_endian = file.is_little_endian();
        let x86_64 = file.architecture() == object::Architecture::X86_64;
        drop(file);
        Ok(ElfFile {
            path: path.to_path_buf(),
            data,
            sections,
            segments,
            position_independent,
            pointer_size,
            little_endian,
            x86_64,
        })
    }

    /// The path the file was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// `part` (a sub-slice of [`ElfFile::bytes`]) as bytes that outlive this `ElfFile` without
    /// being copied.
    pub fn share(&self, part: &[u8]) -> Option<SharedBytes> {
        self.data.view(part)
    }

    /// Re-parses the file with `object` for callers that need its full API (symbols, DWARF).
    pub fn object(&self) -> Result<object::File<'_>, GobinError> {
        object::File::parse(&*self.data).map_err(|error| GobinError::NotElf {
            path: self.path.clone(),
            reason: error.to_string(),
        })
    }

    /// True for ET_DYN executables (PIE): their addresses move by a load bias at run time.
    pub fn is_position_independent(&self) -> bool {
        self.position_independent
    }

    /// 8 on 64-bit targets.
    pub fn pointer_size(&self) -> u8 {
        self.pointer_size
    }

    /// True for little-endian targets.
    pub fn is_little_endian(&self) -> bool {
        self.little_endian
    }

    /// True for x86-64, the only architecture goroscope reads Go processes on today.
    pub fn is_x86_64(&self) -> bool {
        self.x86_64
    }

    /// All sections.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// All PT_LOAD segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The section called `name`, if any.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|section| section.name == name)
    }

    /// The file bytes of section `name` with its linked address; `None` if absent or without bytes.
    pub fn section_data(&self, name: &str) -> Option<(u64, &[u8])> {
        let section = self.section(name)?;
        let (offset, size) = section.file_range?;
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        Some((section.address, self.data.get(start..end)?))
    }

    /// The file bytes at linked virtual address `address`, `len` long, if a segment backs all of them.
    pub fn read_at(&self, address: u64, len: usize) -> Option<&[u8]> {
        let segment = self.segments.iter().find(|segment| {
            address >= segment.address && address < segment.address + segment.file_size
        })?;
        let within = address - segment.address;
        if within.checked_add(len as u64)? > segment.file_size {
            return None;
        }
        let start = usize::try_from(segment.file_offset + within).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }

    /// A little-endian u64 at linked address `address`, read from the file.
    pub fn read_u64_at(&self, address: u64) -> Option<u64> {
        let bytes = self.read_at(address, 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}
