//! The `syscalls` report: a table sorted by total time, or a JSON array. The table escapes
//! process names (goroscope-model's rule); JSON adds `comm_base64` when a name is not UTF-8.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

use goroscope_model::{
    base64_if_not_utf8, bucket_upper_bound_ns, errno_name, escaped, SyscallRow, LATENCY_BUCKETS,
};
use serde::Serialize;

use super::HumanNs;

#[derive(Serialize)]
struct JsonRow<'a> {
    pid: u32,
    comm: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm_base64: Option<String>,
    syscall: Cow<'static, str>,
    syscall_nr: u32,
    count: u64,
    error_count: u64,
    errors: BTreeMap<Cow<'static, str>, u64>,
    total_ns: u64,
    p50_ns: Option<u64>,
    p99_ns: Option<u64>,
    max_ns: u64,
    /// Calls whose latency was measured; the latency figures stand for all calls.
    timed: u64,
    /// Non-empty latency buckets: (upper bound in ns, or null for +Inf; count).
    latency_buckets: Vec<(Option<f64>, u64)>,
}

fn errno_label(errno: u32) -> Cow<'static, str> {
    match errno_name(errno) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("errno_{errno}")),
    }
}

fn json_row(row: &SyscallRow) -> JsonRow<'_> {
    let latency_buckets = row
        .histogram
        .buckets()
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| {
            let upper = (i + 1 < LATENCY_BUCKETS).then(|| bucket_upper_bound_ns(i));
            (upper, n)
        })
        .collect();
    JsonRow {
        pid: row.pid,
        comm: &row.comm,
        comm_base64: base64_if_not_utf8(row.exact_comm()),
        syscall: row.syscall_name(),
        syscall_nr: row.syscall_nr,
        count: row.count,
        error_count: row.error_count,
        errors: row
            .errors
            .iter()
            .map(|(&e, &n)| (errno_label(e), n))
            .collect(),
        total_ns: row.total_ns,
        p50_ns: row.p50_ns(),
        p99_ns: row.p99_ns(),
        max_ns: row.max_ns,
        timed: row.timed,
        latency_buckets,
    }
}

/// Writes the rows (already sorted) as one JSON array.
pub fn write_json(out: &mut impl Write, rows: &[SyscallRow]) -> io::Result<()> {
    let json: Vec<JsonRow<'_>> = rows.iter().map(json_row).collect();
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out)
}

/// Writes the rows (already sorted) as a table.
pub fn write_text(out: &mut impl Write, rows: &[SyscallRow]) -> io::Result<()> {
    writeln!(
        out,
        "{:>8} {:<16} {:<20} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9}  ERRORS",
        "PID", "COMM", "SYSCALL", "COUNT", "FAILED", "TOTAL", "P50", "P99", "MAX"
    )?;
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| HumanNs(v).to_string());
    for row in rows {
        let errors: Vec<String> = row
            .errors
            .iter()
            .map(|(&e, &n)| format!("{}:{n}", errno_label(e)))
            .collect();
        writeln!(
            out,
            "{:>8} {:<16} {:<20} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9}  {}",
            row.pid,
            escaped(row.exact_comm()),
            row.syscall_name(),
            row.count,
            row.error_count,
            HumanNs(row.total_ns).to_string(),
            opt(row.p50_ns()),
            opt(row.p99_ns()),
            HumanNs(row.max_ns).to_string(),
            errors.join(" ")
        )?;
    }
    if rows.is_empty() {
        writeln!(out, "(no syscalls seen)")?;
    }
    let counted: u64 = rows.iter().map(|r| r.count).sum();
    let timed: u64 = rows.iter().map(|r| r.timed).sum();
    if timed < counted {
        writeln!(
            out,
            "(latency from {timed} timed calls of {counted}: TOTAL, P50 and P99 are estimates, \
             each timed call standing for the calls since its thread's previous one; \
             --timed-calls all times every call)"
        )?;
    }
    Ok(())
}
