//! The request-wide `ProfilesDictionary` being built: every string, mapping,
//! location, function, attribute and stack is entered once and referred to by
//! its index. Each table starts with its zero value at index 0, as the
//! protocol requires (index 0 means "none"), and holds only what something
//! refers to, each item once.

use std::collections::HashMap;
use std::hash::Hash;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue};
use opentelemetry_proto::tonic::profiles::v1development::{
    Function, KeyValueAndUnit, Line, Location, Mapping, ProfilesDictionary, Stack,
};

/// An attribute value the dictionary can compare.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Value {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// An array of strings.
    Texts(Vec<String>),
}

impl Value {
    fn any_value(&self) -> AnyValue {
        let text = |s: &String| AnyValue {
            value: Some(any_value::Value::StringValue(s.clone())),
        };
        let value = match self {
            Value::Text(s) => any_value::Value::StringValue(s.clone()),
            Value::Int(i) => any_value::Value::IntValue(*i),
            Value::Bool(b) => any_value::Value::BoolValue(*b),
            Value::Texts(all) => any_value::Value::ArrayValue(ArrayValue {
                values: all.iter().map(text).collect(),
            }),
        };
        AnyValue { value: Some(value) }
    }
}

/// A table of unique items, its zero value at index 0.
struct Table<K, T> {
    items: Vec<T>,
    index: HashMap<K, i32>,
}

impl<K: Hash + Eq, T: Default> Table<K, T> {
    fn new() -> Self {
        Table {
            items: vec![T::default()],
            index: HashMap::new(),
        }
    }

    /// The index of the item `key` identifies, made by `make` the first time.
    fn enter(&mut self, key: K, make: impl FnOnce() -> T) -> i32 {
        if let Some(&at) = self.index.get(&key) {
            return at;
        }
        let at = index(self.items.len());
        self.items.push(make());
        self.index.insert(key, at);
        at
    }
}

/// A table length as an index. A table of 2^31 items would need tens of
/// gigabytes: saturating is never reached.
fn index(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// A mapping as the dictionary identifies it: start, limit, offset, file,
/// attributes.
type MappingKey = (u64, u64, u64, i32, Vec<i32>);
/// A location: mapping, address, lines as (function, line).
type LocationKey = (i32, u64, Vec<(i32, i64)>);
/// A function: name, system name, file, start line.
type FunctionKey = (i32, i32, i32, i64);

/// The dictionary of one request.
pub(super) struct Dictionary {
    strings: Table<String, String>,
    mappings: Table<MappingKey, Mapping>,
    locations: Table<LocationKey, Location>,
    functions: Table<FunctionKey, Function>,
    attributes: Table<(i32, Value), KeyValueAndUnit>,
    stacks: Table<Vec<i32>, Stack>,
}

impl Dictionary {
    /// A dictionary holding only the zero values.
    pub(super) fn new() -> Dictionary {
        Dictionary {
            strings: Table::new(),
            mappings: Table::new(),
            locations: Table::new(),
            functions: Table::new(),
            attributes: Table::new(),
            stacks: Table::new(),
        }
    }

    /// The index of `text` in the string table (0 for the empty string).
    pub(super) fn string(&mut self, text: &str) -> i32 {
        if text.is_empty() {
            return 0;
        }
        self.strings.enter(text.to_owned(), || text.to_owned())
    }

    /// The index of the attribute `key` = `value` (no unit).
    pub(super) fn attribute(&mut self, key: &str, value: Value) -> i32 {
        let key_strindex = self.string(key);
        let any_value = value.any_value();
        self.attributes
            .enter((key_strindex, value), || KeyValueAndUnit {
                key_strindex,
                value: Some(any_value),
                unit_strindex: 0,
            })
    }

    /// The index of the function `name` in `file`, starting at `start_line`
    /// (0 when unknown). Go names its functions the same in source and in the
    /// symbol table, so the system name is the name too.
    pub(super) fn function(&mut self, name: &str, file: &str, start_line: u32) -> i32 {
        let name_strindex = self.string(name);
        let filename_strindex = self.string(file);
        let start_line = i64::from(start_line);
        let key = (name_strindex, name_strindex, filename_strindex, start_line);
        self.functions.enter(key, || Function {
            name_strindex,
            system_name_strindex: name_strindex,
            filename_strindex,
            start_line,
        })
    }

    /// The index of a mapping of `file` with `attribute_indices`.
    pub(super) fn mapping(
        &mut self,
        memory_start: u64,
        memory_limit: u64,
        file_offset: u64,
        file: &str,
        attribute_indices: Vec<i32>,
    ) -> i32 {
        let filename_strindex = self.string(file);
        let key = (
            memory_start,
            memory_limit,
            file_offset,
            filename_strindex,
            attribute_indices.clone(),
        );
        self.mappings.enter(key, || Mapping {
            memory_start,
            memory_limit,
            file_offset,
            filename_strindex,
            attribute_indices,
        })
    }

    /// The index of the location at `address` in mapping `mapping_index`
    /// with `lines` (function index, line), innermost first.
    pub(super) fn location(
        &mut self,
        mapping_index: i32,
        address: u64,
        lines: Vec<(i32, i64)>,
    ) -> i32 {
        let proto_lines = lines
            .iter()
            .map(|&(function_index, line)| Line {
                function_index,
                line,
                column: 0,
            })
            .collect();
        self.locations
            .enter((mapping_index, address, lines), || Location {
                mapping_index,
                address,
                lines: proto_lines,
                attribute_indices: Vec::new(),
            })
    }

    /// The index of the stack of `location_indices`, leaf first.
    pub(super) fn stack(&mut self, location_indices: Vec<i32>) -> i32 {
        let locations = location_indices.clone();
        self.stacks.enter(location_indices, || Stack {
            location_indices: locations,
        })
    }

    /// The finished tables.
    pub(super) fn finish(self) -> ProfilesDictionary {
        ProfilesDictionary {
            mapping_table: self.mappings.items,
            location_table: self.locations.items,
            function_table: self.functions.items,
            // No samples link to spans: only the zero link.
            link_table: vec![Default::default()],
            string_table: self.strings.items,
            attribute_table: self.attributes.items,
            stack_table: self.stacks.items,
        }
    }
}
