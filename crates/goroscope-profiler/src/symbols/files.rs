//! The code files sampled processes map, each opened once while its process is alive and kept
//! open: symbolizing at the end of a profile then works for processes that have exited, files
//! deleted or replaced since, and files in other mount namespaces. Each file is classified once
//! as a Go binary (symbolized through its `.gopclntab`) or a native ELF (through blazesym), and
//! its build id read.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::ElfFile;
use goroscope_goprocess::maps::Mapping;
use object::{Object, ObjectSection};

/// Most files kept open (a host-wide profile of a busy host maps a few hundred).
const MAX_FILES: usize = 4096;
/// Largest debug information read for lines and inlined calls. Bigger DWARF (a debug build of a
/// large program: a debug goroscope has 100 MB) costs seconds to parse; its addresses are named
/// from the ELF symbol table alone.
const MAX_DWARF_BYTES: u64 = 16 << 20;

/// A file's identity: (device major, device minor, inode).
pub(crate) type FileKey = (u64, u64, u64);

/// A Go binary's function table, and where its loadable segments sit, to turn file offsets into
/// linked addresses.
pub(crate) struct GoTable {
    pub pclntab: Arc<Pclntab>,
    pub segments: Vec<Segment>,
}

/// A loadable segment: `size` bytes at file offset `offset` are linked at `address`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    offset: u64,
    address: u64,
    size: u64,
}

/// One opened code file.
pub(crate) struct CodeFile {
    /// The path of its open descriptor, for blazesym (ELF symbols and DWARF); `None` when it
    /// could not be read as ELF: its addresses then show as file and offset.
    pub native: Option<PathBuf>,
    /// True when blazesym may read its DWARF: not a Go binary (whose table says more, and whose
    /// DWARF is compressed) and not too big.
    pub dwarf: bool,
    /// Its Go function table, for Go binaries (their C code, with cgo, is left to `native`).
    pub go: Option<GoTable>,
    /// GNU build id in hex, else Go's build id, else empty.
    pub build_id: String,
    /// Kept open so `/proc/self/fd/N` stays valid.
    _file: Option<File>,
}

impl CodeFile {
    /// The linked address of file offset `offset` in a Go binary.
    pub fn linked_address(segments: &[Segment], offset: u64) -> Option<u64> {
        segments
            .iter()
            .find(|s| offset >= s.offset && offset - s.offset < s.size)
            .map(|s| offset - s.offset + s.address)
    }
}

/// Every code file seen, by identity.
#[derive(Default)]
pub(crate) struct CodeFiles {
    files: HashMap<FileKey, CodeFile>,
    /// Files not opened because [`MAX_FILES`] were open.
    pub refused: u64,
}

impl CodeFiles {
    /// The file behind `mapping` of live process `pid`, opened and classified on first sight.
    pub fn open(&mut self, proc_root: &Path, pid: u32, mapping: &Mapping) -> Option<FileKey> {
        if mapping.inode == 0 || mapping.path.starts_with('[') {
            return None;
        }
        let key = (mapping.device.0, mapping.device.1, mapping.inode);
        if self.files.contains_key(&key) {
            return Some(key);
        }
        if self.files.len() >= MAX_FILES {
            self.refused += 1;
            return None;
        }
        // map_files opens exactly what is mapped, whatever the namespace or a later unlink did.
        let via = proc_root
            .join(pid.to_string())
            .join("map_files")
            .join(format!("{:x}-{:x}", mapping.start, mapping.end));
        let file = File::open(&via)
            .or_else(|_| {
                File::open(
                    proc_root
                        .join(pid.to_string())
                        .join("root")
                        .join(mapping.path.trim_start_matches('/')),
                )
            })
            .ok();
        let code = match file {
            Some(file) => classify(file),
            None => CodeFile {
                native: None,
                dwarf: false,
                go: None,
                build_id: String::new(),
                _file: None,
            },
        };
        self.files.insert(key, code);
        Some(key)
    }

    /// A file opened before.
    pub fn get(&self, key: &FileKey) -> Option<&CodeFile> {
        self.files.get(key)
    }
}

/// Reads what symbolizing `file` needs.
fn classify(file: File) -> CodeFile {
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let Ok(elf) = ElfFile::from_file(&file, &path) else {
        return CodeFile {
            native: None,
            dwarf: false,
            go: None,
            build_id: String::new(),
            _file: Some(file),
        };
    };
    // Go's linker always writes these sections; looking for build info in files without them
    // would scan every large native library for nothing.
    let is_go = [".go.buildinfo", ".gopclntab", ".note.go.buildid"]
        .iter()
        .any(|name| elf.section(name).is_some())
        && goroscope_gobin::buildinfo::read(&elf).is_ok();
    let go = is_go
        .then(|| Pclntab::read(&elf).ok())
        .flatten()
        .map(|pclntab| {
            pclntab.release_resident();
            GoTable {
                pclntab: Arc::new(pclntab),
                segments: elf
                    .segments()
                    .iter()
                    .map(|s| Segment {
                        offset: s.file_offset,
                        address: s.address,
                        size: s.file_size,
                    })
                    .collect(),
            }
        });
    let dwarf_bytes: u64 = [".debug_info", ".zdebug_info", ".debug_line", ".zdebug_line"]
        .iter()
        .filter_map(|name| elf.section(name))
        .map(|section| section.size)
        .sum();
    CodeFile {
        native: Some(path),
        dwarf: go.is_none() && dwarf_bytes <= MAX_DWARF_BYTES,
        go,
        build_id: build_id(&elf),
        _file: Some(file),
    }
}

/// The GNU build id as hex, else Go's build id (`.note.go.buildid`), else empty.
fn build_id(elf: &ElfFile) -> String {
    let Ok(object) = elf.object() else {
        return String::new();
    };
    if let Ok(Some(id)) = object.build_id() {
        return id.iter().map(|b| format!("{b:02x}")).collect();
    }
    // A note: namesz, descsz, type, "Go\0\0", then the id.
    let go_id = object
        .section_by_name(".note.go.buildid")
        .and_then(|section| section.data().ok())
        .and_then(|data| {
            let descsz = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
            let desc = data.get(16..16 + descsz)?;
            std::str::from_utf8(desc).ok().map(str::to_string)
        });
    go_id.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_offsets_become_linked_addresses_only_inside_a_segment() {
        let segments = [
            Segment {
                offset: 0,
                address: 0x400000,
                size: 0x1000,
            },
            Segment {
                offset: 0x1000,
                address: 0x401000,
                size: 0x5000,
            },
        ];
        assert_eq!(CodeFile::linked_address(&segments, 0x10), Some(0x400010));
        assert_eq!(CodeFile::linked_address(&segments, 0x2345), Some(0x402345));
        assert_eq!(CodeFile::linked_address(&segments, 0x6000), None);
    }
}
