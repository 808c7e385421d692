//! Label sets: ordered (name, value) pairs with static names.

use crate::names::is_valid_label_name;

/// A label set, in order. Names are static; values are any text (escaped on
/// output).
///
/// Label sets order lexicographically by their pairs, which is the order
/// samples of a family are rendered in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(&'static str, String)>);

impl Labels {
    /// Returns an empty label set.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a label, builder style:
    /// `Labels::new().push("pid", pid.to_string()).push("comm", comm)`.
    ///
    /// `name` must be a valid label name (see
    /// [`is_valid_label_name`](crate::is_valid_label_name)) not already in
    /// the set; both are checked with `debug_assert!` only.
    #[must_use]
    pub fn push(mut self, name: &'static str, value: impl Into<String>) -> Self {
        debug_assert!(is_valid_label_name(name), "invalid label name {name:?}");
        debug_assert!(self.get(name).is_none(), "duplicate label name {name:?}");
        self.0.push((name, value.into()));
        self
    }

    /// Iterates over the labels in order, as (name, value).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'static str, &str)> + '_ {
        self.0.iter().map(|(name, value)| (*name, value.as_str()))
    }

    /// Returns the value of the label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
    }

    /// The same set without the labels named in `names`.
    #[must_use]
    pub fn without(&self, names: &[&str]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(name, _)| !names.contains(name))
                .cloned()
                .collect(),
        )
    }

    /// Returns the number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<(&'static str, String)>> for Labels {
    /// Wraps pairs as they are (names are checked with `debug_assert!`).
    fn from(pairs: Vec<(&'static str, String)>) -> Self {
        debug_assert!(
            pairs.iter().all(|(name, _)| is_valid_label_name(name)),
            "invalid label name in {pairs:?}"
        );
        Self(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_order() {
        let labels = Labels::new()
            .push("pid", "42")
            .push("comm", String::from("api"));
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(pairs, [("pid", "42"), ("comm", "api")]);
        assert_eq!(labels.len(), 2);
        assert_eq!(labels.get("comm"), Some("api"));
        assert_eq!(labels.get("x"), None);
        assert!(Labels::new().is_empty());
    }

    #[test]
    fn orders_by_pairs() {
        let a = Labels::new().push("pid", "1");
        let b = Labels::new().push("pid", "2");
        let c = Labels::new().push("pid", "1").push("comm", "x");
        assert!(Labels::new() < a);
        assert!(a < b);
        assert!(a < c);
        assert!(c < b);
        assert_eq!(Labels::from(vec![("pid", "1".to_owned())]), a);
    }
}
