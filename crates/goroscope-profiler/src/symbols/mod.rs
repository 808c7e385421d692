//! Turning sampled addresses into source lines: Go code through the binary's own `.gopclntab`
//! (inlined calls expanded, compiler-generated wrappers left out, as Go's profiles show them),
//! native code (libc, cgo, any ELF) through blazesym with ELF symbols and DWARF, and the kernel
//! through kallsyms. An address nothing covers stays unsymbolized: outputs show its file and
//! offset, never a guessed name.

mod files;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use blazesym::symbolize::source::{Elf, Kernel, Source};
use blazesym::symbolize::{Input, Sym, Symbolized};
use blazesym::MaybeDefault;
use goroscope_goprocess::maps::{executable_mappings, Mapping};
use goroscope_model::profile::Line;

pub(crate) use files::FileKey;
use files::{CodeFile, CodeFiles};

/// Most processes whose mappings are kept (a host-wide profile on a host with churn).
const MAX_SPACES: usize = 65_536;

/// A mapping of a process, with the file behind it when one could be opened.
#[derive(Clone, Debug)]
pub(crate) struct SpaceMapping {
    pub mapping: Mapping,
    pub file: Option<FileKey>,
    /// True when it maps the process's own executable (`/proc/PID/exe`).
    pub executable: bool,
}

/// What one address resolved to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Resolved {
    /// Source lines, innermost first; empty when unsymbolized.
    pub lines: Vec<Line>,
    /// True when every frame at the address is compiler-generated and the location should be
    /// left out of stacks, as Go's own profiles do.
    pub hidden: bool,
}

/// The symbols of every process sampled, and the kernel's.
pub struct Symbols {
    proc_root: PathBuf,
    files: CodeFiles,
    spaces: HashMap<u32, Vec<SpaceMapping>>,
    native: blazesym::symbolize::Symbolizer,
}

impl Symbols {
    /// Symbols for processes under `proc_root` (normally `/proc`).
    pub fn new(proc_root: &Path) -> Symbols {
        Symbols {
            proc_root: proc_root.to_path_buf(),
            files: CodeFiles::default(),
            spaces: HashMap::new(),
            native: blazesym::symbolize::Symbolizer::builder()
                .enable_code_info(true)
                .enable_inlined_fns(true)
                .enable_demangling(true)
                .build(),
        }
    }

    /// Records the code mappings of live process `pid` and opens their files, so its addresses
    /// can be symbolized after it exits. Does nothing for a process already recorded. Returns
    /// false when the process is gone (or too many are recorded).
    pub fn capture(&mut self, pid: u32) -> bool {
        if self.spaces.contains_key(&pid) {
            return true;
        }
        if self.spaces.len() >= MAX_SPACES {
            return false;
        }
        let mappings = executable_mappings(&self.proc_root, pid);
        if mappings.is_empty() {
            return false;
        }
        let exe = std::fs::read_link(self.proc_root.join(pid.to_string()).join("exe")).ok();
        let space = mappings
            .into_iter()
            .map(|mapping| SpaceMapping {
                file: self.files.open(&self.proc_root, pid, &mapping),
                executable: exe
                    .as_deref()
                    .is_some_and(|exe| exe.as_os_str() == mapping.path.as_str()),
                mapping,
            })
            .collect();
        self.spaces.insert(pid, space);
        true
    }

    /// Forgets `pid`'s mappings (it exec'd: the next capture reads the new ones).
    pub fn forget(&mut self, pid: u32) {
        self.spaces.remove(&pid);
    }

    /// The mappings recorded for `pid`, in address order.
    pub(crate) fn space(&self, pid: u32) -> &[SpaceMapping] {
        self.spaces.get(&pid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The build id of the file behind a mapping ("" when unknown).
    pub(crate) fn build_id(&self, file: Option<FileKey>) -> &str {
        file.and_then(|key| self.files.get(&key))
            .map(|f| f.build_id.as_str())
            .unwrap_or("")
    }

    /// Resolves addresses of one file: `lookups` are file offsets to symbolize (already moved
    /// back into the call instruction for return addresses). Go code goes through the Go table,
    /// the rest through blazesym in one batch.
    pub(crate) fn resolve_file(&self, file: FileKey, lookups: &[u64]) -> Vec<Resolved> {
        let Some(code) = self.files.get(&file) else {
            return vec![Resolved::default(); lookups.len()];
        };
        let mut out: Vec<Option<Resolved>> = lookups
            .iter()
            .map(|&offset| resolve_go(code, offset))
            .collect();
        let rest: Vec<u64> = lookups
            .iter()
            .zip(&out)
            .filter(|(_, done)| done.is_none())
            .map(|(&offset, _)| offset)
            .collect();
        if let (Some(path), false) = (&code.native, rest.is_empty()) {
            let source = Source::Elf(Elf {
                debug_syms: code.dwarf,
                ..Elf::new(path.clone())
            });
            let symbolized = self
                .native
                .symbolize(&source, Input::FileOffset(&rest))
                .unwrap_or_default();
            let mut results = symbolized.iter().map(|s| match s {
                Symbolized::Sym(sym) => native_lines(sym),
                Symbolized::Unknown(_) => Vec::new(),
            });
            for slot in out.iter_mut().filter(|slot| slot.is_none()) {
                *slot = Some(Resolved {
                    lines: results.next().unwrap_or_default(),
                    hidden: false,
                });
            }
        }
        out.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// True when, at run-time address `pc` of process `pid`, Go code keeps its return address at
    /// the stack pointer (its pcsp table says 0: no frame yet, or none at all), so it has not
    /// saved the frame pointer. False for anything else, native code included.
    pub(crate) fn go_return_address_at_sp(&self, pid: u32, pc: u64) -> bool {
        let space = self.space(pid);
        let Some(found) = space
            .partition_point(|m| m.mapping.start <= pc)
            .checked_sub(1)
            .and_then(|i| space.get(i))
            .filter(|m| pc < m.mapping.end)
        else {
            return false;
        };
        let Some(go) = found
            .file
            .and_then(|key| self.files.get(&key))
            .and_then(|code| code.go.as_ref())
        else {
            return false;
        };
        let offset = pc - found.mapping.start + found.mapping.offset;
        CodeFile::linked_address(&go.segments, offset)
            .and_then(|linked| go.pclntab.frame_layout(linked))
            .is_some_and(|layout| layout.sp_delta == 0)
    }

    /// Resolves kernel addresses (already moved back into the call for return addresses).
    pub(crate) fn resolve_kernel(&self, addresses: &[u64]) -> Vec<Vec<Line>> {
        let source = Source::Kernel(Kernel {
            vmlinux: MaybeDefault::None,
            debug_syms: false,
            ..Kernel::default()
        });
        let symbolized = self
            .native
            .symbolize(&source, Input::AbsAddr(addresses))
            .unwrap_or_default();
        let mut out: Vec<Vec<Line>> = symbolized
            .iter()
            .map(|s| match s {
                Symbolized::Sym(sym) => native_lines(sym),
                Symbolized::Unknown(_) => Vec::new(),
            })
            .collect();
        out.resize(addresses.len(), Vec::new());
        out
    }

    /// Files not opened because too many were open.
    pub fn files_refused(&self) -> u64 {
        self.files.refused
    }
}

/// Go's frames at file offset `offset`, `None` when the file is not Go or no Go function covers
/// it (C code in a cgo binary).
fn resolve_go(code: &CodeFile, offset: u64) -> Option<Resolved> {
    let go = code.go.as_ref()?;
    let linked = CodeFile::linked_address(&go.segments, offset)?;
    let frames = go.pclntab.frames_at(linked);
    if frames.is_empty() {
        return None;
    }
    let lines: Vec<Line> = frames
        .iter()
        .filter(|frame| !frame.wrapper)
        .map(|frame| Line {
            // pprof's "unknown": the table does not carry a function's first line cheaply.
            start_line: 0,
            function: frame.function.clone(),
            file: frame.file.clone(),
            line: frame.line,
        })
        .collect();
    Some(Resolved {
        hidden: lines.is_empty(),
        lines,
    })
}

/// blazesym's symbol as lines, innermost first.
fn native_lines(sym: &Sym<'_>) -> Vec<Line> {
    let line_of = |info: Option<&blazesym::symbolize::CodeInfo<'_>>| {
        info.map(|info| {
            let file = match &info.dir {
                Some(dir) if !dir.as_os_str().is_empty() => {
                    dir.join(&info.file).to_string_lossy().into_owned()
                }
                _ => info.file.to_string_lossy().into_owned(),
            };
            (file, info.line.unwrap_or(0))
        })
        .unwrap_or_default()
    };
    let mut lines: Vec<Line> = sym
        .inlined
        .iter()
        .rev()
        .map(|inlined| {
            let (file, line) = line_of(inlined.code_info.as_ref());
            Line {
                function: inlined.name.to_string(),
                file,
                line,
                start_line: 0,
            }
        })
        .collect();
    let (file, line) = line_of(sym.code_info.as_deref());
    lines.push(Line {
        function: sym.name.to_string(),
        file,
        line,
        start_line: 0,
    });
    lines
}
