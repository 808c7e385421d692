//! Escaping of label values and HELP text.
//!
//! Both formats escape label values as `\\`, `\"` and `\n`. HELP text escapes
//! only backslash and newline in the Prometheus text format, and also the
//! double quote in OpenMetrics (whose `escaped-string` excludes a bare `"`).
//! Escaping works on bytes: the three escaped characters are ASCII and never
//! occur inside a multi-byte UTF-8 sequence.

/// Appends `text` to `out`, escaping backslash, newline and, when
/// `escape_quote` is set, the double quote.
pub(crate) fn write_escaped(out: &mut Vec<u8>, text: &str, escape_quote: bool) {
    let needs_escape = |b: u8| b == b'\\' || b == b'\n' || (escape_quote && b == b'"');
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| needs_escape(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if escape_quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn escaped(text: &str, escape_quote: bool) -> String {
        let mut out = Vec::new();
        write_escaped(&mut out, text, escape_quote);
        String::from_utf8(out).expect("escaping keeps UTF-8")
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(escaped("GET /api/v1 – ok ✓", true), "GET /api/v1 – ok ✓");
        assert_eq!(escaped("", true), "");
    }

    #[test]
    fn label_values_escape_backslash_quote_newline() {
        assert_eq!(
            escaped("C:\\dir \"quoted\"\nnext", true),
            "C:\\\\dir \\\"quoted\\\"\\nnext"
        );
        assert_eq!(escaped("\\n", true), "\\\\n");
        assert_eq!(escaped("tab\there\r", true), "tab\there\r");
    }

    #[test]
    fn text_format_help_keeps_quotes() {
        assert_eq!(escaped("a \"b\" \\ c\nd", false), "a \"b\" \\\\ c\\nd");
    }
}
