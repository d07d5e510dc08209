//! `wasmq config`: the effective settings and where each came from.

use clap::Args;

use crate::Outcome;
use crate::commands::worker::WorkerArgs;
use crate::config::{BrokerArgs, CommonArgs, SandboxArgs, Settings};

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
    pub fn execute(self) -> Outcome {
        let settings = Settings::start(&self.common, "warn")?;
        let concurrency = settings.concurrency(&self.sandbox);
        settings.sandbox_config(&self.sandbox)?;
        settings.fleet(&self.sandbox)?;
        settings.worker(&self.worker, concurrency)?;
        settings.amqp_url(&self.broker);
        settings.topology(&self.broker)?;
        let entries = settings.entries();
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
