//! pprof labels read from live goroutines: testdata/go/labels, built with every Go toolchain (1.19
//! to 1.27: `map[string]string` label sets up to 1.23, sorted lists from 1.24) in every build mode
//! (default, stripped, PIE, static, cgo), plants goroutines under `pprof.Do`, nested `pprof.Do`,
//! inherited from a `pprof.Do` caller, and `pprof.SetGoroutineLabels` with 9, 14 and 27 labels
//! (maps of more than one bucket, overflow chains, a growth left half done, odd bytes), next to
//! goroutines whose labels were cleared or never set. Each planted goroutine must carry exactly the labels Go itself
//! reports for it (its ready line, by goroutine id), and every other goroutine none.

use std::collections::BTreeMap;
use std::path::Path;

use goroscope_gobin::offsets::OffsetTables;
use goroscope_goprocess::{GoProcess, LabelSetLayout, SnapshotOptions};
use goroscope_model::goroutines::GoroutineRecord;
use goroscope_model::text;
use gotest::{BuildMode, Toolchain, BUILD_MODES, TOOLCHAINS};
use serde_json::Value;

/// Kinds whose goroutines must have no label pointer at all (never set, or set back to none).
const WITHOUT_POINTER: &[&str] = &["plain", "cleared", "after-do"];

/// Decodes the program's hex encoding of a label key or value.
#[track_caller]
fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|at| {
            u8::from_str_radix(&text[at..at + 2], 16).unwrap_or_else(|e| panic!("{text}: {e}"))
        })
        .collect()
}

/// One planted goroutine from the ready line: id, kind, and its labels as goroscope must print
/// them (sorted by key, escaped).
#[track_caller]
fn planted(entry: &Value) -> (u64, String, Vec<(String, String)>) {
    let goid = entry["goid"].as_u64().unwrap_or_else(|| panic!("{entry}"));
    let kind = entry["kind"].as_str().unwrap_or_else(|| panic!("{entry}"));
    let mut raw: Vec<(Vec<u8>, Vec<u8>)> = entry["labels"]
        .as_array()
        .unwrap_or_else(|| panic!("{entry}"))
        .iter()
        .map(|pair| {
            let side =
                |index: usize| unhex(pair[index].as_str().unwrap_or_else(|| panic!("{pair}")));
            (side(0), side(1))
        })
        .collect();
    raw.sort();
    let labels = raw
        .iter()
        .map(|(key, value)| {
            (
                text::escape(key).into_owned(),
                text::escape(value).into_owned(),
            )
        })
        .collect();
    (goid, kind.to_string(), labels)
}

#[track_caller]
fn check_labels(toolchain: Toolchain, mode: BuildMode) {
    let what = format!("{} {}", toolchain.version, mode.name());
    let binary = gotest::build("labels", toolchain, mode);
    let program = gotest::Running::start(&binary, &[]);
    let ready: Value = serde_json::from_str(&program.ready_line)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", program.ready_line));
    assert_eq!(ready["go_version"], toolchain.version, "{what}");
    assert_eq!(ready["cgo"], mode == BuildMode::Cgo, "{what}");
    let goroutines = ready["goroutines"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {ready}"));
    let expected: BTreeMap<u64, (String, Vec<(String, String)>)> = goroutines
        .iter()
        .map(|entry| {
            let (goid, kind, labels) = planted(entry);
            (goid, (kind, labels))
        })
        .collect();
    assert_eq!(expected.len(), 20, "{what}: {ready}");

    let mut process = GoProcess::attach(Path::new("/proc"), program.pid())
        .unwrap_or_else(|e| panic!("{what}: attach: {e}"));
    let version = process.info().version.clone();
    let layout = process.g_layout();
    let table = OffsetTables::all()
        .lookup(version.line())
        .unwrap_or_else(|| panic!("{what}: no table line"));
    assert_eq!(layout.labels, table.g.labels, "{what}");
    assert!(layout.labels.is_some(), "{what}");
    assert_eq!(
        (layout.size, layout.stack_lo, layout.stack_hi, layout.goid),
        (
            table.g.size,
            table.g.stack_lo,
            table.g.stack_hi,
            table.g.goid
        ),
        "{what}"
    );
    let list = version.at_least(1, 24);
    assert_eq!(
        layout.label_set,
        if list {
            LabelSetLayout::SortedList
        } else {
            LabelSetLayout::StringMap
        },
        "{what}"
    );

    let snapshot = process
        .snapshot(&SnapshotOptions::default())
        .unwrap_or_else(|e| panic!("{what}: snapshot: {e}"));
    let records: BTreeMap<u64, GoroutineRecord> = snapshot
        .goroutines
        .iter()
        .map(|record| (record.goid, *record))
        .collect();
    let main_goid = ready["main_goid"].as_u64().unwrap_or(0);
    assert!(
        records.contains_key(&main_goid),
        "{what}: no main goroutine"
    );

    let mut set_by_worker: BTreeMap<Vec<(String, String)>, Vec<u64>> = BTreeMap::new();
    for (goid, (kind, labels)) in &expected {
        let record = records
            .get(goid)
            .unwrap_or_else(|| panic!("{what}: goroutine {goid} ({kind}) is not in the snapshot"));
        let read = process
            .read_labels(record.labels)
            .unwrap_or_else(|e| panic!("{what}: labels of goroutine {goid} ({kind}): {e}"));
        assert_eq!(&read, labels, "{what}: goroutine {goid} ({kind})");
        if WITHOUT_POINTER.contains(&kind.as_str()) {
            assert_eq!(record.labels, 0, "{what}: goroutine {goid} ({kind})");
        } else {
            assert_ne!(record.labels, 0, "{what}: goroutine {goid} ({kind})");
        }
        if kind == "inherited" {
            set_by_worker.entry(read).or_default().push(record.labels);
        }
    }
    // The two goroutines started inside one pprof.Do share its label set.
    assert_eq!(set_by_worker.len(), 3, "{what}: {set_by_worker:?}");
    for pointers in set_by_worker.values() {
        assert_eq!(pointers.len(), 2, "{what}");
        assert_eq!(pointers[0], pointers[1], "{what}: {set_by_worker:?}");
    }
    // Spot checks of what Go reported, so a program that reported nothing cannot pass.
    let kinds = |kind: &'static str| expected.values().filter(move |(k, _)| k == kind);
    assert!(kinds("set").all(|(_, labels)| labels.len() == 27
        && labels.contains(&("bytes".into(), "\\xff\\xfe\\x00z".into()))
        && labels.contains(&("quote".into(), "a\"b\\\\c".into()))
        && labels.contains(&("long".into(), "x".repeat(1024)))));
    assert!(kinds("grow").all(|(_, labels)| labels.len() == 14));
    assert!(kinds("nested").all(|(_, labels)| labels
        == &[
            ("region".to_string(), "eu".to_string()),
            ("shard".into(), "7".into()),
            ("tenant".into(), "delta".into())
        ]));

    // Everything not planted (main, the runtime's own goroutines, the signal loop) has no labels.
    for record in records.values() {
        if !expected.contains_key(&record.goid) {
            assert_eq!(
                record.labels, 0,
                "{what}: goroutine {} was not planted but has labels",
                record.goid
            );
        }
    }
}

macro_rules! every_mode {
    ($($name:ident => $index:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            let toolchain = TOOLCHAINS[$index];
            for &mode in BUILD_MODES {
                check_labels(toolchain, mode);
            }
        }
    )*};
}

every_mode! {
    labels_are_read_exactly_with_go1_19 => 0,
    labels_are_read_exactly_with_go1_20 => 1,
    labels_are_read_exactly_with_go1_21 => 2,
    labels_are_read_exactly_with_go1_22 => 3,
    labels_are_read_exactly_with_go1_23 => 4,
    labels_are_read_exactly_with_go1_24 => 5,
    labels_are_read_exactly_with_go1_25 => 6,
    labels_are_read_exactly_with_go1_26 => 7,
    labels_are_read_exactly_with_go1_27 => 8,
}

#[test]
fn the_toolchain_list_is_the_one_the_tests_cover() {
    assert_eq!(TOOLCHAINS.len(), 9, "add a test above for every toolchain");
}
