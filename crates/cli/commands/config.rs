//! `wasmq config`: the effective settings and where each came from.

use clap::{ArgMatches, Args};

use crate::Outcome;
use crate::settings::{
    self, BrokerArgs, BrokerSettings, CommonArgs, SandboxArgs, SandboxSettings, WorkerArgs,
    WorkerSettings,
};

/// Print the settings `wasmq worker` would run with, given the same config file,
/// environment and flags, each with where its value came from: default, file, env or
/// flag. Secrets are redacted (the broker URL's password; the artifact key is never
/// read). Exits 2, as the worker would, when a setting is invalid.
#[derive(Args)]
pub struct ConfigCommand {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    /// Print one JSON object per setting: {"key", "value", "source"}.
    #[arg(long)]
    json: bool,
}

impl ConfigCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (layers, common) = settings::start(&self.common, matches, "warn")?;
        let sandbox = SandboxSettings::resolve(&layers, &self.sandbox)?;
        let worker = WorkerSettings::resolve(&layers, &self.worker, sandbox.concurrency)?;
        let broker = BrokerSettings::resolve(&layers, &self.broker)?;
        let entries: Vec<_> = [
            &common.entries,
            &sandbox.entries,
            &worker.entries,
            &broker.entries,
        ]
        .into_iter()
        .flat_map(|group| group.iter())
        .collect();
        if self.json {
            for e in &entries {
                println!(
                    "{}",
                    serde_json::json!({"key": e.key, "value": e.value, "source": e.source.as_str()})
                );
            }
        } else {
            let width = entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
            for e in &entries {
                println!("{:<width$}  {:<8}  {}", e.key, e.source.as_str(), e.value);
            }
        }
        Ok(true)
    }
}
