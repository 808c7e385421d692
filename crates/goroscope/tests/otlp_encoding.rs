//! goroscope's OTLP encodings against a real OpenTelemetry Collector
//! (v0.165.0, `tests/otelcol/`): a leak-events logs request
//! (`goroscope_export::otlp::logs_request`) and a profiles request
//! (`profiles_request`, profiles development version 1) are posted as OTLP/HTTP
//! protobuf to `/v1/logs` and `/v1development/profiles`; the collector must
//! answer 200 without rejecting anything, and its file exporter must write back
//! exactly what was sent: the record's event name, severity, times, body and
//! every attribute with its type; the profile's sample types, values, the
//! function names of each sample's stack in order, mapping, time, duration and
//! period, read back through the dictionary the collector wrote. The collector
//! refuses profiles development version 2 by name and takes version 1, the one
//! a request without the version header is.

mod otelcol;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use goroscope_export::otlp::proto::{ExportLogsServiceResponse, ExportProfilesServiceResponse};
use goroscope_export::otlp::{
    int_attribute, logs_request, profiles_request, string_attribute, LeakChange, LeakEvent,
    ResourceLeakEvents, ResourceProfiles,
};
use goroscope_model::goroutines::{CodeLocation, LeakSuspect};
use goroscope_model::profile::{Label, Line, Location, Mapping, Profile, ProfileKind, Sample};
use otelcol::{Collector, Signal};
use prost::Message;
use serde_json::Value;

/// How long a posted request may take to reach the file exporter's output.
const ARRIVAL: Duration = Duration::from_secs(15);
const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");

/// A service name no other run uses.
fn unique_service(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("otlp-encoding-{what}-{}-{nanos}", std::process::id())
}

/// `value[key]` as a slice (empty when absent, as OTLP JSON leaves out empty
/// fields).
fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// An OTLP JSON integer: a number (32-bit fields), a decimal string (64-bit
/// fields), or absent for zero.
#[track_caller]
fn int(value: &Value) -> i64 {
    match value {
        Value::Null => 0,
        Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("not an integer: {n}")),
        Value::String(s) => s
            .parse()
            .unwrap_or_else(|e| panic!("not an integer {s:?}: {e}")),
        other => panic!("not an integer: {other}"),
    }
}

/// An OTLP JSON attribute value as `type:value` text, a string given by its
/// index in `strings` (a profiles dictionary's string table) read from there.
#[track_caller]
fn typed(value: &Value, strings: &[Value]) -> String {
    if let Some(s) = value.get("stringValue") {
        format!("str:{}", s.as_str().expect("a string"))
    } else if let Some(at) = value.get("stringValueStrindex") {
        format!("str:{}", string_at(strings, at))
    } else if let Some(i) = value.get("intValue") {
        format!("int:{}", int(i))
    } else if let Some(d) = value.get("doubleValue") {
        format!("double:{}", d.as_f64().expect("a double"))
    } else if let Some(b) = value.get("boolValue") {
        format!("bool:{}", b.as_bool().expect("a boolean"))
    } else {
        panic!("an attribute value of an unexpected type: {value}")
    }
}

/// `strings[at]`, panicking when out of range.
#[track_caller]
fn string_at(strings: &[Value], at: &Value) -> String {
    let at = usize::try_from(int(at)).expect("a non-negative index");
    let entry = strings
        .get(at)
        .unwrap_or_else(|| panic!("string {at} is not in the string table {strings:?}"));
    entry.as_str().unwrap_or_default().to_owned()
}

/// Attributes (`KeyValue`s) as `key=type:value` text. Keys and string values
/// may be references into `strings`: the Collector's pdata turns a profiles
/// batch's resource and scope attributes into references to its dictionary
/// (OTLP v1.10.0 `key_strindex`, `string_value_strindex`).
#[track_caller]
fn key_values(attributes: &[Value], strings: &[Value]) -> Vec<String> {
    attributes
        .iter()
        .map(|a| {
            let key = match a.get("key") {
                Some(key) => key.as_str().unwrap_or_default().to_owned(),
                None => string_at(strings, &a["keyStrindex"]),
            };
            format!("{key}={}", typed(&a["value"], strings))
        })
        .collect()
}

/// The first resource of `signal` with `service.name` `service` in what the
/// collector wrote, with its batch (profiles need the batch's dictionary).
fn find_resource(batches: &[Value], signal: Signal, service: &str) -> Option<(Value, Value)> {
    let wanted = format!("service.name=str:{service}");
    batches.iter().find_map(|batch| {
        let strings = array(&batch["dictionary"], "stringTable");
        array(batch, signal.key())
            .iter()
            .find(|resource| {
                key_values(array(&resource["resource"], "attributes"), strings).contains(&wanted)
            })
            .map(|resource| (batch.clone(), resource.clone()))
    })
}

#[test]
fn the_collector_takes_leak_events_as_logs_and_writes_them_back_exactly() {
    let collector = Collector::start();
    let service = unique_service("logs");
    let suspect = LeakSuspect {
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
        reason: "120 goroutines blocked in chan send for over 31s, growing 6.5/min".to_owned(),
        stuck: true,
        growing: true,
        growth: 12,
        growth_per_minute: 6.5,
        released: 2,
    };
    let at = 1_700_000_000_123_456_789;
    let events = [LeakEvent {
        suspect: &suspect,
        change: LeakChange::Grew { from: 100 },
        time_unix_ns: at,
    }];
    let request = logs_request(&[ResourceLeakEvents {
        attributes: vec![
            string_attribute("service.name", &service),
            int_attribute("process.pid", 4242),
        ],
        events: &events,
    }]);

    let (status, body) = collector.post("/v1/logs", &[PROTOBUF], &request.encode_to_vec());
    assert_eq!(
        status,
        200,
        "the collector refused the logs request: {}\nits log:\n{}",
        String::from_utf8_lossy(&body),
        collector.log()
    );
    let response = ExportLogsServiceResponse::decode(body.as_slice())
        .unwrap_or_else(|e| panic!("the response is not an ExportLogsServiceResponse: {e}"));
    let rejected = response
        .partial_success
        .map_or(0, |p| p.rejected_log_records);
    assert_eq!(rejected, 0, "the collector rejected records");

    let batches = collector.wait_received(ARRIVAL, "the leak event", |batches| {
        find_resource(batches, Signal::Logs, &service).is_some()
    });
    let (_, resource) =
        find_resource(&batches, Signal::Logs, &service).expect("found by wait_received");
    assert_eq!(
        key_values(array(&resource["resource"], "attributes"), &[]),
        [
            format!("service.name=str:{service}"),
            "process.pid=int:4242".to_owned(),
        ]
    );
    let [scope] = array(&resource, "scopeLogs") else {
        panic!("one scope expected: {resource}");
    };
    assert_eq!(scope["scope"]["name"], "goroscope");
    assert_eq!(scope["scope"]["version"], env!("CARGO_PKG_VERSION"));
    let [record] = array(scope, "logRecords") else {
        panic!("one record expected: {scope}");
    };
    assert_eq!(record["eventName"], "goroscope.goroutine.leak_suspect");
    assert_eq!(record["severityNumber"], 13, "SEVERITY_NUMBER_WARN");
    assert_eq!(record["severityText"], "WARN");
    assert_eq!(int(&record["timeUnixNano"]), at as i64);
    assert_eq!(int(&record["observedTimeUnixNano"]), at as i64);
    assert_eq!(record["body"]["stringValue"], suspect.reason.as_str());
    let expected: Vec<String> = [
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
        ("goroscope.goroutine.leak.change", "str:grew"),
        ("goroscope.goroutine.leak.previous_count", "int:100"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect();
    assert_eq!(key_values(array(record, "attributes"), &[]), expected);
}

/// A wall-clock-free CPU profile of one Go binary: two stacks, one with an
/// inlined frame.
fn cpu_profile() -> Profile {
    let line = |function: &str, file: &str, line: u32| Line {
        function: function.to_owned(),
        file: file.to_owned(),
        line,
        start_line: 0,
    };
    let mut profile = Profile::new(ProfileKind::Cpu);
    profile.period = 10_101_010;
    profile.time_ns = 1_700_000_000_000_000_000;
    profile.duration_ns = 30_000_000_000;
    profile.comments = vec!["3 samples lost".to_owned()];
    profile.mappings = vec![Mapping {
        start: 0x400000,
        limit: 0x800000,
        offset: 0,
        file: "/srv/api".to_owned(),
        has_functions: true,
        ..Mapping::default()
    }];
    profile.locations = vec![
        Location {
            address: 0x401234,
            mapping: Some(0),
            lines: vec![
                line("main.hash", "/src/api/hash.go", 12),
                line("main.handle", "/src/api/main.go", 40),
            ],
        },
        Location {
            address: 0x402000,
            mapping: Some(0),
            lines: vec![line("main.main", "/src/api/main.go", 20)],
        },
        Location {
            address: 0x403000,
            mapping: Some(0),
            lines: vec![line("runtime.goexit", "/go/src/runtime/asm.s", 1700)],
        },
    ];
    profile.samples = vec![
        Sample {
            locations: vec![0, 1],
            values: vec![7, 70_707_070],
            labels: vec![Label::text("tenant", "alpha")],
        },
        Sample {
            locations: vec![1, 2],
            values: vec![3, 30_303_030],
            labels: vec![Label::number("goid", 17)],
        },
    ];
    profile
}

/// Reads the collector's JSON dictionary.
struct Dictionary<'a>(&'a Value);

impl Dictionary<'_> {
    #[track_caller]
    fn entry(&self, table: &str, index: &Value) -> &Value {
        let at = usize::try_from(int(index)).expect("a non-negative index");
        array(self.0, table)
            .get(at)
            .unwrap_or_else(|| panic!("{table}[{at}] is missing from {}", self.0))
    }

    #[track_caller]
    fn string(&self, index: &Value) -> String {
        string_at(self.strings(), index)
    }

    fn strings(&self) -> &[Value] {
        array(self.0, "stringTable")
    }

    fn value_type(&self, t: &Value) -> (String, String) {
        (
            self.string(&t["typeStrindex"]),
            self.string(&t["unitStrindex"]),
        )
    }

    /// The function names of a sample's stack, leaf first, inlined frames
    /// expanded.
    #[track_caller]
    fn frames(&self, sample: &Value) -> Vec<String> {
        let stack = self.entry("stackTable", &sample["stackIndex"]);
        array(stack, "locationIndices")
            .iter()
            .flat_map(|location| array(self.entry("locationTable", location), "lines"))
            .map(|line| {
                let function = self.entry("functionTable", &line["functionIndex"]);
                self.string(&function["nameStrindex"])
            })
            .collect()
    }

    /// The mapping of a sample's leaf location.
    #[track_caller]
    fn leaf_mapping(&self, sample: &Value) -> &Value {
        let stack = self.entry("stackTable", &sample["stackIndex"]);
        let leaf = array(stack, "locationIndices").first().expect("a leaf");
        let location = self.entry("locationTable", leaf);
        self.entry("mappingTable", &location["mappingIndex"])
    }

    /// Attributes as `key=type:value` text.
    #[track_caller]
    fn attributes(&self, indices: &[Value]) -> Vec<String> {
        indices
            .iter()
            .map(|index| {
                let kv = self.entry("attributeTable", index);
                let key = self.string(&kv["keyStrindex"]);
                format!("{key}={}", typed(&kv["value"], self.strings()))
            })
            .collect()
    }
}

#[test]
fn the_collector_takes_profiles_development_version_1_and_writes_them_back_exactly() {
    let collector = Collector::start();
    let service = unique_service("profiles");
    let profiles = [cpu_profile()];
    let request = profiles_request(&[ResourceProfiles {
        attributes: vec![string_attribute("service.name", &service)],
        profiles: &profiles,
    }]);

    let path = "/v1development/profiles";
    // The version this encoding speaks is the one the collector takes: it
    // refuses any other by name, and takes a request that names none as 1.
    let version = |v| [PROTOBUF, ("otlp-profiles-development-version", v)];
    let (status, body) = collector.post(path, &version("2"), &request.encode_to_vec());
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "profiles version 2 was not refused: {body}");
    assert!(
        body.contains("supported version is 1"),
        "the refusal of version 2 does not name version 1: {body}"
    );
    let (status, body) = collector.post(path, &version("1"), &request.encode_to_vec());
    assert_eq!(
        status,
        200,
        "profiles version 1 refused: {}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = collector.post(path, &[PROTOBUF], &request.encode_to_vec());
    assert_eq!(
        status,
        200,
        "the collector refused the profiles request: {}\nits log:\n{}",
        String::from_utf8_lossy(&body),
        collector.log()
    );
    let response = ExportProfilesServiceResponse::decode(body.as_slice())
        .unwrap_or_else(|e| panic!("the response is not an ExportProfilesServiceResponse: {e}"));
    let rejected = response.partial_success.map_or(0, |p| p.rejected_profiles);
    assert_eq!(rejected, 0, "the collector rejected profiles");

    let batches = collector.wait_received(ARRIVAL, "the profile", |batches| {
        find_resource(batches, Signal::Profiles, &service).is_some()
    });
    let (batch, resource) =
        find_resource(&batches, Signal::Profiles, &service).expect("found by wait_received");
    let dictionary = Dictionary(&batch["dictionary"]);
    let [scope] = array(&resource, "scopeProfiles") else {
        panic!("one scope expected: {resource}");
    };
    assert_eq!(scope["scope"]["name"], "goroscope");
    assert_eq!(
        key_values(array(&scope["scope"], "attributes"), dictionary.strings()),
        ["pprof.scope.default_sample_type=str:cpu"]
    );
    let [samples, cpu] = array(scope, "profiles") else {
        panic!("two profiles (samples/count, cpu/nanoseconds) expected: {scope}");
    };
    let pair = |kind: &str, unit: &str| (kind.to_owned(), unit.to_owned());
    assert_eq!(
        dictionary.value_type(&samples["sampleType"]),
        pair("samples", "count")
    );
    assert_eq!(
        dictionary.value_type(&cpu["sampleType"]),
        pair("cpu", "nanoseconds")
    );
    for profile in [samples, cpu] {
        assert_eq!(int(&profile["timeUnixNano"]), 1_700_000_000_000_000_000);
        assert_eq!(int(&profile["durationNano"]), 30_000_000_000);
        assert_eq!(int(&profile["period"]), 10_101_010);
        assert_eq!(
            dictionary.value_type(&profile["periodType"]),
            pair("cpu", "nanoseconds")
        );
        assert_eq!(
            array(profile, "samples").len(),
            2,
            "both samples in {profile}"
        );
    }
    let values = |profile: &Value| -> Vec<Vec<i64>> {
        array(profile, "samples")
            .iter()
            .map(|s| array(s, "values").iter().map(int).collect())
            .collect()
    };
    assert_eq!(values(samples), [vec![7], vec![3]]);
    assert_eq!(values(cpu), [vec![70_707_070], vec![30_303_030]]);

    let cpu_samples = array(cpu, "samples");
    assert_eq!(
        dictionary.frames(&cpu_samples[0]),
        ["main.hash", "main.handle", "main.main"]
    );
    assert_eq!(
        dictionary.frames(&cpu_samples[1]),
        ["main.main", "runtime.goexit"]
    );
    assert_eq!(
        dictionary.attributes(array(&cpu_samples[0], "attributeIndices")),
        ["tenant=str:alpha"]
    );
    assert_eq!(
        dictionary.attributes(array(&cpu_samples[1], "attributeIndices")),
        ["goid=int:17"]
    );
    let mapping = dictionary.leaf_mapping(&cpu_samples[0]);
    assert_eq!(dictionary.string(&mapping["filenameStrindex"]), "/srv/api");
    assert_eq!(
        (int(&mapping["memoryStart"]), int(&mapping["memoryLimit"])),
        (0x400000, 0x800000)
    );
    assert_eq!(
        dictionary.attributes(array(mapping, "attributeIndices")),
        ["pprof.mapping.has_functions=bool:true"]
    );
}
