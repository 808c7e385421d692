//! Flame graphs drawn by `inferno`, inlined in the page as SVG, one per profile, so that
//! several can share a page; the page's script (`script.js`) zooms on click, resets and
//! highlights a search.
//!
//! inferno draws them from the profile's folded stacks ([`crate::profile::folded_stacks`]),
//! like `goroscope profile --format svg`, but with `no_javascript`: inferno's own script
//! records zoom and search in the URL with `history.replaceState`, which throws in a
//! sandboxed frame, and would take over the page. Its SVG is then made fit for inlining in
//! HTML ([`inline`]): the XML declaration, DTD, comments, `xmlns` attributes, its `<style>`
//! (which would style every SVG of the page) and `<script>`, the gradient background (a
//! `url(#…)` reference) and the search and reset texts its script drove (the page has HTML
//! controls for them) are left out; ids get the graph's id as a prefix, unique on the page;
//! the `fg:x`/`fg:w` extents, in a namespace named by a URL, become `data-x`/`data-w`.
//!
//! Frames of each graph are capped: those under [`MIN_SHARE`] of the total, and beyond the
//! [`MAX_FRAMES`] widest, are pruned by inferno's `min_width`; stacks are cut at
//! [`MAX_DEPTH`] frames.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use goroscope_model::profile::Profile;
use inferno::flamegraph::{self, Options};

use super::format::{format_count, format_duration_ns};
use super::html::{empty, text};
use crate::profile::folded_stacks;

/// Most frames drawn: beyond it, the narrowest are left out.
const MAX_FRAMES: usize = 3000;
/// [`MAX_FRAMES`], for the page's tests.
#[cfg(test)]
pub(crate) const MAX_FRAMES_FOR_TESTS: usize = MAX_FRAMES;
/// Frames narrower than this share of the total are left out (under a pixel wide).
const MIN_SHARE: f64 = 0.0005;
/// Deepest frame drawn.
const MAX_DEPTH: usize = 256;
/// Width of the graph in SVG units (the page's script reads it from the `viewBox`).
const IMAGE_WIDTH: usize = 1000;

/// The stacks to draw: each folded stack with a positive value, cut at [`MAX_DEPTH`] frames
/// (stacks that become the same are summed).
fn stacks(profile: &Profile, value: usize) -> BTreeMap<String, i64> {
    let mut stacks: BTreeMap<String, i64> = BTreeMap::new();
    for (stack, total) in folded_stacks(profile, value) {
        if total <= 0 {
            continue;
        }
        let stack = match stack.match_indices(';').nth(MAX_DEPTH - 1) {
            Some((at, _)) => stack[..at].to_string(),
            None => stack,
        };
        let sum = stacks.entry(stack).or_insert(0);
        *sum = sum.saturating_add(total);
    }
    stacks
}

/// The value of every frame of the merged `stacks` (the root, `all`, included), in no order.
fn frame_values(stacks: &BTreeMap<String, i64>) -> Vec<i64> {
    // A prefix of the stack (its frames up to one) and the sum of the stacks under it. The
    // stacks are sorted, so the frames of a prefix are consecutive: a frame ends where the
    // next stack differs from its prefix.
    let mut values = Vec::new();
    let mut open: Vec<(&str, i64)> = Vec::new();
    let mut all: i64 = 0;
    for (stack, &total) in stacks {
        all = all.saturating_add(total);
        let frames: Vec<&str> = stack.split(';').collect();
        let common = open
            .iter()
            .zip(&frames)
            .take_while(|((name, _), frame)| name == *frame)
            .count();
        values.extend(open.drain(common..).map(|(_, value)| value));
        for frame in &frames[common..] {
            open.push((frame, 0));
        }
        for (_, value) in &mut open {
            *value = value.saturating_add(total);
        }
    }
    values.extend(open.into_iter().map(|(_, value)| value));
    values.push(all);
    values
}

/// The narrowest frame value drawn: at least [`MIN_SHARE`] of `total`, and such that no more
/// than [`MAX_FRAMES`] frames are as wide.
fn threshold(mut values: Vec<i64>, total: i64) -> i64 {
    let mut threshold = ((total as f64 * MIN_SHARE).ceil() as i64).max(1);
    values.sort_unstable_by(|a, b| b.cmp(a));
    if let Some(&narrowest) = values.get(MAX_FRAMES - 1) {
        // Ties with the last one kept would pass the cap: leave them all out.
        let tied = values.get(MAX_FRAMES) == Some(&narrowest);
        threshold = threshold.max(if tied { narrowest + 1 } else { narrowest });
    }
    threshold
}

/// How the values read: nanoseconds as durations, anything else as counts of `kind`.
struct ValueFormat {
    nanoseconds: bool,
    kind: String,
}

impl ValueFormat {
    fn show(&self, value: i64) -> String {
        if self.nanoseconds {
            format_duration_ns(value.unsigned_abs())
        } else {
            format!("{} {}", format_count(value.unsigned_abs()), self.kind)
        }
    }
}

/// The `<div class="flamegraph" id="{id}">` of `profile`'s `values[value]`, or, when there is
/// no profile or nothing to draw, the div with a `<p class="empty">` saying why (`missing`
/// when there is no profile).
pub(crate) fn flame_graph_html(
    id: &str,
    profile: Option<&Profile>,
    value: usize,
    missing: &str,
    out: &mut String,
) {
    let _ = write!(out, "<div class=\"flamegraph\" id=\"{}\">", text(id));
    let Some(profile) = profile else {
        empty(out, missing);
        out.push_str("</div>");
        return;
    };
    let stacks = stacks(profile, value);
    let total = stacks.values().fold(0i64, |sum, &v| sum.saturating_add(v));
    if total <= 0 {
        empty(out, "The profile holds no samples: nothing to draw.");
        out.push_str("</div>");
        return;
    }
    let sample_type = profile.sample_types.get(value);
    let format = ValueFormat {
        nanoseconds: sample_type.is_some_and(|t| t.unit == "nanoseconds"),
        kind: sample_type.map_or_else(String::new, |t| t.kind.clone()),
    };
    let threshold = threshold(frame_values(&stacks), total);

    let mut options = Options::default();
    options.no_javascript = true;
    // Colours from a hash of each name: one function, one colour, the same on every run.
    options.hash = true;
    options.deterministic = true;
    // About the width of the page's column, so the labels are drawn near their size.
    options.image_width = Some(IMAGE_WIDTH);
    options.title = format!("{} in all", format.show(total));
    if format.nanoseconds {
        // inferno rounds each frame's value in the unit shown, and its share from that: the
        // coarsest unit in which the narrowest frame drawn still counts at least 10.
        let (factor, unit) = [(1e-6, "ms"), (1e-3, "µs")]
            .into_iter()
            .find(|&(factor, _)| threshold as f64 * factor >= 10.0)
            .unwrap_or((1.0, "ns"));
        options.factor = factor;
        options.count_name = unit.to_string();
    } else {
        options.count_name = format.kind.clone();
    }
    // inferno leaves out frames narrower than `min_width` % of the total: half a unit under
    // the threshold, so that rounding keeps every frame at it.
    options.min_width = (threshold as f64 - 0.5).max(0.0) * 100.0 / total as f64;
    let lines: Vec<String> = stacks
        .iter()
        .map(|(stack, total)| format!("{stack} {total}"))
        .collect();
    let mut svg = Vec::new();
    let drawn = flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .map_err(|error| error.to_string())
        .and_then(|()| String::from_utf8(svg).map_err(|error| error.to_string()));
    let svg = match drawn {
        Ok(svg) => svg,
        Err(error) => {
            empty(out, &format!("Drawing the flame graph failed: {error}"));
            out.push_str("</div>");
            return;
        }
    };
    out.push_str(
        "<div class=\"fg-controls\"><input type=\"search\" class=\"fg-search\" placeholder=\"Search functions\" aria-label=\"Search functions\">\
         <button type=\"button\" class=\"fg-reset\">Reset zoom</button><span class=\"fg-match\"></span></div>",
    );
    inline(&svg, id, out);
    let _ = write!(
        out,
        "<p class=\"fg-note\">Click a frame to zoom, search to highlight; frames under {:.2} % of the total are left out.</p></div>",
        threshold as f64 * 100.0 / total as f64,
    );
}

/// Elements of inferno's SVG left out with all they hold, by the start of their start tag.
const DROPPED_ELEMENTS: [(&str, &str); 6] = [
    ("<defs", "</defs>"),
    ("<style", "</style>"),
    ("<script", "</script>"),
    ("<text id=\"unzoom\"", "</text>"),
    ("<text id=\"search\"", "</text>"),
    ("<text id=\"matched\"", "</text>"),
];

/// Appends inferno's `svg` to `out` fit for inlining in the HTML page as the graph `id`
/// (see the module doc). inferno escapes every text and attribute value (`<`, `>`, `&` and
/// quotes), so a `>` only ever closes a tag.
fn inline(svg: &str, id: &str, out: &mut String) {
    let prefix = text(id);
    // Everything before the root element goes: the XML declaration and the DTD.
    let mut rest = svg.find("<svg").map_or("", |at| &svg[at..]);
    let mut root = true;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let dropped_until = if rest.starts_with("<!--") {
            Some("-->")
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            Some(">")
        } else {
            DROPPED_ELEMENTS
                .iter()
                .find(|(start, _)| rest.starts_with(start))
                .map(|&(_, end)| end)
        };
        if let Some(end) = dropped_until {
            rest = rest.find(end).map_or("", |at| &rest[at + end.len()..]);
            continue;
        }
        let Some(gt) = rest.find('>') else { break };
        let tag = &rest[..=gt];
        rest = &rest[gt + 1..];
        write_tag(tag, &prefix, root, out);
        root = false;
    }
}

/// Appends the tag `tag` (`<name attributes>`, `<name …/>` or `</name>`) of inferno's SVG
/// with its attributes made fit for the page; `root` for the outermost `<svg>`.
fn write_tag(tag: &str, prefix: &str, root: bool, page: &mut String) {
    if tag.starts_with("</") {
        page.push_str(tag);
        return;
    }
    let mut out = String::with_capacity(tag.len());
    let (inner, close) = match tag.strip_suffix("/>") {
        Some(inner) => (&inner[1..], "/>"),
        None => (&tag[1..tag.len() - 1], ">"),
    };
    let (name, mut attributes) = inner.split_once(' ').unwrap_or((inner, ""));
    let _ = write!(out, "<{name}");
    if root {
        out.push_str(" class=\"fg\" role=\"img\"");
    }
    // `key="value"` pairs: values hold no `"` (inferno escapes them).
    while let Some((key, after)) = attributes.split_once("=\"") {
        let Some((value, after)) = after.split_once('"') else {
            break;
        };
        attributes = after;
        let key = key.trim();
        // A background painted with a `url(#…)` gradient, or anything naming a URL.
        if value.contains("url(") || value.contains("://") {
            if name == "rect" {
                return;
            }
            continue;
        }
        match key {
            "id" => {
                let _ = write!(out, " id=\"{prefix}-{value}\"");
            }
            "fg:x" => {
                let _ = write!(out, " data-x=\"{value}\"");
            }
            "fg:w" => {
                let _ = write!(out, " data-w=\"{value}\"");
            }
            "total_samples" => {
                let _ = write!(out, " data-total=\"{value}\"");
            }
            "onload" | "version" => {}
            "width" | "height" if root => {}
            _ if key.starts_with("xmlns") || key.contains(':') => {}
            _ => {
                let _ = write!(out, " {key}=\"{value}\"");
            }
        }
    }
    out.push_str(close);
    page.push_str(&out);
}

#[cfg(test)]
mod tests {
    use goroscope_model::profile::{Line, Location, Profile, ProfileKind, Sample};

    use super::*;

    fn profile(stacks: &[(&[&str], i64)]) -> Profile {
        let mut profile = Profile::new(ProfileKind::Cpu);
        let mut names: Vec<String> = Vec::new();
        for (stack, value) in stacks {
            let mut locations = Vec::new();
            for name in stack.iter() {
                let index = match names.iter().position(|n| n == name) {
                    Some(index) => index,
                    None => {
                        names.push(name.to_string());
                        profile.locations.push(Location {
                            address: 0x1000 + names.len() as u64,
                            mapping: None,
                            lines: vec![Line {
                                function: name.to_string(),
                                file: "x.go".to_string(),
                                line: 1,
                                start_line: 1,
                            }],
                        });
                        names.len() - 1
                    }
                };
                locations.push(index);
            }
            profile.samples.push(Sample {
                locations,
                values: vec![1, *value],
                labels: vec![],
            });
        }
        profile
    }

    fn render(id: &str, profile: &Profile) -> String {
        let mut out = String::new();
        flame_graph_html(id, Some(profile), 1, "none", &mut out);
        out
    }

    fn sample() -> Profile {
        // Leaf first, as profiles store them.
        profile(&[
            (&["main.parse", "main.handle", "main.main"], 30),
            (&["main.write", "main.handle", "main.main"], 10),
            (&["main.main"], 60),
        ])
    }

    #[test]
    fn frames_are_drawn_by_inferno_with_their_extent() {
        let out = render("cpu-flamegraph", &sample());
        assert!(
            out.starts_with(
                "<div class=\"flamegraph\" id=\"cpu-flamegraph\"><div class=\"fg-controls\">"
            ),
            "{out}"
        );
        assert!(
            out.contains("<svg class=\"fg\" role=\"img\" viewBox=\"0 0 1000 134\">"),
            "{out}"
        );
        assert!(
            out.contains(
                "<svg id=\"cpu-flamegraph-frames\" x=\"10\" width=\"980\" data-total=\"100\">"
            ),
            "{out}"
        );
        // inferno's frame: tooltip, box in % with its extent in value units, label.
        assert!(
            out.contains("<g><title>main.handle (40 ns, 40.00%)</title><rect x=\"60.0000%\" y=\"53\" width=\"40.0000%\" height=\"15\" fill=\"rgb("),
            "{out}"
        );
        assert!(
            out.contains("data-x=\"60\" data-w=\"40\"/><text x=\"60.3000%\" y=\"63.50\">main.handle</text></g>"),
            "{out}"
        );
        assert!(out.contains("<title>all (100 ns, 100%)</title>"), "{out}");
        assert!(out.contains("data-x=\"0\" data-w=\"100\"/>"), "{out}");
        assert!(out.contains("data-x=\"90\" data-w=\"10\"/>"), "{out}");
        assert_eq!(out.matches("<g>").count(), 5, "{out}");
        assert_eq!(out.matches("</g>").count(), 5, "{out}");
        assert!(out.ends_with("</svg></svg><p class=\"fg-note\">Click a frame to zoom, search to highlight; frames under 1.00 % of the total are left out.</p></div>"), "{out}");
    }

    #[test]
    fn what_a_page_cannot_hold_is_left_out() {
        let out = render("cpu-flamegraph", &sample());
        for unwanted in [
            "<?xml",
            "<!",
            "<script",
            "<style",
            "<defs",
            "xmlns",
            "fg:",
            "url(",
            "://",
            "onload",
            "version=",
            "id=\"title\"",
            "id=\"frames\"",
            "Reset Zoom",
            ">Search<",
            "total_samples",
            "width=\"1000\"",
        ] {
            assert!(!out.contains(unwanted), "{unwanted} in {out}");
        }
    }

    #[test]
    fn ids_are_unique_on_a_page_with_two_graphs() {
        let mut page = render("cpu-flamegraph", &sample());
        page.push_str(&render("wall-flamegraph", &sample()));
        let ids: Vec<&str> = page
            .match_indices(" id=\"")
            .filter_map(|(at, _)| page[at + 5..].split('"').next())
            .collect();
        assert!(ids.len() >= 6, "{ids:?}");
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert!(ids.contains(&"wall-flamegraph-frames"), "{ids:?}");
        assert!(ids.contains(&"cpu-flamegraph-details"), "{ids:?}");
    }

    #[test]
    fn the_same_profile_draws_the_same_bytes_and_a_name_keeps_its_colour() {
        let out = render("cpu-flamegraph", &sample());
        assert_eq!(out, render("cpu-flamegraph", &sample()));
        let fill = |out: &str, name: &str| -> String {
            let at = out.find(&format!("<title>{name} (")).unwrap_or(0);
            out[at..]
                .split("fill=\"")
                .nth(1)
                .and_then(|f| f.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let other = render(
            "cpu-flamegraph",
            &profile(&[(&["main.parse", "main.other"], 5)]),
        );
        assert!(fill(&out, "main.parse").starts_with("rgb("), "{out}");
        assert_eq!(fill(&out, "main.parse"), fill(&other, "main.parse"));
    }

    #[test]
    fn names_are_escaped() {
        let out = render(
            "cpu-flamegraph",
            &profile(&[(&["<b>&\"'\u{1b}", "main.main"], 10)]),
        );
        assert!(!out.contains("<b>"), "{out}");
        assert!(
            out.contains("<title>&lt;b&gt;&amp;&quot;&apos;\\e (10 ns, 100.00%)</title>"),
            "{out}"
        );
    }

    #[test]
    fn frames_are_capped_in_number_and_depth() {
        // 1 500 three-frame stacks of distinct names: 4 500 frames, each over the minimum share.
        let names: Vec<[String; 3]> = (0..1500)
            .map(|i| [format!("leaf{i}"), format!("mid{i}"), format!("top{i}")])
            .collect();
        let stacks: Vec<([&str; 3], i64)> = names
            .iter()
            .enumerate()
            .map(|(i, [a, b, c])| ([a.as_str(), b.as_str(), c.as_str()], 1000 + i as i64))
            .collect();
        let stacks: Vec<(&[&str], i64)> = stacks.iter().map(|(s, v)| (&s[..], *v)).collect();
        let out = render("cpu-flamegraph", &profile(&stacks));
        let frames = out.matches(" data-w=\"").count();
        assert!(frames <= MAX_FRAMES, "{frames}");
        assert!(frames >= MAX_FRAMES - 3, "{frames}");

        // Equal widths at the cap: all of them left out rather than the cap passed.
        let stacks: Vec<(&[&str], i64)> = stacks.iter().take(1100).map(|(s, _)| (*s, 1)).collect();
        let out = render("cpu-flamegraph", &profile(&stacks));
        assert_eq!(out.matches("<g>").count(), 1, "{out}");

        let deep: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
        let deep: Vec<&str> = deep.iter().map(String::as_str).collect();
        let out = render("cpu-flamegraph", &profile(&[(&deep, 10)]));
        assert_eq!(
            out.matches("<g>").count(),
            MAX_DEPTH + 1,
            "all and {MAX_DEPTH} frames"
        );
        // Root first: the frames kept are the outermost.
        assert!(out.contains("<title>f299 ("), "{out}");
        assert!(!out.contains("<title>f43 ("));
    }

    #[test]
    fn missing_or_empty_profiles_say_why() {
        let mut out = String::new();
        flame_graph_html("wall-flamegraph", None, 1, "not a <Go> process", &mut out);
        assert_eq!(
            out,
            "<div class=\"flamegraph\" id=\"wall-flamegraph\"><p class=\"empty\">not a &lt;Go&gt; process</p></div>"
        );
        let mut out = String::new();
        flame_graph_html(
            "cpu-flamegraph",
            Some(&Profile::new(ProfileKind::Cpu)),
            1,
            "",
            &mut out,
        );
        assert!(out.contains("class=\"empty\""), "{out}");
    }
}
