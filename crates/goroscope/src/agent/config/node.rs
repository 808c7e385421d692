//! The YAML text as a plain tree of nodes, keeping what a typed parse would lose: repeated
//! keys, the order of fields, and what a value actually was (for "found ..." in errors).
//! YAML syntax errors and files with more than one document are reported here.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};

use super::error::Problem;
use super::locate::{locate, Spot};

/// One YAML node.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    /// `~`, `null` or nothing.
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order, repeated keys kept.
    Map(Vec<(Node, Node)>),
    /// A value with a local tag, like `!duration 5s`: the tag without `!`, and the value.
    Tagged(String, Box<Node>),
}

impl Node {
    /// How the node reads in an error: `"yes please"`, `5`, `a list`.
    pub(super) fn describe(&self) -> String {
        match self {
            Node::Null => "nothing (null)".to_owned(),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::Float(x) => x.to_string(),
            Node::Str(s) => format!("{s:?}"),
            Node::Seq(_) => "a list".to_owned(),
            Node::Map(_) => "a mapping".to_owned(),
            Node::Tagged(tag, _) => format!("a value tagged !{tag}"),
        }
    }

    /// The node as a mapping key: its text for scalars (as the locator compares keys).
    pub(super) fn key_text(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.clone()),
            Node::Null => Some("~".to_owned()),
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(x) => Some(x.to_string()),
            Node::Seq(_) | Node::Map(_) | Node::Tagged(..) => None,
        }
    }
}

/// Parses `text` as one YAML document. No document at all (empty, only comments) is `Null`.
pub(super) fn parse_document(text: &str) -> Result<Node, Problem> {
    let mut documents = serde_yaml_ng::Deserializer::from_str(text);
    let Some(first) = documents.next() else {
        return Ok(Node::Null);
    };
    let root = Node::deserialize(first).map_err(|e| syntax(&e, text))?;
    if documents.next().is_some() {
        return Err(Problem::Syntax {
            at: locate(text, 1, &[], Spot::Value),
            message: "a second YAML document starts here, after a `---` line; the file must \
                      hold one document: remove that line and what follows, or merge it into \
                      the first"
                .to_owned(),
        });
    }
    Ok(root)
}

/// A parser error as a problem: the position kept apart, and advice added.
fn syntax(error: &serde_yaml_ng::Error, text: &str) -> Problem {
    let at = error.location().map(|l| (l.line(), l.column()));
    let problem = without_positions(&error.to_string());
    // libyaml names tabs in some messages only ("found character that cannot start any token").
    let tab_indented = at.is_some_and(|(line, _)| {
        text.lines()
            .nth(line.saturating_sub(1))
            .is_some_and(|l| l.trim_start_matches(' ').starts_with('\t'))
    });
    let advice = if tab_indented || problem.contains("tab") {
        "indent with spaces, not tabs"
    } else {
        "check the indentation (spaces only) and the quotes on this line and the one above"
    };
    Problem::Syntax {
        at,
        message: format!("invalid YAML: {problem}; {advice}"),
    }
}

/// `text` without the parser's " at line L column C" and " at position P" (reported apart).
fn without_positions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(" at ") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 4..];
        let skipped = skip_position(after);
        if skipped.len() == after.len() {
            out.push_str(" at ");
        }
        rest = skipped;
    }
    out.push_str(rest);
    out
}

/// `text` after a leading "line L column C" or "position P", or `text` when it has none.
fn skip_position(text: &str) -> &str {
    fn number(t: &str) -> Option<&str> {
        let rest = t.trim_start_matches(|c: char| c.is_ascii_digit());
        (rest.len() < t.len()).then_some(rest)
    }
    let line_column = text
        .strip_prefix("line ")
        .and_then(number)
        .and_then(|t| t.strip_prefix(" column "))
        .and_then(number);
    let position = text.strip_prefix("position ").and_then(number);
    line_column.or(position).unwrap_or(text)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> de::Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        // Beyond i128 is beyond every limit; keep its size, lose its last digits.
        Ok(i128::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        let (tag, variant) = data.variant::<String>()?;
        let value = variant.newtype_variant::<Node>()?;
        Ok(Node::Tagged(tag, Box::new(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_cut_from_parser_messages() {
        assert_eq!(
            without_positions(
                "did not find expected key at line 3 column 5, while parsing a block mapping \
                 at line 1 column 1"
            ),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(without_positions("x at position 12"), "x");
        assert_eq!(without_positions("look at this"), "look at this");
    }

    #[test]
    fn documents_become_trees_with_repeats_and_tags_kept() {
        let node = parse_document("a: 1\na: !t x\nb: [~, 2.5, -3]\n").unwrap();
        let s = |t: &str| Node::Str(t.to_owned());
        assert_eq!(
            node,
            Node::Map(vec![
                (s("a"), Node::Int(1)),
                (s("a"), Node::Tagged("t".to_owned(), Box::new(s("x")))),
                (
                    s("b"),
                    Node::Seq(vec![Node::Null, Node::Float(2.5), Node::Int(-3)])
                ),
            ])
        );
        assert_eq!(parse_document("").unwrap(), Node::Null);
        assert_eq!(parse_document("# nothing\n").unwrap(), Node::Null);
    }
}
