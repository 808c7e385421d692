//! The standard OTLP exporter variables (OpenTelemetry's "OTLP Exporter Configuration") read
//! into what the file left out of a [`Draft`].
//!
//! - An empty variable is unset, as the specification says.
//! - Where data goes is decided by one source: when the file sets `endpoint` or any of
//!   `endpoints`, the `*_ENDPOINT` variables are not read; else `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   is the base URL (OTLP/HTTP appends each signal's path) and
//!   `OTEL_EXPORTER_OTLP_{METRICS,LOGS,PROFILES}_ENDPOINT` are used as is.
//! - Likewise the client certificate and its key are one setting: read from the variables
//!   only when the file sets neither.
//! - Headers merge by name: the file's win, the variables add the others.
//! - goroscope sends every signal with one protocol, one set of headers, one timeout and so
//!   on, so a signal-specific variable (`OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`) is accepted
//!   only when every signal sent ends up with the same value; otherwise it is refused,
//!   naming the variables that disagree.
//! - A value goroscope cannot use is refused, naming the variable, its value (not for
//!   headers, which hold secrets) and what to write; it is never silently ignored.

use std::path::PathBuf;
use std::time::Duration;

use goroscope_otlp::Signal;

use super::error::echo;
use super::error::Problem;
use super::otlp::{header, Draft, Origin, Set};
use super::otlp_yaml::{compression_named, unknown_protocol};
use super::values::show;
use super::Environment;

const PREFIX: &str = "OTEL_EXPORTER_OTLP_";
/// The metrics export interval, in milliseconds (not an exporter variable).
const METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
/// OpenTelemetry's general switch that turns telemetry off.
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

/// True when the environment alone turns export on: `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set (and not empty).
pub(super) fn asks_for_export(env: Environment) -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .into_iter()
    .any(|name| env(name).is_some_and(|value| !value.is_empty()))
}

/// Whether `OTEL_SDK_DISABLED` is `true` (any case): OpenTelemetry's switch that turns an
/// SDK's telemetry off. Unset, empty or `false` is off; any other value is refused, as the
/// specification's "log a warning" would leave an operator who wrote `1` exporting.
pub(super) fn sdk_disabled(env: Environment) -> Result<bool, Problem> {
    let Some(set) = var(env, SDK_DISABLED)? else {
        return Ok(false);
    };
    boolean(&set.value).map_err(|message| set.from.problem(message))
}

/// `true` or `false`, in any case.
fn boolean(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "{} is not a boolean; set true or false",
            echo(value)
        )),
    }
}

/// Fills what `draft` (the file) leaves out from `env`.
pub(super) fn fill(draft: &mut Draft, env: Environment) -> Result<(), Problem> {
    let on = draft.signals_on();
    let sent: Vec<Signal> = Signal::ALL
        .into_iter()
        .filter(|s| on[*s as usize])
        .collect();
    if draft.endpoint.is_none() && draft.endpoints.iter().all(Option::is_none) {
        draft.endpoint = var(env, "OTEL_EXPORTER_OTLP_ENDPOINT")?;
        for &signal in &sent {
            let name = signal_variable(signal, "ENDPOINT");
            draft.endpoints[signal as usize] = var(env, &name)?;
        }
    }
    let setting = |suffix: &str, secret: bool| folded(env, suffix, &sent, secret);
    if draft.protocol.is_none() {
        draft.protocol = parsed(setting("PROTOCOL", false)?, |value| {
            goroscope_otlp::Protocol::parse(value).ok_or_else(|| unknown_protocol(value))
        })?;
    }
    if let Some(set) = setting("HEADERS", true)? {
        for (name, value) in headers(&set.from.name(), &set.value)? {
            if !draft.headers.iter().any(|(seen, _)| *seen == name) {
                draft.headers.push((name, value));
            }
        }
    }
    if draft.compression.is_none() {
        draft.compression = parsed(setting("COMPRESSION", false)?, |value| {
            compression_named(value)
                .ok_or_else(|| format!("{} is not a compression; set gzip or none", echo(value)))
        })?;
    }
    if draft.timeout.is_none() {
        let timeout = parsed(setting("TIMEOUT", false)?, |value| {
            milliseconds(value, Duration::from_millis(100), Duration::from_secs(300))
        })?;
        draft.timeout = timeout;
    }
    if draft.interval.is_none() {
        draft.interval = parsed(var(env, METRIC_EXPORT_INTERVAL)?, |value| {
            milliseconds(value, Duration::from_millis(100), Duration::from_secs(3600))
        })?;
    }
    if draft.ca_file.is_none() {
        draft.ca_file = parsed(setting("CERTIFICATE", false)?, path)?;
    }
    if draft.cert_file.is_none() && draft.key_file.is_none() {
        draft.cert_file = parsed(setting("CLIENT_CERTIFICATE", false)?, path)?;
        draft.key_file = parsed(setting("CLIENT_KEY", false)?, path)?;
    }
    if draft.insecure.is_none() {
        draft.insecure = parsed(setting("INSECURE", false)?, boolean)?;
    }
    Ok(())
}

/// `OTEL_EXPORTER_OTLP_{SIGNAL}_{suffix}`.
fn signal_variable(signal: Signal, suffix: &str) -> String {
    format!("{PREFIX}{}_{suffix}", signal.name().to_ascii_uppercase())
}

/// The variable `name` of `env`: `None` when unset or empty; refused when not UTF-8.
fn var(env: Environment, name: &str) -> Result<Option<Set<String>>, Problem> {
    let Some(value) = env(name) else {
        return Ok(None);
    };
    let Ok(value) = value.into_string() else {
        return Err(Problem::environment(
            name,
            "is not UTF-8 text; set it to a value goroscope can read, or unset it",
        ));
    };
    let value = value.trim();
    Ok((!value.is_empty()).then(|| Set {
        value: value.to_owned(),
        from: Origin::Env(name.to_owned()),
    }))
}

/// The setting `OTEL_EXPORTER_OTLP_{suffix}` as every signal in `sent` sees it: its
/// signal-specific variable, else the general one. Refused when the signals would see
/// different values; `secret` values are not repeated in that message.
fn folded(
    env: Environment,
    suffix: &str,
    sent: &[Signal],
    secret: bool,
) -> Result<Option<Set<String>>, Problem> {
    let general = var(env, &format!("{PREFIX}{suffix}"))?;
    let mut first: Option<(Signal, Option<Set<String>>)> = None;
    for &signal in sent {
        let seen = match var(env, &signal_variable(signal, suffix))? {
            Some(specific) => Some(specific),
            None => general.clone(),
        };
        let Some((first_signal, first_seen)) = &first else {
            first = Some((signal, seen));
            continue;
        };
        let value = |set: &Option<Set<String>>| set.as_ref().map(|s| s.value.clone());
        if value(first_seen) == value(&seen) {
            continue;
        }
        let describe = |signal: Signal, set: &Option<Set<String>>| match set {
            None => format!("{} have none", signal.name()),
            Some(Set { value, from }) => {
                let name = match from {
                    Origin::Env(name) => name.as_str(),
                    Origin::File(_) => "",
                };
                if secret {
                    format!("{} use {name}", signal.name())
                } else {
                    format!("{} use {name}={}", signal.name(), echo(value))
                }
            }
        };
        let blamed = signal_variable(signal, suffix);
        let blamed = if var(env, &blamed)?.is_some() {
            blamed
        } else {
            signal_variable(*first_signal, suffix)
        };
        return Err(Problem::environment(
            &blamed,
            format!(
                "{} but {}: goroscope sends every signal with the same setting; give the \
                 signals the same value, or set only {PREFIX}{suffix}",
                describe(*first_signal, first_seen),
                describe(signal, &seen)
            ),
        ));
    }
    Ok(first.and_then(|(_, seen)| seen))
}

/// `set`'s text read by `read`; its message names the variable.
fn parsed<T>(
    set: Option<Set<String>>,
    read: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<Set<T>>, Problem> {
    let Some(Set { value, from }) = set else {
        return Ok(None);
    };
    let parsed = read(&value).map_err(|message| from.problem(message))?;
    Ok(Some(Set {
        value: parsed,
        from,
    }))
}

/// A whole number of milliseconds from `min` to `max`, as the OTEL variables write durations.
fn milliseconds(value: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let range = || {
        format!(
            "use whole milliseconds from {} to {} ({} to {})",
            min.as_millis(),
            max.as_millis(),
            show(min),
            show(max)
        )
    };
    let Ok(ms) = value.parse::<u64>() else {
        return Err(format!(
            "{} is not a whole number of milliseconds; {}",
            echo(value),
            range()
        ));
    };
    let duration = Duration::from_millis(ms);
    if duration < min || duration > max {
        return Err(format!("{} is out of range; {}", echo(value), range()));
    }
    Ok(duration)
}

fn path(value: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(value))
}

/// `name=value` pairs separated by commas (W3C Baggage without properties), values
/// percent-decoded, each checked as an HTTP header. Values are never repeated in messages.
fn headers(variable: &str, text: &str) -> Result<Vec<(String, String)>, Problem> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let problem = |message: String| Problem::environment(variable, message);
    for (i, entry) in text.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((name, value)) = entry.split_once('=') else {
            return Err(problem(format!(
                "entry {} has no `=`; write name=value pairs separated by commas, like \
                 x-api-key=SECRET,x-tenant=a (values percent-encoded)",
                i + 1
            )));
        };
        let name = name.trim();
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| {
                problem(format!(
                    "the value of {} is not UTF-8 once percent-decoded; check its %XX escapes",
                    echo(name)
                ))
            })?;
        let (name, value) = header(name, &value).map_err(problem)?;
        if headers.iter().any(|(seen, _)| *seen == name) {
            return Err(problem(format!(
                "{} is given twice (header names ignore case); keep one",
                echo(&name)
            )));
        }
        headers.push((name, value));
    }
    Ok(headers)
}
