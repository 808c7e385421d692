//! The flame graph output: an interactive SVG drawn by `inferno` (the Rust port of Brendan
//! Gregg's flamegraph.pl) from the profile's folded stacks, with inferno's search, zoom and
//! tooltips built in.
//!
//! The SVG is self-contained: inferno's `<!DOCTYPE>` line, whose external DTD a validating
//! XML reader may download, is left out (SVG needs no DTD); the only URLs left are XML
//! namespace names and mentions in comments, which nothing loads.

use goroscope_model::profile::{Profile, ValueType};
use inferno::flamegraph::{self, Options};

use super::folded::folded_stacks;

/// Why a flame graph could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum FlameGraphError {
    /// `value` is not an index into the profile's sample types.
    #[error("the profile has no value #{value}: it has {available} value types")]
    NoSuchValue {
        /// The index asked for.
        value: usize,
        /// How many value types the profile has.
        available: usize,
    },
    /// No stack has a positive value of the chosen type, so there is nothing to draw.
    #[error("no samples with a positive {value_type} value: nothing to draw")]
    NoSamples {
        /// The chosen value's type, as `kind/unit`.
        value_type: String,
    },
    /// inferno failed to render the folded stacks.
    #[error("drawing the flame graph failed")]
    Render(#[source] std::io::Error),
}

/// Appends an SVG flame graph of `profile`'s `values[value]` to `out`, titled `title`
/// (escaped with [`goroscope_model::escape`]), its tooltips counting in the value's unit (`samples`, `ns`…). Stacks summing to a negative
/// value are left out (a flame graph has no negative widths). On error nothing is written.
pub fn flame_graph(
    profile: &Profile,
    value: usize,
    title: &str,
    out: &mut Vec<u8>,
) -> Result<(), FlameGraphError> {
    let value_type = profile
        .sample_types
        .get(value)
        .ok_or(FlameGraphError::NoSuchValue {
            value,
            available: profile.sample_types.len(),
        })?;
    let lines: Vec<String> = folded_stacks(profile, value)
        .into_iter()
        .filter(|&(_, total)| total > 0)
        .map(|(stack, total)| format!("{stack} {total}"))
        .collect();
    if lines.is_empty() {
        return Err(FlameGraphError::NoSamples {
            value_type: format!("{}/{}", value_type.kind, value_type.unit),
        });
    }
    let mut options = Options::default();
    // Escaped like every name goroscope prints: a raw control character is not even valid XML.
    options.title = goroscope_model::escape(title.as_bytes()).into_owned();
    options.count_name = count_name(value_type);
    // Colours from a hash of each name, so one profile always draws the same picture.
    options.hash = true;
    options.deterministic = true;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .map_err(FlameGraphError::Render)?;
    push_without_doctype(&svg, out);
    Ok(())
}

/// Appends `svg` to `out` without its `<!DOCTYPE …>` declaration, if it has one before the
/// root element.
fn push_without_doctype(svg: &[u8], out: &mut Vec<u8>) {
    let root = find(svg, b"<svg").unwrap_or(svg.len());
    let Some(start) = find(&svg[..root], b"<!DOCTYPE") else {
        out.extend_from_slice(svg);
        return;
    };
    let Some(length) = find(&svg[start..root], b">") else {
        out.extend_from_slice(svg);
        return;
    };
    out.extend_from_slice(&svg[..start]);
    out.extend_from_slice(&svg[start + length + 1..]);
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// What tooltips count: the kind for counts (`samples`, `goroutines`), else the unit, short.
fn count_name(value_type: &ValueType) -> String {
    match value_type.unit.as_str() {
        "count" | "" => value_type.kind.clone(),
        "nanoseconds" => "ns".to_string(),
        "microseconds" => "us".to_string(),
        "milliseconds" => "ms".to_string(),
        unit => unit.to_string(),
    }
}

#[cfg(test)]
#[path = "flame_tests.rs"]
mod tests;
