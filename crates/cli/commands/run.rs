//! `wasmq run`: run jobs locally on the in-process queue; no broker needed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{ArgMatches, Args};
use tokio_util::sync::CancellationToken;
use wasmq_queue::MemoryQueue;
use wasmq_spec::JobResult;
use wasmq_worker::{Worker, WorkerConfig};

use crate::Outcome;
use crate::input::{Uploader, read_inputs};
use crate::output::Printer;
use crate::settings::{self, CommonArgs, CommonSettings, SandboxArgs, SandboxSettings};

/// Run jobs on this machine, in parallel sandboxes, and print one result per line.
///
/// Exit status: 0 when every job succeeded, 1 when any did not, 2 for usage or
/// configuration errors.
#[derive(Args)]
pub struct RunCommand {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Job files (.json: one job or an array; .jsonl: one job per line), directories of
    /// them, or - for stdin.
    #[arg(required = true, value_name = "JOB_FILE")]
    inputs: Vec<PathBuf>,
}

impl RunCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (layers, common) = settings::start(&self.common, matches, "warn")?;
        let sandbox = SandboxSettings::resolve(&layers, &self.sandbox)?;
        settings::runtime()?.block_on(self.run(common, sandbox))
    }

    async fn run(self, settings: CommonSettings, sandbox: SandboxSettings) -> Outcome {
        let concurrency = sandbox.concurrency;
        let (cache, sandbox) = sandbox.open_local(&settings)?;
        let entries = read_inputs(&self.inputs)?;
        let started = Instant::now();
        let (queue, mut results) = MemoryQueue::new();
        let queue = Arc::new(queue);
        let mut printer = Printer::default();
        let mut uploader = Uploader::local(&cache).with_registry(settings.registry(), false);
        let mut pending: u64 = 0;
        for entry in entries {
            let mut job = match entry.job {
                Ok(job) => job,
                Err(rejected) => {
                    printer.print(&rejected)?;
                    continue;
                }
            };
            if let Err(r) = uploader.resolve(&mut job, &entry.base, &entry.origin) {
                printer.print(&JobResult::rejected(job.id(), job.batch.clone(), &r))?;
                continue;
            }
            queue.submit(serde_json::to_vec(&job)?)?;
            pending += 1;
        }
        queue.close();

        let shutdown = CancellationToken::new();
        let worker = Worker::new(
            sandbox,
            queue.clone(),
            WorkerConfig {
                concurrency,
                worker_id: "local".into(),
                max_message_bytes: usize::MAX,
            },
        );
        let token = shutdown.clone();
        let mut worker = tokio::spawn(async move { worker.run(token).await });
        let interrupt = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "interrupted: finishing the jobs in flight (press ctrl-c again to stop now)"
                );
                interrupt.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });

        while pending > 0 {
            tokio::select! {
                Some(r) = results.recv() => {
                    printer.print(&r)?;
                    pending -= 1;
                }
                joined = &mut worker => {
                    joined.context("the worker loop panicked")?;
                    // Results published before the loop ended are still in the channel.
                    while let Ok(r) = results.try_recv() {
                        printer.print(&r)?;
                        pending -= 1;
                    }
                    break;
                }
            }
        }
        eprintln!("{}", printer.summary(started.elapsed()));
        if pending > 0 {
            eprintln!("{pending} job(s) were not run");
            return Ok(false);
        }
        Ok(printer.all_succeeded())
    }
}
