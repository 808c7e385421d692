//! A YAML syntax error as the operator should read it. libyaml reports where it gave up and,
//! for a bracket or quote left open, where that began (its context mark): an unclosed `[`,
//! `{` or quote is reported where it began, with where the parser gave up, because that is
//! where the fix goes. Every other syntax error points where the parser gave up, with advice.

use libyaml_safer::Error;

use super::error::{FieldPath, Problem};
use super::node::{position, Position};

/// A flow collection (`[...]`, `{...}`) still open when the parser stopped.
#[derive(Debug)]
pub(super) struct OpenFlow {
    /// Where its bracket is.
    pub(super) at: Position,
    /// `[` or `{`.
    pub(super) bracket: char,
    /// The field it is the value of.
    pub(super) field: FieldPath,
}

/// The problem to report for parser error `error` in `text`, given the flow collections
/// still open (innermost first) and the field the parser was in.
pub(super) fn problem(error: &Error, text: &str, open: &[OpenFlow], here: &FieldPath) -> Problem {
    unclosed_flow(error, text, open)
        .or_else(|| unclosed_quote(error, text, here))
        .unwrap_or_else(|| elsewhere(error, text))
}

/// An unclosed `[` or `{`: libyaml wanted `,` or the closing bracket and found the end of the
/// file, a document marker, or a line no deeper than the bracket's own (the text went back to
/// block structure). Anything else (a missing comma inside the brackets) is not this.
fn unclosed_flow(error: &Error, text: &str, open: &[OpenFlow]) -> Option<Problem> {
    let kind = match error.context()? {
        "while parsing a flow sequence" => "list",
        "while parsing a flow mapping" => "mapping",
        _ => return None,
    };
    if !error.problem().starts_with("did not find expected ','") {
        return None;
    }
    let opened = position(error.context_mark()?);
    let gave_up = position(error.problem_mark()?);
    let bracket = char_at(text, opened).filter(|c| matches!(c, '[' | '{'))?;
    let (ending, dedented) = match ending(text, gave_up) {
        Some(ending) => (ending, false),
        None if gave_up.0 > opened.0
            && indentation(text, gave_up.0) <= indentation(text, opened.0) =>
        {
            let (line, column) = gave_up;
            (
                format!(
                    "the parser gave up at {line}:{column}, on a line indented no deeper than \
                     this one,"
                ),
                true,
            )
        }
        None => return None,
    };
    let inner = open.iter().position(|flow| flow.at == opened);
    let outer = inner.map_or(open, |i| &open[i + 1..]);
    let (bracket, closing) = (quoted(bracket), quoted(self::closing(bracket)));
    let mut message =
        format!("unclosed {bracket} ({ending} before the closing {closing}); add the {closing}");
    if dedented {
        message.push_str(&format!(
            " or indent the lines the {kind} spans deeper than this one"
        ));
    }
    let also: Vec<String> = outer
        .iter()
        .map(|flow| {
            let (line, column) = flow.at;
            format!(
                "the {} at {line}:{column} with {}",
                quoted(flow.bracket),
                quoted(self::closing(flow.bracket))
            )
        })
        .collect();
    if !also.is_empty() {
        message.push_str(&format!("; then close {}", also.join(" and ")));
    }
    Some(Problem::Syntax {
        at: Some(opened),
        field: inner.map(|i| &open[i].field).and_then(field),
        message,
    })
}

/// An unclosed quoted string: libyaml read to the end of the file or a document marker
/// looking for the closing quote.
fn unclosed_quote(error: &Error, text: &str, here: &FieldPath) -> Option<Problem> {
    if error.context()? != "while scanning a quoted scalar" {
        return None;
    }
    let opened = position(error.context_mark()?);
    let gave_up = position(error.problem_mark()?);
    let quote = char_at(text, opened).filter(|c| matches!(c, '"' | '\''))?;
    let ending = match error.problem() {
        "found unexpected end of stream" | "found unexpected document indicator" => {
            ending(text, gave_up)?
        }
        _ => return None,
    };
    Some(Problem::Syntax {
        at: Some(opened),
        field: field(here),
        message: format!(
            "unclosed {q} ({ending} before the closing {q}); add the closing {q} where the \
             text ends",
            q = quoted(quote)
        ),
    })
}

/// Any other syntax error, where the parser gave up, with advice.
fn elsewhere(error: &Error, text: &str) -> Problem {
    let Some(mark) = error.problem_mark() else {
        // A reader error: libyaml reads only printable characters.
        let found = unreadable(text);
        return Problem::Syntax {
            at: found.map(|(at, _)| at),
            field: None,
            message: match found {
                Some((_, c)) => format!(
                    "invalid YAML: {} (found U+{:04X}); remove it, or write it as an escape \
                     in a double-quoted string, like \"\\u{:04X}\"",
                    error.problem(),
                    c as u32,
                    c as u32
                ),
                None => format!("invalid YAML: {}", error.problem()),
            },
        };
    };
    let at = position(mark);
    let mut problem = error.problem().to_owned();
    if let Some(context) = error.context() {
        problem.push_str(", ");
        problem.push_str(context);
        if let (Some(mark), true) = (error.context_mark(), context.contains(" flow ")) {
            let (line, column) = position(mark);
            problem.push_str(&format!(" started at {line}:{column}"));
        }
    }
    // libyaml names tabs in some messages only ("found character that cannot start any token").
    let tab_indented =
        line(text, at.0).is_some_and(|l| l.trim_start_matches(' ').starts_with('\t'));
    let advice = if tab_indented || problem.contains("tab") {
        "indent with spaces, not tabs"
    } else if problem.starts_with("did not find expected ','") {
        "put a ',' between two items, and check the quotes"
    } else {
        "check the indentation (spaces only) and the quotes on this line and the one above"
    };
    Problem::Syntax {
        at: Some(at),
        field: None,
        message: format!("invalid YAML: {problem}; {advice}"),
    }
}

/// How the text ends at `gave_up`, when it does: at the end of the file, or at a document
/// marker (`---`, `...`) that ends the document.
fn ending(text: &str, gave_up: Position) -> Option<String> {
    let (line, column) = gave_up;
    let rest = &text[offset(text, gave_up)?..];
    if rest.trim().is_empty() {
        return Some(format!("the file ends at {line}:{column}"));
    }
    let marker = rest.get(..3).filter(|m| matches!(*m, "---" | "..."));
    match marker {
        Some(marker) if column == 1 => {
            Some(format!("the `{marker}` at {line}:1 ends the document"))
        }
        _ => None,
    }
}

fn closing(bracket: char) -> char {
    if bracket == '[' {
        ']'
    } else {
        '}'
    }
}

/// A bracket or quote as messages show it: `'['`, `'"'`, `"'"`.
fn quoted(c: char) -> String {
    if c == '\'' {
        "\"'\"".to_owned()
    } else {
        format!("'{c}'")
    }
}

fn field(path: &FieldPath) -> Option<FieldPath> {
    (!path.segments().is_empty()).then(|| path.clone())
}

/// `text` as libyaml counts positions: a leading byte order mark takes no column.
fn counted(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Line `number` (from 1) of `text`, with its line break.
fn line(text: &str, number: usize) -> Option<&str> {
    counted(text)
        .split_inclusive('\n')
        .nth(number.checked_sub(1)?)
}

/// The byte offset of `at` in `text`; the end of the text for the line after the last.
fn offset(text: &str, at: Position) -> Option<usize> {
    let body = counted(text);
    let start = text.len() - body.len();
    let (line_number, column) = at;
    let mut line_start = start;
    for (i, l) in body.split_inclusive('\n').enumerate() {
        if i + 1 == line_number {
            let within = l.char_indices().nth(column.checked_sub(1)?).map(|(o, _)| o);
            return Some(line_start + within.unwrap_or(l.len()));
        }
        line_start += l.len();
    }
    Some(text.len())
}

/// The character at `at` in `text`.
pub(super) fn char_at(text: &str, at: Position) -> Option<char> {
    text[offset(text, at)?..].chars().next()
}

/// How many spaces line `number` starts with.
fn indentation(text: &str, number: usize) -> usize {
    line(text, number).map_or(0, |l| l.len() - l.trim_start_matches(' ').len())
}

/// The first character libyaml refuses to read, and where it is.
fn unreadable(text: &str) -> Option<(Position, char)> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}')
            || matches!(c, '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    };
    let (mut line, mut column) = (1, 1);
    for c in counted(text).chars() {
        if !printable(c) {
            return Some(((line, column), c));
        }
        if c == '\n' {
            (line, column) = (line + 1, 1);
        } else {
            column += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_map_to_offsets_by_characters() {
        let text = "a: é\nb: [x\n";
        assert_eq!(char_at(text, (2, 4)), Some('['));
        assert_eq!(char_at(text, (1, 4)), Some('é'));
        assert_eq!(offset(text, (3, 1)), Some(text.len()));
        assert_eq!(char_at("\u{feff}a: [x", (1, 4)), Some('['));
        assert_eq!(indentation("a:\n   b: 1\n", 2), 3);
        assert_eq!(unreadable("a: 1\nb: x\u{1}"), Some(((2, 5), '\u{1}')));
    }
}
