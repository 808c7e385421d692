//! Flame graphs as inline SVG, one per profile, that several can share a page: frames are
//! `<g>` elements carrying their position in value units (`data-x`, `data-w`) and depth
//! (`data-d`), and the page's script (`script.js`) zooms on click and highlights a search.
//!
//! Why not inferno's SVG (which `goroscope profile --format svg` writes)? Its script assumes it
//! is the root document and records zoom and search in the URL with `history.replaceState`,
//! which throws a `SecurityError` in a sandboxed `srcdoc` or `data:` frame (only the fragment
//! of such a URL may change) — the only ways to embed it in one file without it taking over
//! the page. The frames and their order are the same as inferno's: the profile's folded stacks
//! ([`crate::profile::folded_stacks`]), siblings sorted by name, root at the bottom.

use std::fmt::Write as _;

use goroscope_model::profile::Profile;

use super::format::{format_count, format_duration_ns, format_share};
use super::html::{empty, text};
use crate::profile::folded_stacks;

/// Width of the graph in SVG units.
const WIDTH: f64 = 1000.0;
/// Height of one frame.
const FRAME_HEIGHT: u32 = 17;
/// Most frames drawn: beyond it, the narrowest are left out.
const MAX_FRAMES: usize = 3000;
/// [`MAX_FRAMES`], for the page's tests.
#[cfg(test)]
pub(crate) const MAX_FRAMES_FOR_TESTS: usize = MAX_FRAMES;
/// Frames narrower than this share of the total are left out (under a pixel wide).
const MIN_SHARE: f64 = 0.0005;
/// Deepest frame drawn.
const MAX_DEPTH: usize = 256;
/// Average width of a character of the labels, in SVG units (11 px sans-serif).
const CHAR_WIDTH: f64 = 6.6;

/// A frame of the merged stacks.
struct Node {
    name: String,
    value: i64,
    children: Vec<usize>,
}

/// The merged stacks of `profile`'s `values[value]`: node 0 is the root (`all`).
fn tree(profile: &Profile, value: usize) -> Vec<Node> {
    let mut nodes = vec![Node {
        name: "all".to_string(),
        value: 0,
        children: Vec::new(),
    }];
    for (stack, total) in folded_stacks(profile, value) {
        if total <= 0 {
            continue;
        }
        nodes[0].value = nodes[0].value.saturating_add(total);
        let mut at = 0;
        for frame in stack.split(';').take(MAX_DEPTH) {
            let existing = nodes[at]
                .children
                .iter()
                .copied()
                .find(|&child| nodes[child].name == frame);
            at = match existing {
                Some(child) => child,
                None => {
                    nodes.push(Node {
                        name: frame.to_string(),
                        value: 0,
                        children: Vec::new(),
                    });
                    let child = nodes.len() - 1;
                    nodes[at].children.push(child);
                    child
                }
            };
            nodes[at].value = nodes[at].value.saturating_add(total);
        }
    }
    nodes
}

/// The deepest level of `node` (0 for a leaf).
fn depth(nodes: &[Node], node: usize, threshold: i64) -> usize {
    nodes[node]
        .children
        .iter()
        .filter(|&&child| nodes[child].value >= threshold)
        .map(|&child| 1 + depth(nodes, child, threshold))
        .max()
        .unwrap_or(0)
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
    let nodes = tree(profile, value);
    let total = nodes[0].value;
    if total <= 0 {
        empty(out, "The profile holds no samples: nothing to draw.");
        out.push_str("</div>");
        return;
    }
    let format = ValueFormat {
        nanoseconds: profile
            .sample_types
            .get(value)
            .is_some_and(|t| t.unit == "nanoseconds"),
        kind: profile
            .sample_types
            .get(value)
            .map_or_else(String::new, |t| t.kind.clone()),
    };
    let mut widths: Vec<i64> = nodes.iter().map(|n| n.value).collect();
    widths.sort_unstable_by(|a, b| b.cmp(a));
    let mut threshold = ((total as f64 * MIN_SHARE).ceil() as i64).max(1);
    if let Some(&narrowest) = widths.get(MAX_FRAMES - 1) {
        threshold = threshold.max(narrowest);
    }
    let levels = depth(&nodes, 0, threshold) + 1;
    let height = levels as u32 * FRAME_HEIGHT + 4;
    let _ = write!(
        out,
        "<div class=\"fg-controls\"><input type=\"search\" class=\"fg-search\" placeholder=\"Search functions\" aria-label=\"Search functions\">\
         <button type=\"button\" class=\"fg-reset\">Reset zoom</button><span class=\"fg-match\"></span></div>\
         <svg class=\"fg\" viewBox=\"0 0 {WIDTH} {height}\" data-total=\"{total}\" role=\"img\">"
    );
    let mut emitted = 0usize;
    // Depth-first, with the x offset of each frame in value units.
    let mut stack: Vec<(usize, usize, i64)> = vec![(0, 0, 0)];
    while let Some((node, level, x)) = stack.pop() {
        if emitted >= MAX_FRAMES {
            break;
        }
        let frame = &nodes[node];
        emitted += 1;
        write_frame(out, frame, level, x, total, height, &format);
        // Siblings sorted by name, like inferno.
        let mut ordered = frame.children.clone();
        ordered.sort_by(|&a, &b| nodes[a].name.cmp(&nodes[b].name));
        let mut child_x = x;
        let mut children = Vec::with_capacity(ordered.len());
        for child in ordered {
            if nodes[child].value >= threshold && level + 1 < levels {
                children.push((child, level + 1, child_x));
            }
            child_x += nodes[child].value;
        }
        // Pushed in reverse so the first is drawn first.
        stack.extend(children.into_iter().rev());
    }
    out.push_str("</svg>");
    let _ = write!(
        out,
        "<p class=\"fg-note\">{} in all. Click a frame to zoom, search to highlight; frames under {:.2} % of the total are left out.</p></div>",
        text(&format.show(total)),
        threshold as f64 * 100.0 / total as f64,
    );
}

/// One frame: its `<g>` with the tooltip, the box and the label that fits.
fn write_frame(
    out: &mut String,
    frame: &Node,
    level: usize,
    x: i64,
    total: i64,
    height: u32,
    format: &ValueFormat,
) {
    let px = x as f64 / total as f64 * WIDTH;
    let pw = frame.value as f64 / total as f64 * WIDTH;
    let y = height - 2 - (level as u32 + 1) * FRAME_HEIGHT;
    let name = text(&frame.name);
    let label = fit(&frame.name, pw);
    let _ = write!(
        out,
        "<g data-x=\"{x}\" data-w=\"{w}\" data-d=\"{level}\"><title>{name}\n{shown} ({share})</title>\
         <rect x=\"{px:.1}\" y=\"{y}\" width=\"{pw:.1}\" height=\"{fh}\" fill=\"{fill}\" rx=\"2\"/>\
         <text x=\"{tx:.1}\" y=\"{ty}\">{label}</text></g>",
        w = frame.value,
        shown = text(&format.show(frame.value)),
        share = text(&format_share(frame.value as f64, total as f64)),
        fh = FRAME_HEIGHT - 1,
        fill = colour(&frame.name, level),
        tx = px + 3.0,
        ty = y + 12,
        label = text(&label),
    );
}

/// As much of `name` as fits in `width` units, with `..` when cut; empty below 3 characters.
fn fit(name: &str, width: f64) -> String {
    let room = ((width - 6.0) / CHAR_WIDTH).floor();
    if room < 3.0 {
        return String::new();
    }
    let room = room as usize;
    if name.chars().count() <= room {
        return name.to_string();
    }
    let mut cut: String = name.chars().take(room - 2).collect();
    cut.push_str("..");
    cut
}

/// A warm colour from a hash of the name, so a function has one colour everywhere; the root
/// is grey.
fn colour(name: &str, level: usize) -> String {
    if level == 0 {
        return "#c9ccd3".to_string();
    }
    // FNV-1a.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let r = 205 + (hash % 50);
    let g = 90 + ((hash >> 8) % 140);
    let b = 40 + ((hash >> 16) % 50);
    format!("#{r:02x}{g:02x}{b:02x}")
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

    #[test]
    fn frames_merge_by_stack_and_carry_their_extent() {
        // Leaf first, as profiles store them.
        let p = profile(&[
            (&["main.parse", "main.handle", "main.main"], 30),
            (&["main.write", "main.handle", "main.main"], 10),
            (&["main.main"], 60),
        ]);
        let mut out = String::new();
        flame_graph_html("cpu-flamegraph", Some(&p), 1, "none", &mut out);
        assert!(
            out.starts_with("<div class=\"flamegraph\" id=\"cpu-flamegraph\">"),
            "{out}"
        );
        assert!(out.contains("data-total=\"100\""), "{out}");
        assert!(
            out.contains("<g data-x=\"0\" data-w=\"100\" data-d=\"0\"><title>all"),
            "{out}"
        );
        assert!(
            out.contains("data-x=\"0\" data-w=\"40\" data-d=\"2\"><title>main.handle"),
            "{out}"
        );
        assert!(
            out.contains("data-x=\"0\" data-w=\"30\" data-d=\"3\"><title>main.parse"),
            "{out}"
        );
        assert!(
            out.contains("data-x=\"30\" data-w=\"10\" data-d=\"3\"><title>main.write"),
            "{out}"
        );
        assert_eq!(out.matches("<g ").count(), 5, "{out}");
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

    #[test]
    fn labels_fit_their_frames() {
        assert_eq!(fit("main.main", 1200.0), "main.main");
        assert_eq!(fit("main.main", 10.0), "");
        assert_eq!(fit("runtime.goexit", 6.5 + 6.0 * CHAR_WIDTH), "runt..");
    }
}
