//! Finds the linked addresses of the Go runtime globals goroscope reads (`runtime.allgs`,
//! `runtime.allglen`, `runtime.sched`, `runtime.allp`, `runtime.memstats`, `runtime.gcController`,
//! `runtime.waitReasonStrings`).
//!
//! With a `.symtab` they are plain symbol lookups. Stripped binaries (`-ldflags="-s -w"`) keep
//! `.gopclntab`, so the runtime functions that use the globals can still be found and decoded: the
//! rules in `locate/rules.rs` recognise how each function touches its global (see there). Only a
//! handful of small functions are decoded, which takes well under a millisecond.

pub(crate) mod decode;
pub(crate) mod rules;
mod value;

use std::collections::HashMap;

use crate::elf::ElfFile;
use crate::error::GobinError;
use crate::offsets::RuntimeOffsets;
use crate::pclntab::Pclntab;
use crate::symtab::SymbolTable;

use decode::{CallFacts, Step};

/// Finds a function's code by name.
pub trait FunctionLookup {
    /// The linked `(entry, end)` of function `name` (end exclusive), e.g. for `runtime.allgadd`.
    fn function_range(&self, name: &str) -> Option<(u64, u64)>;
}

impl FunctionLookup for SymbolTable {
    fn function_range(&self, name: &str) -> Option<(u64, u64)> {
        SymbolTable::function_range(self, name)
    }
}

impl FunctionLookup for Pclntab {
    fn function_range(&self, name: &str) -> Option<(u64, u64)> {
        self.function_by_name(name)
            .map(|function| (function.entry, function.end))
    }
}

/// Where the addresses in a [`RuntimeGlobals`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalsSource {
    /// Symbol lookups in `.symtab`.
    Symtab,
    /// Decoding runtime functions (stripped binary).
    Decoded,
}

/// An optional global that could not be found, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingGlobal {
    /// The global, e.g. `runtime.memstats`.
    pub symbol: &'static str,
    /// Why it was not found (which function was decoded and what was seen).
    pub reason: String,
}

/// Linked addresses (before any PIE load bias) of the runtime globals goroscope reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeGlobals {
    /// `runtime.allgs` (`[]*g`: the slice header).
    pub allgs: u64,
    /// `runtime.allglen` (`uintptr`).
    pub allglen: u64,
    /// `runtime.sched` (`schedt`).
    pub sched: u64,
    /// `runtime.allp` (`[]*p`: the slice header).
    pub allp: u64,
    /// `runtime.memstats` (`mstats`), if found.
    pub memstats: Option<u64>,
    /// `runtime.gcController` (`gcControllerState`), if found.
    pub gc_controller: Option<u64>,
    /// `runtime.waitReasonStrings` (`[N]string`).
    pub wait_reason_strings: u64,
    /// N: number of entries of `runtime.waitReasonStrings`.
    pub wait_reason_count: u64,
    /// How the addresses were found.
    pub source: GlobalsSource,
    /// The optional globals (`memstats`, `gc_controller`) left `None`, with the reason.
    pub missing: Vec<MissingGlobal>,
}

/// Finds the runtime globals of `elf`: from `.symtab` when it has one with all the required
/// symbols, else by decoding runtime functions found through `functions` (see [`decode_globals`]).
pub fn locate_globals(
    elf: &ElfFile,
    functions: &dyn FunctionLookup,
    offsets: &RuntimeOffsets,
) -> Result<RuntimeGlobals, GobinError> {
    if let Some(globals) = SymbolTable::read(elf).and_then(|symbols| from_symtab(&symbols)) {
        return Ok(globals);
    }
    decode_globals(elf, functions, offsets)
}

/// The globals from a symbol table; `None` if a required one is missing.
pub fn from_symtab(symbols: &SymbolTable) -> Option<RuntimeGlobals> {
    let address = |name: &str| symbols.lookup(name).map(|symbol| symbol.address);
    let strings = symbols.lookup("runtime.waitReasonStrings")?;
    let mut missing = Vec::new();
    let mut optional = |name: &'static str| {
        let found = address(name);
        if found.is_none() {
            missing.push(MissingGlobal {
                symbol: name,
                reason: "not in .symtab".to_string(),
            });
        }
        found
    };
    let memstats = optional("runtime.memstats");
    let gc_controller = optional("runtime.gcController");
    Some(RuntimeGlobals {
        allgs: address("runtime.allgs")?,
        allglen: address("runtime.allglen")?,
        sched: address("runtime.sched")?,
        allp: address("runtime.allp")?,
        memstats,
        gc_controller,
        wait_reason_strings: strings.address,
        wait_reason_count: strings.size / 16,
        source: GlobalsSource::Symtab,
        missing,
    })
}

/// Finds the runtime globals without `.symtab`, by decoding the runtime functions that use them
/// (found through `functions`, normally the `.gopclntab` table). `offsets` supplies the field
/// offsets the rules need (`schedt.goidgen`, `p.status`, `mstats.numgc`/`pause_ns`).
///
/// `memstats` and `gc_controller` are optional: when not found they are `None` and
/// [`RuntimeGlobals::missing`] says why. The others fail with [`GobinError::GlobalNotFound`].
pub fn decode_globals(
    elf: &ElfFile,
    functions: &dyn FunctionLookup,
    offsets: &RuntimeOffsets,
) -> Result<RuntimeGlobals, GobinError> {
    let mut code = Functions::new(elf, functions);
    let not_found = |symbol: &str, via: String| GobinError::GlobalNotFound {
        path: elf.path().to_path_buf(),
        symbol: symbol.to_string(),
        via,
    };

    let allgs = code
        .search(&["runtime.allgadd"], |steps| rules::allgs(elf, steps))
        .map_err(|via| not_found("runtime.allgs", via))?;
    let allglen = code
        .search(&["runtime.allgadd"], |steps| {
            rules::allglen(elf, steps, allgs)
        })
        .map_err(|via| not_found("runtime.allglen", via))?;
    let goidgen = offsets.sched.goidgen;
    let sched = code
        .search(&["runtime.newproc1"], |steps| {
            rules::sched(elf, steps, 16, goidgen)
        })
        .or_else(|first| {
            code.search(&["runtime.oneNewExtraM"], |steps| {
                rules::sched(elf, steps, 1, goidgen)
            })
            .map_err(|second| format!("{first} and {second}"))
        })
        .map_err(|via| not_found("runtime.sched", via))?;
    let status = offsets.p.status;
    let allp = code
        .search(
            &["runtime.preemptall", "runtime.gcMarkTinyAllocs"],
            |steps| rules::allp(elf, steps, status),
        )
        .map_err(|via| not_found("runtime.allp", via))?;
    let (wait_reason_strings, wait_reason_count) = code
        .search(&["runtime.waitReason.String"], |steps| {
            rules::wait_reason_strings(elf, steps)
        })
        .map_err(|via| not_found("runtime.waitReasonStrings", via))?;

    let mut missing = Vec::new();
    let (numgc, pause_ns) = (offsets.memstats.numgc, offsets.memstats.pause_ns);
    let memstats = code
        .search(&["runtime.gcMarkTermination"], |steps| {
            rules::memstats(elf, steps, numgc, pause_ns)
        })
        .map_err(|reason| {
            missing.push(MissingGlobal {
                symbol: "runtime.memstats",
                reason,
            })
        })
        .ok();
    let gc_controller = code
        .gc_controller()
        .map_err(|reason| {
            missing.push(MissingGlobal {
                symbol: "runtime.gcController",
                reason,
            })
        })
        .ok();

    Ok(RuntimeGlobals {
        allgs,
        allglen,
        sched,
        allp,
        memstats,
        gc_controller,
        wait_reason_strings,
        wait_reason_count,
        source: GlobalsSource::Decoded,
        missing,
    })
}

/// Functions larger than this are not decoded (the runtime functions used are a few KiB).
const MAX_FUNCTION_SIZE: u64 = 1 << 20;

/// The write barrier helpers, which preserve every general-purpose register but R11 (Go 1.19 and
/// 1.20 name one per register, later releases one per number of pointers buffered).
const WRITE_BARRIERS: &[&str] = &[
    "runtime.gcWriteBarrier",
    "runtime.gcWriteBarrierCX",
    "runtime.gcWriteBarrierDX",
    "runtime.gcWriteBarrierBX",
    "runtime.gcWriteBarrierBP",
    "runtime.gcWriteBarrierSI",
    "runtime.gcWriteBarrierR8",
    "runtime.gcWriteBarrierR9",
    "runtime.gcWriteBarrier1",
    "runtime.gcWriteBarrier2",
    "runtime.gcWriteBarrier3",
    "runtime.gcWriteBarrier4",
    "runtime.gcWriteBarrier5",
    "runtime.gcWriteBarrier6",
    "runtime.gcWriteBarrier7",
    "runtime.gcWriteBarrier8",
];

/// The runtime functions decoded so far.
pub(crate) struct Functions<'a> {
    elf: &'a ElfFile,
    functions: &'a dyn FunctionLookup,
    facts: CallFacts,
    decoded: HashMap<&'static str, Result<Vec<Step>, String>>,
}

impl<'a> Functions<'a> {
    /// Decodes functions of `elf` found through `functions`, on demand.
    pub(crate) fn new(elf: &'a ElfFile, functions: &'a dyn FunctionLookup) -> Functions<'a> {
        let preserving = WRITE_BARRIERS
            .iter()
            .filter_map(|name| functions.function_range(name))
            .map(|(entry, _)| entry)
            .collect();
        Functions {
            elf,
            functions,
            facts: CallFacts { preserving },
            decoded: HashMap::new(),
        }
    }

    /// The binary.
    pub(crate) fn elf(&self) -> &'a ElfFile {
        self.elf
    }

    /// The entry of function `name`, if the function table has it.
    pub(crate) fn entry(&self, name: &str) -> Option<u64> {
        self.functions.function_range(name).map(|(entry, _)| entry)
    }

    /// The decoded steps of function `name`, or why there are none.
    pub(crate) fn steps(&mut self, name: &'static str) -> Result<&[Step], String> {
        let (elf, functions, facts) = (self.elf, self.functions, &self.facts);
        let entry = self.decoded.entry(name).or_insert_with(|| {
            let (entry, end) = functions
                .function_range(name)
                .ok_or_else(|| format!("{name} (not in the function table)"))?;
            let size = end
                .checked_sub(entry)
                .filter(|size| *size > 0 && *size <= MAX_FUNCTION_SIZE)
                .ok_or_else(|| format!("{name} (implausible range {entry:#x}..{end:#x})"))?;
            let code = usize::try_from(size)
                .ok()
                .and_then(|len| elf.read_at(entry, len))
                .ok_or_else(|| format!("{name} (its code at {entry:#x} is not in the file)"))?;
            Ok(decode::decode(code, entry, facts))
        });
        entry.as_deref().map_err(Clone::clone)
    }

    /// Applies `rule` to each function of `names` in turn until one gives an answer; on failure,
    /// the error lists each function with the rule's reason.
    pub(crate) fn search<T>(
        &mut self,
        names: &[&'static str],
        mut rule: impl FnMut(&[Step]) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut reasons = Vec::new();
        for &name in names {
            match self.steps(name) {
                Ok(steps) => match rule(steps) {
                    Ok(found) => return Ok(found),
                    Err(reason) => reasons.push(format!("{name} ({reason})")),
                },
                Err(reason) => reasons.push(reason),
            }
        }
        Err(reasons.join(" and "))
    }

    /// `runtime.gcController`, the receiver of `(*gcControllerState).init` in `runtime.gcinit`, or
    /// of `commit`/`revise`/`trigger` in `runtime.gcControllerCommit`.
    pub(crate) fn gc_controller(&mut self) -> Result<u64, String> {
        let elf = self.elf;
        let mut reasons = Vec::new();
        for (caller, methods) in [
            ("runtime.gcinit", &["init"][..]),
            (
                "runtime.gcControllerCommit",
                &["commit", "revise", "trigger"][..],
            ),
        ] {
            let entries: Vec<u64> = methods
                .iter()
                .filter_map(|method| {
                    let name = format!("runtime.(*gcControllerState).{method}");
                    self.functions.function_range(&name).map(|(entry, _)| entry)
                })
                .collect();
            if entries.is_empty() {
                reasons.push(format!(
                    "{caller} (runtime.(*gcControllerState).{} not in the function table)",
                    methods.join("/")
                ));
                continue;
            }
            match self.search(&[caller], |steps| {
                rules::method_receiver(elf, steps, &entries)
            }) {
                Ok(found) => return Ok(found),
                Err(reason) => reasons.push(reason),
            }
        }
        Err(reasons.join(" and "))
    }
}
