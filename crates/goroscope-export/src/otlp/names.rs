//! What a goroscope family is called in OTLP: the OpenTelemetry semantic
//! conventions' name where one names the same thing (the [`SEMCONV`] table),
//! otherwise a dotted goroscope name derived by one rule ([`dotted_name`]).

use crate::family::{Family, MetricType};
use crate::labels::Labels;

/// The OTLP instrument a renamed family's series are exported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instrument {
    /// A cumulative, monotonic Sum.
    Counter,
    /// A cumulative, non-monotonic Sum (a count that goes up and down).
    UpDownCounter,
    /// A Gauge.
    Gauge,
}

/// One row of the renaming table: the series of a goroscope family (all of
/// them, or those with one label value) that the semantic conventions name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemconvMetric {
    /// The goroscope family, by its Prometheus name.
    pub family: &'static str,
    /// Only the series with this label value; the label is dropped from
    /// their attributes (it is what the new name says).
    pub only: Option<(&'static str, &'static str)>,
    /// The semantic-conventions metric name.
    pub name: &'static str,
    /// Its UCUM unit.
    pub unit: &'static str,
    /// Its instrument.
    pub instrument: Instrument,
    /// Labels renamed to the conventions' attribute names, `(label, attribute)`.
    pub attributes: &'static [(&'static str, &'static str)],
}

/// The families the agent produces that the OpenTelemetry semantic
/// conventions (Go runtime and process metrics, v1.3x, status Development)
/// name. The `process.*` rows are the agent's own process: export them on
/// the agent's resource.
pub const SEMCONV: &[SemconvMetric] = &[
    SemconvMetric {
        family: "goroscope_go_goroutines",
        only: None,
        name: "go.goroutine.count",
        unit: "{goroutine}",
        instrument: Instrument::UpDownCounter,
        attributes: &[],
    },
    SemconvMetric {
        family: "goroscope_go_heap_bytes",
        only: Some(("kind", "goal")),
        name: "go.memory.gc.goal",
        unit: "By",
        instrument: Instrument::UpDownCounter,
        attributes: &[],
    },
    SemconvMetric {
        family: "goroscope_go_gomaxprocs",
        only: None,
        name: "go.processor.limit",
        unit: "{thread}",
        instrument: Instrument::UpDownCounter,
        attributes: &[],
    },
    SemconvMetric {
        family: "goroscope_agent_cpu_seconds_total",
        only: None,
        name: "process.cpu.time",
        unit: "s",
        instrument: Instrument::Counter,
        attributes: &[("mode", "cpu.mode")],
    },
    SemconvMetric {
        family: "goroscope_agent_resident_memory_bytes",
        only: None,
        name: "process.memory.usage",
        unit: "By",
        instrument: Instrument::UpDownCounter,
        attributes: &[],
    },
    SemconvMetric {
        family: "goroscope_agent_uptime_seconds",
        only: None,
        name: "process.uptime",
        unit: "s",
        instrument: Instrument::Gauge,
        attributes: &[],
    },
];

/// The table row naming the series of `family` with `labels`, if any.
pub(crate) fn semconv(family: &str, labels: &Labels) -> Option<&'static SemconvMetric> {
    SEMCONV.iter().find(|row| {
        row.family == family
            && row
                .only
                .is_none_or(|(label, value)| labels.get(label) == Some(value))
    })
}

/// The OTLP name of a family no convention names: the Prometheus name
/// without a counter's `_total` and without a unit suffix (`_seconds`,
/// `_bytes`; the unit goes in the metric's unit field), every `_` turned into
/// a `.`. A counter's unit suffix becomes the conventions' word for what
/// accumulates: `.time` for seconds (as in `process.cpu.time`), `.io` for
/// bytes (as in `system.network.io`). So `goroscope_syscalls_total` is
/// `goroscope.syscalls`, `goroscope_tcp_rtt_seconds` is `goroscope.tcp.rtt`,
/// `goroscope_offcpu_seconds_total` is `goroscope.offcpu.time` and
/// `goroscope_tcp_bytes_total` is `goroscope.tcp.io`.
pub fn dotted_name(family: &Family) -> String {
    let name = family.openmetrics_name();
    let Some(unit) = family.unit() else {
        return name.replace('_', ".");
    };
    let stem = name
        .strip_suffix(unit)
        .and_then(|rest| rest.strip_suffix('_'))
        .unwrap_or(name)
        .replace('_', ".");
    match (family.metric_type(), unit) {
        (MetricType::Counter, "seconds") => stem + ".time",
        (MetricType::Counter, "bytes") => stem + ".io",
        _ => stem,
    }
}

/// The UCUM unit of a family no convention names, from its name's unit
/// suffix: `s`, `By`, or empty.
pub(crate) fn suffix_unit(family: &Family) -> &'static str {
    match family.unit() {
        Some("seconds") => "s",
        Some("bytes") => "By",
        _ => "",
    }
}

/// The instrument a family no convention names is exported as.
pub(crate) fn default_instrument(metric_type: MetricType) -> Option<Instrument> {
    match metric_type {
        MetricType::Counter => Some(Instrument::Counter),
        MetricType::Gauge => Some(Instrument::Gauge),
        MetricType::Histogram => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_drop_total_and_unit_suffixes() {
        let cases = [
            (
                Family::counter("goroscope_syscalls_total", ""),
                "goroscope.syscalls",
                "",
            ),
            (
                Family::counter("goroscope_offcpu_seconds_total", ""),
                "goroscope.offcpu.time",
                "s",
            ),
            (
                Family::counter("goroscope_tcp_bytes_total", ""),
                "goroscope.tcp.io",
                "By",
            ),
            (
                Family::gauge("goroscope_go_heap_bytes", ""),
                "goroscope.go.heap",
                "By",
            ),
            (
                Family::gauge("goroscope_go_goroutines_waiting", ""),
                "goroscope.go.goroutines.waiting",
                "",
            ),
            (
                Family::histogram("goroscope_tcp_rtt_seconds", ""),
                "goroscope.tcp.rtt",
                "s",
            ),
            (Family::gauge("nanoseconds", ""), "nanoseconds", ""),
        ];
        for (family, name, unit) in cases {
            assert_eq!(dotted_name(&family), name, "{}", family.name());
            assert_eq!(suffix_unit(&family), unit, "{}", family.name());
        }
    }

    #[test]
    fn the_table_selects_by_family_and_label() {
        let goal = Labels::new().push("kind", "goal").push("pid", "1");
        let live = Labels::new().push("kind", "live").push("pid", "1");
        let heap = semconv("goroscope_go_heap_bytes", &goal).expect("goal is named");
        assert_eq!((heap.name, heap.unit), ("go.memory.gc.goal", "By"));
        assert_eq!(semconv("goroscope_go_heap_bytes", &live), None);
        let cpu = semconv("goroscope_agent_cpu_seconds_total", &Labels::new()).expect("named");
        assert_eq!(
            (cpu.name, cpu.unit, cpu.instrument, cpu.attributes),
            (
                "process.cpu.time",
                "s",
                Instrument::Counter,
                &[("mode", "cpu.mode")][..]
            )
        );
        assert_eq!(semconv("goroscope_syscalls_total", &Labels::new()), None);
    }

    #[test]
    fn table_rows_are_unique_and_follow_the_conventions_shape() {
        for (i, row) in SEMCONV.iter().enumerate() {
            assert!(
                row.name.starts_with("go.") || row.name.starts_with("process."),
                "{}",
                row.name
            );
            assert!(!row.unit.is_empty(), "{} has a unit", row.name);
            for other in &SEMCONV[i + 1..] {
                assert_ne!(row.name, other.name);
                assert!(row.family != other.family || row.only != other.only);
            }
        }
    }
}
