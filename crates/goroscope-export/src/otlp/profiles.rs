//! goroscope [`Profile`]s as an OTLP `ExportProfilesServiceRequest`.
//!
//! **Version spoken**: the profiles signal of OTLP v1.10.0,
//! `opentelemetry.proto.profiles.v1development` as `opentelemetry-proto` 0.33
//! generates it: one `ProfilesDictionary` per request, samples pointing at
//! `Stack`s, one sample type per `Profile`, attributes by index into the
//! dictionary's `KeyValueAndUnit` table. The OpenTelemetry Collector calls
//! this *profiles development version 1*: Collector v0.165.0 (pdata v1.71.0,
//! `pdata/internal/otlp/profiles_version.go`) accepts exactly version "1",
//! and a request without the `otlp-profiles-development-version` header (or
//! gRPC metadata) is version 1. Its generated messages have the same fields,
//! numbers and wire types as these, message for message (checked against
//! `pdata/internal/generated_proto_*.go` at v1.71.0, including the v1.10.0
//! additions `KeyValue.key_strindex` and `AnyValue.string_value_strindex`).
//! Receivers need the `service.profilesSupport` feature gate and a
//! `profiles` pipeline; OTLP/HTTP posts to `/v1development/profiles`.
//!
//! The mapping, pprof's conversion convention:
//! - each goroscope profile is one `ScopeProfiles` (scope `goroscope`, with
//!   `pprof.scope.default_sample_type` naming the default sample type's kind)
//!   holding one OTLP `Profile` per sample type, in `sample_types` order,
//!   each with the same time, duration, period type and period, and the
//!   comments as one `pprof.profile.comment` string-array attribute;
//! - a sample is in the profile of a sample type when its value of that type
//!   is not zero, with that one value, its stack (leaf first, as goroscope
//!   keeps it) and its labels as attributes (text or integer; the first label
//!   of a key wins);
//! - a location keeps its address, its mapping (none for synthetic frames)
//!   and its lines, innermost first (inlined calls expanded); a line's
//!   function has the name, file and start line, the system name being the
//!   name; an unsymbolized location has no lines;
//! - a mapping keeps start, limit, offset and file, with the
//!   `pprof.mapping.has_*` attributes that are true and its build id as
//!   `process.executable.build_id.gnu` (hexadecimal) or `.go` (otherwise).
//!
//! Nothing else is invented: no profile ids, no sample timestamps, no links
//! to spans.

mod dictionary;

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::profiles::v1development as pb;

use goroscope_model::profile::{LabelValue, Mapping, Profile, Sample, ValueType};

use super::string_attribute;
use dictionary::{Dictionary, Value};

/// The profiles of one resource (a process, or the host for a host-wide
/// profile).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceProfiles<'a> {
    /// The resource's attributes, e.g. from [`string_attribute`].
    pub attributes: Vec<KeyValue>,
    /// Its profiles.
    pub profiles: &'a [Profile],
}

/// The export request of `resources`' profiles, sharing one dictionary.
/// Resources without profiles are left out.
pub fn profiles_request(resources: &[ResourceProfiles<'_>]) -> ExportProfilesServiceRequest {
    let mut dictionary = Dictionary::new();
    let resource_profiles = resources
        .iter()
        .filter(|resource| !resource.profiles.is_empty())
        .map(|resource| pb::ResourceProfiles {
            resource: Some(super::resource(&resource.attributes)),
            scope_profiles: resource
                .profiles
                .iter()
                .map(|profile| scope_profiles(profile, &mut dictionary))
                .collect(),
            ..pb::ResourceProfiles::default()
        })
        .collect();
    ExportProfilesServiceRequest {
        resource_profiles,
        dictionary: Some(dictionary.finish()),
    }
}

/// One goroscope profile: a scope of one OTLP profile per sample type.
fn scope_profiles(profile: &Profile, dictionary: &mut Dictionary) -> pb::ScopeProfiles {
    let scope_attributes = profile
        .sample_types
        .get(profile.default_sample_type)
        .map(|default| string_attribute("pprof.scope.default_sample_type", &default.kind))
        .into_iter()
        .collect();
    let mut entered = Entered::new(profile);
    let profiles = (0..profile.sample_types.len())
        .map(|type_index| one_type(profile, type_index, &mut entered, dictionary))
        .collect();
    pb::ScopeProfiles {
        scope: Some(super::scope(scope_attributes)),
        profiles,
        ..pb::ScopeProfiles::default()
    }
}

/// The OTLP profile of sample type `type_index`.
fn one_type(
    profile: &Profile,
    type_index: usize,
    entered: &mut Entered,
    dictionary: &mut Dictionary,
) -> pb::Profile {
    let samples = profile
        .samples
        .iter()
        .enumerate()
        .filter_map(|(at, sample)| {
            let value = sample.values.get(type_index).copied().unwrap_or(0);
            (value != 0).then(|| pb::Sample {
                stack_index: entered.stack(profile, at, dictionary),
                attribute_indices: entered.labels(sample, at, dictionary),
                link_index: 0,
                values: vec![value],
                timestamps_unix_nano: Vec::new(),
            })
        })
        .collect();
    let attribute_indices = if profile.comments.is_empty() {
        Vec::new()
    } else {
        vec![dictionary.attribute(
            "pprof.profile.comment",
            Value::Texts(profile.comments.clone()),
        )]
    };
    pb::Profile {
        sample_type: profile
            .sample_types
            .get(type_index)
            .map(|t| value_type(t, dictionary)),
        samples,
        time_unix_nano: u64::try_from(profile.time_ns).unwrap_or(0),
        duration_nano: u64::try_from(profile.duration_ns).unwrap_or(0),
        period_type: Some(value_type(&profile.period_type, dictionary)),
        period: profile.period,
        attribute_indices,
        ..pb::Profile::default()
    }
}

/// A value type's two names in the string table.
fn value_type(value_type: &ValueType, dictionary: &mut Dictionary) -> pb::ValueType {
    pb::ValueType {
        type_strindex: dictionary.string(&value_type.kind),
        unit_strindex: dictionary.string(&value_type.unit),
    }
}

/// What of one goroscope profile is already in the dictionary, by its own
/// indexes: the profiles of its sample types share stacks and labels, and
/// only what a sample refers to is entered.
struct Entered {
    mappings: Vec<Option<i32>>,
    locations: Vec<Option<i32>>,
    stacks: Vec<Option<i32>>,
    labels: Vec<Option<Vec<i32>>>,
}

impl Entered {
    fn new(profile: &Profile) -> Entered {
        Entered {
            mappings: vec![None; profile.mappings.len()],
            locations: vec![None; profile.locations.len()],
            stacks: vec![None; profile.samples.len()],
            labels: vec![None; profile.samples.len()],
        }
    }

    /// The stack of sample `at`. A location index out of range (never made
    /// by goroscope) is the zero location: an unknown frame.
    fn stack(&mut self, profile: &Profile, at: usize, dictionary: &mut Dictionary) -> i32 {
        if let Some(Some(stack)) = self.stacks.get(at) {
            return *stack;
        }
        let locations = profile.samples.get(at).map_or(&[][..], |s| &s.locations);
        let location_indices = locations
            .iter()
            .map(|&location| self.location(profile, location, dictionary))
            .collect();
        let stack = dictionary.stack(location_indices);
        if let Some(slot) = self.stacks.get_mut(at) {
            *slot = Some(stack);
        }
        stack
    }

    /// Location `at` of the profile, entered with its mapping and functions.
    fn location(&mut self, profile: &Profile, at: usize, dictionary: &mut Dictionary) -> i32 {
        let Some(location) = profile.locations.get(at) else {
            return 0;
        };
        if let Some(Some(entered)) = self.locations.get(at) {
            return *entered;
        }
        let mapping_index = location
            .mapping
            .map_or(0, |mapping| self.mapping(profile, mapping, dictionary));
        let lines = location
            .lines
            .iter()
            .map(|line| {
                let function = dictionary.function(&line.function, &line.file, line.start_line);
                (function, i64::from(line.line))
            })
            .collect();
        let entered = dictionary.location(mapping_index, location.address, lines);
        if let Some(slot) = self.locations.get_mut(at) {
            *slot = Some(entered);
        }
        entered
    }

    /// Mapping `at` of the profile (the zero mapping when out of range).
    fn mapping(&mut self, profile: &Profile, at: usize, dictionary: &mut Dictionary) -> i32 {
        let Some(mapping) = profile.mappings.get(at) else {
            return 0;
        };
        if let Some(Some(entered)) = self.mappings.get(at) {
            return *entered;
        }
        let attribute_indices = mapping_attributes(mapping)
            .into_iter()
            .map(|(key, value)| dictionary.attribute(key, value))
            .collect();
        let entered = dictionary.mapping(
            mapping.start,
            mapping.limit,
            mapping.offset,
            &mapping.file,
            attribute_indices,
        );
        if let Some(slot) = self.mappings.get_mut(at) {
            *slot = Some(entered);
        }
        entered
    }

    /// The attributes of sample `at`'s labels, the first of each key.
    fn labels(&mut self, sample: &Sample, at: usize, dictionary: &mut Dictionary) -> Vec<i32> {
        if let Some(Some(labels)) = self.labels.get(at) {
            return labels.clone();
        }
        let mut keys: Vec<&str> = Vec::with_capacity(sample.labels.len());
        let mut indices = Vec::with_capacity(sample.labels.len());
        for label in &sample.labels {
            if keys.contains(&label.key.as_str()) {
                continue;
            }
            keys.push(&label.key);
            let value = match &label.value {
                LabelValue::Text(text) => Value::Text(text.clone()),
                LabelValue::Number(number) => Value::Int(*number),
            };
            indices.push(dictionary.attribute(&label.key, value));
        }
        if let Some(slot) = self.labels.get_mut(at) {
            *slot = Some(indices.clone());
        }
        indices
    }
}

/// A mapping's attributes: the `pprof.mapping.has_*` flags that are set and
/// its build id.
fn mapping_attributes(mapping: &Mapping) -> Vec<(&'static str, Value)> {
    let flags = [
        ("pprof.mapping.has_functions", mapping.has_functions),
        ("pprof.mapping.has_filenames", mapping.has_filenames),
        ("pprof.mapping.has_line_numbers", mapping.has_line_numbers),
        ("pprof.mapping.has_inline_frames", mapping.has_inline_frames),
    ];
    let mut out: Vec<_> = flags
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| (key, Value::Bool(true)))
        .collect();
    let id = &mapping.build_id;
    if !id.is_empty() {
        // goroscope keeps the GNU build id as hex, else Go's (which has '/').
        let key = if id.bytes().all(|b| b.is_ascii_hexdigit()) {
            "process.executable.build_id.gnu"
        } else {
            "process.executable.build_id.go"
        };
        out.push((key, Value::Text(id.clone())));
    }
    out
}

#[cfg(test)]
mod tests;
