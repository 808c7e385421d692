//! Encodes leak events, decodes the request back with prost and checks every
//! field of the records.

use goroscope_model::goroutines::{CodeLocation, LeakSuspect};
use prost::Message;

use super::super::proto::common::{any_value, KeyValue};
use super::super::proto::logs::{LogRecord, SeverityNumber};
use super::*;

const AT: u64 = 1_700_000_000_123_456_789;

fn suspect() -> LeakSuspect {
    LeakSuspect {
        count: 120,
        recently_blocked: 4,
        wait_reason: "chan send".to_owned(),
        start_function: "main.worker".to_owned(),
        creation: CodeLocation {
            function: "main.spawn".to_owned(),
            file: "/src/app/main.go".to_owned(),
            line: 41,
        },
        blocked_at: CodeLocation {
            function: "main.worker".to_owned(),
            file: "/src/app/worker.go".to_owned(),
            line: 17,
        },
        min_blocked_ns: 31_000_000_000,
        leak_score: 0.875,
        reason: "120 goroutines blocked in chan send for over 31s, growing 6/min".to_owned(),
        stuck: true,
        growing: true,
        growth: 12,
        growth_per_minute: 6.5,
        released: 2,
    }
}

/// An attribute's value as text, its type spelled out so a wrong type fails.
fn value(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => format!("str:{s}"),
        Some(any_value::Value::IntValue(i)) => format!("int:{i}"),
        Some(any_value::Value::DoubleValue(d)) => format!("double:{d}"),
        Some(any_value::Value::BoolValue(b)) => format!("bool:{b}"),
        other => panic!("unexpected value of {}: {other:?}", kv.key),
    }
}

fn attributes(record: &LogRecord) -> Vec<(String, String)> {
    record
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), value(kv)))
        .collect()
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Encodes and decodes `resources`.
#[track_caller]
fn round_trip(resources: &[ResourceLeakEvents<'_>]) -> ExportLogsServiceRequest {
    let request = logs_request(resources);
    let bytes = request.encode_to_vec();
    let decoded = ExportLogsServiceRequest::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("request does not decode: {e}"));
    assert_eq!(decoded, request);
    decoded
}

#[test]
fn an_event_is_a_warn_record_with_the_reason_and_every_piece_of_evidence() {
    let suspect = suspect();
    let events = [
        LeakEvent {
            suspect: &suspect,
            change: LeakChange::Appeared,
            time_unix_ns: AT,
        },
        LeakEvent {
            suspect: &suspect,
            change: LeakChange::Grew { from: 100 },
            time_unix_ns: AT + 15_000_000_000,
        },
    ];
    let decoded = round_trip(&[ResourceLeakEvents {
        attributes: vec![
            string_attribute("service.name", "checkout"),
            int_attribute("process.pid", 4242),
        ],
        events: &events,
    }]);
    let [resource] = decoded.resource_logs.as_slice() else {
        panic!("one resource expected: {decoded:?}");
    };
    let resource_attributes: Vec<_> = resource
        .resource
        .iter()
        .flat_map(|r| &r.attributes)
        .map(|kv| (kv.key.clone(), value(kv)))
        .collect();
    assert_eq!(
        resource_attributes,
        pairs(&[
            ("service.name", "str:checkout"),
            ("process.pid", "int:4242")
        ])
    );
    let [scope] = resource.scope_logs.as_slice() else {
        panic!("one scope expected: {resource:?}");
    };
    let name = scope
        .scope
        .as_ref()
        .map(|s| (s.name.as_str(), s.version.as_str()));
    assert_eq!(name, Some(("goroscope", env!("CARGO_PKG_VERSION"))));
    let [appeared, grew] = scope.log_records.as_slice() else {
        panic!("two records expected: {scope:?}");
    };

    assert_eq!(appeared.event_name, "goroscope.goroutine.leak_suspect");
    assert_eq!(appeared.severity_number, SeverityNumber::Warn as i32);
    assert_eq!(appeared.severity_text, "WARN");
    assert_eq!(
        (appeared.time_unix_nano, appeared.observed_time_unix_nano),
        (AT, AT)
    );
    let body = appeared.body.as_ref().and_then(|b| b.value.as_ref());
    assert_eq!(
        body,
        Some(&any_value::Value::StringValue(
            "120 goroutines blocked in chan send for over 31s, growing 6/min".to_owned()
        ))
    );
    let common = [
        ("code.function.name", "str:main.worker"),
        ("code.file.path", "str:/src/app/worker.go"),
        ("code.line.number", "int:17"),
        ("goroscope.goroutine.wait_reason", "str:chan send"),
        ("goroscope.goroutine.start_function", "str:main.worker"),
        ("goroscope.goroutine.creation.function", "str:main.spawn"),
        ("goroscope.goroutine.creation.file", "str:/src/app/main.go"),
        ("goroscope.goroutine.creation.line", "int:41"),
        ("goroscope.goroutine.count", "int:120"),
        ("goroscope.goroutine.recently_blocked", "int:4"),
        ("goroscope.goroutine.min_blocked_ns", "int:31000000000"),
        ("goroscope.goroutine.leak.score", "double:0.875"),
        ("goroscope.goroutine.leak.stuck", "bool:true"),
        ("goroscope.goroutine.leak.growing", "bool:true"),
        ("goroscope.goroutine.leak.growth", "int:12"),
        ("goroscope.goroutine.leak.growth_per_minute", "double:6.5"),
        ("goroscope.goroutine.leak.released", "int:2"),
    ];
    let mut expected = common.to_vec();
    expected.push(("goroscope.goroutine.leak.change", "str:appeared"));
    assert_eq!(attributes(appeared), pairs(&expected));

    assert_eq!(grew.time_unix_nano, AT + 15_000_000_000);
    let mut expected = common.to_vec();
    expected.push(("goroscope.goroutine.leak.change", "str:grew"));
    expected.push(("goroscope.goroutine.leak.previous_count", "int:100"));
    assert_eq!(attributes(grew), pairs(&expected));
}

#[test]
fn unknown_locations_and_names_are_left_out_and_quiet_resources_dropped() {
    let mut suspect = suspect();
    suspect.start_function.clear();
    suspect.creation = CodeLocation {
        function: String::new(),
        file: String::new(),
        line: 0,
    };
    suspect.blocked_at.line = 0;
    suspect.growth = -3;
    let events = [LeakEvent {
        suspect: &suspect,
        change: LeakChange::Appeared,
        time_unix_ns: AT,
    }];
    let decoded = round_trip(&[
        ResourceLeakEvents {
            attributes: vec![string_attribute("service.name", "quiet")],
            events: &[],
        },
        ResourceLeakEvents {
            attributes: vec![string_attribute("service.name", "leaky")],
            events: &events,
        },
    ]);
    let [resource] = decoded.resource_logs.as_slice() else {
        panic!("only the resource with events expected: {decoded:?}");
    };
    let service = resource
        .resource
        .as_ref()
        .map(|r| r.attributes.iter().map(value).collect::<Vec<_>>());
    assert_eq!(service, Some(vec!["str:leaky".to_owned()]));
    let record = &resource.scope_logs[0].log_records[0];
    let keys: Vec<_> = attributes(record)
        .into_iter()
        .filter(|(key, _)| !key.starts_with("goroscope.goroutine.leak.") || key.ends_with("growth"))
        .collect();
    assert_eq!(
        keys,
        pairs(&[
            ("code.function.name", "str:main.worker"),
            ("code.file.path", "str:/src/app/worker.go"),
            ("goroscope.goroutine.wait_reason", "str:chan send"),
            ("goroscope.goroutine.count", "int:120"),
            ("goroscope.goroutine.recently_blocked", "int:4"),
            ("goroscope.goroutine.min_blocked_ns", "int:31000000000"),
            ("goroscope.goroutine.leak.growth", "int:-3"),
        ])
    );
    assert!(logs_request(&[]).resource_logs.is_empty());
}
