//! pprof output tests: the gzipped protobuf decoded back with prost and checked field by field.

use std::collections::HashSet;
use std::io::Read as _;

use flate2::read::GzDecoder;
use goroscope_model::profile::{Location, Profile, ProfileKind, Sample};
use prost::Message as _;

use super::super::fixtures::{cpu_profile, MS_10};
use super::super::proto;
use super::pprof;

/// `bytes` gunzipped and decoded.
#[track_caller]
fn decode(bytes: &[u8]) -> proto::Profile {
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "output is not gzip");
    let mut raw = Vec::new();
    if let Err(error) = GzDecoder::new(bytes).read_to_end(&mut raw) {
        panic!("gunzip failed: {error}");
    }
    match proto::Profile::decode(raw.as_slice()) {
        Ok(decoded) => decoded,
        Err(error) => panic!("protobuf decode failed: {error}"),
    }
}

/// The string at `index` of `profile`'s table.
#[track_caller]
fn string(profile: &proto::Profile, index: i64) -> &str {
    match usize::try_from(index)
        .ok()
        .and_then(|i| profile.string_table.get(i))
    {
        Some(text) => text,
        None => panic!(
            "string index {index} outside a table of {}",
            profile.string_table.len()
        ),
    }
}

#[test]
fn round_trip_keeps_header_strings_and_mappings() {
    let decoded = decode(&pprof(&cpu_profile()));
    let s = |index| string(&decoded, index);

    assert_eq!(decoded.string_table[0], "");
    let unique: HashSet<&String> = decoded.string_table.iter().collect();
    assert_eq!(
        unique.len(),
        decoded.string_table.len(),
        "duplicate strings"
    );

    let types: Vec<(&str, &str)> = decoded
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    assert_eq!(s(decoded.default_sample_type), "cpu");
    let period_type = decoded.period_type.clone().unwrap_or_default();
    assert_eq!(
        (s(period_type.r#type), s(period_type.unit)),
        ("cpu", "nanoseconds")
    );
    assert_eq!(decoded.period, MS_10);
    assert_eq!(decoded.time_nanos, 1_700_000_000_000_000_000);
    assert_eq!(decoded.duration_nanos, 2_000_000_000);
    let comments: Vec<&str> = decoded.comment.iter().map(|&c| s(c)).collect();
    assert_eq!(comments, ["lost 3 samples"]);

    assert_eq!(decoded.mapping.len(), 2);
    let app = &decoded.mapping[0];
    assert_eq!(
        (app.id, app.memory_start, app.memory_limit),
        (1, 0x40_0000, 0x80_0000)
    );
    assert_eq!(
        (s(app.filename), s(app.build_id)),
        ("/srv/app/server", "a1b2c3")
    );
    assert!(
        app.has_functions && app.has_filenames && app.has_line_numbers && app.has_inline_frames
    );
    let libc = &decoded.mapping[1];
    assert_eq!((libc.id, libc.file_offset), (2, 0x28000));
    assert_eq!(
        (s(libc.filename), s(libc.build_id)),
        ("/usr/lib/libc.so.6", "d4e5f6")
    );
    assert!(!libc.has_functions && !libc.has_filenames);
}

#[test]
fn round_trip_keeps_locations_inlined_lines_and_deduplicated_functions() {
    let decoded = decode(&pprof(&cpu_profile()));
    let s = |index| string(&decoded, index);

    let ids: Vec<u64> = decoded.location.iter().map(|l| l.id).collect();
    assert_eq!(
        ids,
        [1, 2, 3, 4, 5, 6, 7],
        "location ids compact, in model order"
    );
    // Six functions: main.serve's two lines (locations 1 and 6) share one.
    let names: Vec<&str> = decoded.function.iter().map(|f| s(f.name)).collect();
    assert_eq!(
        names,
        [
            "main.parse",
            "main.handle",
            "main.serve",
            "main.main",
            "main.walk",
            "main.evil;\nname\u{1b}"
        ]
    );
    for (i, function) in decoded.function.iter().enumerate() {
        assert_eq!(function.id, i as u64 + 1);
        assert_eq!(function.system_name, function.name);
    }
    let function = |id: u64| &decoded.function[(id - 1) as usize];

    // Location 1: main.parse inlined into main.handle, innermost first.
    let inlined = &decoded.location[0];
    assert_eq!((inlined.mapping_id, inlined.address), (1, 0x40_1000));
    let lines: Vec<(&str, &str, i64, i64)> = inlined
        .line
        .iter()
        .map(|l| {
            let f = function(l.function_id);
            (s(f.name), s(f.filename), l.line, f.start_line)
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("main.parse", "/src/app/parse.go", 12, 10),
            ("main.handle", "/src/app/server.go", 40, 30)
        ]
    );
    let serve_lines: Vec<(u64, i64)> = [&decoded.location[1], &decoded.location[6]]
        .iter()
        .map(|l| (l.line[0].function_id, l.line[0].line))
        .collect();
    assert_eq!(serve_lines, [(3, 80), (3, 85)]);

    // Location 4: unsymbolized, in libc.
    let unsymbolized = &decoded.location[3];
    assert_eq!(
        (
            unsymbolized.mapping_id,
            unsymbolized.address,
            unsymbolized.line.len()
        ),
        (2, 0x7f00_0001_0000, 0)
    );
}

#[test]
fn round_trip_keeps_samples_leaf_first_with_values_and_both_label_kinds() {
    let decoded = decode(&pprof(&cpu_profile()));
    let s = |index| string(&decoded, index);

    assert_eq!(decoded.sample.len(), 6);
    let first = &decoded.sample[0];
    assert_eq!(first.location_id, [1, 2, 3], "leaf first");
    assert_eq!(first.value, [3, 3 * MS_10]);
    assert_eq!(decoded.sample[2].location_id, [5, 5, 5, 3]);
    let labels: Vec<(&str, &str, i64, i64)> = decoded.sample[1]
        .label
        .iter()
        .map(|l| (s(l.key), s(l.str), l.num, l.num_unit))
        .collect();
    assert_eq!(labels, [("tenant", "beta", 0, 0), ("goid", "", 18, 0)]);
    let total: i64 = decoded.sample.iter().map(|sample| sample.value[1]).sum();
    assert_eq!(total, 7 * MS_10 + MS_10 / 2);
}

#[test]
fn values_are_padded_to_the_sample_types_and_bad_indexes_get_an_empty_location() {
    let mut profile = Profile::new(ProfileKind::Wall);
    profile.locations.push(Location {
        address: 0x10,
        mapping: Some(4),
        lines: vec![],
    });
    profile.samples.push(Sample {
        locations: vec![0, 9],
        values: vec![5],
        labels: vec![],
    });
    profile.samples.push(Sample {
        locations: vec![0],
        values: vec![1, 2, 3],
        labels: vec![],
    });
    let decoded = decode(&pprof(&profile));

    assert_eq!(decoded.sample[0].value, [5, 0]);
    assert_eq!(decoded.sample[1].value, [1, 2]);
    assert_eq!(decoded.sample[0].location_id, [1, 2]);
    let locations: Vec<(u64, u64, usize)> = decoded
        .location
        .iter()
        .map(|l| (l.id, l.mapping_id, l.line.len()))
        .collect();
    assert_eq!(
        locations,
        [(1, 0, 0), (2, 0, 0)],
        "no dangling mapping or location ids"
    );
    assert_eq!(string(&decoded, decoded.default_sample_type), "wall");
}

#[test]
fn an_empty_profile_encodes_to_a_valid_protobuf() {
    let decoded = decode(&pprof(&Profile::new(ProfileKind::OffCpu)));
    assert!(decoded.sample.is_empty() && decoded.location.is_empty());
    assert_eq!(decoded.string_table[0], "");
    assert_eq!(string(&decoded, decoded.default_sample_type), "offcpu");
}
