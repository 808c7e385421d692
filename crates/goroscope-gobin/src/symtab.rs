//! The ELF symbol table (`.symtab`) of a Go binary, when it was not stripped: names to linked
//! addresses and sizes, for runtime globals and functions.
//!
//! Binaries linked with `-ldflags=-s` have no `.symtab`; then [`SymbolTable::read`] returns `None`
//! and callers fall back to `.gopclntab` for functions and to decoding for globals.

use std::collections::HashMap;

use object::{Object, ObjectSymbol, ObjectSymbolTable, SymbolKind};

use crate::elf::ElfFile;

/// One symbol: where it is linked and how many bytes it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    /// Linked virtual address (before any PIE load bias).
    pub address: u64,
    /// Size in bytes as recorded in the symbol table (0 when the linker did not record one).
    pub size: u64,
    /// True for functions (`STT_FUNC`), false for data objects and the rest.
    pub is_function: bool,
}

/// The named, defined symbols of `.symtab`.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    symbols: HashMap<String, Symbol>,
}

impl SymbolTable {
    /// Reads `.symtab` of `elf`; `None` when the binary has no symbol table (stripped) or it cannot
    /// be parsed.
    pub fn read(elf: &ElfFile) -> Option<SymbolTable> {
        let file = elf.object().ok()?;
        let table = file.symbol_table()?;
        let mut symbols = HashMap::new();
        for symbol in table.symbols() {
            if symbol.is_undefined() {
                continue;
            }
            let is_function = match symbol.kind() {
                SymbolKind::Text => true,
                SymbolKind::Data | SymbolKind::Unknown => false,
                _ => continue,
            };
            let Ok(name) = symbol.name() else { continue };
            if name.is_empty() {
                continue;
            }
            // Keep the first definition: duplicates (rare, local symbols of C objects in cgo
            // builds) never concern the Go runtime names goroscope looks up.
            symbols.entry(name.to_string()).or_insert(Symbol {
                address: symbol.address(),
                size: symbol.size(),
                is_function,
            });
        }
        if symbols.is_empty() {
            return None;
        }
        Some(SymbolTable { symbols })
    }

    /// The symbol called `name` (e.g. `runtime.allgs`), if defined.
    pub fn lookup(&self, name: &str) -> Option<Symbol> {
        self.symbols.get(name).copied()
    }

    /// The linked `(entry, end)` of function `name`, end exclusive; `None` if there is no such
    /// function or its size is not recorded.
    pub fn function_range(&self, name: &str) -> Option<(u64, u64)> {
        let symbol = self.lookup(name)?;
        if !symbol.is_function || symbol.size == 0 {
            return None;
        }
        Some((symbol.address, symbol.address.checked_add(symbol.size)?))
    }

    /// Number of symbols held.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// True if no symbol is held (never the case for a table returned by [`SymbolTable::read`]).
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}
