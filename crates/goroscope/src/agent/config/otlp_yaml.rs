//! The `exporters` section of the file read into a [`Draft`]: every field's type and range
//! checked where it is written; what spans fields (and the environment) is checked in `otlp`.

use std::path::PathBuf;
use std::time::Duration;

use goroscope_otlp::{Compression, Endpoint, Protocol, Signal};

use super::error::{echo, FieldPath, Problem};
use super::node::{Node, Value};
use super::otlp::{header, Draft, Origin, Section, Set};
use super::values::{byte_size, duration, fields, flag, mapping, some_text, Bounds};

const TIMEOUT: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(300),
};
/// The export interval's lower bound is the agent's collection interval, checked later.
const INTERVAL: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(3600),
};
const MAX_ELAPSED: Bounds = Bounds {
    min: Duration::ZERO,
    max: Duration::from_secs(3600),
};
const PROFILE_EVERY: Bounds = Bounds {
    min: Duration::from_secs(1),
    max: Duration::from_secs(24 * 3600),
};
const PROFILE_DURATION: Bounds = Bounds {
    min: Duration::from_secs(1),
    max: Duration::from_secs(300),
};
/// The smallest queue and batch: below it every request would be cut.
const MIN_BYTES: u64 = 1 << 10;
/// The largest queue (and so batch).
const MAX_QUEUE_BYTES: u64 = 256 << 20;

/// `exporters`: only `otlp` so far.
pub(super) fn exporters(node: &Node, at: &FieldPath) -> Result<Section, Problem> {
    let mut section = Section::Absent;
    let example = "{ otlp: { endpoint: \"http://127.0.0.1:4318\" } }";
    for (_, value, at) in fields(node, at, &["otlp"], example)? {
        if !matches!(value.value, Value::Null) {
            section = Section::Present(Box::new(otlp(value, &at)?));
        }
    }
    Ok(section)
}

fn otlp(node: &Node, at: &FieldPath) -> Result<Draft, Problem> {
    let names = [
        "enabled",
        "endpoint",
        "protocol",
        "headers",
        "compression",
        "timeout",
        "interval",
        "tls",
        "queue_size",
        "batch_size",
        "max_elapsed",
        "signals",
        "endpoints",
        "profiles",
    ];
    let mut d = Draft::default();
    let example = "{ endpoint: \"http://127.0.0.1:4318\", protocol: http/protobuf }";
    for (name, value, at) in fields(node, at, &names, example)? {
        match name {
            "enabled" => {
                let mut enabled = true;
                if !matches!(value.value, Value::Null) {
                    flag(value, &at, &mut enabled)?;
                    d.enabled = Some(enabled);
                }
            }
            "endpoint" => d.endpoint = url(value, &at)?,
            "protocol" => d.protocol = protocol(value, &at)?,
            "headers" => d.headers = headers(value, &at)?,
            "compression" => d.compression = compression(value, &at)?,
            "timeout" => d.timeout = span(value, &at, TIMEOUT)?,
            "interval" => d.interval = span(value, &at, INTERVAL)?,
            "tls" => tls(value, &at, &mut d)?,
            "queue_size" => d.queue_bytes = size(value, &at)?,
            "batch_size" => d.batch_bytes = size(value, &at)?,
            "max_elapsed" => d.max_elapsed = span(value, &at, MAX_ELAPSED)?,
            "signals" => signals(value, &at, &mut d.signals)?,
            "endpoints" => endpoints(value, &at, &mut d.endpoints)?,
            "profiles" => profiles(value, &at, &mut d)?,
            _ => {}
        }
    }
    Ok(d)
}

fn set<T>(value: T, at: &FieldPath) -> Set<T> {
    Set {
        value,
        from: Origin::File(at.clone()),
    }
}

/// A URL, checked as one; the signal paths are added later.
fn url(node: &Node, at: &FieldPath) -> Result<Option<Set<String>>, Problem> {
    let Some(text) = some_text(node, at, "\"http://127.0.0.1:4318\"")? else {
        return Ok(None);
    };
    Endpoint::parse(text).map_err(|e| Problem::value(at, e.to_string()))?;
    Ok(Some(set(text.to_owned(), at)))
}

/// The message for a protocol goroscope does not speak.
pub(super) fn unknown_protocol(name: &str) -> String {
    if name == "http/json" {
        "\"http/json\" is not supported: use grpc or http/protobuf".to_owned()
    } else {
        format!("unknown protocol {}; use grpc or http/protobuf", echo(name))
    }
}

fn protocol(node: &Node, at: &FieldPath) -> Result<Option<Set<Protocol>>, Problem> {
    let Some(name) = some_text(node, at, "grpc or http/protobuf")? else {
        return Ok(None);
    };
    let protocol =
        Protocol::parse(name).ok_or_else(|| Problem::value(at, unknown_protocol(name)))?;
    Ok(Some(set(protocol, at)))
}

/// The compression called `name`, if any.
pub(super) fn compression_named(name: &str) -> Option<Compression> {
    match name {
        "gzip" => Some(Compression::Gzip),
        "none" => Some(Compression::None),
        _ => None,
    }
}

fn compression(node: &Node, at: &FieldPath) -> Result<Option<Set<Compression>>, Problem> {
    let Some(name) = some_text(node, at, "gzip or none")? else {
        return Ok(None);
    };
    let compression = compression_named(name).ok_or_else(|| {
        Problem::value(
            at,
            format!("unknown compression {}; use gzip or none", echo(name)),
        )
    })?;
    Ok(Some(set(compression, at)))
}

fn span(node: &Node, at: &FieldPath, bounds: Bounds) -> Result<Option<Set<Duration>>, Problem> {
    if matches!(node.value, Value::Null) {
        return Ok(None);
    }
    let mut value = Duration::ZERO;
    duration(node, at, bounds, &mut value)?;
    Ok(Some(set(value, at)))
}

fn size(node: &Node, at: &FieldPath) -> Result<Option<Set<u64>>, Problem> {
    Ok(byte_size(node, at, MIN_BYTES, MAX_QUEUE_BYTES)?.map(|bytes| set(bytes, at)))
}

/// `headers`: a mapping of header names to text values.
fn headers(node: &Node, at: &FieldPath) -> Result<Vec<(String, String)>, Problem> {
    let entries = mapping(node, at, "{ x-api-key: \"...\" }")?;
    let mut headers: Vec<(String, String)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Value::Str(name) = &key.value else {
            return Err(Problem::value(
                at,
                format!("a header name must be text, found {}", key.describe()),
            ));
        };
        let field = at.key(name);
        let Value::Str(text) = &value.value else {
            // A value may be a secret: say what kind it is, never what it is.
            let found = match &value.value {
                Value::Int(_) | Value::Float(_) => "a number; quote it".to_owned(),
                Value::Bool(_) => "a boolean; quote it".to_owned(),
                other => other.describe(),
            };
            return Err(Problem::value(
                &field,
                format!("expected the header's value as text, found {found}"),
            ));
        };
        let (name, text) =
            header(name, text).map_err(|message| Problem::key(&field, 0, message))?;
        if headers.iter().any(|(seen, _)| *seen == name) {
            return Err(Problem::key(
                &field,
                0,
                format!(
                    "{} is given twice (header names ignore case); keep one",
                    echo(&name)
                ),
            ));
        }
        headers.push((name, text));
    }
    Ok(headers)
}

fn tls(node: &Node, at: &FieldPath, d: &mut Draft) -> Result<(), Problem> {
    let names = ["ca_file", "cert_file", "key_file", "insecure"];
    let example = "{ ca_file: /etc/goroscope/ca.pem }";
    for (name, value, at) in fields(node, at, &names, example)? {
        let slot = match name {
            "ca_file" => &mut d.ca_file,
            "cert_file" => &mut d.cert_file,
            "key_file" => &mut d.key_file,
            _ => {
                let mut insecure = false;
                if !matches!(value.value, Value::Null) {
                    flag(value, &at, &mut insecure)?;
                    d.insecure = Some(set(insecure, &at));
                }
                continue;
            }
        };
        if let Some(path) = some_text(value, &at, "/etc/goroscope/ca.pem")? {
            if path.is_empty() {
                return Err(Problem::value(
                    &at,
                    "an empty path; give a PEM file's path, or leave the field out",
                ));
            }
            *slot = Some(set(PathBuf::from(path), &at));
        }
    }
    Ok(())
}

fn signal_fields() -> [&'static str; 3] {
    Signal::ALL.map(Signal::name)
}

fn signals(node: &Node, at: &FieldPath, on: &mut [Option<bool>; 3]) -> Result<(), Problem> {
    let example = "{ metrics: true, logs: true, profiles: false }";
    for (name, value, at) in fields(node, at, &signal_fields(), example)? {
        let Some(signal) = Signal::ALL.into_iter().find(|s| s.name() == name) else {
            continue;
        };
        if !matches!(value.value, Value::Null) {
            let mut enabled = false;
            flag(value, &at, &mut enabled)?;
            on[signal as usize] = Some(enabled);
        }
    }
    Ok(())
}

fn endpoints(
    node: &Node,
    at: &FieldPath,
    urls: &mut [Option<Set<String>>; 3],
) -> Result<(), Problem> {
    let example = "{ metrics: \"https://collector:4318/v1/metrics\" }";
    for (name, value, at) in fields(node, at, &signal_fields(), example)? {
        if let Some(signal) = Signal::ALL.into_iter().find(|s| s.name() == name) {
            urls[signal as usize] = url(value, &at)?;
        }
    }
    Ok(())
}

fn profiles(node: &Node, at: &FieldPath, d: &mut Draft) -> Result<(), Problem> {
    let example = "{ every: 1m, duration: 10s }";
    for (name, value, at) in fields(node, at, &["every", "duration"], example)? {
        match name {
            "every" => d.profile_every = span(value, &at, PROFILE_EVERY)?,
            "duration" => d.profile_duration = span(value, &at, PROFILE_DURATION)?,
            _ => {}
        }
    }
    Ok(())
}
