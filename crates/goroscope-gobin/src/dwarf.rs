//! The layouts of the Go runtime structs goroscope reads, taken from a target's own DWARF.
//!
//! Go compresses its DWARF (`.zdebug_*` sections in old releases, `SHF_COMPRESSED` in newer ones);
//! `object` decompresses either. Only `.debug_info`, `.debug_abbrev` and `.debug_str` are loaded,
//! and only the structs in [`INDEXED_TYPES`] (plus the struct types their members embed, followed
//! through typedefs) are kept, so loading a few-megabyte binary takes milliseconds.
//!
//! Go emits every named type twice: a `DW_TAG_structure_type` called `runtime.g` with the members,
//! and a `DW_TAG_typedef` of the same name pointing at it, which is what members refer to. Both are
//! followed here.

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{
    Abbreviations, AttributeValue, DebugAbbrev, DebugAbbrevOffset, DebugInfo, DebugInfoOffset,
    DebugStr, EndianSlice, RunTimeEndian, UnitHeader,
};
use object::{Object, ObjectSection};

use crate::elf::ElfFile;

/// The runtime structs [`GoTypes::load`] indexes by name.
pub const INDEXED_TYPES: &[&str] = &[
    "runtime.g",
    "runtime.p",
    "runtime.schedt",
    "runtime.mstats",
    "runtime.gcControllerState",
];

/// How many type DIEs deep (structs and typedefs alike) nested members are followed from an
/// indexed struct: room for six levels of named struct nesting, and a bound on bad DWARF.
const MAX_NESTING: usize = 12;

/// How many typedefs are followed in a row before the chain is declared broken.
const MAX_TYPEDEF_CHAIN: usize = 8;

/// Why a binary's DWARF could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    /// The file could not be parsed as an object file.
    #[error("cannot parse the file: {0}")]
    Object(String),
    /// A debug section could not be read or decompressed.
    #[error("cannot read section {section}: {reason}")]
    Section {
        /// The section, e.g. `.debug_info`.
        section: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The DWARF itself is malformed.
    #[error("malformed DWARF in {context}: {source}")]
    Parse {
        /// What was being read.
        context: &'static str,
        /// gimli's error.
        #[source]
        source: gimli::Error,
    },
}

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

/// One member of a struct.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    offset: u64,
    /// `.debug_info` offset of the member's type.
    ty: Option<usize>,
}

/// A type DIE that was kept.
#[derive(Debug, Clone)]
enum TypeNode {
    /// A `DW_TAG_structure_type`.
    Struct {
        size: Option<u64>,
        members: Vec<Member>,
    },
    /// A `DW_TAG_typedef` of the type at this `.debug_info` offset.
    Typedef(Option<usize>),
    /// Anything else (base types, pointers, arrays...): it has no members to descend into.
    Other { size: Option<u64> },
}

/// The indexed runtime struct layouts of one binary.
#[derive(Debug, Clone, Default)]
pub struct GoTypes {
    /// Indexed name → `.debug_info` offset of its struct DIE.
    by_name: HashMap<String, usize>,
    /// `.debug_info` offset → type.
    types: HashMap<usize, TypeNode>,
}

impl GoTypes {
    /// Reads the DWARF of `elf`. Returns `Ok(None)` when the binary has none (built with
    /// `-ldflags=-w`, or stripped afterwards), and an error when it is present but unreadable.
    pub fn load(elf: &ElfFile) -> Result<Option<GoTypes>, DwarfError> {
        let file =
            object::File::parse(elf.bytes()).map_err(|e| DwarfError::Object(e.to_string()))?;
        let Some(info) = section(&file, ".debug_info")? else {
            return Ok(None);
        };
        if info.is_empty() {
            return Ok(None);
        }
        let abbrev = section(&file, ".debug_abbrev")?.unwrap_or(Cow::Borrowed(&[]));
        let strings = section(&file, ".debug_str")?.unwrap_or(Cow::Borrowed(&[]));
        let endian = if elf.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let mut loader = Loader::new(
            DebugInfo::new(&info, endian),
            DebugAbbrev::new(&abbrev, endian),
            DebugStr::new(&strings, endian),
        )?;
        let found = loader.find_indexed()?;
        let mut types = GoTypes::default();
        for (name, offset) in found {
            loader.extract(offset, 0, &mut types.types)?;
            types.by_name.insert(name, offset);
        }
        Ok(Some(types))
    }

    /// The names of the indexed structs found in the binary.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// `DW_AT_byte_size` of indexed struct `type_name` (e.g. `runtime.g`).
    pub fn struct_size(&self, type_name: &str) -> Option<u64> {
        let offset = self.resolve(*self.by_name.get(type_name)?)?;
        match self.types.get(&offset)? {
            TypeNode::Struct { size, .. } | TypeNode::Other { size } => *size,
            TypeNode::Typedef(_) => None,
        }
    }

    /// The byte offset of `dotted_path` (e.g. `sched.sp`, `runq.size`) from the start of indexed
    /// struct `type_name`, adding up the offsets of nested struct members.
    pub fn field_offset(&self, type_name: &str, dotted_path: &str) -> Option<u64> {
        let mut current = Some(*self.by_name.get(type_name)?);
        let mut total = 0u64;
        for component in dotted_path.split('.') {
            let offset = self.resolve(current?)?;
            let TypeNode::Struct { members, .. } = self.types.get(&offset)? else {
                return None;
            };
            let member = members.iter().find(|member| member.name == component)?;
            total = total.checked_add(member.offset)?;
            current = member.ty;
        }
        Some(total)
    }

    /// Follows typedefs from `offset` to the underlying type.
    fn resolve(&self, mut offset: usize) -> Option<usize> {
        for _ in 0..MAX_TYPEDEF_CHAIN {
            match self.types.get(&offset)? {
                TypeNode::Typedef(target) => offset = (*target)?,
                _ => return Some(offset),
            }
        }
        None
    }
}

/// The decompressed bytes of debug section `name`, if the file has it.
fn section<'data>(
    file: &object::File<'data>,
    name: &'static str,
) -> Result<Option<Cow<'data, [u8]>>, DwarfError> {
    let Some(section) = file.section_by_name(name) else {
        return Ok(None);
    };
    section
        .uncompressed_data()
        .map(Some)
        .map_err(|e| DwarfError::Section {
            section: name,
            reason: e.to_string(),
        })
}

/// Walks `.debug_info` with random access to any DIE by its section offset.
struct Loader<'a> {
    abbrev: DebugAbbrev<Reader<'a>>,
    strings: DebugStr<Reader<'a>>,
    /// Every unit, in section order, with its starting offset.
    units: Vec<(usize, UnitHeader<Reader<'a>>)>,
    abbreviations: HashMap<DebugAbbrevOffset, Abbreviations>,
}

fn parse_error(context: &'static str) -> impl Fn(gimli::Error) -> DwarfError {
    move |source| DwarfError::Parse { context, source }
}

impl<'a> Loader<'a> {
    fn new(
        info: DebugInfo<Reader<'a>>,
        abbrev: DebugAbbrev<Reader<'a>>,
        strings: DebugStr<Reader<'a>>,
    ) -> Result<Loader<'a>, DwarfError> {
        let mut units = Vec::new();
        let mut headers = info.units();
        while let Some(header) = headers.next().map_err(parse_error("unit headers"))? {
            if let Some(start) = header.offset().as_debug_info_offset() {
                units.push((start.0, header));
            }
        }
        Ok(Loader {
            abbrev,
            strings,
            units,
            abbreviations: HashMap::new(),
        })
    }

    fn abbreviations(&mut self, header: &UnitHeader<Reader<'a>>) -> Result<(), DwarfError> {
        let offset = header.debug_abbrev_offset();
        if !self.abbreviations.contains_key(&offset) {
            let abbreviations = header
                .abbreviations(&self.abbrev)
                .map_err(parse_error("abbreviations"))?;
            self.abbreviations.insert(offset, abbreviations);
        }
        Ok(())
    }

    /// Finds the struct DIEs of [`INDEXED_TYPES`]: top-level `DW_TAG_structure_type`s by name.
    /// The units of package `runtime` (where Go puts the runtime's types) are searched first, and
    /// the search stops as soon as all are found.
    fn find_indexed(&mut self) -> Result<Vec<(String, usize)>, DwarfError> {
        let mut found: Vec<(String, usize)> = Vec::new();
        let mut runtime_units = Vec::new();
        let mut other_units = Vec::new();
        for index in 0..self.units.len() {
            if self.unit_name(index)?.as_deref() == Some("runtime") {
                runtime_units.push(index);
            } else {
                other_units.push(index);
            }
        }
        for index in runtime_units.into_iter().chain(other_units) {
            if found.len() == INDEXED_TYPES.len() {
                break;
            }
            let Some((_, header)) = self.units.get(index).cloned() else {
                break;
            };
            let Some(abbreviations) = self.abbreviations.get(&header.debug_abbrev_offset()) else {
                continue;
            };
            let mut entries = header.entries(abbreviations);
            let mut depth = 0isize;
            while let Some((delta, entry)) = entries.next_dfs().map_err(parse_error("DIEs"))? {
                depth += delta;
                if depth != 1 || entry.tag() != gimli::DW_TAG_structure_type {
                    continue;
                }
                let Some(name) = self.name(entry.attr_value(gimli::DW_AT_name))? else {
                    continue;
                };
                if INDEXED_TYPES.contains(&name.as_str())
                    && !found.iter().any(|(known, _)| *known == name)
                {
                    if let Some(offset) = entry.offset().to_debug_info_offset(&header) {
                        found.push((name, offset.0));
                    }
                }
            }
        }
        Ok(found)
    }

    /// The `DW_AT_name` of unit `index`'s root DIE (its package path, for Go).
    fn unit_name(&mut self, index: usize) -> Result<Option<String>, DwarfError> {
        let Some((_, header)) = self.units.get(index).cloned() else {
            return Ok(None);
        };
        self.abbreviations(&header)?;
        let Some(abbreviations) = self.abbreviations.get(&header.debug_abbrev_offset()) else {
            return Ok(None);
        };
        let mut entries = header.entries(abbreviations);
        let Some((_, root)) = entries.next_dfs().map_err(parse_error("unit DIE"))? else {
            return Ok(None);
        };
        self.name(root.attr_value(gimli::DW_AT_name))
    }

    /// Records the type DIE at `.debug_info` offset `offset` in `types`, with the struct types its
    /// members embed (through typedefs), `depth` levels below an indexed struct.
    fn extract(
        &mut self,
        offset: usize,
        depth: usize,
        types: &mut HashMap<usize, TypeNode>,
    ) -> Result<(), DwarfError> {
        if types.contains_key(&offset) || depth > MAX_NESTING {
            return Ok(());
        }
        let node = self.read_node(offset)?;
        let nested: Vec<usize> = match &node {
            TypeNode::Struct { members, .. } => {
                members.iter().filter_map(|member| member.ty).collect()
            }
            TypeNode::Typedef(target) => target.iter().copied().collect(),
            TypeNode::Other { .. } => Vec::new(),
        };
        types.insert(offset, node);
        for target in nested {
            self.extract(target, depth + 1, types)?;
        }
        Ok(())
    }

    /// Reads the type DIE at `.debug_info` offset `offset`.
    fn read_node(&mut self, offset: usize) -> Result<TypeNode, DwarfError> {
        let position = self.units.partition_point(|(start, _)| *start <= offset);
        let Some((_, header)) = position
            .checked_sub(1)
            .and_then(|index| self.units.get(index))
            .cloned()
        else {
            return Ok(TypeNode::Other { size: None });
        };
        let Some(unit_offset) = DebugInfoOffset(offset).to_unit_offset(&header) else {
            return Ok(TypeNode::Other { size: None });
        };
        self.abbreviations(&header)?;
        let Some(abbreviations) = self.abbreviations.get(&header.debug_abbrev_offset()) else {
            return Ok(TypeNode::Other { size: None });
        };
        let mut tree = header
            .entries_tree(abbreviations, Some(unit_offset))
            .map_err(parse_error("type DIE"))?;
        let root = tree.root().map_err(parse_error("type DIE"))?;
        let entry = root.entry();
        let size = entry
            .attr_value(gimli::DW_AT_byte_size)
            .map_err(parse_error("type size"))?
            .and_then(|value| value.udata_value());
        match entry.tag() {
            gimli::DW_TAG_typedef => {
                let target = reference(&header, entry.attr_value(gimli::DW_AT_type));
                Ok(TypeNode::Typedef(target.map_err(parse_error("typedef"))?))
            }
            gimli::DW_TAG_structure_type => {
                let mut members = Vec::new();
                let mut children = root.children();
                while let Some(child) = children.next().map_err(parse_error("struct members"))? {
                    let member = child.entry();
                    if member.tag() != gimli::DW_TAG_member {
                        continue;
                    }
                    let name = self.name(member.attr_value(gimli::DW_AT_name))?;
                    let location = member
                        .attr_value(gimli::DW_AT_data_member_location)
                        .map_err(parse_error("member location"))?
                        .and_then(|value| value.udata_value());
                    let ty = reference(&header, member.attr_value(gimli::DW_AT_type))
                        .map_err(parse_error("member type"))?;
                    if let (Some(name), Some(offset)) = (name, location) {
                        members.push(Member { name, offset, ty });
                    }
                }
                Ok(TypeNode::Struct { size, members })
            }
            _ => Ok(TypeNode::Other { size }),
        }
    }

    /// The text of a `DW_AT_name` value (inline or in `.debug_str`).
    fn name(
        &self,
        value: gimli::Result<Option<AttributeValue<Reader<'a>>>>,
    ) -> Result<Option<String>, DwarfError> {
        let bytes = match value.map_err(parse_error("name"))? {
            Some(AttributeValue::String(text)) => text,
            Some(AttributeValue::DebugStrRef(offset)) => self
                .strings
                .get_str(offset)
                .map_err(parse_error("name in .debug_str"))?,
            _ => return Ok(None),
        };
        Ok(Some(String::from_utf8_lossy(bytes.slice()).into_owned()))
    }
}

/// The `.debug_info` offset a `DW_AT_type` value refers to.
fn reference(
    header: &UnitHeader<Reader<'_>>,
    value: gimli::Result<Option<AttributeValue<Reader<'_>>>>,
) -> gimli::Result<Option<usize>> {
    Ok(match value? {
        Some(AttributeValue::UnitRef(offset)) => {
            offset.to_debug_info_offset(header).map(|offset| offset.0)
        }
        Some(AttributeValue::DebugInfoRef(offset)) => Some(offset.0),
        _ => None,
    })
}
