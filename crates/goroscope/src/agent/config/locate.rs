//! Finds where a field sits in the parsed tree, so an error found after parsing (a value out
//! of range, two fields that disagree) can still point at its line and column. Every node
//! carries its start in the text, so this walks the tree; nothing is parsed again.

use super::error::Segment;
use super::node::{Node, Position, Value};

/// Which part of a field to point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Spot {
    /// The key, occurrence `occurrence` (from 0) of it in its mapping: for unknown and
    /// repeated fields.
    Key {
        /// Which occurrence of a repeated key.
        occurrence: usize,
    },
    /// The value.
    Value,
}

/// Where the field at `path` under `node` starts; `None` when the path is not in the tree.
/// For an empty path, `node` itself. Through a repeated key, the first occurrence that holds
/// the rest of the path.
pub(super) fn locate(node: &Node, path: &[Segment], spot: Spot) -> Option<Position> {
    let Some((first, rest)) = path.split_first() else {
        return Some(node.at);
    };
    match (first, &node.value) {
        (Segment::Key(name), Value::Map(entries)) => {
            let mut matching = entries
                .iter()
                .filter(|(key, _)| key.key_text().as_deref() == Some(name.as_str()));
            match spot {
                Spot::Key { occurrence } if rest.is_empty() => {
                    matching.nth(occurrence).map(|(key, _)| key.at)
                }
                _ => matching.find_map(|(_, value)| locate(value, rest, spot)),
            }
        }
        (Segment::Index(index), Value::Seq(items)) => locate(items.get(*index)?, rest, spot),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::config::node::parse_document;

    fn key(name: &str) -> Segment {
        Segment::Key(name.to_owned())
    }

    #[test]
    fn fields_are_found_in_block_and_flow_style() {
        let tree = parse_document(
            "# top\ncollectors:\n  tcp: { enabled: true }\n  go:\n    interval: 5s\n\
             targets:\n  comms: [a, \"b\"]\n5: x\n",
        )
        .unwrap();
        let value = |path: &[Segment]| locate(&tree, path, Spot::Value);
        assert_eq!(value(&[]), Some((2, 1)));
        assert_eq!(value(&[key("collectors")]), Some((3, 3)));
        assert_eq!(value(&[key("collectors"), key("tcp")]), Some((3, 8)));
        assert_eq!(
            value(&[key("collectors"), key("tcp"), key("enabled")]),
            Some((3, 19))
        );
        assert_eq!(
            value(&[key("collectors"), key("go"), key("interval")]),
            Some((5, 15))
        );
        assert_eq!(
            value(&[key("targets"), key("comms"), Segment::Index(1)]),
            Some((7, 14))
        );
        assert_eq!(value(&[key("targets"), key("pids")]), None);
        assert_eq!(
            value(&[key("targets"), key("comms"), Segment::Index(2)]),
            None
        );
        let first_key = Spot::Key { occurrence: 0 };
        assert_eq!(locate(&tree, &[key("5")], first_key), Some((8, 1)));
        assert_eq!(
            locate(&tree, &[key("collectors"), key("go")], first_key),
            Some((4, 3))
        );
    }

    #[test]
    fn repeated_keys_are_told_apart() {
        let tree = parse_document("a: 1\nb: 2\na: {c: 3}\n").unwrap();
        let second = Spot::Key { occurrence: 1 };
        assert_eq!(locate(&tree, &[key("a")], second), Some((3, 1)));
        assert_eq!(
            locate(&tree, &[key("a"), key("c")], Spot::Value),
            Some((3, 8))
        );
        assert_eq!(
            locate(&tree, &[key("b")], Spot::Key { occurrence: 1 }),
            None
        );
    }
}
