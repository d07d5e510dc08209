//! `wasmq prewarm`: compile modules into the cache ahead of the jobs that use them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgMatches, Args};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use wasmq_broker::client::Client;
use wasmq_spec::CacheOutcome;
use wasmq_spec::control::{PrewarmOutcome, PrewarmReply, PrewarmRequest};

use crate::Outcome;
use crate::input::{read_module, upload};
use crate::settings::{
    self, BrokerArgs, BrokerSettings, CommonArgs, CommonSettings, SandboxArgs, SandboxSettings,
};

/// Upload modules to the module store and compile them into the artifact cache.
///
/// Prints each module's sha256 (what jobs refer to) and its compile time. With
/// --broadcast, every live worker compiles them into its own cache instead, and each
/// reports back when ready.
#[derive(Args)]
pub struct PrewarmCommand {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    broker: BrokerArgs,
    /// Ask every worker consuming the jobs queue to compile the modules (they read them
    /// from the module store they share with this command).
    #[arg(long)]
    broadcast: bool,
    /// With --broadcast: seconds to wait for every worker's answer.
    #[arg(long, default_value_t = settings::defaults::PREWARM_TIMEOUT_SECS)]
    timeout: u64,
    /// Module files (.wasm, or .wat text).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

impl PrewarmCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (layers, common) = settings::start(&self.common, matches, "warn")?;
        if self.broadcast {
            let broker = BrokerSettings::resolve(&layers, &self.broker)?;
            return settings::runtime()?.block_on(self.broadcast(common, broker));
        }
        let sandbox = SandboxSettings::resolve(&layers, &self.sandbox)?;
        settings::runtime()?.block_on(self.run(common, sandbox))
    }

    async fn run(self, settings: CommonSettings, sandbox: SandboxSettings) -> Outcome {
        let parallel = Arc::new(Semaphore::new(sandbox.concurrency.max(1)));
        let (cache, sandbox) = sandbox.open(&settings)?;
        let bar = ProgressBar::new(self.files.len() as u64).with_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let registry = settings.pushes_to_registry().then(|| settings.registry());
        let mut tasks = JoinSet::new();
        for path in self.files {
            let (cache, sandbox, parallel) = (cache.clone(), sandbox.clone(), parallel.clone());
            let registry = registry.clone();
            tasks.spawn(async move {
                let _permit = parallel.acquire_owned().await.expect("never closed");
                let bytes = match read_module(&path) {
                    Ok(b) => b,
                    Err(e) => return (path, Err(format!("{e:#}"))),
                };
                if let Some(registry) = &registry
                    && let Err(e) = registry.push_module(&bytes).await
                {
                    return (path, Err(format!("could not push the module: {e}")));
                }
                if let Err(e) = cache.put_module(&bytes) {
                    return (path, Err(format!("could not store the module: {e}")));
                }
                (
                    path,
                    sandbox.prewarm(bytes).await.map_err(|e| e.to_string()),
                )
            });
        }
        let mut ok = true;
        while let Some(joined) = tasks.join_next().await {
            let (path, outcome) = joined.context("a prewarm task panicked")?;
            bar.inc(1);
            match outcome {
                Ok(p) => {
                    let how = match p.outcome {
                        CacheOutcome::Compiled => format!("compiled in {} ms", p.compile_us / 1000),
                        CacheOutcome::HitDisk | CacheOutcome::HitMemory => {
                            "already cached".to_owned()
                        }
                        CacheOutcome::HitRemote => {
                            "pulled from the shared artifact store".to_owned()
                        }
                    };
                    bar.suspend(|| println!("sha256:{}  {how}  {}", p.digest, path.display()));
                }
                Err(why) => {
                    ok = false;
                    bar.suspend(|| eprintln!("error: {}: {why}", path.display()));
                }
            }
        }
        bar.finish_and_clear();
        Ok(ok)
    }

    /// Uploads the modules and asks every live worker to compile them.
    async fn broadcast(self, settings: CommonSettings, broker: BrokerSettings) -> Outcome {
        let cache = settings.open_cache()?;
        let registry = settings.pushes_to_registry().then(|| settings.registry());
        let mut modules = Vec::new();
        for path in &self.files {
            let hex = upload(&cache, registry.as_deref(), path)?;
            println!("sha256:{hex}  uploaded  {}", path.display());
            modules.push(hex);
        }
        let BrokerSettings {
            amqp_url, topology, ..
        } = broker;
        let client = Client::connect(&amqp_url, "wasmq prewarm", topology.clone()).await?;
        let (_, workers) = client.queue_counts(&topology.jobs_queue()).await?;
        if workers == 0 {
            anyhow::bail!(
                "no worker is consuming {}; start one with `wasmq worker`",
                topology.jobs_queue()
            );
        }
        let mut replies = client.private_queue(false).await?;
        let correlation = format!("prewarm-{}", std::process::id());
        let request = serde_json::to_vec(&PrewarmRequest {
            modules: modules.clone(),
        })?;
        client
            .broadcast(&request, &replies.queue, &correlation)
            .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.timeout);
        let mut answered = 0u32;
        let mut ok = true;
        while answered < workers {
            let msg = match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(None) => anyhow::bail!("the reply queue closed"),
                Err(_) => break,
            };
            if msg.correlation_id.as_deref() != Some(correlation.as_str()) {
                msg.ack().await?;
                continue;
            }
            let reply: PrewarmReply =
                serde_json::from_slice(&msg.body).context("a worker sent an unreadable reply")?;
            msg.ack().await?;
            answered += 1;
            let failed: Vec<&PrewarmOutcome> = reply
                .modules
                .iter()
                .filter(|m| m.outcome == "failed")
                .collect();
            let compiled = reply
                .modules
                .iter()
                .filter(|m| m.outcome == "compiled")
                .count();
            let cached = reply
                .modules
                .iter()
                .filter(|m| m.outcome == "cached")
                .count();
            if failed.is_empty() && reply.modules.len() == modules.len() {
                println!(
                    "worker {} ready: {compiled} compiled, {cached} already cached",
                    reply.worker
                );
            } else {
                ok = false;
                println!("worker {} not ready:", reply.worker);
                for f in failed {
                    println!(
                        "  sha256:{}: {}",
                        f.sha256,
                        f.error.as_deref().unwrap_or("failed")
                    );
                }
            }
        }
        client.close().await;
        if answered < workers {
            eprintln!(
                "error: {answered} of {workers} workers answered within {} s",
                self.timeout
            );
            return Ok(false);
        }
        Ok(ok)
    }
}
