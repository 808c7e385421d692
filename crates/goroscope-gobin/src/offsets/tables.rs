//! The view of the built-in offset tables that `RuntimeOffsets::for_binary` consults, and the
//! test-only switch that hides lines of it.
//!
//! `GOROSCOPE_TEST_HIDE_OFFSET_TABLE` (test-only; never set it in production) hides release lines
//! from the tables as if goroscope had been built before they existed: `1.27`, `1.26,1.27` or
//! `all`. Tests use it to run the newest Go as a release the tables do not know, so the inference
//! from runtime code is exercised on real binaries whose true layout is known. Entries that do not
//! parse are ignored.

use super::offsets_table;
use super::{without_dwarf, RuntimeOffsets, TABLE_RANGE};
use crate::dwarf::GoTypes;
use crate::elf::ElfFile;
use crate::error::GobinError;
use crate::locate::FunctionLookup;
use crate::version::GoVersion;

/// The test-only environment variable that hides table lines (see the module documentation).
pub const HIDE_TABLE_ENV: &str = "GOROSCOPE_TEST_HIDE_OFFSET_TABLE";

/// The built-in tables, minus any hidden lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetTables {
    hidden: Vec<(u32, u32)>,
}

impl OffsetTables {
    /// Every built-in line.
    pub fn all() -> OffsetTables {
        OffsetTables::default()
    }

    /// The tables with the lines [`HIDE_TABLE_ENV`] names hidden (all of them when it is unset).
    pub fn from_env() -> OffsetTables {
        match std::env::var(HIDE_TABLE_ENV) {
            Ok(value) => OffsetTables::hiding_spec(&value),
            Err(_) => OffsetTables::all(),
        }
    }

    /// The tables with the lines named by `spec` (`1.27`, `go1.26,1.27`, `all`) hidden.
    pub fn hiding_spec(spec: &str) -> OffsetTables {
        let hidden = if spec.trim() == "all" {
            offsets_table::LINES.to_vec()
        } else {
            spec.split(',').filter_map(parse_line).collect()
        };
        OffsetTables { hidden }
    }

    /// These tables with `line` hidden too.
    pub fn hiding(mut self, line: (u32, u32)) -> OffsetTables {
        self.hidden.push(line);
        self
    }

    /// The hidden lines that exist in the built-in tables, oldest first.
    pub fn hidden(&self) -> Vec<(u32, u32)> {
        offsets_table::LINES
            .iter()
            .copied()
            .filter(|line| self.hidden.contains(line))
            .collect()
    }

    /// The visible lines, oldest first.
    pub fn lines(&self) -> Vec<(u32, u32)> {
        offsets_table::LINES
            .iter()
            .copied()
            .filter(|line| !self.hidden.contains(line))
            .collect()
    }

    /// The offsets of release line `line`, unless it is hidden or not built in.
    pub fn lookup(&self, line: (u32, u32)) -> Option<RuntimeOffsets> {
        if self.hidden.contains(&line) {
            return None;
        }
        offsets_table::TABLE
            .iter()
            .find(|(known, _)| *known == line)
            .map(|(_, offsets)| *offsets)
    }

    /// The newest visible line and its offsets.
    pub fn newest(&self) -> Option<((u32, u32), RuntimeOffsets)> {
        let line = *self.lines().last()?;
        Some((line, self.lookup(line)?))
    }

    /// The visible lines as error messages name them: `go1.19–go1.27`, or `go1.19–go1.27 except
    /// go1.25 (hidden by ...)`.
    pub fn known(&self) -> String {
        let lines = self.lines();
        let hidden = self.hidden();
        let (Some(&first), Some(&last)) = (lines.first(), lines.last()) else {
            return format!("no release line: {HIDE_TABLE_ENV} hides them all");
        };
        if hidden.is_empty() {
            return TABLE_RANGE.to_string();
        }
        let name = |(major, minor): (u32, u32)| format!("go{major}.{minor}");
        let range = format!("{}–{}", name(first), name(last));
        let inside: Vec<String> = hidden
            .into_iter()
            .filter(|line| (first..=last).contains(line))
            .map(name)
            .collect();
        if inside.is_empty() {
            range
        } else {
            format!(
                "{range} except {} (hidden by {HIDE_TABLE_ENV})",
                inside.join(", ")
            )
        }
    }

    /// See [`RuntimeOffsets::for_binary`], with these tables.
    pub fn for_binary(
        &self,
        elf: &ElfFile,
        version: &GoVersion,
        functions: &dyn FunctionLookup,
    ) -> Result<RuntimeOffsets, GobinError> {
        let dwarf_error = match GoTypes::load(elf) {
            Ok(types) => {
                if let Some(offsets) = types.as_ref().and_then(RuntimeOffsets::from_dwarf) {
                    return Ok(offsets);
                }
                None
            }
            Err(error) => Some(error),
        };
        let note = match without_dwarf(self, elf, version, functions) {
            Ok(offsets) => return Ok(offsets),
            Err(note) => note,
        };
        Err(match dwarf_error {
            Some(source) => GobinError::Dwarf {
                path: elf.path().to_path_buf(),
                source,
            },
            None => GobinError::NoOffsets {
                path: elf.path().to_path_buf(),
                version: version.to_string(),
                known: self.known(),
                note,
            },
        })
    }
}

/// `1.27` or `go1.27` as `(1, 27)`.
fn parse_line(text: &str) -> Option<(u32, u32)> {
    let text = text.trim();
    let text = text.strip_prefix("go").unwrap_or(text);
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiding_lines_by_spec() {
        let tables = OffsetTables::hiding_spec("1.27");
        assert_eq!(tables.hidden(), vec![(1, 27)]);
        assert_eq!(tables.newest().map(|(line, _)| line), Some((1, 26)));
        assert_eq!(tables.known(), "go1.19–go1.26");
        assert!(tables.lookup((1, 27)).is_none() && tables.lookup((1, 26)).is_some());

        let tables = OffsetTables::hiding_spec(" go1.26 , 1.27,nonsense");
        assert_eq!(tables.hidden(), vec![(1, 26), (1, 27)]);
        assert_eq!(tables.known(), "go1.19–go1.25");

        let tables = OffsetTables::hiding_spec("1.25");
        assert_eq!(
            tables.known(),
            format!("go1.19–go1.27 except go1.25 (hidden by {HIDE_TABLE_ENV})")
        );

        let tables = OffsetTables::hiding_spec("all");
        assert!(tables.lines().is_empty() && tables.newest().is_none());
        assert!(
            tables.known().contains(HIDE_TABLE_ENV),
            "{}",
            tables.known()
        );

        assert_eq!(OffsetTables::all().known(), TABLE_RANGE);
        assert_eq!(OffsetTables::hiding_spec("1.5").known(), TABLE_RANGE);
    }
}
