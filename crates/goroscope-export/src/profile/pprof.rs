//! The pprof output: a [`Profile`] encoded as pprof's protobuf and gzip-compressed, the format
//! `go tool pprof`, `pprof -http` and the continuous-profiling services read.
//!
//! Ids are compact and stable: mapping `i` of the model is mapping id `i + 1`, location `i` is
//! location id `i + 1`, and functions are numbered from 1 in the order their first line is met.
//! Strings are deduplicated, `""` is string 0.

use std::collections::HashMap;
use std::io::Write as _;

use flate2::write::GzEncoder;
use flate2::Compression;
use goroscope_model::profile::{LabelValue, Profile, ValueType};
use prost::Message as _;

use super::proto;

/// `profile` as a gzip-compressed pprof protobuf (github.com/google/pprof
/// `proto/profile.proto`), ready to be written to a `.pb.gz` file.
///
/// Each mapping keeps its `has_*` flags: a mapping with all four set is taken as fully
/// symbolized, and pprof then does not look for the binary. Sample values are padded with
/// zeros (or cut) to one per sample type, as pprof requires; a location index outside
/// [`Profile::locations`] points at one empty location added at the end, so the stack keeps
/// its depth. Should compression fail (it cannot, writing to memory), the uncompressed
/// protobuf is returned, which pprof reads as well.
pub fn pprof(profile: &Profile) -> Vec<u8> {
    let encoded = encode(profile).encode_to_vec();
    gzip(&encoded).unwrap_or(encoded)
}

/// Gzip-compresses `bytes`.
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Strings of the profile, each stored once, `""` at index 0.
struct StringTable {
    strings: Vec<String>,
    index: HashMap<String, i64>,
}

impl StringTable {
    fn new() -> StringTable {
        let mut table = StringTable {
            strings: Vec::new(),
            index: HashMap::new(),
        };
        table.intern("");
        table
    }

    /// The index of `text`, added if new.
    fn intern(&mut self, text: &str) -> i64 {
        if let Some(&index) = self.index.get(text) {
            return index;
        }
        let index = self.strings.len() as i64;
        self.strings.push(text.to_string());
        self.index.insert(text.to_string(), index);
        index
    }

    fn value_type(&mut self, value_type: &ValueType) -> proto::ValueType {
        proto::ValueType {
            r#type: self.intern(&value_type.kind),
            unit: self.intern(&value_type.unit),
        }
    }
}

/// Functions, one per (name, file, start line), numbered from 1.
#[derive(Default)]
struct FunctionTable {
    functions: Vec<proto::Function>,
    /// (name, file) string indexes and start line to function id.
    ids: HashMap<(i64, i64, u32), u64>,
}

impl FunctionTable {
    fn id(&mut self, strings: &mut StringTable, line: &goroscope_model::profile::Line) -> u64 {
        let name = strings.intern(&line.function);
        let file = strings.intern(&line.file);
        let key = (name, file, line.start_line);
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        self.functions.push(proto::Function {
            id,
            name,
            system_name: name,
            filename: file,
            start_line: i64::from(line.start_line),
        });
        self.ids.insert(key, id);
        id
    }
}

/// The protobuf message for `profile`.
pub(crate) fn encode(profile: &Profile) -> proto::Profile {
    let mut strings = StringTable::new();
    let mut functions = FunctionTable::default();

    let sample_type: Vec<proto::ValueType> = profile
        .sample_types
        .iter()
        .map(|value_type| strings.value_type(value_type))
        .collect();
    let period_type = strings.value_type(&profile.period_type);

    let mapping: Vec<proto::Mapping> = profile
        .mappings
        .iter()
        .enumerate()
        .map(|(index, mapping)| proto::Mapping {
            id: index as u64 + 1,
            memory_start: mapping.start,
            memory_limit: mapping.limit,
            file_offset: mapping.offset,
            filename: strings.intern(&mapping.file),
            build_id: strings.intern(&mapping.build_id),
            has_functions: mapping.has_functions,
            has_filenames: mapping.has_filenames,
            has_line_numbers: mapping.has_line_numbers,
            has_inline_frames: mapping.has_inline_frames,
        })
        .collect();

    let mut location: Vec<proto::Location> = profile
        .locations
        .iter()
        .enumerate()
        .map(|(index, location)| proto::Location {
            id: index as u64 + 1,
            mapping_id: location
                .mapping
                .filter(|&m| m < profile.mappings.len())
                .map_or(0, |m| m as u64 + 1),
            address: location.address,
            line: location
                .lines
                .iter()
                .map(|line| proto::Line {
                    function_id: functions.id(&mut strings, line),
                    line: i64::from(line.line),
                    column: 0,
                })
                .collect(),
            is_folded: false,
        })
        .collect();

    // Where out-of-range location indexes point: one empty location after the real ones.
    let missing_location = profile.locations.len() as u64 + 1;
    let mut missing_used = false;
    let value_count = profile.sample_types.len();
    let sample: Vec<proto::Sample> = profile
        .samples
        .iter()
        .map(|sample| {
            let location_id = sample
                .locations
                .iter()
                .map(|&index| {
                    if index < profile.locations.len() {
                        index as u64 + 1
                    } else {
                        missing_used = true;
                        missing_location
                    }
                })
                .collect();
            let value = (0..value_count)
                .map(|i| sample.values.get(i).copied().unwrap_or(0))
                .collect();
            let label = sample
                .labels
                .iter()
                .map(|label| {
                    let key = strings.intern(&label.key);
                    match &label.value {
                        LabelValue::Text(text) => proto::Label {
                            key,
                            str: strings.intern(text),
                            ..proto::Label::default()
                        },
                        LabelValue::Number(number) => proto::Label {
                            key,
                            num: *number,
                            ..proto::Label::default()
                        },
                    }
                })
                .collect();
            proto::Sample {
                location_id,
                value,
                label,
            }
        })
        .collect();
    if missing_used {
        location.push(proto::Location {
            id: missing_location,
            ..proto::Location::default()
        });
    }

    let comment = profile
        .comments
        .iter()
        .map(|comment| strings.intern(comment))
        .collect();
    let default_sample_type = profile
        .sample_types
        .get(profile.default_sample_type)
        .map_or(0, |value_type| strings.intern(&value_type.kind));

    proto::Profile {
        sample_type,
        sample,
        mapping,
        location,
        function: functions.functions,
        string_table: strings.strings,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: profile.time_ns,
        duration_nanos: profile.duration_ns,
        period_type: Some(period_type),
        period: profile.period,
        comment,
        default_sample_type,
    }
}

#[cfg(test)]
#[path = "pprof_tests.rs"]
mod tests;
