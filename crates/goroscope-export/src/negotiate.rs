//! Choosing the exposition format from an HTTP `Accept` header.

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    PrometheusText,
    /// OpenMetrics text 1.0.0 (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

/// Media-range specificity for the text format (RFC 9110: the most specific
/// matching range decides the quality).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    AnyType,
    AnyText,
    TextPlain,
}

impl Format {
    /// Content negotiation from an HTTP `Accept` header value (`None` when
    /// the header is absent).
    ///
    /// OpenMetrics when the client explicitly accepts
    /// `application/openmetrics-text` (version absent, `1.0.0` or `0.0.1`,
    /// the versions Prometheus asks for) with a quality at least that of the
    /// text format; otherwise the Prometheus text format, which is also the
    /// fallback for anything unparsable. The text format's quality comes from
    /// the most specific of `text/plain` (version absent, `0.0.4` or
    /// `1.0.0`), `text/*` and `*/*`. `q=0` means not acceptable; an invalid
    /// `q` counts as 0; ties prefer OpenMetrics. Wildcards alone never select
    /// OpenMetrics, so `curl` and browsers get the text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        let mut openmetrics_q = 0.0f64;
        let mut text: Option<(Specificity, f64)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media_type = parts.next().unwrap_or("").trim();
            let mut q = 1.0;
            let mut version = None;
            for parameter in parts {
                let Some((key, value)) = parameter.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                if key.trim().eq_ignore_ascii_case("q") {
                    q = parse_quality(value);
                } else if key.trim().eq_ignore_ascii_case("version") {
                    version = Some(value);
                }
            }
            let is = |expected: &str| media_type.eq_ignore_ascii_case(expected);
            let specificity = if is("application/openmetrics-text") {
                if matches!(version, None | Some("1.0.0" | "0.0.1")) {
                    openmetrics_q = openmetrics_q.max(q);
                }
                continue;
            } else if is("text/plain") && matches!(version, None | Some("0.0.4" | "1.0.0")) {
                Specificity::TextPlain
            } else if is("text/*") {
                Specificity::AnyText
            } else if is("*/*") {
                Specificity::AnyType
            } else {
                continue;
            };
            text = match text {
                Some((best, best_q)) if best > specificity => Some((best, best_q)),
                Some((best, best_q)) if best == specificity => Some((best, best_q.max(q))),
                _ => Some((specificity, q)),
            };
        }
        let text_q = text.map_or(0.0, |(_, q)| q);
        if openmetrics_q > 0.0 && openmetrics_q >= text_q {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// The `Content-Type` header value of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Parses a quality value, clamped to `0..=1`; invalid values count as 0.
fn parse_quality(text: &str) -> f64 {
    match text.parse::<f64>() {
        Ok(q) if q.is_finite() => q.clamp(0.0, 1.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus 2.x (2.5 to 2.54) default scrape `Accept` header.
    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,\
        text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// Prometheus 3.x default scrape protocols (UTF-8 names allowed).
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;\
        escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,\
        text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    /// Prometheus 3.x with underscore escaping.
    const PROMETHEUS_3_UNDERSCORES: &str = "application/openmetrics-text;version=1.0.0;\
        escaping=underscores;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,\
        text/plain;version=1.0.0;escaping=underscores;q=0.4,\
        text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    /// Prometheus 3.x with native histograms (protobuf first).
    const PROMETHEUS_3_PROTO_FIRST: &str = "application/vnd.google.protobuf;\
        proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,\
        application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,\
        text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    /// Prometheus configured with `scrape_protocols: [PrometheusText0.0.4]`.
    const PROMETHEUS_TEXT_ONLY: &str = "text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    const CURL: &str = "*/*";
    const FIREFOX: &str =
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

    #[test]
    fn prometheus_scrapers_get_openmetrics() {
        for accept in [
            PROMETHEUS_2,
            PROMETHEUS_3,
            PROMETHEUS_3_UNDERSCORES,
            PROMETHEUS_3_PROTO_FIRST,
        ] {
            assert_eq!(
                Format::negotiate(Some(accept)),
                Format::OpenMetrics,
                "{accept}"
            );
        }
    }

    #[test]
    fn others_get_the_text_format() {
        for accept in [
            PROMETHEUS_TEXT_ONLY,
            CURL,
            FIREFOX,
            "",
            "text/plain",
            "garbage;;,",
        ] {
            assert_eq!(
                Format::negotiate(Some(accept)),
                Format::PrometheusText,
                "{accept}"
            );
        }
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
    }

    #[test]
    fn quality_values_decide() {
        let cases = [
            ("application/openmetrics-text", Format::OpenMetrics),
            ("application/openmetrics-text;q=0", Format::PrometheusText),
            (
                "application/openmetrics-text;q=0.0,*/*",
                Format::PrometheusText,
            ),
            (
                "application/openmetrics-text;q=0.4,text/plain;q=0.5",
                Format::PrometheusText,
            ),
            (
                "text/plain;q=0.5, application/openmetrics-text;q=0.5",
                Format::OpenMetrics,
            ),
            (
                "text/plain;q=0.4, application/openmetrics-text;q=0.5",
                Format::OpenMetrics,
            ),
            // The most specific text range decides: text/plain is unwanted.
            (
                "text/plain;q=0,*/*;q=1,application/openmetrics-text;q=0.1",
                Format::OpenMetrics,
            ),
            (
                "text/*;q=0.3,*/*;q=1,application/openmetrics-text;q=0.5",
                Format::OpenMetrics,
            ),
            (
                "*/*;q=1,application/openmetrics-text;q=0.5",
                Format::PrometheusText,
            ),
            // Case, spaces, quotes.
            (
                " Application/OpenMetrics-Text ; Version=\"1.0.0\" ; Q=0.9 , text/plain;q=0.8",
                Format::OpenMetrics,
            ),
            // Versions this crate does not write.
            (
                "application/openmetrics-text;version=2.0.0",
                Format::PrometheusText,
            ),
            // Invalid quality values count as not acceptable.
            ("application/openmetrics-text;q=abc", Format::PrometheusText),
            ("application/openmetrics-text;q=NaN", Format::PrometheusText),
            ("application/openmetrics-text;q=7", Format::OpenMetrics),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::negotiate(Some(accept)), expected, "{accept}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::PrometheusText.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }
}
