//! The messages of pprof's `profile.proto` (package `perftools.profiles`, from
//! github.com/google/pprof), written out by hand for `prost` so that no `protoc` and no build
//! script are needed. Field names and tags follow the `.proto` file; every `int64` that names a
//! string is an index into [`Profile::string_table`].

/// A whole profile.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Profile {
    /// What each of a sample's values means.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Mapped files; the first is the main binary by convention.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// Program counters samples point at.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions lines point at.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string of the profile, `""` first.
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// A regular expression of frames to drop (string index).
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    /// A regular expression of frames to keep (string index).
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    /// When the profile was collected, in nanoseconds since the Unix epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// How long it was collected for.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What one sampling event stands for.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// How much of `period_type` one event stands for.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form notes (string indexes).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// The `type` (string index) of the sample type viewers show first.
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// A kind of value and its unit.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ValueType {
    /// What is measured (string index).
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// Its unit (string index).
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// Values recorded for one stack and one set of labels.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Sample {
    /// Location ids, leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Its labels.
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// A key with a string or a numeric value.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Label {
    /// The key (string index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// A string value (string index), 0 for a numeric label.
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// A numeric value.
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// The numeric value's unit (string index), 0 when none.
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// A mapped file.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Mapping {
    /// Its id, from 1.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// First run-time address.
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// One past the last run-time address.
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// File offset mapped at `memory_start`.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// The file's path (string index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// Its build id (string index).
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    /// Its locations carry function names.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// Its locations carry file names.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Its locations carry line numbers.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Its locations have inlined calls expanded.
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// A program counter and its source lines.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Location {
    /// Its id, from 1.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The mapping holding it, 0 for none.
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// The run-time address.
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Source lines, innermost inlined first.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    /// Several frames were folded into it.
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

/// One source line of a location.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Line {
    /// The function's id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// The line number, 0 when unknown.
    #[prost(int64, tag = "2")]
    pub line: i64,
    /// The column, 0 when unknown.
    #[prost(int64, tag = "3")]
    pub column: i64,
}

/// A function.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Function {
    /// Its id, from 1.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Its name as people read it (string index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// Its name as the linker knows it (string index).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// Its source file (string index).
    #[prost(int64, tag = "4")]
    pub filename: i64,
    /// The line it starts at, 0 when unknown.
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}
