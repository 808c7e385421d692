//! Goroutine leak events as OTLP logs: each time a group of goroutines first
//! looks leaked, or a suspect grows, one `LogRecord` (an OTLP event named
//! [`LEAK_EVENT_NAME`], severity WARN) carrying the suspect's human reason as
//! its body and its evidence as attributes.
//!
//! Attributes, each left out when unknown (an empty name, line 0):
//! - where the goroutines are blocked, under the semantic conventions' code
//!   attributes: `code.function.name`, `code.file.path`, `code.line.number`;
//! - the group: `goroscope.goroutine.wait_reason`,
//!   `goroscope.goroutine.start_function`, and the `go` statement that created
//!   them as `goroscope.goroutine.creation.function` / `.file` / `.line`;
//! - the counts: `goroscope.goroutine.count` (blocked past the threshold),
//!   `goroscope.goroutine.recently_blocked`, `goroscope.goroutine.min_blocked_ns`;
//! - the leak analysis: `goroscope.goroutine.leak.score` (double in `[0, 1]`),
//!   `.stuck`, `.growing` (booleans), `.growth` (net change over the growth
//!   horizon), `.growth_per_minute` (double), `.released`;
//! - the change: `goroscope.goroutine.leak.change` (`appeared` or `grew`) and,
//!   for `grew`, `goroscope.goroutine.leak.previous_count`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};

use goroscope_model::goroutines::{CodeLocation, LeakSuspect};

use super::{bool_attribute, double_attribute, int_attribute, string_attribute};

/// The event name of every leak record.
pub const LEAK_EVENT_NAME: &str = "goroscope.goroutine.leak_suspect";

/// What changed about a leak suspect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeakChange {
    /// The group was not a suspect before.
    Appeared,
    /// The suspect's `count` grew, from `from`.
    Grew {
        /// Its previous `count`.
        from: u64,
    },
}

/// One leak event: a suspect as it is now, what changed, and when it was
/// seen (nanoseconds since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakEvent<'a> {
    /// The suspect, as the health report has it now.
    pub suspect: &'a LeakSuspect,
    /// What changed.
    pub change: LeakChange,
    /// When the change was seen, in nanoseconds since the Unix epoch.
    pub time_unix_ns: u64,
}

/// The leak events of one resource (a Go service's process).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceLeakEvents<'a> {
    /// The resource's attributes, e.g. from [`string_attribute`].
    pub attributes: Vec<KeyValue>,
    /// Its events, in the order they are to be reported.
    pub events: &'a [LeakEvent<'a>],
}

/// The export request of `resources`' leak events, one record per event in
/// order, under the `goroscope` scope. Resources without events are left out.
pub fn logs_request(resources: &[ResourceLeakEvents<'_>]) -> ExportLogsServiceRequest {
    let resource_logs = resources
        .iter()
        .filter(|resource| !resource.events.is_empty())
        .map(|resource| ResourceLogs {
            resource: Some(super::resource(&resource.attributes)),
            scope_logs: vec![ScopeLogs {
                scope: Some(super::scope(Vec::new())),
                log_records: resource.events.iter().map(record).collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// The record of one event.
fn record(event: &LeakEvent<'_>) -> LogRecord {
    LogRecord {
        time_unix_nano: event.time_unix_ns,
        observed_time_unix_nano: event.time_unix_ns,
        severity_number: SeverityNumber::Warn as i32,
        severity_text: "WARN".to_owned(),
        event_name: LEAK_EVENT_NAME.to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(event.suspect.reason.clone())),
        }),
        attributes: attributes(event.suspect, event.change),
        ..LogRecord::default()
    }
}

/// The attributes of a suspect and its change, in the order of the module
/// docs.
fn attributes(suspect: &LeakSuspect, change: LeakChange) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(20);
    location(
        &suspect.blocked_at,
        ["code.function.name", "code.file.path", "code.line.number"],
        &mut out,
    );
    nonempty(
        "goroscope.goroutine.wait_reason",
        &suspect.wait_reason,
        &mut out,
    );
    nonempty(
        "goroscope.goroutine.start_function",
        &suspect.start_function,
        &mut out,
    );
    location(
        &suspect.creation,
        [
            "goroscope.goroutine.creation.function",
            "goroscope.goroutine.creation.file",
            "goroscope.goroutine.creation.line",
        ],
        &mut out,
    );
    out.push(int_attribute(
        "goroscope.goroutine.count",
        saturating_i64(suspect.count),
    ));
    out.push(int_attribute(
        "goroscope.goroutine.recently_blocked",
        saturating_i64(suspect.recently_blocked),
    ));
    out.push(int_attribute(
        "goroscope.goroutine.min_blocked_ns",
        saturating_i64(suspect.min_blocked_ns),
    ));
    out.push(double_attribute(
        "goroscope.goroutine.leak.score",
        suspect.leak_score,
    ));
    out.push(bool_attribute(
        "goroscope.goroutine.leak.stuck",
        suspect.stuck,
    ));
    out.push(bool_attribute(
        "goroscope.goroutine.leak.growing",
        suspect.growing,
    ));
    out.push(int_attribute(
        "goroscope.goroutine.leak.growth",
        suspect.growth,
    ));
    out.push(double_attribute(
        "goroscope.goroutine.leak.growth_per_minute",
        suspect.growth_per_minute,
    ));
    out.push(int_attribute(
        "goroscope.goroutine.leak.released",
        saturating_i64(suspect.released),
    ));
    match change {
        LeakChange::Appeared => out.push(string_attribute(
            "goroscope.goroutine.leak.change",
            "appeared",
        )),
        LeakChange::Grew { from } => {
            out.push(string_attribute("goroscope.goroutine.leak.change", "grew"));
            out.push(int_attribute(
                "goroscope.goroutine.leak.previous_count",
                saturating_i64(from),
            ));
        }
    }
    out
}

/// A code location as three attributes (function, file, line), each left
/// out when unknown.
fn location(at: &CodeLocation, [function, file, line]: [&str; 3], out: &mut Vec<KeyValue>) {
    nonempty(function, &at.function, out);
    nonempty(file, &at.file, out);
    if at.line != 0 {
        out.push(int_attribute(line, i64::from(at.line)));
    }
}

/// A string attribute, unless `value` is empty (unknown).
fn nonempty(key: &str, value: &str, out: &mut Vec<KeyValue>) {
    if !value.is_empty() {
        out.push(string_attribute(key, value));
    }
}

/// `value` as an OTLP integer (a signed 64-bit one), `i64::MAX` above that.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
