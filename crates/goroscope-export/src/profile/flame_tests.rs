//! Flame graph tests: the SVG parses, carries the title, units and search, and references
//! nothing on the network (checked by a scanner that is itself tested on bad SVGs).

use goroscope_model::profile::{Profile, ProfileKind};
use quick_xml::events::Event;
use quick_xml::Reader;

use super::super::fixtures::cpu_profile;
use super::{flame_graph, FlameGraphError};

/// The fixture's flame graph of `value`, as text.
#[track_caller]
fn render(value: usize, title: &str) -> String {
    let mut out = Vec::new();
    if let Err(error) = flame_graph(&cpu_profile(), value, title, &mut out) {
        panic!("flame_graph failed: {error}");
    }
    match String::from_utf8(out) {
        Ok(svg) => svg,
        Err(error) => panic!("SVG is not UTF-8: {error}"),
    }
}

/// Text of a quick-xml byte slice.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every way `svg` could make a viewer load something from elsewhere, described. URLs may
/// appear only as XML namespace names (`xmlns`, `xmlns:*`: names, never fetched), in XML
/// comments, and in the script's comments and console diagnostics. Also fails on XML that
/// does not parse.
fn network_references(svg: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut reader = Reader::from_str(svg);
    let mut open: Vec<String> = Vec::new();
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                problems.push(format!("not well-formed XML: {error}"));
                break;
            }
        };
        match event {
            Event::Eof => {
                if let Some(name) = open.last() {
                    problems.push(format!("not well-formed XML: <{name}> never closed"));
                }
                break;
            }
            Event::DocType(doctype) => problems.push(format!("DOCTYPE {}", text(&doctype))),
            Event::PI(pi) => problems.push(format!("processing instruction {}", text(&pi))),
            Event::Start(ref element) | Event::Empty(ref element) => {
                let name = text(element.name().as_ref());
                for attribute in element.attributes() {
                    let attribute = match attribute {
                        Ok(attribute) => attribute,
                        Err(error) => {
                            problems.push(format!("bad attribute on <{name}>: {error}"));
                            continue;
                        }
                    };
                    let key = text(attribute.key.as_ref());
                    let value = text(&attribute.value);
                    if key == "xmlns" || key.starts_with("xmlns:") {
                        continue;
                    }
                    let linking = key.ends_with("href") || key == "src";
                    if value.contains("://") || (linking && !value.starts_with('#')) {
                        problems.push(format!("<{name} {key}={value:?}>"));
                    }
                    problems.extend(css_references(&value));
                }
                if matches!(event, Event::Start(_)) {
                    open.push(name);
                }
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Text(content) => {
                let content = text(&content);
                problems.extend(content_references(open.last(), &content));
            }
            Event::CData(content) => {
                let content = text(&content);
                problems.extend(content_references(open.last(), &content));
            }
            Event::Comment(_) | Event::Decl(_) | Event::GeneralRef(_) => {}
        }
    }
    problems
}

/// References in the text of an element named `parent`.
fn content_references(parent: Option<&String>, content: &str) -> Vec<String> {
    match parent.map(String::as_str) {
        Some("script") => script_references(content),
        Some("style") => css_references(content),
        _ if content.contains("://") => vec![format!("URL in text {content:?}")],
        _ => Vec::new(),
    }
}

/// `@import` and `url(…)` not pointing inside the document.
fn css_references(css: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if css.contains("@import") {
        problems.push("CSS @import".to_string());
    }
    for (at, _) in css.match_indices("url(") {
        let target = css[at + 4..].trim_start_matches(['"', '\'', ' ']);
        if !target.starts_with('#') {
            problems.push(format!("CSS {}", &css[at..css.len().min(at + 40)]));
        }
    }
    if css.contains("://") {
        problems.push("URL in CSS".to_string());
    }
    problems
}

/// Loading APIs in a script, and URLs outside its comments and console diagnostics.
fn script_references(script: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let loaders = [
        "fetch(",
        "XMLHttpRequest",
        "importScripts",
        "import(",
        "sendBeacon",
        "WebSocket",
        "EventSource",
        "new Image",
        ".src",
        "window.open",
    ];
    for loader in loaders {
        if script.contains(loader) {
            problems.push(format!("script uses {loader}"));
        }
    }
    for (at, _) in script.match_indices("://") {
        let line_start = script[..at].rfind('\n').map_or(0, |i| i + 1);
        let before = &script[line_start..at];
        let scheme_start = before
            .rfind(|c: char| !c.is_ascii_alphanumeric())
            .map_or(0, |i| i + 1);
        let in_line_comment = before[..scheme_start].contains("//");
        let in_block_comment = script[..at].rfind("/*") > script[..at].rfind("*/");
        let diagnostic = before.trim_start().starts_with("console.");
        if !(in_line_comment || in_block_comment || diagnostic) {
            let end = script[at..].find('\n').map_or(script.len(), |i| at + i);
            problems.push(format!("URL in script: {}", script[line_start..end].trim()));
        }
    }
    problems
}

#[test]
fn the_svg_references_nothing_on_the_network() {
    let svg = render(1, "CPU");
    let problems = network_references(&svg);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
}

#[test]
fn the_reference_scanner_catches_what_it_looks_for() {
    let bad = r##"<?xml version="1.0"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">
<style>@import url(https://fonts.example/a.css); rect { fill: url(#ok) }</style>
<image xlink:href="https://example.com/a.png"/><use href="other.svg#x"/>
<script><![CDATA[ // https://fine.example
var x = "https://tracker.example/"; fetch(x); ]]></script>
<text>see https://example.com</text>
</svg>"##;
    let problems = network_references(bad).join("\n");
    for expected in [
        "DOCTYPE",
        "CSS @import",
        "CSS url(https://fonts",
        "<image xlink:href=",
        "<use href=",
        "script uses fetch(",
        "URL in script: var x",
        "URL in text",
    ] {
        assert!(
            problems.contains(expected),
            "missed {expected:?} in:\n{problems}"
        );
    }
    assert!(!problems.contains("fine.example"), "{problems}");
    assert!(!problems.contains("url(#ok)"), "{problems}");
    assert!(
        !network_references("<svg><g>").is_empty(),
        "unclosed XML accepted"
    );

    // inferno's own output carries an external DTD; ours must not.
    let mut raw = Vec::new();
    let mut options = inferno::flamegraph::Options::default();
    if let Err(error) = inferno::flamegraph::from_lines(&mut options, ["a;b 1"], &mut raw) {
        panic!("inferno failed: {error}");
    }
    let problems = network_references(&text(&raw));
    assert!(
        problems.iter().any(|p| p.starts_with("DOCTYPE")),
        "{problems:?}"
    );
}

#[test]
fn the_svg_has_the_title_frames_in_the_value_unit_and_escaped_names() {
    let svg = render(1, "CPU <api> & co\u{1b}[2J");
    assert!(
        svg.contains(r"CPU &lt;api&gt; &amp; co\e[2J"),
        "title missing or unescaped"
    );
    assert!(!svg.contains("<api>"));
    assert!(
        svg.contains("main.parse (40,000,000 ns, 53.33%)"),
        "frame title with ns count missing"
    );
    assert!(svg.contains("libc.so.6+0x38000 (10,000,000 ns, 13.33%)"));
    assert!(svg.contains(r"main.evil\x3b\nname\e (5,000,000 ns, 6.67%)"));
    assert!(!svg.contains('\u{1b}'), "raw ESC in the SVG");

    let svg = render(0, "CPU samples");
    assert!(svg.contains("main.parse (4 samples, 50.00%)"));
    assert!(svg.contains("all (8 samples, 100%)"));
}

#[test]
fn search_is_built_in() {
    let svg = render(1, "CPU");
    assert!(svg.contains(r#"onload="init(evt)""#));
    assert!(svg.contains(r#"id="search""#), "no search button");
    assert!(svg.contains(r#"id="matched""#), "no match counter");
    assert!(svg.contains("function search_prompt"), "no search script");
    assert!(svg.contains("function search(term)"));
}

#[test]
fn the_same_profile_draws_the_same_bytes() {
    assert_eq!(render(1, "CPU"), render(1, "CPU"));
}

#[test]
fn nothing_to_draw_is_an_error_and_writes_nothing() {
    let mut out = b"kept".to_vec();
    let error = flame_graph(&cpu_profile(), 2, "CPU", &mut out);
    assert!(
        matches!(
            error,
            Err(FlameGraphError::NoSuchValue {
                value: 2,
                available: 2
            })
        ),
        "{error:?}"
    );
    let error = flame_graph(&Profile::new(ProfileKind::Wall), 1, "wall", &mut out);
    match error {
        Err(FlameGraphError::NoSamples { value_type }) => {
            assert_eq!(value_type, "wall/nanoseconds")
        }
        other => panic!("expected NoSamples, got {other:?}"),
    }
    assert_eq!(out, b"kept");
}
