//! What a YAML scalar means: `~` null, `true` a boolean, `0x1F` a number, `5s` text. The rules
//! are YAML 1.2's core schema as serde_yaml_ng applied them to this config before it was read
//! through libyaml's events, so every file keeps meaning what it meant: only plain (unquoted)
//! scalars are resolved, a leading zero keeps digits text (`012`), `yes` stays text, and the
//! core tags `!!bool`, `!!int`, `!!float` and `!!null` insist on their type.

use libyaml_safer::ScalarStyle;

use super::error::{clip, echo};
use super::node::Value;

/// The prefix libyaml expands `!!` to.
const CORE: &str = "tag:yaml.org,2002:";

/// The value of a scalar written `value` in `style`, tagged `tag` (as libyaml expands it:
/// `!duration` stays as written, `!!int` becomes `tag:yaml.org,2002:int`). The error says why
/// a core tag does not fit its value.
pub(super) fn resolve(
    value: String,
    style: ScalarStyle,
    tag: Option<&str>,
) -> Result<Value, String> {
    let plain = style == ScalarStyle::Plain;
    let Some(tag) = tag else {
        return Ok(if plain {
            untagged(value)
        } else {
            Value::Str(value)
        });
    };
    if let Some(local) = local_tag(tag) {
        let inner = if plain {
            untagged(value)
        } else {
            Value::Str(value)
        };
        return Ok(Value::Tagged(local, Box::new(inner)));
    }
    let wrong = |what: &str| {
        format!(
            "invalid YAML: {} is tagged {} but is not {what}; remove the tag or fix the \
             value",
            echo(&value),
            clip(&tag.replacen(CORE, "!!", 1))
        )
    };
    match tag.strip_prefix(CORE) {
        Some("bool") => boolean(&value)
            .map(Value::Bool)
            .ok_or_else(|| wrong("a boolean")),
        Some("int") => integer(&value).ok_or_else(|| wrong("an integer")),
        Some("float") => float(&value)
            .map(Value::Float)
            .ok_or_else(|| wrong("a float")),
        Some("null") => null(&value)
            .then_some(Value::Null)
            .ok_or_else(|| wrong("null")),
        // `!!str`, and tags nothing here knows: text.
        _ => Ok(Value::Str(value)),
    }
}

/// A local tag (`!duration`, as libyaml keeps it) without its `!`; a lone `!` stays `!`.
pub(super) fn local_tag(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix('!')?;
    Some(if rest.is_empty() { tag } else { rest }.to_owned())
}

/// A plain scalar without a tag: null, a boolean, a number, or text.
fn untagged(value: String) -> Value {
    if value.is_empty() || null(&value) {
        Value::Null
    } else if let Some(b) = boolean(&value) {
        Value::Bool(b)
    } else if let Some(number) = integer(&value) {
        number
    } else if let Some(x) = float(&value).filter(|_| !leading_zero_digits(&value)) {
        Value::Float(x)
    } else {
        Value::Str(value)
    }
}

fn null(value: &str) -> bool {
    matches!(value, "~" | "null" | "Null" | "NULL")
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer: decimal, or `0x`, `0o`, `0b` after an optional sign. Beyond `i128` it keeps its
/// size as a float.
fn integer(value: &str) -> Option<Value> {
    let (negative, unsigned) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let (radix, digits) = match unsigned.get(..2) {
        Some("0x") => (16, &unsigned[2..]),
        Some("0o") => (8, &unsigned[2..]),
        Some("0b") => (2, &unsigned[2..]),
        _ => (10, unsigned),
    };
    // from_str_radix would take a second sign.
    if digits.starts_with(['+', '-']) || (radix == 10 && leading_zero_digits(value)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        if magnitude == i128::MIN.unsigned_abs() {
            return Some(Value::Int(i128::MIN));
        }
        // Below i128::MIN is left to the float reading, as serde_yaml_ng did.
        i128::try_from(magnitude).ok().map(|m| Value::Int(-m))
    } else {
        Some(i128::try_from(magnitude).map_or(Value::Float(magnitude as f64), Value::Int))
    }
}

/// A finite float, or `.inf`, `-.inf`, `.nan`.
fn float(value: &str) -> Option<f64> {
    let unsigned = match value.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => value,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if matches!(value, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    unsigned.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Digits with a leading zero (`012`, `-00`): text in YAML 1.2, not a number.
fn leading_zero_digits(value: &str) -> bool {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    digits.len() > 1 && digits.starts_with('0') && digits[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Value {
        resolve(text.to_owned(), ScalarStyle::Plain, None).unwrap()
    }

    #[test]
    fn plain_scalars_resolve_as_serde_yaml_ng_did() {
        let s = |t: &str| Value::Str(t.to_owned());
        for (text, value) in [
            ("", Value::Null),
            ("~", Value::Null),
            ("NULL", Value::Null),
            ("True", Value::Bool(true)),
            ("yes", s("yes")),
            ("5", Value::Int(5)),
            ("+5", Value::Int(5)),
            ("-0", Value::Int(0)),
            ("0x1F", Value::Int(31)),
            ("-0x10", Value::Int(-16)),
            ("0o17", Value::Int(15)),
            ("0b101", Value::Int(5)),
            ("0x+1", s("0x+1")),
            ("012", s("012")),
            ("1_000", s("1_000")),
            ("1e3", Value::Float(1000.0)),
            ("2.5", Value::Float(2.5)),
            ("-.inf", Value::Float(f64::NEG_INFINITY)),
            ("inf", s("inf")),
            ("++5", s("++5")),
            ("5s", s("5s")),
            (
                "170141183460469231731687303715884105727",
                Value::Int(i128::MAX),
            ),
            (
                "-170141183460469231731687303715884105728",
                Value::Int(i128::MIN),
            ),
            (
                "170141183460469231731687303715884105728",
                Value::Float(2f64.powi(127)),
            ),
        ] {
            assert_eq!(plain(text), value, "{text:?}");
        }
        assert!(matches!(plain(".nan"), Value::Float(x) if x.is_nan()));
    }

    #[test]
    fn quoted_scalars_are_text_and_tags_are_kept_or_checked() {
        let quoted = resolve("5".to_owned(), ScalarStyle::DoubleQuoted, None);
        assert_eq!(quoted, Ok(Value::Str("5".to_owned())));
        let duration = resolve("5s".to_owned(), ScalarStyle::Plain, Some("!duration"));
        assert_eq!(
            duration,
            Ok(Value::Tagged(
                "duration".to_owned(),
                Box::new(Value::Str("5s".to_owned()))
            ))
        );
        let int = resolve(
            "5".to_owned(),
            ScalarStyle::SingleQuoted,
            Some(&format!("{CORE}int")),
        );
        assert_eq!(int, Ok(Value::Int(5)));
        let text = resolve(
            "5".to_owned(),
            ScalarStyle::Plain,
            Some(&format!("{CORE}str")),
        );
        assert_eq!(text, Ok(Value::Str("5".to_owned())));
        let wrong = resolve(
            "maybe".to_owned(),
            ScalarStyle::Plain,
            Some(&format!("{CORE}bool")),
        );
        assert_eq!(
            wrong,
            Err(
                "invalid YAML: \"maybe\" is tagged !!bool but is not a boolean; remove the tag \
                 or fix the value"
                    .to_owned()
            )
        );
        assert_eq!(local_tag("!"), Some("!".to_owned()));
        assert_eq!(local_tag("tag:x"), None);
    }
}
