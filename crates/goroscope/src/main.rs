//! goroscope: one binary that observes a Linux host and the Go services on
//! it with eBPF. This file wires the command line to the commands and turns
//! their outcome into an exit code: 0 done, 1 failed, 2 bad input or privileges.

mod agent;
mod cli;
mod clock;
mod commands;
mod output;
mod output_file;
mod run_control;
mod settings;
mod sink;
mod tcp_seed;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::settings::UsageError;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with code 2.
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Doctor(args) => commands::doctor::run(args),
        Command::Trace(args) => commands::trace::run(args),
        Command::Syscalls(args) => commands::syscalls::run(args),
        Command::Goroutines(args) => commands::goroutines::run(args),
        Command::Profile(args) => commands::profile::run(args),
        Command::Record(args) => commands::record::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Agent(args) => agent::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<UsageError>().is_some() => {
            eprintln!("goroscope: {}", message(&err.to_string()));
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("goroscope: error: {}", message(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

/// An error message made safe for a terminal. Names and paths are escaped where they are put
/// into messages (goroscope-model's rule); as a last line of defence every control character
/// left is escaped the same way, except the newlines that separate a message's lines (a
/// verifier log): lines after the first are indented, so a newline smuggled in a name can
/// never start a line that reads like a message of its own.
fn message(text: &str) -> String {
    text.split('\n')
        .map(goroscope_model::escape_controls)
        .collect::<Vec<_>>()
        .join("\n  ")
}
