//! Numbers for people: durations in ns/µs/ms/s/min, bytes in KiB/MiB/GiB, counts with
//! thousands separators, shares as percentages. Exact counts stay exact (`format_count`).

/// `ns` with three significant digits in the largest unit that keeps the number at least 1:
/// `850 ns`, `12.3 µs`, `4.56 ms`, `1.2 s`; whole minutes and seconds from two minutes up.
pub(crate) fn format_duration_ns(ns: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1.0, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")];
    if ns == 0 {
        return "0".to_string();
    }
    if ns >= 120_000_000_000 {
        let seconds = ns / 1_000_000_000;
        return format!("{} min {} s", seconds / 60, seconds % 60);
    }
    let value = ns as f64;
    let mut unit = UNITS
        .iter()
        .rposition(|&(scale, _)| value >= scale)
        .unwrap_or(0);
    loop {
        let (scale, name) = UNITS[unit];
        let number = three_digits(value / scale);
        if number == "1000" && unit + 1 < UNITS.len() {
            unit += 1;
            continue;
        }
        return format!("{number} {name}");
    }
}

/// `bytes` in the largest binary unit that keeps the number at least 1: `512 B`, `1.5 KiB`,
/// `45.2 MiB`.
pub(crate) fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    format!("{} {}", three_digits(value), UNITS[unit])
}

/// An exact count with thin separators every three digits: `1 234 567`.
pub(crate) fn format_count(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// `part / whole` as a percentage, one decimal under 10 %, none above; `0 %` for an empty whole.
pub(crate) fn format_share(part: f64, whole: f64) -> String {
    if whole <= 0.0 || !part.is_finite() || !whole.is_finite() {
        return "0 %".to_string();
    }
    let percent = part * 100.0 / whole;
    if percent == 0.0 {
        return "0 %".to_string();
    }
    if percent > 0.0 && percent < 0.1 {
        return "<0.1 %".to_string();
    }
    if percent < 10.0 {
        format!("{percent:.1} %")
    } else {
        format!("{percent:.0} %")
    }
}

/// A signed rate with at most one decimal: `+6/min`, `-0.5/min`, `+1.2k/min`.
pub(crate) fn format_rate(per_unit: f64, unit: &str) -> String {
    let sign = if per_unit >= 0.0 { "+" } else { "-" };
    let magnitude = per_unit.abs();
    let number = if magnitude >= 10_000.0 {
        format!("{:.1}k", magnitude / 1000.0)
    } else if magnitude >= 10.0 || magnitude == magnitude.trunc() {
        format!("{magnitude:.0}")
    } else {
        format!("{magnitude:.1}")
    };
    format!("{sign}{number}/{unit}")
}

/// A plain number with three significant digits (the profile table's rule).
pub(crate) use crate::profile::three_digits;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(format_duration_ns(0), "0");
        assert_eq!(format_duration_ns(850), "850 ns");
        assert_eq!(format_duration_ns(12_345), "12.3 µs");
        assert_eq!(format_duration_ns(4_560_000), "4.56 ms");
        assert_eq!(format_duration_ns(999_999_999), "1 s");
        assert_eq!(format_duration_ns(30_000_000_000), "30 s");
        assert_eq!(format_duration_ns(185_000_000_000), "3 min 5 s");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(45 * 1024 * 1024), "45 MiB");
        assert_eq!(format_count(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_share(1.0, 3.0), "33 %");
        assert_eq!(format_share(1.0, 30.0), "3.3 %");
        assert_eq!(format_share(1.0, 0.0), "0 %");
        assert_eq!(format_rate(6.0, "min"), "+6/min");
        assert_eq!(format_rate(-0.25, "min"), "-0.2/min");
    }
}
