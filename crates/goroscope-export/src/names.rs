//! Validity of metric and label names in the legacy Prometheus character set,
//! which both exposition formats accept without quoting.

/// Returns whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
///
/// Names are `&'static str` chosen in code, so an invalid one is a
/// programming error: [`Family`](crate::Family) checks with `debug_assert!`
/// and unit tests should check every name they define.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let initial = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':';
    match bytes.next() {
        Some(first) if initial(first) => bytes.all(|b| initial(b) || b.is_ascii_digit()),
        _ => false,
    }
}

/// Returns whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`,
/// not starting with `__` (reserved for Prometheus' internal use).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let initial = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    let well_formed = match bytes.next() {
        Some(first) if initial(first) => bytes.all(|b| initial(b) || b.is_ascii_digit()),
        _ => false,
    };
    well_formed && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for good in [
            "a",
            "goroscope_syscalls_total",
            "_x",
            "ns:rule:rate5m",
            "A9",
        ] {
            assert!(is_valid_metric_name(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a.b", "a b", "é", "a\n"] {
            assert!(!is_valid_metric_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn label_names() {
        for good in ["pid", "_x", "le", "comm2"] {
            assert!(is_valid_label_name(good), "{good}");
        }
        for bad in ["", "9", "a:b", "__name__", "a-b", "ü"] {
            assert!(!is_valid_label_name(bad), "{bad:?}");
        }
    }
}
