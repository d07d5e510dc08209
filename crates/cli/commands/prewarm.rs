//! `wasmq prewarm`: compile modules into the cache ahead of the jobs that use them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use wasmq_spec::CacheOutcome;

use crate::Outcome;
use crate::config::{CommonArgs, SandboxArgs, Settings};
use crate::input::read_module;

/// Upload modules to the module store and compile them into the artifact cache.
///
/// Prints each module's sha256 (what jobs refer to) and its compile time.
#[derive(Args)]
pub struct PrewarmCommand {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Module files (.wasm, or .wat text).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

impl PrewarmCommand {
    pub fn execute(self) -> Outcome {
        let settings = Settings::load(&self.common)?;
        settings.init_logging("warn");
        let runtime = settings.runtime()?;
        runtime.block_on(self.run(settings))
    }

    async fn run(self, settings: Settings) -> Outcome {
        let (cache, sandbox) = settings.sandbox(&self.sandbox)?;
        let parallel = Arc::new(Semaphore::new(settings.concurrency(&self.sandbox).max(1)));
        let bar = ProgressBar::new(self.files.len() as u64).with_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let mut tasks = JoinSet::new();
        for path in self.files {
            let (cache, sandbox, parallel) = (cache.clone(), sandbox.clone(), parallel.clone());
            tasks.spawn(async move {
                let _permit = parallel.acquire_owned().await.expect("never closed");
                let bytes = match read_module(&path) {
                    Ok(b) => b,
                    Err(e) => return (path, Err(format!("{e:#}"))),
                };
                if let Err(e) = cache.put_module(&bytes) {
                    return (path, Err(format!("could not store the module: {e}")));
                }
                (path, sandbox.prewarm(bytes).await)
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
}
