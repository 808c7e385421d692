//! The `doctor` report as a table or one JSON object.

use std::io::{self, Write};

use crate::commands::doctor::DoctorReport;

use super::safe;

/// Writes the report as a table.
pub fn write_table(out: &mut impl Write, report: &DoctorReport) -> io::Result<()> {
    let mut group = "";
    for check in &report.checks {
        if check.group != group {
            group = check.group;
            writeln!(out, "\n{}", group.to_uppercase())?;
        }
        let mark = match (check.ok, check.required) {
            (true, _) => "ok  ",
            (false, true) => "FAIL",
            (false, false) => "no  ",
        };
        let mut lines = check.detail.lines();
        writeln!(
            out,
            "  {mark} {:<14} {}",
            check.name,
            safe(lines.next().unwrap_or(""))
        )?;
        for line in lines {
            writeln!(out, "  {:<4} {:<14}   {}", "", "", safe(line))?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "attach mode: {}",
        report.attach_mode.as_deref().unwrap_or("none")
    )?;
    writeln!(
        out,
        "lost during self-tests: kernel {}, queue {}",
        report.kernel_losses, report.queue_drops
    )?;
    writeln!(
        out,
        "core collectors: {}",
        if report.core_collectors_ok {
            "ready"
        } else {
            "NOT READY"
        }
    )
}

/// Writes the report as one JSON object.
pub fn write_json(out: &mut impl Write, report: &DoctorReport) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
