//! Encodes profiles, decodes the request back with prost and reads every
//! sample's values, frames, mapping and labels back through the dictionary.

use goroscope_model::profile::{Label, Line, Location, ProfileKind};
use prost::Message;

use super::super::proto::common::any_value;
use super::super::proto::profiles::ProfilesDictionary;
use super::*;

const T0: i64 = 1_700_000_000_000_000_000;

fn line(function: &str, file: &str, line: u32, start_line: u32) -> Line {
    Line {
        function: function.to_owned(),
        file: file.to_owned(),
        line,
        start_line,
    }
}

/// A CPU profile: two stacks through one Go binary (one frame inlined), one
/// frame in libc without symbols, one synthetic frame.
fn cpu_profile() -> Profile {
    let mut profile = Profile::new(ProfileKind::Cpu);
    profile.period = 10_101_010;
    profile.time_ns = T0;
    profile.duration_ns = 30_000_000_000;
    profile.comments = vec!["3 samples lost".to_owned()];
    profile.mappings = vec![
        Mapping {
            start: 0x400000,
            limit: 0x800000,
            offset: 0,
            file: "/srv/api".to_owned(),
            build_id: "aBcD/efGh".to_owned(),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        },
        Mapping {
            start: 0x7f00_0000_0000,
            limit: 0x7f00_0010_0000,
            offset: 0x28000,
            file: "/usr/lib/libc.so.6".to_owned(),
            build_id: "0123abcd".to_owned(),
            ..Mapping::default()
        },
    ];
    profile.locations = vec![
        Location {
            address: 0x401234,
            mapping: Some(0),
            lines: vec![
                line("main.hash", "/src/api/hash.go", 12, 10),
                line("main.handle", "/src/api/main.go", 40, 33),
            ],
        },
        Location {
            address: 0x402000,
            mapping: Some(0),
            lines: vec![line("main.main", "/src/api/main.go", 20, 15)],
        },
        Location {
            address: 0x7f00_0000_1000,
            mapping: Some(1),
            lines: vec![],
        },
        Location {
            address: 0,
            mapping: None,
            lines: vec![line("[chan receive]", "", 0, 0)],
        },
    ];
    profile.samples = vec![
        Sample {
            locations: vec![0, 1],
            values: vec![7, 70_707_070],
            labels: vec![Label::text("tenant", "alpha"), Label::number("goid", 17)],
        },
        Sample {
            locations: vec![2, 3, 1],
            values: vec![3, 30_303_030],
            labels: vec![Label::text("tenant", "alpha")],
        },
    ];
    profile
}

/// Encodes and decodes `resources`.
#[track_caller]
fn round_trip(resources: &[ResourceProfiles<'_>]) -> ExportProfilesServiceRequest {
    let request = profiles_request(resources);
    let bytes = request.encode_to_vec();
    let decoded = ExportProfilesServiceRequest::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("request does not decode: {e}"));
    assert_eq!(decoded, request);
    decoded
}

/// Reads references back through a dictionary, panicking on a bad index.
struct Read<'a>(&'a ProfilesDictionary);

impl Read<'_> {
    #[track_caller]
    fn string(&self, at: i32) -> &str {
        let at = usize::try_from(at).unwrap_or_else(|_| panic!("negative string index {at}"));
        self.0
            .string_table
            .get(at)
            .unwrap_or_else(|| panic!("string {at} out of range"))
    }

    fn value_type(&self, t: Option<&pb::ValueType>) -> (&str, &str) {
        let t = t.expect("a value type");
        (self.string(t.type_strindex), self.string(t.unit_strindex))
    }

    /// The frames of a stack, leaf first, inlined ones expanded, as
    /// `function file:line` (`@address` for a location without lines).
    #[track_caller]
    fn frames(&self, stack_index: i32) -> Vec<String> {
        let stack = &self.0.stack_table[stack_index as usize];
        let mut out = Vec::new();
        for &location in &stack.location_indices {
            let location = &self.0.location_table[location as usize];
            if location.lines.is_empty() {
                out.push(format!("@{:#x}", location.address));
            }
            for line in &location.lines {
                let function = &self.0.function_table[line.function_index as usize];
                out.push(format!(
                    "{} {}:{}",
                    self.string(function.name_strindex),
                    self.string(function.filename_strindex),
                    line.line
                ));
            }
        }
        out
    }

    /// Attributes as `key=value` text.
    fn attributes(&self, indices: &[i32]) -> Vec<String> {
        indices
            .iter()
            .map(|&at| {
                let kv = &self.0.attribute_table[at as usize];
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    Some(any_value::Value::IntValue(i)) => format!("{i}"),
                    Some(any_value::Value::BoolValue(b)) => format!("{b}"),
                    Some(any_value::Value::ArrayValue(a)) => format!("{:?}", a.values),
                    other => panic!("unexpected value {other:?}"),
                };
                format!("{}={value}", self.string(kv.key_strindex))
            })
            .collect()
    }
}

#[test]
fn each_sample_type_is_a_profile_with_the_values_stacks_and_labels() {
    let profiles = [cpu_profile()];
    let decoded = round_trip(&[ResourceProfiles {
        attributes: vec![string_attribute("service.name", "api")],
        profiles: &profiles,
    }]);
    let dictionary = decoded.dictionary.as_ref().expect("a dictionary");
    let read = Read(dictionary);
    let [resource] = decoded.resource_profiles.as_slice() else {
        panic!("one resource expected: {decoded:?}");
    };
    assert_eq!(
        resource.resource.as_ref().map(|r| r.attributes.clone()),
        Some(vec![string_attribute("service.name", "api")])
    );
    let [scope] = resource.scope_profiles.as_slice() else {
        panic!("one scope per goroscope profile expected: {resource:?}");
    };
    let name = scope
        .scope
        .as_ref()
        .map(|s| (s.name.as_str(), s.version.as_str()));
    assert_eq!(name, Some(("goroscope", env!("CARGO_PKG_VERSION"))));
    assert_eq!(
        scope.scope.as_ref().map(|s| s.attributes.clone()),
        Some(vec![string_attribute(
            "pprof.scope.default_sample_type",
            "cpu"
        )])
    );
    let [samples, cpu] = scope.profiles.as_slice() else {
        panic!("one profile per sample type expected: {scope:?}");
    };
    assert_eq!(
        read.value_type(samples.sample_type.as_ref()),
        ("samples", "count")
    );
    assert_eq!(
        read.value_type(cpu.sample_type.as_ref()),
        ("cpu", "nanoseconds")
    );
    for profile in [samples, cpu] {
        assert_eq!(profile.time_unix_nano, T0 as u64);
        assert_eq!(profile.duration_nano, 30_000_000_000);
        assert_eq!(profile.period, 10_101_010);
        assert_eq!(
            read.value_type(profile.period_type.as_ref()),
            ("cpu", "nanoseconds")
        );
        assert_eq!(
            read.attributes(&profile.attribute_indices),
            [r#"pprof.profile.comment=[AnyValue { value: Some(StringValue("3 samples lost")) }]"#]
        );
        assert!(profile.profile_id.is_empty());
    }
    let values = |p: &pb::Profile| {
        p.samples
            .iter()
            .map(|s| s.values.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(values(samples), [vec![7], vec![3]]);
    assert_eq!(values(cpu), [vec![70_707_070], vec![30_303_030]]);
    // Both profiles refer to the same stacks and label sets.
    assert_eq!(samples.samples[0].stack_index, cpu.samples[0].stack_index);
    assert_eq!(
        samples.samples[1].attribute_indices,
        cpu.samples[1].attribute_indices
    );

    assert_eq!(
        read.frames(cpu.samples[0].stack_index),
        [
            "main.hash /src/api/hash.go:12",
            "main.handle /src/api/main.go:40",
            "main.main /src/api/main.go:20",
        ]
    );
    assert_eq!(
        read.frames(cpu.samples[1].stack_index),
        [
            "@0x7f0000001000",
            "[chan receive] :0",
            "main.main /src/api/main.go:20",
        ]
    );
    assert_eq!(
        read.attributes(&cpu.samples[0].attribute_indices),
        ["tenant=alpha", "goid=17"]
    );
    assert_eq!(
        read.attributes(&cpu.samples[1].attribute_indices),
        ["tenant=alpha"]
    );

    // Locations keep their address and mapping; functions their start line.
    let stack = &dictionary.stack_table[cpu.samples[1].stack_index as usize];
    let location = |at: usize| &dictionary.location_table[stack.location_indices[at] as usize];
    assert_eq!(
        location(1).mapping_index,
        0,
        "a synthetic frame has no mapping"
    );
    let libc = &dictionary.mapping_table[location(0).mapping_index as usize];
    assert_eq!(
        (libc.memory_start, libc.memory_limit, libc.file_offset),
        (0x7f00_0000_0000, 0x7f00_0010_0000, 0x28000)
    );
    assert_eq!(read.string(libc.filename_strindex), "/usr/lib/libc.so.6");
    assert_eq!(
        read.attributes(&libc.attribute_indices),
        ["process.executable.build_id.gnu=0123abcd"]
    );
    let main = &dictionary.mapping_table[location(2).mapping_index as usize];
    assert_eq!(read.string(main.filename_strindex), "/srv/api");
    assert_eq!(
        read.attributes(&main.attribute_indices),
        [
            "pprof.mapping.has_functions=true",
            "pprof.mapping.has_filenames=true",
            "pprof.mapping.has_line_numbers=true",
            "pprof.mapping.has_inline_frames=true",
            "process.executable.build_id.go=aBcD/efGh",
        ]
    );
    let function = &dictionary.function_table[location(2).lines[0].function_index as usize];
    assert_eq!(function.start_line, 15);
    assert_eq!(function.system_name_strindex, function.name_strindex);
}

#[test]
fn the_dictionary_starts_with_zero_values_and_holds_each_item_once() {
    let cpu = cpu_profile();
    let mut offcpu = Profile::new(ProfileKind::OffCpu);
    offcpu.mappings = cpu.mappings.clone();
    offcpu.locations = cpu.locations.clone();
    // The same stack as the CPU profile's first sample; zero blocked time.
    offcpu.samples = vec![Sample {
        locations: vec![0, 1],
        values: vec![2, 500, 0, 500],
        labels: vec![],
    }];
    let (first, second) = ([cpu], [offcpu]);
    let decoded = round_trip(&[
        ResourceProfiles {
            attributes: vec![string_attribute("service.name", "a")],
            profiles: &first,
        },
        ResourceProfiles {
            attributes: vec![string_attribute("service.name", "none")],
            profiles: &[],
        },
        ResourceProfiles {
            attributes: vec![string_attribute("service.name", "b")],
            profiles: &second,
        },
    ]);
    let d = decoded.dictionary.as_ref().expect("a dictionary");
    assert_eq!(d.string_table[0], "");
    assert_eq!(d.mapping_table[0], pb::Mapping::default());
    assert_eq!(d.location_table[0], pb::Location::default());
    assert_eq!(d.function_table[0], pb::Function::default());
    assert_eq!(d.link_table, [pb::Link::default()]);
    assert_eq!(d.attribute_table[0], pb::KeyValueAndUnit::default());
    assert_eq!(d.stack_table[0], pb::Stack::default());
    // Two mappings, four locations, four functions, two stacks: each once.
    assert_eq!(d.mapping_table.len(), 1 + 2);
    assert_eq!(d.location_table.len(), 1 + 4);
    assert_eq!(d.function_table.len(), 1 + 4);
    assert_eq!(d.stack_table.len(), 1 + 2);
    let mut strings = d.string_table.clone();
    strings.sort();
    strings.dedup();
    assert_eq!(strings.len(), d.string_table.len(), "{:?}", d.string_table);

    assert_eq!(
        decoded.resource_profiles.len(),
        2,
        "the empty resource is left out"
    );
    let offcpu = &decoded.resource_profiles[1].scope_profiles[0];
    let read = Read(d);
    let types: Vec<_> = offcpu
        .profiles
        .iter()
        .map(|p| read.value_type(p.sample_type.as_ref()).0)
        .collect();
    assert_eq!(types, ["switches", "offcpu", "blocked", "runqueue"]);
    let counts: Vec<_> = offcpu.profiles.iter().map(|p| p.samples.len()).collect();
    assert_eq!(counts, [1, 1, 0, 1], "a zero value is no sample");
    let cpu_stack =
        decoded.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index;
    assert_eq!(offcpu.profiles[0].samples[0].stack_index, cpu_stack);
    assert!(
        offcpu.profiles[0].attribute_indices.is_empty(),
        "no comments"
    );
}
