//! The top table: functions by the value they hold themselves, like `go tool pprof -top`.
//!
//! `flat` is what a function's own code holds (it is the innermost frame, inlined calls
//! expanded), `cum` what it and everything it calls hold: a function is counted once per
//! sample however often it recurs in the stack. `sum%` runs down the table.

use std::collections::HashMap;
use std::fmt::Write as _;

use goroscope_model::profile::Profile;

/// The name used for a sample without any location, as in the folded output.
const EMPTY_STACK: &str = "[unknown]";

/// A function's totals.
pub(crate) struct Row {
    /// The function, as [`Profile::frame_names`] names it (not escaped).
    pub(crate) name: String,
    /// What its own code holds.
    pub(crate) flat: i64,
    /// What it and its callees hold.
    pub(crate) cum: i64,
}

/// A text table of `profile`'s functions by `values[value]`, like `go tool pprof -top`: a
/// header with the value's type, unit and total, then at most `rows` rows of flat, flat%,
/// sum%, cum, cum% and the function, sorted by flat, then cum, then name. Nanoseconds are
/// shown in human units (`1.23s`, `45.6ms`), other values as integers; names are escaped
/// with [`goroscope_model::escape`].
pub fn top_table(profile: &Profile, value: usize, rows: usize) -> String {
    let unit = profile
        .sample_types
        .get(value)
        .map_or("", |value_type| value_type.unit.as_str());
    let (table, total) = totals(profile, value);
    let shown = &table[..rows.min(table.len())];
    let accounted: i64 = shown.iter().map(|row| row.flat).sum();

    let mut out = String::new();
    match profile.sample_types.get(value) {
        Some(value_type) => {
            let _ = writeln!(out, "Type: {} ({})", value_type.kind, value_type.unit);
        }
        None => {
            let _ = writeln!(out, "Type: value #{value} (not in this profile)");
        }
    }
    let _ = writeln!(out, "Total: {}", format_value(total, unit));
    let _ = writeln!(
        out,
        "Showing {} of {} functions, accounting for {} ({} of total)",
        shown.len(),
        table.len(),
        format_value(accounted, unit),
        percent(accounted, total),
    );
    let _ = writeln!(
        out,
        "{:>10} {:>7} {:>7} {:>10} {:>7}  function",
        "flat", "flat%", "sum%", "cum", "cum%"
    );
    let mut running = 0i64;
    for row in shown {
        running = running.saturating_add(row.flat);
        let _ = writeln!(
            out,
            "{:>10} {:>7} {:>7} {:>10} {:>7}  {}",
            format_value(row.flat, unit),
            percent(row.flat, total),
            percent(running, total),
            format_value(row.cum, unit),
            percent(row.cum, total),
            goroscope_model::escape(row.name.as_bytes()),
        );
    }
    out
}

/// Every function's flat and cum, sorted for the table, and the total of all samples.
pub(crate) fn totals(profile: &Profile, value: usize) -> (Vec<Row>, i64) {
    let mut table: Vec<Row> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut in_sample: Vec<usize> = Vec::new();
    let mut total = 0i64;
    for sample in &profile.samples {
        let amount = sample.values.get(value).copied().unwrap_or(0);
        if amount == 0 {
            continue;
        }
        total = total.saturating_add(amount);
        in_sample.clear();
        let mut names = profile.frame_names(sample).map(|frame| frame.to_string());
        let leaf = names.next().unwrap_or_else(|| EMPTY_STACK.to_string());
        for name in std::iter::once(leaf).chain(names) {
            let row = match index.get(&name) {
                Some(&row) => row,
                None => {
                    index.insert(name.clone(), table.len());
                    table.push(Row {
                        name,
                        flat: 0,
                        cum: 0,
                    });
                    table.len() - 1
                }
            };
            if in_sample.is_empty() {
                table[row].flat = table[row].flat.saturating_add(amount);
            }
            if !in_sample.contains(&row) {
                in_sample.push(row);
                table[row].cum = table[row].cum.saturating_add(amount);
            }
        }
    }
    table.sort_by(|a, b| {
        b.flat
            .cmp(&a.flat)
            .then(b.cum.cmp(&a.cum))
            .then_with(|| a.name.cmp(&b.name))
    });
    (table, total)
}

/// `part` as a percentage of `total`, two decimals.
fn percent(part: i64, total: i64) -> String {
    if total == 0 {
        return "0.00%".to_string();
    }
    format!("{:.2}%", part as f64 * 100.0 / total as f64)
}

/// A value in `unit`: nanoseconds in human units, anything else as an integer.
fn format_value(value: i64, unit: &str) -> String {
    match unit {
        "nanoseconds" => format_nanoseconds(value),
        _ => value.to_string(),
    }
}

/// Nanoseconds with three significant digits in the largest unit that keeps the number at
/// least 1: `999ns`, `45.6us`, `1.23s`, `3600s`; 0 as `0`.
pub(crate) fn format_nanoseconds(value: i64) -> String {
    const UNITS: [(f64, &str); 4] = [(1.0, "ns"), (1e3, "us"), (1e6, "ms"), (1e9, "s")];
    if value == 0 {
        return "0".to_string();
    }
    let magnitude = (value as f64).abs();
    let mut unit = UNITS
        .iter()
        .rposition(|&(scale, _)| magnitude >= scale)
        .unwrap_or(0);
    loop {
        let (scale, name) = UNITS[unit];
        let number = three_digits(value as f64 / scale);
        // 999.96ms rounds to "1000": say 1s instead.
        if number.trim_start_matches('-') == "1000" && unit + 1 < UNITS.len() {
            unit += 1;
            continue;
        }
        return format!("{number}{name}");
    }
}

/// `number` with three significant digits (at least the integer part), trailing zeros of
/// the fraction dropped.
pub(crate) fn three_digits(number: f64) -> String {
    let magnitude = number.abs();
    let decimals = if magnitude < 10.0 {
        2
    } else if magnitude < 100.0 {
        1
    } else {
        0
    };
    let text = format!("{number:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
#[path = "top_tests.rs"]
mod tests;
