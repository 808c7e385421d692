//! Attaching to a live Go process: read its executable (build info, function table, offsets,
//! runtime global addresses), find its load bias, read its wait-reason names, and check that what
//! its memory holds looks like the runtime we expect before anything is reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use goroscope_gobin::buildinfo::{self, BuildInfo};
use goroscope_gobin::locate::{self, GlobalsSource, RuntimeGlobals};
use goroscope_gobin::offsets::{OffsetSource, OffsetTables, RuntimeOffsets, HIDE_TABLE_ENV};
use goroscope_gobin::pclntab::Pclntab;
use goroscope_gobin::{ElfFile, GoVersion, GobinError};

use crate::error::AttachError;
use crate::frame_table::FrameTable;
use crate::image::Image;
use crate::maps::load_bias;
use crate::memory::{LeBytes, ProcessMemory, ReadRange};
use crate::validate;

/// Longest wait-reason name accepted from the target (they are all short phrases).
const MAX_WAIT_REASON_LEN: u64 = 128;
/// Most wait reasons accepted (Go 1.26 has about 45; the byte field limits it to 256).
const MAX_WAIT_REASONS: u64 = 256;

/// What goroscope learned about a target when attaching.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    /// Process id.
    pub pid: u32,
    /// Path of its executable as /proc shows it.
    pub executable: PathBuf,
    /// Build information from `.go.buildinfo`.
    pub build: BuildInfo,
    /// The parsed Go version.
    pub version: GoVersion,
    /// True for position-independent executables.
    pub position_independent: bool,
    /// Added to linked addresses to get run-time ones.
    pub load_bias: u64,
    /// Where the struct offsets came from.
    pub offsets_source: OffsetSource,
    /// Where the global addresses came from.
    pub globals_source: GlobalsSource,
    /// Things that work less well for this target than usual, for the operator.
    pub warnings: Vec<String>,
}

/// A live Go process goroscope can take snapshots of.
pub struct GoProcess {
    pub(crate) info: TargetInfo,
    pub(crate) offsets: RuntimeOffsets,
    /// Run-time (biased) addresses of the runtime globals.
    pub(crate) globals: RuntimeGlobals,
    pub(crate) memory: ProcessMemory,
    pub(crate) wait_reasons: Vec<String>,
    pub(crate) pclntab: Arc<Pclntab>,
    pub(crate) reader: crate::snapshot::ReaderState,
    /// The address space attached to, to notice an exec.
    pub(crate) image: Image,
}

impl GoProcess {
    /// Attaches to process `pid`, with /proc at `proc_root`.
    pub fn attach(proc_root: &Path, pid: u32) -> Result<GoProcess, AttachError> {
        GoProcess::attach_inner(proc_root, pid, None)
    }

    /// Attaches to process `pid` with runtime struct offsets the caller supplies instead of the
    /// ones goroscope would find (e.g. from the debug information of the same build kept
    /// elsewhere). They are checked as strictly as their `source` asks: offsets marked
    /// [`OffsetSource::Inferred`] must pass the inferred-layout invariants.
    pub fn attach_with_offsets(
        proc_root: &Path,
        pid: u32,
        offsets: RuntimeOffsets,
    ) -> Result<GoProcess, AttachError> {
        GoProcess::attach_inner(proc_root, pid, Some(offsets))
    }

    fn attach_inner(
        proc_root: &Path,
        pid: u32,
        supplied: Option<RuntimeOffsets>,
    ) -> Result<GoProcess, AttachError> {
        let process = proc_root.join(pid.to_string());
        if !process.join("status").exists() {
            return Err(AttachError::NoProcess { pid });
        }
        // Bound to the address space the process has now, before its executable is read: an exec
        // in between is caught by the check at the end.
        let image = Image::open(proc_root, pid)?;
        let exe = process.join("exe");
        let executable = std::fs::read_link(&exe).unwrap_or_else(|_| exe.clone());
        let cannot_open = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => AttachError::NoProcess { pid },
            _ => AttachError::Executable {
                pid,
                path: exe.display().to_string(),
                source,
            },
        };
        let file = std::fs::File::open(&exe).map_err(cannot_open)?;
        let binary = |source: GobinError| AttachError::Binary { pid, source };
        // Mapped, not read: the function table is used in place for as long as the process is
        // watched, and only the pages touched are ever in memory (a 50 MB daemon costs a few).
        let elf = ElfFile::from_file(&file, &executable).map_err(binary)?;
        drop(file);
        if !elf.is_x86_64() {
            return Err(binary(GobinError::UnsupportedArchitecture {
                path: executable.clone(),
                architecture: "an architecture other than x86-64".into(),
            }));
        }
        let build = buildinfo::read(&elf).map_err(binary)?;
        let version = GoVersion::parse(&build.go_version).ok_or_else(|| {
            binary(GobinError::UnsupportedGoVersion {
                path: executable.clone(),
                version: build.go_version.clone(),
            })
        })?;
        if !version.at_least(1, 19) {
            return Err(binary(GobinError::UnsupportedGoVersion {
                path: executable.clone(),
                version: build.go_version.clone(),
            }));
        }
        let pclntab = Pclntab::read(&elf).map_err(binary)?;
        let tables = OffsetTables::from_env();
        let offsets = match supplied {
            Some(offsets) => offsets,
            None => tables
                .for_binary(&elf, &version, &pclntab)
                .map_err(binary)?,
        };
        let linked = locate::locate_globals(&elf, &pclntab, &offsets).map_err(binary)?;
        let bias = load_bias(proc_root, pid, &elf).ok_or(AttachError::NoMapping { pid })?;
        let globals = with_bias(&linked, bias);

        let info = TargetInfo {
            pid,
            executable,
            position_independent: elf.is_position_independent(),
            load_bias: bias,
            offsets_source: offsets.source,
            globals_source: linked.source,
            warnings: offsets_warnings(&offsets, &tables),
            build,
            version,
        };
        let mut memory = ProcessMemory::new(pid);
        let wait_reasons = read_wait_reasons(&mut memory, &globals, &info)?;
        let pclntab = Arc::new(pclntab);
        let frames = FrameTable::new(Arc::clone(&pclntab), bias);
        let mut process = GoProcess {
            info,
            offsets,
            globals,
            memory,
            wait_reasons,
            pclntab,
            reader: crate::snapshot::ReaderState::new(frames),
            image,
        };
        process.image.set_probe(process.globals.allglen);
        let checked = validate::check_attach(&mut process);
        // Whatever the checks said, an exec during attach is the reason.
        process.image.check()?;
        checked?;
        // Finding globals and validating scanned much of the binary; keep none of it resident.
        process.pclntab.release_resident();
        Ok(process)
    }

    /// Gives back the pages of the executable this reader touched (see
    /// `goroscope_gobin::SharedBytes::release_resident`): a long-running reader calls it now and
    /// then so its RSS stays what recent snapshots needed.
    pub fn release_resident(&self) {
        self.pclntab.release_resident();
    }

    /// What was learned at attach.
    pub fn info(&self) -> &TargetInfo {
        &self.info
    }

    /// The runtime struct offsets used for this target.
    pub fn runtime_offsets(&self) -> &RuntimeOffsets {
        &self.offsets
    }

    /// The target's wait-reason names, by index.
    pub fn wait_reasons(&self) -> &[String] {
        &self.wait_reasons
    }

    /// The run-time addresses of the process's Go code (`runtime.text` to the end of the last
    /// function), `None` when its function table cannot say.
    pub fn go_code(&self) -> Option<std::ops::Range<u64>> {
        let bias = self.info.load_bias;
        let end = self.pclntab.text_end()?;
        Some(self.pclntab.text_start().wrapping_add(bias)..end.wrapping_add(bias))
    }

    /// A symbolizer for this process's program counters.
    pub fn symbolizer(&self) -> crate::symbolizer::ProcessSymbolizer {
        crate::symbolizer::ProcessSymbolizer::new(
            Arc::clone(&self.pclntab),
            self.info.load_bias,
            self.info.pid,
        )
    }

    pub(crate) fn implausible(&self, what: String) -> AttachError {
        AttachError::Implausible {
            pid: self.info.pid,
            version: self.info.version.to_string(),
            what,
        }
    }
}

/// What the operator should know about where the offsets came from.
fn offsets_warnings(offsets: &RuntimeOffsets, tables: &OffsetTables) -> Vec<String> {
    let mut warnings = Vec::new();
    let hidden = tables.hidden();
    if !hidden.is_empty() {
        let lines: Vec<String> = hidden
            .iter()
            .map(|(major, minor)| format!("go{major}.{minor}"))
            .collect();
        warnings.push(format!(
            "{HIDE_TABLE_ENV} (a test-only switch) hides the offset tables of {}",
            lines.join(", ")
        ));
    }
    if let OffsetSource::Inferred { .. } = offsets.source {
        warnings.push(format!(
            "no DWARF and no offset table for this Go release: runtime struct offsets {}, checked against the live process",
            offsets.source.describe()
        ));
    }
    warnings
}

fn with_bias(globals: &RuntimeGlobals, bias: u64) -> RuntimeGlobals {
    let add = |address: u64| address.wrapping_add(bias);
    RuntimeGlobals {
        allgs: add(globals.allgs),
        allglen: add(globals.allglen),
        sched: add(globals.sched),
        allp: add(globals.allp),
        memstats: globals.memstats.map(add),
        gc_controller: globals.gc_controller.map(add),
        wait_reason_strings: add(globals.wait_reason_strings),
        wait_reason_count: globals.wait_reason_count,
        source: globals.source,
        missing: globals.missing.clone(),
    }
}

/// Reads `runtime.waitReasonStrings` (an array of Go strings) from the live process, where PIE
/// relocations have already been applied.
fn read_wait_reasons(
    memory: &mut ProcessMemory,
    globals: &RuntimeGlobals,
    info: &TargetInfo,
) -> Result<Vec<String>, AttachError> {
    let count = globals.wait_reason_count;
    let implausible = |what: String| AttachError::Implausible {
        pid: info.pid,
        version: info.version.to_string(),
        what,
    };
    if count == 0 || count > MAX_WAIT_REASONS {
        return Err(implausible(format!(
            "runtime.waitReasonStrings has {count} entries"
        )));
    }
    let mut headers = vec![0u8; (count * 16) as usize];
    memory.read_exact(globals.wait_reason_strings, &mut headers)?;
    let mut ranges = Vec::with_capacity(count as usize);
    let mut offset = 0usize;
    for index in 0..count {
        let pointer = headers.u64_at(index * 16);
        let len = headers.u64_at(index * 16 + 8);
        if len > MAX_WAIT_REASON_LEN || (len > 0 && pointer == 0) {
            return Err(implausible(format!(
                "wait reason {index} is a string of {len} bytes at {pointer:#x}"
            )));
        }
        ranges.push(ReadRange {
            address: pointer,
            len: len as usize,
            offset,
        });
        offset += len as usize;
    }
    let mut text = vec![0u8; offset];
    let mut ok = vec![false; ranges.len()];
    memory.read_ranges(&ranges, &mut text, &mut ok)?;
    let mut names = Vec::with_capacity(ranges.len());
    for (range, read) in ranges.iter().zip(&ok) {
        let bytes = &text[range.offset..range.offset + range.len];
        let valid = *read || range.len == 0;
        match std::str::from_utf8(bytes) {
            Ok(name) if valid && name.chars().all(|c| !c.is_control()) => {
                names.push(name.to_string())
            }
            _ => {
                return Err(implausible(format!(
                    "wait reason {} is not readable text",
                    names.len()
                )))
            }
        }
    }
    if !names.iter().any(|name| name == "chan receive") {
        return Err(implausible(
            "runtime.waitReasonStrings has no \"chan receive\" entry".into(),
        ));
    }
    Ok(names)
}
