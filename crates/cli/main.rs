//! `wasmq`: run untrusted WebAssembly as batch jobs.
//!
//! This binary is only the command line: each subcommand is one file under `commands/`
//! with a clap `Args` struct and an `execute` method; the work is done by the library
//! crates.
//!
//! # Layout
//! - `commands/`: one file per subcommand (`run`, `worker`, `submit`, `results`,
//!   `prewarm`, `cache`).
//! - `config`: the TOML config file and the flags every command shares; config file <
//!   `WASMQ_*` environment < flags.
//! - `input`: reading job files (JSON, JSONL, directories, stdin) and turning `path`
//!   modules into `sha256` references in the module store.
//! - `output`: printing results and the summary.

mod commands;
mod config;
mod input;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run untrusted WebAssembly as batch jobs: compiled ahead of time, sandboxed, with
/// bounded CPU, memory, output and files.
#[derive(Parser)]
#[command(name = "wasmq", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(commands::run::RunCommand),
    Worker(commands::worker::WorkerCommand),
    Submit(commands::submit::SubmitCommand),
    Results(commands::results::ResultsCommand),
    Prewarm(commands::prewarm::PrewarmCommand),
    Cache(commands::cache::CacheCommand),
}

/// What a command reports: whether everything it did succeeded.
pub(crate) type Outcome = anyhow::Result<bool>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(c) => c.execute(),
        Command::Worker(c) => c.execute(),
        Command::Submit(c) => c.execute(),
        Command::Results(c) => c.execute(),
        Command::Prewarm(c) => c.execute(),
        Command::Cache(c) => c.execute(),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
