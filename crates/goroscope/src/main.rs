//! goroscope: one binary that observes a Linux host and the Go services on
//! it with eBPF. This file wires the command line to the commands and turns
//! their outcome into an exit code: 0 done, 1 failed, 2 bad input or privileges.

mod agent;
mod cli;
mod clock;
mod commands;
mod output;
mod run_control;
mod settings;
mod sink;

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
        Command::Agent(args) => agent::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<UsageError>().is_some() => {
            eprintln!("goroscope: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("goroscope: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
