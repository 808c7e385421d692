//! `exporters.otlp`: the YAML section and the standard `OTEL_EXPORTER_OTLP_*` variables merged
//! into one [`OtlpExport`], checked as a whole.
//!
//! The YAML is read by `otlp_yaml` and the environment by `otlp_env` into one [`Draft`]:
//! every value remembers where it came from (a field of the file, or a variable), so a problem
//! found only once both are merged (a plaintext endpoint across the network, a client
//! certificate without its key, an export interval below the collection interval) still names
//! the field or the variable to change. The file wins; the environment fills what it leaves
//! out. Export is on when the file has an `exporters.otlp` mapping without `enabled: false`,
//! or, when it has none, when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set. `OTEL_SDK_DISABLED=true`, OpenTelemetry's
//! switch that turns telemetry off without touching the configuration, turns it off again,
//! unless the file says `enabled: true` itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use goroscope_otlp::config::{
    DEFAULT_BATCH_BYTES, DEFAULT_INTERVAL, DEFAULT_MAX_ELAPSED, DEFAULT_QUEUE_BYTES,
    DEFAULT_TIMEOUT,
};
use goroscope_otlp::{Compression, Endpoint, ExporterConfig, Protocol, Signal, Tls};

pub(super) use super::otlp_yaml::exporters;

use super::error::{echo, FieldPath, Problem};
use super::otlp_env;
use super::values::{show, show_bytes};
use super::{Environment, Exporters, OtlpExport, ProfileExport};

/// Default time between two continuous profiles of one target.
pub(super) const DEFAULT_PROFILE_EVERY: Duration = Duration::from_secs(60);
/// Default length of one continuous profile.
pub(super) const DEFAULT_PROFILE_DURATION: Duration = Duration::from_secs(10);
/// Which signals are sent when `signals` does not say, in [`Signal::ALL`] order.
pub(super) const DEFAULT_SIGNALS: [bool; 3] = [true, true, false];

/// Where a value came from, so a problem found after merging names what to change.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Origin {
    /// This field of the config file.
    File(FieldPath),
    /// This environment variable.
    Env(String),
}

impl Origin {
    /// `message` about the value from here.
    pub(super) fn problem(&self, message: impl Into<String>) -> Problem {
        match self {
            Origin::File(at) => Problem::value(at, message),
            Origin::Env(variable) => Problem::environment(variable, message),
        }
    }

    /// How this origin is called in a message: `tls.cert_file` or `OTEL_..._CLIENT_KEY`.
    pub(super) fn name(&self) -> String {
        match self {
            Origin::File(at) => at.to_string(),
            Origin::Env(variable) => variable.clone(),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Set<T> {
    pub(super) value: T,
    pub(super) from: Origin,
}

/// `exporters.otlp` as the file and the environment give it, before defaults and the checks
/// that span fields. `None` is "not given".
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Draft {
    /// `enabled` (file only).
    pub(super) enabled: Option<bool>,
    /// The base URL of every signal without its own endpoint.
    pub(super) endpoint: Option<Set<String>>,
    /// Signal-specific URLs, used as is, in [`Signal::ALL`] order.
    pub(super) endpoints: [Option<Set<String>>; 3],
    pub(super) protocol: Option<Set<Protocol>>,
    /// Checked, names in lowercase, each name once.
    pub(super) headers: Vec<(String, String)>,
    pub(super) compression: Option<Set<Compression>>,
    pub(super) timeout: Option<Set<Duration>>,
    pub(super) interval: Option<Set<Duration>>,
    pub(super) ca_file: Option<Set<PathBuf>>,
    pub(super) cert_file: Option<Set<PathBuf>>,
    pub(super) key_file: Option<Set<PathBuf>>,
    pub(super) insecure: Option<Set<bool>>,
    pub(super) queue_bytes: Option<Set<u64>>,
    pub(super) batch_bytes: Option<Set<u64>>,
    pub(super) max_elapsed: Option<Set<Duration>>,
    /// Which signals are sent (file only), in [`Signal::ALL`] order.
    pub(super) signals: [Option<bool>; 3],
    pub(super) profile_every: Option<Set<Duration>>,
    pub(super) profile_duration: Option<Set<Duration>>,
}

impl Draft {
    /// Whether each signal is sent, in [`Signal::ALL`] order.
    pub(super) fn signals_on(&self) -> [bool; 3] {
        let mut on = DEFAULT_SIGNALS;
        for (slot, given) in on.iter_mut().zip(self.signals) {
            *slot = given.unwrap_or(*slot);
        }
        on
    }
}

/// What the file says about `exporters.otlp`.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Section {
    /// No section (or an empty `otlp:`): the environment decides.
    Absent,
    /// A section: export is on unless it says `enabled: false`.
    Present(Box<Draft>),
}

/// The OTLP export `section` and `env` ask for; `agent_interval` is the collection interval.
/// A section turned off (`enabled: false`, or `OTEL_SDK_DISABLED=true` without
/// `enabled: true`) is still checked (without the environment), so a mistake shows before
/// it is turned on.
pub(super) fn settle(
    section: Section,
    env: Environment,
    agent_interval: Duration,
) -> Result<Exporters, Problem> {
    let off = |sdk_disabled| Exporters {
        otlp: None,
        sdk_disabled,
    };
    let on = |export| Exporters {
        otlp: Some(export),
        sdk_disabled: false,
    };
    match section {
        Section::Absent => {
            if !otlp_env::asks_for_export(env) {
                return Ok(off(false));
            }
            if otlp_env::sdk_disabled(env)? {
                return Ok(off(true));
            }
            let mut draft = Draft::default();
            otlp_env::fill(&mut draft, env)?;
            build(draft, agent_interval).map(on)
        }
        Section::Present(draft) => {
            let mut draft = *draft;
            let sdk_disabled = draft.enabled.is_none() && otlp_env::sdk_disabled(env)?;
            if draft.enabled == Some(false) || sdk_disabled {
                build(draft, agent_interval)?;
                return Ok(off(sdk_disabled));
            }
            otlp_env::fill(&mut draft, env)?;
            build(draft, agent_interval).map(on)
        }
    }
}

/// The path of field `name` of `exporters.otlp`.
pub(super) fn otlp_field(name: &str) -> FieldPath {
    FieldPath::root().key("exporters").key("otlp").key(name)
}

/// The settled export: defaults applied, every check that spans fields made.
fn build(draft: Draft, agent_interval: Duration) -> Result<OtlpExport, Problem> {
    let on = draft.signals_on();
    if !on.contains(&true) {
        return Err(Problem::value(
            &otlp_field("signals"),
            "every signal is off; turn one on, or turn OTLP export off with \
             exporters.otlp.enabled: false",
        ));
    }
    let protocol = draft
        .protocol
        .as_ref()
        .map_or(Protocol::HttpProtobuf, |p| p.value);
    let insecure = draft.insecure.as_ref().is_some_and(|i| i.value);
    let mut endpoints: [Option<Endpoint>; 3] = [None, None, None];
    for signal in Signal::ALL.into_iter().filter(|s| on[*s as usize]) {
        endpoints[signal as usize] = Some(endpoint(&draft, protocol, signal, insecure)?);
    }
    check_client_pair(&draft.cert_file, &draft.key_file)?;
    let tls_files = [&draft.ca_file, &draft.cert_file, &draft.key_file];
    for file in tls_files.into_iter().flatten() {
        readable(&file.value).map_err(|message| file.from.problem(message))?;
    }
    let interval = match &draft.interval {
        Some(set) if set.value < agent_interval => {
            return Err(set.from.problem(format!(
                "{} is shorter than the agent's collection interval ({}): exports in between \
                 would repeat the same collection; use at least {}",
                show(set.value),
                show(agent_interval),
                show(agent_interval)
            )));
        }
        Some(set) => set.value,
        None => DEFAULT_INTERVAL.max(agent_interval),
    };
    let (queue_bytes, batch_bytes) = queue_and_batch(&draft)?;
    let profiles = profiles(&draft)?;
    let exporter = ExporterConfig {
        protocol,
        endpoints,
        headers: draft.headers,
        compression: draft.compression.map_or(Compression::None, |c| c.value),
        timeout: draft.timeout.map_or(DEFAULT_TIMEOUT, |t| t.value),
        interval,
        tls: Tls {
            ca_file: draft.ca_file.map(|f| f.value),
            cert_file: draft.cert_file.map(|f| f.value),
            key_file: draft.key_file.map(|f| f.value),
            insecure,
        },
        queue_bytes,
        batch_bytes,
        max_elapsed: draft.max_elapsed.map_or(DEFAULT_MAX_ELAPSED, |m| m.value),
    };
    Ok(OtlpExport {
        exporter,
        profiles: on[Signal::Profiles as usize].then_some(profiles),
    })
}

/// Where `signal` goes: its own endpoint as is, else the base endpoint (or the protocol's
/// default) with the signal's path for OTLP/HTTP. Plaintext across the network needs
/// `insecure`.
fn endpoint(
    draft: &Draft,
    protocol: Protocol,
    signal: Signal,
    insecure: bool,
) -> Result<Endpoint, Problem> {
    let (endpoint, given, from) = match (&draft.endpoints[signal as usize], &draft.endpoint) {
        (Some(own), _) => (Endpoint::parse(&own.value), own.value.as_str(), &own.from),
        (None, Some(base)) => (
            Endpoint::for_signal(&base.value, protocol, signal),
            base.value.as_str(),
            &base.from,
        ),
        // The defaults are loopback URLs that parse.
        (None, None) => (
            Endpoint::for_signal(protocol.default_endpoint(), protocol, signal),
            protocol.default_endpoint(),
            &Origin::File(otlp_field("endpoint")),
        ),
    };
    let endpoint = endpoint.map_err(|e| from.problem(e.to_string()))?;
    if !endpoint.is_tls() && !endpoint.is_loopback() && !insecure {
        return Err(from.problem(format!(
            "{} is plaintext (http://) to a host that is not loopback: {} would cross the \
             network in clear text; use https://, or accept that with tls.insecure: true \
             (OTEL_EXPORTER_OTLP_INSECURE=true)",
            echo(given),
            signal.name()
        )));
    }
    Ok(endpoint)
}

/// A client certificate needs its key, and a key its certificate.
fn check_client_pair(
    cert: &Option<Set<PathBuf>>,
    key: &Option<Set<PathBuf>>,
) -> Result<(), Problem> {
    let partner = |from: &Origin, file: &str, variable: &str| match from {
        Origin::File(_) => format!("tls.{file}"),
        Origin::Env(_) => variable.to_owned(),
    };
    match (cert, key) {
        (Some(cert), None) => Err(cert.from.problem(format!(
            "a client certificate needs its private key: set {} too, or remove {}",
            partner(&cert.from, "key_file", "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            cert.from.name()
        ))),
        (None, Some(key)) => Err(key.from.problem(format!(
            "a private key is only used with its client certificate: set {} too, or remove {}",
            partner(
                &key.from,
                "cert_file",
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
            ),
            key.from.name()
        ))),
        _ => Ok(()),
    }
}

/// Why the PEM file at `path` cannot be used, if so: it must be a regular file goroscope can
/// open (it is read when the exporter connects).
fn readable(path: &Path) -> Result<(), String> {
    let shown = echo(&path.to_string_lossy());
    let cannot = |e: std::io::Error| {
        format!("cannot read {shown}: {e}; give the path of a PEM file goroscope can read")
    };
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a regular file; give the path of a PEM file"
        ));
    }
    std::fs::File::open(path).map_err(cannot)?;
    Ok(())
}

/// The queue and batch bounds: a batch must fit in the queue.
fn queue_and_batch(draft: &Draft) -> Result<(usize, usize), Problem> {
    let queue = draft
        .queue_bytes
        .as_ref()
        .map_or(DEFAULT_QUEUE_BYTES as u64, |q| q.value);
    let batch = draft
        .batch_bytes
        .as_ref()
        .map_or(DEFAULT_BATCH_BYTES as u64, |b| b.value);
    if queue < batch {
        let (queue_shown, batch_shown) = (show_bytes(queue), show_bytes(batch));
        return Err(match (&draft.queue_bytes, &draft.batch_bytes) {
            (Some(q), _) => q.from.problem(format!(
                "{queue_shown} is below batch_size ({batch_shown}): the queue must hold at \
                 least one batch; raise queue_size or lower batch_size"
            )),
            (None, Some(b)) => b.from.problem(format!(
                "{batch_shown} is above queue_size ({queue_shown}): the queue must hold at \
                 least one batch; lower batch_size or raise queue_size"
            )),
            (None, None) => Problem::value(&otlp_field("queue_size"), "below batch_size"),
        });
    }
    let size = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX);
    Ok((size(queue), size(batch)))
}

/// How continuous profiles are taken: each one ends before the next starts.
fn profiles(draft: &Draft) -> Result<ProfileExport, Problem> {
    let every = draft
        .profile_every
        .as_ref()
        .map_or(DEFAULT_PROFILE_EVERY, |e| e.value);
    let duration = draft
        .profile_duration
        .as_ref()
        .map_or(DEFAULT_PROFILE_DURATION, |d| d.value);
    if duration >= every {
        let (every_shown, duration_shown) = (show(every), show(duration));
        return Err(match (&draft.profile_duration, &draft.profile_every) {
            (Some(d), _) => d.from.problem(format!(
                "{duration_shown} is not shorter than profiles.every ({every_shown}): a \
                 profile must end before the next starts; shorten duration or lengthen every"
            )),
            (None, Some(e)) => e.from.problem(format!(
                "{every_shown} is not longer than profiles.duration ({duration_shown}): a \
                 profile must end before the next starts; lengthen every or shorten duration"
            )),
            (None, None) => Problem::value(&otlp_field("profiles"), "duration not below every"),
        });
    }
    Ok(ProfileExport { every, duration })
}

/// The header `name: value` as sent (name in lowercase), or why it cannot be sent. The value
/// is never repeated: it is often a secret.
pub(super) fn header(name: &str, value: &str) -> Result<(String, String), String> {
    let parsed = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!(
            "{} is not a valid HTTP header name; use letters, digits and - (like x-api-key)",
            echo(name)
        )
    })?;
    let name = parsed.as_str();
    let reserved = [
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "host",
        "te",
        "user-agent",
    ];
    if reserved.contains(&name) || name.starts_with("grpc-") {
        return Err(format!(
            "{} is set by goroscope itself for the protocol; remove it",
            echo(name)
        ));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of {} is not a valid HTTP header value (the value is not repeated \
             here): use visible ASCII and spaces, no line breaks or control characters",
            echo(name)
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}
