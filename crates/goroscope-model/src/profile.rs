//! A symbolized profile, shaped like pprof's: samples point at locations (addresses in mappings),
//! each location carries its source lines with inlined calls expanded, and samples carry labels.
//! Every output (pprof protobuf, folded stacks, flame graph, top table, reports) is rendered from
//! this one value, so a frame reads the same in each of them.

/// What a profile measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ProfileKind {
    /// On-CPU time, from cpu-clock sampling.
    Cpu,
    /// Time threads spent off CPU (blocked or waiting for a CPU), by stack.
    OffCpu,
    /// Every goroutine's wall time, by stack, under its state or wait reason.
    Wall,
}

impl ProfileKind {
    /// The name used on the command line and in the agent's query string.
    pub fn name(self) -> &'static str {
        match self {
            ProfileKind::Cpu => "cpu",
            ProfileKind::OffCpu => "offcpu",
            ProfileKind::Wall => "wall",
        }
    }

    /// Parses a [`ProfileKind::name`].
    pub fn parse(name: &str) -> Option<ProfileKind> {
        match name {
            "cpu" => Some(ProfileKind::Cpu),
            "offcpu" => Some(ProfileKind::OffCpu),
            "wall" => Some(ProfileKind::Wall),
            _ => None,
        }
    }
}

/// A kind of value and its unit, as pprof names them (`samples`/`count`, `cpu`/`nanoseconds`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ValueType {
    /// What is measured.
    pub kind: String,
    /// Its unit.
    pub unit: String,
}

impl ValueType {
    /// A value type from its two names.
    pub fn new(kind: &str, unit: &str) -> ValueType {
        ValueType {
            kind: kind.to_string(),
            unit: unit.to_string(),
        }
    }
}

/// A file mapped into the profiled address space (or a pseudo-mapping such as the kernel).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mapping {
    /// First run-time address.
    pub start: u64,
    /// One past the last run-time address.
    pub limit: u64,
    /// File offset mapped at `start`.
    pub offset: u64,
    /// The file's path, or `[kernel.kallsyms]`, `[vdso]`…
    pub file: String,
    /// Its build id (GNU build id as hex, else Go's build id), empty when unknown.
    pub build_id: String,
    /// True when some of its locations were given function names.
    pub has_functions: bool,
    /// True when some of its locations were given file names.
    pub has_filenames: bool,
    /// True when some of its locations were given line numbers.
    pub has_line_numbers: bool,
    /// True when inlined calls were expanded for its locations.
    pub has_inline_frames: bool,
}

/// One source position of a location: a function, its file and the line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Line {
    /// The function's name, as the language prints it (`main.(*Server).handle`).
    pub function: String,
    /// The source file, empty when unknown.
    pub file: String,
    /// The line, 0 when unknown.
    pub line: u32,
    /// The line the function starts at, 0 when unknown.
    pub start_line: u32,
}

/// A program counter and what it symbolizes to.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// The run-time address (0 for synthetic frames such as `[chan receive]`).
    pub address: u64,
    /// Index into [`Profile::mappings`], `None` for synthetic frames.
    pub mapping: Option<usize>,
    /// Source lines, innermost first: `lines[0]` is the code at `address`, each later one the
    /// function the previous was inlined into. Empty when the address could not be symbolized
    /// (outputs then show the mapping's file and the address's offset in it, never a guess).
    pub lines: Vec<Line>,
}

/// A label's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LabelValue {
    /// A string (`tenant=alpha`, `wait_reason=chan receive`).
    Text(String),
    /// A number, with its unit if it has one (`goid=17`, `thread=4242`).
    Number(i64),
}

/// A label on a sample.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Label {
    /// The label's key.
    pub key: String,
    /// Its value.
    pub value: LabelValue,
}

impl Label {
    /// A string label.
    pub fn text(key: &str, value: &str) -> Label {
        Label {
            key: key.to_string(),
            value: LabelValue::Text(value.to_string()),
        }
    }

    /// A numeric label.
    pub fn number(key: &str, value: i64) -> Label {
        Label {
            key: key.to_string(),
            value: LabelValue::Number(value),
        }
    }
}

/// Samples with one stack and one set of labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Indexes into [`Profile::locations`], leaf first.
    pub locations: Vec<usize>,
    /// One value per [`Profile::sample_types`] entry.
    pub values: Vec<i64>,
    /// Its labels.
    pub labels: Vec<Label>,
}

/// A symbolized profile.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// What it measures.
    pub kind: ProfileKind,
    /// The meaning of each of a sample's values.
    pub sample_types: Vec<ValueType>,
    /// The sample type viewers show first (an index into `sample_types`).
    pub default_sample_type: usize,
    /// Samples.
    pub samples: Vec<Sample>,
    /// Locations samples point at.
    pub locations: Vec<Location>,
    /// Mappings locations point at.
    pub mappings: Vec<Mapping>,
    /// What one sampling event stands for (`cpu`/`nanoseconds`).
    pub period_type: ValueType,
    /// How much of `period_type` one event stands for (10,101,010 ns at 99 Hz).
    pub period: i64,
    /// When the profile started, in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// How long it ran.
    pub duration_ns: i64,
    /// Notes for the reader (what was lost, that the target exited…).
    pub comments: Vec<String>,
}

impl Profile {
    /// An empty profile of `kind` with the sample types goroscope writes for it.
    pub fn new(kind: ProfileKind) -> Profile {
        let (sample_types, period_type) = match kind {
            ProfileKind::Cpu => (
                vec![
                    ValueType::new("samples", "count"),
                    ValueType::new("cpu", "nanoseconds"),
                ],
                ValueType::new("cpu", "nanoseconds"),
            ),
            // Time off CPU in all, then its two parts: blocked until woken, and waiting for a
            // CPU once runnable (`go tool pprof -sample_index=blocked|runqueue`).
            ProfileKind::OffCpu => (
                vec![
                    ValueType::new("switches", "count"),
                    ValueType::new("offcpu", "nanoseconds"),
                    ValueType::new("blocked", "nanoseconds"),
                    ValueType::new("runqueue", "nanoseconds"),
                ],
                ValueType::new("offcpu", "nanoseconds"),
            ),
            ProfileKind::Wall => (
                vec![
                    ValueType::new("goroutines", "count"),
                    ValueType::new("wall", "nanoseconds"),
                ],
                ValueType::new("wall", "nanoseconds"),
            ),
        };
        Profile {
            kind,
            sample_types,
            default_sample_type: 1,
            samples: Vec::new(),
            locations: Vec::new(),
            mappings: Vec::new(),
            period_type,
            period: 0,
            time_ns: 0,
            duration_ns: 0,
            comments: Vec::new(),
        }
    }

    /// The frames of `sample`, leaf first, inlined calls expanded, each as the name outputs
    /// print: the function, or `file+0xoffset` / `[unknown]` when the location has no symbol.
    pub fn frame_names<'p>(&'p self, sample: &'p Sample) -> impl Iterator<Item = FrameName<'p>> {
        sample.locations.iter().flat_map(move |&index| {
            let location = self.locations.get(index);
            let lines = location.map(|l| l.lines.as_slice()).unwrap_or(&[]);
            let unsymbolized = if lines.is_empty() {
                Some(FrameName::Unsymbolized {
                    mapping: location
                        .and_then(|l| l.mapping)
                        .and_then(|m| self.mappings.get(m)),
                    address: location.map(|l| l.address).unwrap_or(0),
                })
            } else {
                None
            };
            lines.iter().map(FrameName::Symbol).chain(unsymbolized)
        })
    }
}

/// A frame as outputs name it.
#[derive(Clone, Copy, Debug)]
pub enum FrameName<'p> {
    /// A symbolized source line.
    Symbol(&'p Line),
    /// An address no symbol covers, in `mapping` if known.
    Unsymbolized {
        /// The mapping holding it.
        mapping: Option<&'p Mapping>,
        /// The run-time address.
        address: u64,
    },
}

impl std::fmt::Display for FrameName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameName::Symbol(line) => f.write_str(&line.function),
            FrameName::Unsymbolized {
                mapping: Some(mapping),
                address,
            } => {
                let name = mapping.file.rsplit('/').next().unwrap_or(&mapping.file);
                let offset = address
                    .wrapping_sub(mapping.start)
                    .wrapping_add(mapping.offset);
                write!(f, "{name}+{offset:#x}")
            }
            FrameName::Unsymbolized { mapping: None, .. } => f.write_str("[unknown]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_expand_inlined_lines_and_name_unsymbolized_addresses_by_module_and_offset() {
        let mut profile = Profile::new(ProfileKind::Cpu);
        profile.mappings.push(Mapping {
            start: 0x400000,
            limit: 0x500000,
            offset: 0x1000,
            file: "/usr/lib/libc.so.6".into(),
            ..Mapping::default()
        });
        let line = |function: &str| Line {
            function: function.into(),
            ..Line::default()
        };
        profile.locations.push(Location {
            address: 0x401000,
            mapping: Some(0),
            lines: vec![line("main.inner"), line("main.outer")],
        });
        profile.locations.push(Location {
            address: 0x400010,
            mapping: Some(0),
            lines: vec![],
        });
        profile.locations.push(Location::default());
        let sample = Sample {
            locations: vec![0, 1, 2],
            values: vec![1, 10],
            labels: vec![],
        };
        let names: Vec<String> = profile
            .frame_names(&sample)
            .map(|f| f.to_string())
            .collect();
        assert_eq!(
            names,
            ["main.inner", "main.outer", "libc.so.6+0x1010", "[unknown]"]
        );
        assert_eq!(ProfileKind::parse("offcpu"), Some(ProfileKind::OffCpu));
        assert_eq!(ProfileKind::parse("heap"), None);
    }
}
