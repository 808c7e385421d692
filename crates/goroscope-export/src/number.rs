//! Number formatting shared by both exposition formats, without heap
//! allocation.
//!
//! Non-integral values use the layout of Go's `strconv.FormatFloat(v, 'g',
//! -1, 64)` (shortest round-trip digits; exponent form when the decimal
//! exponent is below -4 or at least 6, written `e-05` / `e+06`). That is what
//! the Go client library writes, what Prometheus parses, and the base of the
//! OpenMetrics "canonical numbers" for `le` values (which add `.0` when the
//! text has neither a decimal point nor an exponent).

use std::fmt::{self, Write as _};

/// Integral values of smaller magnitude than this (2^63) are written as
/// integers; larger ones in exponent form.
const INTEGER_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// Go's `%g` switches to exponent form from this decimal exponent on (the
/// precision it uses for the decision with shortest formatting).
const GO_G_EXPONENT_FROM: i32 = 6;

/// Writes `n` in decimal.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Writes a sample value: `NaN`, `+Inf`, `-Inf`; integral values below 2^63
/// in magnitude as plain integers (`0` for negative zero); anything else like
/// Go's `%g`.
pub(crate) fn write_value(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < INTEGER_LIMIT {
        // Exact: the value is integral and within i64's range.
        let integer = value as i64;
        if integer < 0 {
            out.push(b'-');
        }
        write_u64(out, integer.unsigned_abs());
    } else {
        write_go_g(out, value);
    }
}

/// Writes an `le` label value: Go's `%g` for the text format (what the Go
/// client writes), plus `.0` when needed for OpenMetrics canonical numbers.
pub(crate) fn write_le(out: &mut Vec<u8>, le: f64, openmetrics: bool) {
    let start = out.len();
    write_go_g(out, le);
    if openmetrics && le.is_finite() && !out[start..].iter().any(|&b| b == b'.' || b == b'e') {
        out.extend_from_slice(b".0");
    }
}

/// Writes `value` as Go's `strconv.FormatFloat(value, 'g', -1, 64)` does,
/// with Prometheus' spellings of the non-finite values.
pub(crate) fn write_go_g(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    if value.is_sign_negative() {
        out.push(b'-');
    }
    if value == 0.0 {
        out.push(b'0');
        return;
    }
    let mut scientific = StackText::new();
    // `{:e}` writes the shortest digits that round-trip, as `d.ddde-x`.
    if write!(scientific, "{:e}", value.abs()).is_err() {
        // Unreachable: the longest f64 in `{:e}` form has 23 bytes.
        out.extend_from_slice(b"NaN");
        return;
    }
    let text = scientific.as_bytes();
    let e_at = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let exponent = parse_exponent(&text[(e_at + 1).min(text.len())..]);
    let mut digits = [0u8; 24];
    let mut count = 0;
    for &b in text[..e_at].iter().filter(|b| b.is_ascii_digit()) {
        digits[count] = b;
        count += 1;
    }
    let digits = &digits[..count];

    if !(-4..GO_G_EXPONENT_FROM).contains(&exponent) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        if exponent.unsigned_abs() < 10 {
            out.push(b'0');
        }
        write_u64(out, u64::from(exponent.unsigned_abs()));
    } else if exponent >= 0 {
        let integer_digits = exponent as usize + 1;
        if digits.len() <= integer_digits {
            out.extend_from_slice(digits);
            out.resize(out.len() + integer_digits - digits.len(), b'0');
        } else {
            out.extend_from_slice(&digits[..integer_digits]);
            out.push(b'.');
            out.extend_from_slice(&digits[integer_digits..]);
        }
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-exponent - 1) as usize, b'0');
        out.extend_from_slice(digits);
    }
}

/// Parses the decimal exponent of Rust's `{:e}` output (`7`, `-12`).
fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = digits
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + i32::from(d - b'0'));
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// A small fixed-capacity text buffer on the stack, for `write!`.
struct StackText {
    bytes: [u8; 40],
    len: usize,
}

impl StackText {
    fn new() -> Self {
        Self {
            bytes: [0; 40],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn go_g(value: f64) -> String {
        let mut out = Vec::new();
        write_go_g(&mut out, value);
        String::from_utf8(out).expect("ASCII")
    }

    #[track_caller]
    fn value(v: f64) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).expect("ASCII")
    }

    #[track_caller]
    fn le(v: f64, openmetrics: bool) -> String {
        let mut out = Vec::new();
        write_le(&mut out, v, openmetrics);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn integers() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 1_234_567_890, u64::MAX] {
            out.clear();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn non_finite_values() {
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(le(f64::INFINITY, true), "+Inf");
    }

    #[test]
    fn integral_values_have_no_decimals_or_exponent() {
        assert_eq!(value(0.0), "0");
        assert_eq!(value(-0.0), "0");
        assert_eq!(value(1.0), "1");
        assert_eq!(value(-42.0), "-42");
        assert_eq!(value(1e6), "1000000");
        assert_eq!(value(123_456_789_012.0), "123456789012");
        assert_eq!(value(9_007_199_254_740_993u64 as f64), "9007199254740992");
        assert_eq!(value(u64::MAX as f64), "1.8446744073709552e+19");
        assert_eq!(value(1e300), "1e+300");
    }

    #[test]
    fn fractions_follow_go_g() {
        // Expected strings are Go's strconv.FormatFloat(v, 'g', -1, 64).
        let cases: [(f64, &str); 16] = [
            (0.5, "0.5"),
            (0.1, "0.1"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1.024e-6, "1.024e-06"),
            (1.073741824, "1.073741824"),
            (123.25, "123.25"),
            (99999.5, "99999.5"),
            (123456.5, "123456.5"),
            (1234567.5, "1.2345675e+06"),
            (-2.5, "-2.5"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (v, expected) in cases {
            assert_eq!(value(v), expected, "{v:e}");
            assert_eq!(go_g(v), expected, "{v:e}");
        }
        assert_eq!(go_g(1e6), "1e+06");
        assert_eq!(go_g(100000.0), "100000");
        assert_eq!(go_g(-0.0), "-0");
    }

    #[test]
    fn written_values_parse_back_exactly() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = f64::from_bits(state);
            if !v.is_finite() {
                continue;
            }
            let text = value(v);
            assert_eq!(text.parse::<f64>().ok(), Some(v), "{text}");
        }
    }

    #[test]
    fn openmetrics_canonical_le_values() {
        // The examples of the OpenMetrics 1.0 "Canonical Numbers" section.
        let cases: [(f64, &str); 17] = [
            (0.0, "0.0"),
            (0.001, "0.001"),
            (0.002, "0.002"),
            (0.01, "0.01"),
            (0.1, "0.1"),
            (0.9, "0.9"),
            (0.95, "0.95"),
            (0.99, "0.99"),
            (0.999, "0.999"),
            (1.0, "1.0"),
            (1.7, "1.7"),
            (10.0, "10.0"),
            (1e-10, "1e-10"),
            (1e-9, "1e-09"),
            (1e-5, "1e-05"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
        ];
        for (v, expected) in cases {
            assert_eq!(le(v, true), expected);
        }
        assert_eq!(le(1e10, true), "1e+10");
        assert_eq!(le(0.0001, true), "0.0001");
        // The text format writes what the Go client writes.
        assert_eq!(le(1.0, false), "1");
        assert_eq!(le(0.0, false), "0");
        assert_eq!(le(1e-6, false), "1e-06");
    }
}
