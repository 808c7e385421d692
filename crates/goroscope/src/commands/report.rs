//! `goroscope report DATA.json`: render the HTML report again from a recording written by
//! `goroscope record --format json`, so a recording can be kept, re-rendered or compared later.

use anyhow::Context;
use goroscope_model::recording::Recording;

use crate::cli::ReportArgs;
use crate::output_file::OutputFile;
use crate::settings::UsageError;

/// Runs the command.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read(&args.data).map_err(|e| {
        UsageError(format!(
            "cannot read the recording {}: {e}; give the JSON file `goroscope record --format json` wrote",
            args.data.display()
        ))
    })?;
    let recording: Recording = serde_json::from_slice(&text).map_err(|e| {
        UsageError(format!(
            "{} is not a goroscope recording: {e}; give the JSON file `goroscope record --format json` wrote",
            args.data.display()
        ))
    })?;
    super::record::check_format(&recording)?;
    let mut output = OutputFile::prepare(&args.output, "the report")?;
    let html = super::record::render_html(&recording)?;
    output
        .write(html.as_bytes())
        .context("writing the report")?;
    eprintln!(
        "goroscope: wrote {} ({} KiB) from {}",
        args.output.display(),
        html.len().div_ceil(1024),
        args.data.display()
    );
    Ok(())
}
