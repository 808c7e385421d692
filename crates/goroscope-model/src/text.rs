//! Names, paths and messages made safe to print, and kept exact in JSON.
//!
//! Process names, file paths, exec arguments and Go symbol names come from other processes
//! and may hold any byte: an ESC that clears the screen or retitles the terminal, a newline
//! that forges a whole output line, bytes that are not UTF-8. Every text goroscope prints goes
//! through [`escaped`], one rule everywhere, close to `ls --quoting-style=escape`:
//!
//! - valid UTF-8 that is not a control character is printed as it is;
//! - `\` is printed `\\` (so the escaped form is unambiguous);
//! - newline, tab, carriage return and ESC are printed `\n`, `\t`, `\r`, `\e`;
//! - every other byte of a C0 control (U+0000–U+001F), DEL (U+007F) or C1 control
//!   (U+0080–U+009F, two bytes in UTF-8), of a character that reorders, hides or breaks text
//!   without being a control (zero-width and bidirectional marks, line and paragraph
//!   separators: U+200B–U+200F, U+2028–U+202E, U+2060–U+2069, U+FEFF), and every byte that
//!   is not part of valid UTF-8, is printed `\xNN` (two lowercase hex digits);
//! - with [`escaped_quoted`] (items printed between double quotes), `"` is printed `\"`.
//!
//! [`unescape`] reverses it exactly, so the printed text names the exact bytes.
//!
//! [`escape_controls`] applies the same notation to control characters only, leaving `\`
//! alone: for a whole message whose names were already escaped where they were put in.
//!
//! JSON cannot hold bytes that are not UTF-8. [`base64`] encodes them (standard alphabet,
//! padded): JSON output carries a field's text (invalid bytes shown as U+FFFD) and, only
//! when the bytes are not UTF-8, a `<field>_base64` twin with the exact bytes.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Bytes that print escaped; see the module documentation for the rule.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a> {
    bytes: &'a [u8],
    quote: bool,
    /// Escape `\` (off only for [`escape_controls`]).
    backslash: bool,
}

/// `bytes` printed with the escaping rule of this module. Formatting widths pad by the
/// number of characters printed, so columns stay aligned; nothing is allocated.
pub fn escaped(bytes: &[u8]) -> Escaped<'_> {
    Escaped {
        bytes,
        quote: false,
        backslash: true,
    }
}

/// Like [`escaped`], and `"` is printed `\"`: for items printed between double quotes.
pub fn escaped_quoted(bytes: &[u8]) -> Escaped<'_> {
    Escaped {
        bytes,
        quote: true,
        backslash: true,
    }
}

/// `text` with its control characters escaped as [`escaped`] does, and nothing else (a `\`
/// stays as it is): for a message assembled from parts already escaped, so they are not
/// escaped twice. Borrowed when nothing needed escaping.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let escaped = Escaped {
        bytes: text.as_bytes(),
        quote: false,
        backslash: false,
    };
    Cow::Owned(escaped.to_string())
}

/// `bytes` escaped into a string, borrowed when nothing needed escaping.
pub fn escape(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(|c| needs_escape(c, false)) => Cow::Borrowed(text),
        _ => Cow::Owned(escaped(bytes).to_string()),
    }
}

/// Whether `c`, in valid UTF-8, is printed escaped.
fn needs_escape(c: char, quote: bool) -> bool {
    c == '\\' || (quote && c == '"') || is_unsafe(c)
}

/// A control character, or one that reorders, hides or breaks the text around it.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
        )
}

impl Escaped<'_> {
    fn needs_escape(&self, c: char) -> bool {
        (self.backslash && c == '\\') || (self.quote && c == '"') || is_unsafe(c)
    }
}

/// Writes every byte of `c` as `\xNN`, or its short escape.
fn write_char_escaped(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\\' => out.write_str("\\\\"),
        '"' => out.write_str("\\\""),
        '\n' => out.write_str("\\n"),
        '\t' => out.write_str("\\t"),
        '\r' => out.write_str("\\r"),
        '\u{1b}' => out.write_str("\\e"),
        _ => {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                write!(out, "\\x{b:02x}")?;
            }
            Ok(())
        }
    }
}

impl Escaped<'_> {
    /// Writes the escaped form, returning how many characters it took.
    fn write_to(&self, out: &mut impl fmt::Write) -> Result<usize, fmt::Error> {
        let mut printed = 0;
        for chunk in self.bytes.utf8_chunks() {
            let valid = chunk.valid();
            let mut start = 0;
            for (i, c) in valid.char_indices() {
                if self.needs_escape(c) {
                    out.write_str(&valid[start..i])?;
                    printed += valid[start..i].chars().count();
                    let mut counter = Counter(0);
                    write_char_escaped(&mut counter, c)?;
                    write_char_escaped(out, c)?;
                    printed += counter.0;
                    start = i + c.len_utf8();
                }
            }
            out.write_str(&valid[start..])?;
            printed += valid[start..].chars().count();
            for &b in chunk.invalid() {
                write!(out, "\\x{b:02x}")?;
                printed += 4;
            }
        }
        Ok(printed)
    }
}

/// Counts the characters written to it.
struct Counter(usize);

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.chars().count();
        Ok(())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(width) = f.width() else {
            return self.write_to(f).map(|_| ());
        };
        let mut counter = Counter(0);
        self.write_to(&mut counter)?;
        let fill = width.saturating_sub(counter.0);
        let (before, after) = match f.align() {
            Some(fmt::Alignment::Right) => (fill, 0),
            Some(fmt::Alignment::Center) => (fill / 2, fill - fill / 2),
            _ => (0, fill),
        };
        for _ in 0..before {
            f.write_char(f.fill())?;
        }
        self.write_to(f)?;
        for _ in 0..after {
            f.write_char(f.fill())?;
        }
        Ok(())
    }
}

/// The exact bytes an escaped text names, or `None` when `text` is not something
/// [`escaped`] or [`escaped_quoted`] prints (a lone `\`, an unknown escape).
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next()? {
            b'\\' => out.push(b'\\'),
            b'"' => out.push(b'"'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'e' => out.push(0x1b),
            b'x' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in base64 (RFC 4648 standard alphabet, padded).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes `text` encodes in base64 (standard alphabet, padded), or `None`.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for quad in text.chunks(4) {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let v = BASE64.iter().position(|&a| a == c)?;
            n = n << 6 | v as u32;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// `bytes` as base64 when they are not UTF-8, for a JSON `<field>_base64` twin.
pub fn base64_if_not_utf8(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).is_err().then(|| base64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged_and_borrowed() {
        assert!(matches!(escape(b"dd"), Cow::Borrowed("dd")));
        assert_eq!(escape("café ✓ /tmp/a b".as_bytes()), "café ✓ /tmp/a b");
    }

    #[test]
    fn controls_backslash_and_invalid_bytes_are_escaped() {
        assert_eq!(escape(b"a\nb"), "a\\nb");
        assert_eq!(escape(b"\x1b]0;pwned\x07"), "\\e]0;pwned\\x07");
        assert_eq!(escape(b"\x1b[2J\t\r\x7f\0"), "\\e[2J\\t\\r\\x7f\\x00");
        assert_eq!(escape(b"c:\\dir"), "c:\\\\dir");
        assert_eq!(escape(b"\xff\xfe ok"), "\\xff\\xfe ok");
        // C1 CSI (U+009B) is a control in UTF-8 too.
        assert_eq!(escape("x\u{9b}2J".as_bytes()), "x\\xc2\\x9b2J");
        // Bidirectional overrides and line separators are not controls, but act like them.
        assert_eq!(
            escape("a\u{202e}b\u{2028}".as_bytes()),
            "a\\xe2\\x80\\xaeb\\xe2\\x80\\xa8"
        );
        assert_eq!(escape("\u{feff}".as_bytes()), "\\xef\\xbb\\xbf");
        assert_eq!(escape(b"say \"hi\""), "say \"hi\"");
        assert_eq!(escaped_quoted(b"say \"hi\"").to_string(), "say \\\"hi\\\"");
    }

    #[test]
    fn escaping_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255u8).chain("é✓\u{9b}\u{202e}".bytes()).collect();
        for text in [escape(&all).into_owned(), escaped_quoted(&all).to_string()] {
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert_eq!(unescape(&text).as_deref(), Some(&all[..]));
        }
        assert_eq!(unescape("bad\\q"), None);
        assert_eq!(unescape("bad\\"), None);
    }

    #[test]
    fn messages_escape_controls_only() {
        assert!(matches!(escape_controls("a\\b"), Cow::Borrowed("a\\b")));
        assert_eq!(
            escape_controls("x\\e \u{1b}[2J\u{9b}"),
            "x\\e \\e[2J\\xc2\\x9b"
        );
    }

    #[test]
    fn widths_pad_by_printed_characters() {
        assert_eq!(format!("[{:<6}]", escaped(b"a\nb")), "[a\\nb  ]");
        assert_eq!(format!("[{:>6}]", escaped(b"\xffx")), "[ \\xffx]");
        assert_eq!(format!("[{:<2}]", escaped(b"long")), "[long]");
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"\xff\xfe\n"), "//4K");
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
            assert_eq!(base64_decode(&base64(&bytes)), Some(bytes));
        }
        assert_eq!(base64_if_not_utf8(b"ok"), None);
        assert_eq!(base64_if_not_utf8(b"\xff").as_deref(), Some("/w=="));
    }
}
