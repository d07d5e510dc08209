//! `wasmq`: run untrusted WebAssembly as batch jobs.
//!
//! This binary is only the command line: each subcommand is one file under `commands/`
//! with a clap `Args` struct and an `execute` method; the work is done by the library
//! crates.
//!
//! # Layout
//! - `commands/`: one file per subcommand (`run`, `worker`, `submit`, `results`,
//!   `prewarm`, `cache`, `status`, `dead`, `config`, `cancel`, `snapshot`).
//! - `input`: reading job files (JSON, JSONL, directories, stdin) and turning `path`
//!   modules into `sha256` references in the module store.
//! - `output`: printing results and the summary.
//! - `settings`: the flags, `WASMQ_*` environment variables and TOML config file, layered
//!   (config file < environment < flags) and resolved into each command's settings.

mod commands;
mod input;
mod output;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    Result(commands::results::ResultCommand),
    Prewarm(commands::prewarm::PrewarmCommand),
    Cache(commands::cache::CacheCommand),
    Config(commands::config::ConfigCommand),
    Dead(commands::dead::DeadCommand),
    Status(commands::status::StatusCommand),
    Dashboard(commands::dashboard::DashboardCommand),
    Cancel(commands::cancel::CancelCommand),
    Snapshot(commands::snapshot::SnapshotCommand),
}

/// What a command reports: whether everything it did succeeded.
pub(crate) type Outcome = anyhow::Result<bool>;

fn main() -> ExitCode {
    quiet_error_backtraces();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // A command's own matches tell its flags from their environment variables.
    let (_, own) = matches.subcommand().expect("clap requires a subcommand");
    let outcome = match cli.command {
        Command::Run(c) => c.execute(own),
        Command::Worker(c) => c.execute(own),
        Command::Submit(c) => c.execute(own),
        Command::Results(c) => c.execute(own),
        Command::Result(c) => c.execute(own),
        Command::Prewarm(c) => c.execute(own),
        Command::Cache(c) => c.execute(own),
        Command::Config(c) => c.execute(own),
        Command::Dead(c) => c.execute(own),
        Command::Status(c) => c.execute(own),
        Command::Dashboard(c) => c.execute(own),
        Command::Cancel(c) => c.execute(own),
        Command::Snapshot(c) => c.execute(own),
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

/// Turns off backtraces of library errors (`RUST_LIB_BACKTRACE=0`) unless the operator
/// chose otherwise; panics keep theirs (`RUST_BACKTRACE`).
///
/// Errors are part of the normal path of a job: every guest that calls `proc_exit` leaves
/// wasm through an error value. With `RUST_BACKTRACE=1` and no `RUST_LIB_BACKTRACE`, each
/// of those captured a native backtrace, which cost about 10 µs per job (a Rust hello-world
/// job took 25.9 µs instead of 15.1 µs).
#[allow(unsafe_code)]
fn quiet_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: this is the first statement of `main`: no other thread exists yet, so
        // nothing can read or write the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
