//! The YAML text as a plain tree of nodes, each stamped with where it starts in the text, and
//! keeping what a typed parse would lose: repeated keys, the order of fields, and what a value
//! actually was (for "found ..." in errors). Files with more than one document are refused
//! here; syntax errors are turned into problems by `syntax`.
//!
//! The tree is built from the events of libyaml (its safe Rust port): every event carries its
//! start in the text, so a validation error can point at its field without parsing again, and
//! a syntax error knows which brackets were still open.

use std::collections::HashMap;

use libyaml_safer::{Event, EventData, MappingStyle, Mark, Parser, SequenceStyle};

use super::error::{clip, echo, FieldPath, Problem};
use super::scalar;
use super::syntax::{self, OpenFlow};

/// A 1-based line and column (in characters) in the config text.
pub(super) type Position = (usize, usize);

/// How deeply collections may nest: deeper is surely a mistake, and keeps the tree's drop and
/// walks shallow.
const MAX_DEPTH: usize = 128;

/// How many values the tree may hold, counting every value an alias repeats: a handful of
/// anchors can otherwise expand into billions of values.
const MAX_VALUES: usize = 100_000;

/// One YAML node: what it is, and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Node {
    pub(super) value: Value,
    /// Where the node starts: its tag or anchor when it has one, else its first character.
    pub(super) at: Position,
}

/// What a YAML node is.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
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
    Tagged(String, Box<Value>),
}

impl Value {
    /// How the value reads in an error: `"yes please"`, `5`, `a list`.
    pub(super) fn describe(&self) -> String {
        match self {
            Value::Null => "nothing (null)".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Str(s) => echo(s),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
            Value::Tagged(tag, _) => format!("a value tagged !{}", clip(tag)),
        }
    }

    /// The value as a mapping key, as field paths spell it: its text for scalars.
    pub(super) fn key_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Null => Some("~".to_owned()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(x.to_string()),
            Value::Seq(_) | Value::Map(_) | Value::Tagged(..) => None,
        }
    }
}

impl Node {
    /// How the node reads in an error: `"yes please"`, `5`, `a list`.
    pub(super) fn describe(&self) -> String {
        self.value.describe()
    }

    /// The node as a mapping key, as field paths spell it: its text for scalars.
    pub(super) fn key_text(&self) -> Option<String> {
        self.value.key_text()
    }

    /// How many values the node holds, itself included.
    fn size(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.size() + v.size()).sum(),
            _ => 0,
        }
    }
}

/// The position of libyaml mark `mark` (0-based).
pub(super) fn position(mark: Mark) -> Position {
    let number = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).saturating_add(1);
    (number(mark.line), number(mark.column))
}

/// Parses `text` as one YAML document. No document at all (empty, only comments) is null.
pub(super) fn parse_document(text: &str) -> Result<Node, Problem> {
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    let mut tree = Tree::default();
    let mut in_document = false;
    loop {
        let event = parser
            .parse()
            .map_err(|e| syntax::problem(&e, text, &tree.open_flows(text), &tree.here()))?;
        match event.data {
            EventData::StreamStart { .. } | EventData::DocumentEnd { .. } => {}
            EventData::StreamEnd => break,
            EventData::DocumentStart { .. } if !in_document => in_document = true,
            EventData::DocumentStart { .. } => {
                // Point at the second document's content, or at its `---` when it has none.
                let at = match parser.parse() {
                    Ok(next) if !matches!(next.data, EventData::DocumentEnd { .. }) => {
                        next.start_mark
                    }
                    _ => event.start_mark,
                };
                return Err(Problem::Syntax {
                    at: Some(position(at)),
                    field: None,
                    message: "a second YAML document starts here, after a `---` line; the file \
                              must hold one document: remove that line and what follows, or \
                              merge it into the first"
                        .to_owned(),
                });
            }
            _ => tree.add(event)?,
        }
    }
    Ok(tree.root.unwrap_or(Node {
        value: Value::Null,
        at: (1, 1),
    }))
}

/// A collection whose end has not been read yet.
struct Frame {
    /// Where it starts.
    at: Position,
    anchor: Option<String>,
    /// Its local tag without the `!`, when it has one.
    tag: Option<String>,
    /// Where its `[` or `{` is, when it is written in flow style.
    bracket: Option<Position>,
    items: Items,
}

enum Items {
    Seq(Vec<Node>),
    /// The entries so far, and the key whose value comes next.
    Map(Vec<(Node, Node)>, Option<Node>),
}

/// The tree as it is built from events: the collections still open, the anchors seen, and
/// the root once the document's top node is complete.
#[derive(Default)]
struct Tree {
    open: Vec<Frame>,
    anchors: HashMap<String, Node>,
    values: usize,
    root: Option<Node>,
}

impl Tree {
    /// Adds one node event (scalar, alias, start or end of a collection).
    fn add(&mut self, event: Event) -> Result<(), Problem> {
        let at = position(event.start_mark);
        match event.data {
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => {
                let value = scalar::resolve(value, style, tag.as_deref()).map_err(|message| {
                    Problem::Syntax {
                        at: Some(at),
                        field: None,
                        message,
                    }
                })?;
                self.count(1, at)?;
                self.complete(Node { value, at }, anchor)
            }
            EventData::Alias { anchor } => {
                let Some(node) = self.anchors.get(&anchor).cloned() else {
                    let anchor = clip(&anchor);
                    return Err(Problem::Syntax {
                        at: Some(at),
                        field: None,
                        message: format!(
                            "invalid YAML: unknown anchor; *{anchor} must come after an \
                             &{anchor} that it repeats"
                        ),
                    });
                };
                self.count(node.size(), at)?;
                self.complete(node, None)
            }
            EventData::SequenceStart {
                anchor, tag, style, ..
            } => {
                let flow = style == SequenceStyle::Flow;
                self.begin(&event.start_mark, &event.end_mark, flow, anchor, tag, false)
            }
            EventData::MappingStart {
                anchor, tag, style, ..
            } => {
                let flow = style == MappingStyle::Flow;
                self.begin(&event.start_mark, &event.end_mark, flow, anchor, tag, true)
            }
            EventData::SequenceEnd | EventData::MappingEnd => {
                let Some(frame) = self.open.pop() else {
                    return Ok(()); // libyaml pairs every end with its start
                };
                let items = match frame.items {
                    Items::Seq(items) => Value::Seq(items),
                    Items::Map(entries, _) => Value::Map(entries),
                };
                let value = match frame.tag {
                    Some(tag) => Value::Tagged(tag, Box::new(items)),
                    None => items,
                };
                self.complete(
                    Node {
                        value,
                        at: frame.at,
                    },
                    frame.anchor,
                )
            }
            EventData::StreamStart { .. }
            | EventData::StreamEnd
            | EventData::DocumentStart { .. }
            | EventData::DocumentEnd { .. } => Ok(()),
        }
    }

    fn begin(
        &mut self,
        start: &Mark,
        end: &Mark,
        flow: bool,
        anchor: Option<String>,
        tag: Option<String>,
        mapping: bool,
    ) -> Result<(), Problem> {
        let at = position(*start);
        if self.open.len() >= MAX_DEPTH {
            return Err(Problem::Syntax {
                at: Some(at),
                field: None,
                message: format!(
                    "invalid YAML: lists and mappings nest more than {MAX_DEPTH} deep here; \
                     check the brackets"
                ),
            });
        }
        self.count(1, at)?;
        // A flow collection's start event ends just after its bracket; an implicit one-pair
        // mapping inside `[ ]` (`[a: b]`) has no bracket and an empty event.
        let bracket = (flow && end.index > start.index && end.column > 0).then(|| {
            let (line, column) = position(*end);
            (line, column - 1)
        });
        self.open.push(Frame {
            at,
            anchor,
            tag: tag.as_deref().and_then(scalar::local_tag),
            bracket,
            items: if mapping {
                Items::Map(Vec::new(), None)
            } else {
                Items::Seq(Vec::new())
            },
        });
        Ok(())
    }

    /// Counts `values` more values against [`MAX_VALUES`].
    fn count(&mut self, values: usize, at: Position) -> Result<(), Problem> {
        self.values = self.values.saturating_add(values);
        if self.values > MAX_VALUES {
            return Err(Problem::Syntax {
                at: Some(at),
                field: None,
                message: format!(
                    "invalid YAML: the file holds more than {MAX_VALUES} values, counting \
                     what aliases repeat; a config needs far fewer: check the aliases (*name)"
                ),
            });
        }
        Ok(())
    }

    /// Places a finished node in the collection it belongs to (or as the root).
    fn complete(&mut self, node: Node, anchor: Option<String>) -> Result<(), Problem> {
        if let Some(anchor) = anchor {
            self.anchors.insert(anchor, node.clone());
        }
        match self.open.last_mut().map(|frame| &mut frame.items) {
            None => self.root = Some(node),
            Some(Items::Seq(items)) => items.push(node),
            Some(Items::Map(entries, key)) => match key.take() {
                None => *key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }

    /// The field the parser is in: where the node being read now goes. A key being read
    /// counts as its mapping.
    fn here(&self) -> FieldPath {
        self.paths().1
    }

    /// The open flow collections that have a bracket, innermost first, with the field each
    /// one is the value of.
    fn open_flows(&self, text: &str) -> Vec<OpenFlow> {
        let (paths, _) = self.paths();
        self.open
            .iter()
            .zip(paths)
            .rev()
            .filter_map(|(frame, field)| {
                let at = frame.bracket?;
                let bracket = syntax::char_at(text, at)?;
                matches!(bracket, '[' | '{').then_some(OpenFlow { at, bracket, field })
            })
            .collect()
    }

    /// The field of each open collection, and of the node being read inside the innermost.
    fn paths(&self) -> (Vec<FieldPath>, FieldPath) {
        let mut path = FieldPath::root();
        let mut in_key = false;
        let mut paths = Vec::with_capacity(self.open.len());
        for frame in &self.open {
            paths.push(path.clone());
            if in_key {
                continue;
            }
            match &frame.items {
                Items::Seq(items) => path = path.index(items.len()),
                Items::Map(_, Some(key)) => match key.key_text() {
                    Some(text) => path = path.key(&text),
                    None => in_key = true,
                },
                Items::Map(_, None) => in_key = true,
            }
        }
        (paths, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: Value, line: usize, column: usize) -> Node {
        Node {
            value,
            at: (line, column),
        }
    }

    fn s(text: &str, line: usize, column: usize) -> Node {
        at(Value::Str(text.to_owned()), line, column)
    }

    #[test]
    fn documents_become_trees_with_positions_repeats_and_tags_kept() {
        let node = parse_document("a: 1\na: !t x\nb: [~, 2.5, -3]\n").unwrap();
        assert_eq!(
            node,
            at(
                Value::Map(vec![
                    (s("a", 1, 1), at(Value::Int(1), 1, 4)),
                    (
                        s("a", 2, 1),
                        at(
                            Value::Tagged("t".to_owned(), Box::new(Value::Str("x".to_owned()))),
                            2,
                            4
                        )
                    ),
                    (
                        s("b", 3, 1),
                        at(
                            Value::Seq(vec![
                                at(Value::Null, 3, 5),
                                at(Value::Float(2.5), 3, 8),
                                at(Value::Int(-3), 3, 13),
                            ]),
                            3,
                            4
                        )
                    ),
                ]),
                1,
                1
            )
        );
        assert_eq!(parse_document("").unwrap().value, Value::Null);
        assert_eq!(parse_document("# nothing\n").unwrap().value, Value::Null);
        assert_eq!(parse_document("---\n").unwrap().value, Value::Null);
    }

    #[test]
    fn aliases_repeat_their_anchor_within_a_budget() {
        let node = parse_document("a: &x [1, 2]\nb: *x\n").unwrap();
        let Value::Map(entries) = node.value else {
            panic!("not a mapping: {node:?}");
        };
        assert_eq!(entries[0].1, entries[1].1);

        let bomb = (1..12).fold(
            "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned(),
            |t, i| {
                let p = i - 1;
                format!("{t}a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n")
            },
        );
        match parse_document(&bomb) {
            Err(Problem::Syntax { message, .. }) => {
                assert!(message.contains("more than 100000 values"), "{message}")
            }
            other => panic!("accepted an alias bomb: {other:?}"),
        }
        match parse_document("a: *nowhere\n") {
            Err(Problem::Syntax { at, message, .. }) => {
                assert_eq!(at, Some((1, 4)));
                assert!(message.contains("unknown anchor"), "{message}");
            }
            other => panic!("accepted an unknown alias: {other:?}"),
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        match parse_document(&deep) {
            Err(Problem::Syntax { at, message, .. }) => {
                assert_eq!(at, Some((1, 4 + MAX_DEPTH - 1)));
                assert!(message.contains("nest more than 128 deep"), "{message}");
            }
            other => panic!("accepted {other:?}"),
        }
    }
}
