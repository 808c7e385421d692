//! Reading single values out of the config tree: mappings of known fields, booleans,
//! durations, whole numbers, sizes in bytes, text, addresses, lists and patterns. Each reader leaves its slot alone
//! when the value is null (`interval:` with nothing after it keeps the default) and otherwise
//! says what it expected, what it found, and what to write instead.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::error::{clip, echo, FieldPath, Problem};
use super::glob::{Glob, GlobKind};
use super::node::{Node, Value};

/// The entries of a mapping (none for an empty value), or a problem saying a mapping like
/// `example` was expected.
pub(super) fn mapping<'a>(
    node: &'a Node,
    at: &FieldPath,
    example: &str,
) -> Result<&'a [(Node, Node)], Problem> {
    match &node.value {
        Value::Null => Ok(&[]),
        Value::Map(entries) => Ok(entries),
        other => Err(Problem::value(
            at,
            format!(
                "expected a mapping like {example}, found {}",
                other.describe()
            ),
        )),
    }
}

/// The fields of the mapping `node` at `at`, in document order, with their paths. Null is an
/// empty mapping. Unknown and repeated fields are refused; `example` shows what belongs here.
pub(super) fn fields<'a>(
    node: &'a Node,
    at: &FieldPath,
    names: &[&str],
    example: &str,
) -> Result<Vec<(&'a str, &'a Node, FieldPath)>, Problem> {
    let entries = mapping(node, at, example)?;
    let mut fields: Vec<(&str, &Node, FieldPath)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let name = match &key.value {
            Value::Str(name) => name.as_str(),
            other => {
                let message = format!("unknown field; expected one of {}", names.join(", "));
                return Err(match other.key_text() {
                    Some(text) => Problem::key(&at.key(&text), 0, message),
                    None => Problem::value(
                        at,
                        format!("{message}; found {} as a key", other.describe()),
                    ),
                });
            }
        };
        let field = at.key(name);
        if !names.contains(&name) {
            return Err(Problem::key(&field, 0, unknown_field(name, names)));
        }
        if fields.iter().any(|(seen, _, _)| *seen == name) {
            return Err(Problem::key(&field, 1, "given twice; keep one"));
        }
        fields.push((name, value, field));
    }
    Ok(fields)
}

fn unknown_field(name: &str, names: &[&str]) -> String {
    let mut message = format!("unknown field; expected one of {}", names.join(", "));
    if let Some(close) = closest(name, names) {
        message.push_str(&format!(" (did you mean {close}?)"));
    }
    message
}

/// The name in `names` `name` was probably meant to be: same up to case and `-`/`_`, or at
/// most two edits away (and fewer edits than it has characters).
fn closest<'n>(name: &str, names: &[&'n str]) -> Option<&'n str> {
    if name.len() > 64 {
        return None; // no field name is that long, and the distance would cost
    }
    let normal = name.to_lowercase().replace('-', "_");
    names
        .iter()
        .map(|&candidate| (edit_distance(&normal, candidate), candidate))
        .filter(|&(distance, candidate)| distance <= 2 && distance < candidate.len())
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// `true` or `false`.
pub(super) fn flag(node: &Node, at: &FieldPath, slot: &mut bool) -> Result<(), Problem> {
    match &node.value {
        Value::Null => {}
        Value::Bool(value) => *slot = *value,
        other => {
            return Err(Problem::value(
                at,
                format!(
                    "expected a boolean (true or false), found {}",
                    other.describe()
                ),
            ))
        }
    }
    Ok(())
}

/// The shortest and longest duration a field accepts.
#[derive(Clone, Copy)]
pub(super) struct Bounds {
    pub(super) min: Duration,
    pub(super) max: Duration,
}

/// A duration with a unit, like `5s`, `500ms`, `1m30s`, within `bounds`.
pub(super) fn duration(
    node: &Node,
    at: &FieldPath,
    bounds: Bounds,
    slot: &mut Duration,
) -> Result<(), Problem> {
    let text = match &node.value {
        Value::Null => return Ok(()),
        Value::Str(text) => text,
        other => {
            return Err(Problem::value(
                at,
                format!(
                    "expected a duration like 5s, 500ms or 1m30s, found {}",
                    other.describe()
                ),
            ))
        }
    };
    let value = humantime::parse_duration(text.trim()).map_err(|e| {
        Problem::value(
            at,
            format!(
                "{} is not a duration ({}); write it like 5s, 500ms or 1m30s",
                echo(text),
                clip(&e.to_string())
            ),
        )
    })?;
    if value < bounds.min || value > bounds.max {
        let what = if value < bounds.min {
            "too short"
        } else {
            "too long"
        };
        return Err(Problem::value(
            at,
            format!(
                "{} is {what}; use a duration from {} to {}",
                echo(text),
                show(bounds.min),
                show(bounds.max)
            ),
        ));
    }
    *slot = value;
    Ok(())
}

/// A duration as the config would write it: `1us`, `10m`.
pub(super) fn show(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// A whole number in `min..=max`; `None` when null. `1_000_000` (plain or quoted) is allowed.
pub(super) fn whole(
    node: &Node,
    at: &FieldPath,
    min: u64,
    max: u64,
) -> Result<Option<u64>, Problem> {
    let number = match &node.value {
        Value::Null => return Ok(None),
        Value::Int(n) => Some(*n),
        Value::Str(text)
            if text.starts_with(|c: char| c.is_ascii_digit())
                && text.chars().all(|c| c.is_ascii_digit() || c == '_') =>
        {
            text.replace('_', "").parse::<i128>().ok()
        }
        _ => None,
    };
    let Some(number) = number else {
        return Err(Problem::value(
            at,
            format!(
                "expected a whole number from {min} to {max}, found {}",
                node.describe()
            ),
        ));
    };
    match u64::try_from(number) {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(Problem::value(
            at,
            format!("{number} is out of range; use a whole number from {min} to {max}"),
        )),
    }
}

/// The units a size may be written in, and their bytes.
const SIZE_UNITS: [(&str, u64); 8] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("", 1),
];

/// A size in bytes: a whole number of bytes (`1048576`, `1_048_576`) or a number and a unit,
/// like `8MiB`, `512 KiB` or `2MB`; `None` when null. Within `min..=max` bytes.
pub(super) fn byte_size(
    node: &Node,
    at: &FieldPath,
    min: u64,
    max: u64,
) -> Result<Option<u64>, Problem> {
    let expected = || {
        format!(
            "expected a size like 8MiB, 512KiB, 2MB or a number of bytes, found {}",
            node.describe()
        )
    };
    let text = match &node.value {
        Value::Null => return Ok(None),
        Value::Int(n) => n.to_string(),
        Value::Str(text) => text.trim().replace('_', ""),
        _ => return Err(Problem::value(at, expected())),
    };
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    let scale = SIZE_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, scale)| scale);
    let (Ok(number), Some(scale)) = (number.parse::<u64>(), scale) else {
        return Err(Problem::value(at, expected()));
    };
    match number.checked_mul(scale) {
        Some(bytes) if (min..=max).contains(&bytes) => Ok(Some(bytes)),
        _ => Err(Problem::value(
            at,
            format!(
                "{} is out of range; use a size from {} to {}",
                node.describe(),
                show_bytes(min),
                show_bytes(max)
            ),
        )),
    }
}

/// A size as the config would write it: `8MiB`, `1500B`.
pub(super) fn show_bytes(bytes: u64) -> String {
    for (unit, scale) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

/// Text, like a URL or a path; `None` when null. `example` shows what belongs here.
pub(super) fn some_text<'a>(
    node: &'a Node,
    at: &FieldPath,
    example: &str,
) -> Result<Option<&'a str>, Problem> {
    match &node.value {
        Value::Null => Ok(None),
        Value::Str(text) => Ok(Some(text)),
        other => Err(Problem::value(
            at,
            format!("expected text like {example}, found {}", other.describe()),
        )),
    }
}

/// Parses an address to listen on, like `127.0.0.1:9949` or `[::]:9949` (host names are not
/// looked up); the error says how to write it.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    text.parse::<SocketAddr>().map_err(|_| {
        let shown = echo(text);
        if let Some(port) = text.strip_prefix(':') {
            let port = clip(port);
            format!(
                "{shown} has no host; write 127.0.0.1:{port} (this host only), \
                 0.0.0.0:{port} (every IPv4 interface) or [::]:{port} (IPv4 and IPv6)"
            )
        } else if let Ok(ip) = text.parse::<IpAddr>() {
            format!(
                "{shown} has no port; write it like {}",
                SocketAddr::new(ip, 9949)
            )
        } else {
            format!(
                "{shown} is not an IP address and port; write it like 127.0.0.1:9949 or \
                 [::]:9949 (host names are not looked up)"
            )
        }
    })
}

/// An address to listen on.
pub(super) fn listen(node: &Node, at: &FieldPath, slot: &mut SocketAddr) -> Result<(), Problem> {
    match &node.value {
        Value::Null => Ok(()),
        Value::Str(text) => {
            *slot = parse_listen(text).map_err(|e| Problem::value(at, e))?;
            Ok(())
        }
        other => Err(Problem::value(
            at,
            format!(
                "expected an address like \"127.0.0.1:9949\", found {}",
                other.describe()
            ),
        )),
    }
}

/// The items of a list; `None` when null. `example` shows what belongs here.
pub(super) fn items<'a>(
    node: &'a Node,
    at: &FieldPath,
    example: &str,
) -> Result<Option<&'a [Node]>, Problem> {
    match &node.value {
        Value::Null => Ok(None),
        Value::Seq(items) => Ok(Some(items)),
        other => Err(Problem::value(
            at,
            format!("expected a list like {example}, found {}", other.describe()),
        )),
    }
}

/// A text item of a list.
pub(super) fn text<'a>(node: &'a Node, at: &FieldPath, example: &str) -> Result<&'a str, Problem> {
    match &node.value {
        Value::Str(text) => Ok(text),
        other => Err(Problem::value(
            at,
            format!("expected text like {example}, found {}", other.describe()),
        )),
    }
}

/// What a list of patterns is matched against.
#[derive(Clone, Copy)]
pub(super) enum Patterns {
    /// Process names from /proc/PID/comm.
    Comm,
    /// Network interface names.
    Interface,
    /// Cgroup v2 paths.
    Cgroup,
}

impl Patterns {
    fn example(self) -> &'static str {
        match self {
            Patterns::Comm => "[\"nginx\", \"api-*\"]",
            Patterns::Interface => "[\"eth*\", \"ens*\"]",
            Patterns::Cgroup => "[\"/system.slice/*\", \"/kubepods.slice/**\"]",
        }
    }

    /// Why `glob` can never match what it is matched against, if so.
    fn never_matches(self, glob: &Glob) -> Option<String> {
        let pattern = glob.as_str();
        let shown = echo(pattern);
        match self {
            Patterns::Comm if glob.min_len() > 15 => Some(format!(
                "{shown} can never match: process names (/proc/PID/comm) are cut to \
                 15 bytes; match their first 15, like {}",
                echo(first_bytes(pattern, 15))
            )),
            Patterns::Interface if glob.min_len() > 15 => Some(format!(
                "{shown} can never match: interface names are at most 15 bytes; \
                 shorten the pattern"
            )),
            Patterns::Cgroup if !pattern.starts_with(['/', '*']) => Some(format!(
                "{shown} can never match: cgroup paths start with / (as in \
                 /proc/PID/cgroup after 0::); write {}",
                echo(&format!("/{}", clip(pattern)))
            )),
            _ => None,
        }
    }
}

fn first_bytes(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A list of glob patterns matched against `what`.
pub(super) fn globs(
    node: &Node,
    at: &FieldPath,
    what: Patterns,
    slot: &mut Vec<Glob>,
) -> Result<(), Problem> {
    let Some(list) = items(node, at, what.example())? else {
        return Ok(());
    };
    let kind = match what {
        Patterns::Comm | Patterns::Interface => GlobKind::Name,
        Patterns::Cgroup => GlobKind::Path,
    };
    let mut patterns = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = at.index(i);
        let pattern = text(item, &at, "\"nginx\"")?;
        let glob = Glob::new(pattern, kind)
            .map_err(|e| Problem::value(&at, format!("{}: {e}", echo(pattern))))?;
        if let Some(problem) = what.never_matches(&glob) {
            return Err(Problem::value(&at, problem));
        }
        patterns.push(glob);
    }
    *slot = patterns;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        let names = ["syscalls", "tcp", "network", "max_series_per_family"];
        assert_eq!(closest("tpc", &names), Some("tcp"));
        assert_eq!(closest("Network", &names), Some("network"));
        assert_eq!(
            closest("max-series-per-family", &names),
            Some("max_series_per_family")
        );
        assert_eq!(closest("disk", &names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn listen_addresses_parse_or_explain() {
        assert_eq!(parse_listen("[::]:9949"), Ok("[::]:9949".parse().unwrap()));
        assert!(parse_listen(":9949")
            .unwrap_err()
            .contains("127.0.0.1:9949"));
        assert!(parse_listen("10.0.0.1")
            .unwrap_err()
            .contains("10.0.0.1:9949"));
        assert!(parse_listen("localhost:9949")
            .unwrap_err()
            .contains("not looked up"));
    }

    #[test]
    fn sizes_show_in_the_largest_exact_unit() {
        assert_eq!(show_bytes(8 << 20), "8MiB");
        assert_eq!(show_bytes(1536), "1536B");
        assert_eq!(show_bytes(3 << 10), "3KiB");
        assert_eq!(show_bytes(0), "0B");
    }

    #[test]
    fn first_bytes_stay_on_character_boundaries() {
        assert_eq!(first_bytes("abcdefghijklmnopq", 15), "abcdefghijklmno");
        assert_eq!(first_bytes("aaaaaaaaaaaaaaéé", 15), "aaaaaaaaaaaaaa");
        assert_eq!(first_bytes("ab", 15), "ab");
    }
}
