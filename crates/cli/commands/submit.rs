//! `wasmq submit`: publish a batch of jobs to RabbitMQ.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine as _;
use clap::{ArgMatches, Args};
use indicatif::{ProgressBar, ProgressStyle};
use wasmq_broker::client::Client;
use wasmq_spec::control::BatchManifest;
use wasmq_spec::{Job, ModuleRef};

use crate::Outcome;
use crate::input::{Uploader, read_inputs, read_module};
use crate::settings::{self, BrokerSettings, ClientArgs, CommonSettings};

/// Publish jobs to the jobs queue as one batch, and prints the batch id.
///
/// The batch's own result queue (bound to `<batch>.#`) is declared before anything is
/// published, so no result can be missed; read it with `wasmq results --batch ID`.
#[derive(Args)]
pub struct SubmitCommand {
    #[command(flatten)]
    client: ClientArgs,
    /// The batch id given to every job [default: the batch the jobs name, when they all
    /// name the same one; otherwise a new id]. Job ids must be unique within a batch.
    #[arg(long)]
    batch: Option<String>,
    /// Embed `path` modules in the messages (base64) instead of uploading them to the
    /// module store the workers share.
    #[arg(long)]
    inline: bool,
    /// No longer used: a batch's results stream is kept `batch_results_max_age_secs`.
    #[arg(long, env = "WASMQ_RESULT_TTL_SECS", hide = true)]
    result_ttl_secs: Option<u32>,
    /// Job messages published but not yet confirmed, at most.
    #[arg(long, default_value_t = settings::defaults::SUBMIT_WINDOW)]
    window: usize,
    /// Job files (.json, .jsonl), directories of them, or - for stdin.
    #[arg(required = true, value_name = "JOB_FILE")]
    inputs: Vec<PathBuf>,
}

impl SubmitCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (common, broker) = settings::start_client(&self.client, matches, "warn")?;
        settings::runtime()?.block_on(self.run(common, broker))
    }

    async fn run(self, settings: CommonSettings, broker: BrokerSettings) -> Outcome {
        let BrokerSettings {
            amqp_url, topology, ..
        } = broker;
        if let Some(b) = &self.batch {
            let probe: Result<Job, _> =
                serde_json::from_value(serde_json::json!({"batch": b, "module": {"base64": ""}}));
            if let Err(r) = probe
                .map_err(|e| e.to_string())
                .and_then(|j: Job| j.validate().map_err(|r| r.message))
            {
                anyhow::bail!("invalid --batch: {r}");
            }
        }

        let entries = read_inputs(&self.inputs)?;
        let cache = settings.open_cache()?;
        let mut uploader =
            Uploader::new(&cache).with_registry(settings.registry(), settings.pushes_to_registry());
        let mut inline: HashMap<PathBuf, Result<String, String>> = HashMap::new();
        let mut accepted = Vec::with_capacity(entries.len());
        let mut refused = 0u64;
        for entry in entries {
            let mut job = match entry.job {
                Ok(j) => j,
                Err(r) => {
                    eprintln!("error: {}", r.message);
                    refused += 1;
                    continue;
                }
            };
            let resolved = match (&job.module, self.inline) {
                (ModuleRef::Path(rel), true) => {
                    let path = entry.base.join(rel);
                    let got = inline.entry(path.clone()).or_insert_with(|| {
                        read_module(&path)
                            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                            .map_err(|e| format!("{e:#}"))
                    });
                    match got {
                        Ok(b64) => {
                            job.module = ModuleRef::Base64(b64.clone());
                            Ok(())
                        }
                        Err(why) => Err(format!(
                            "{}: module.path {}: {why}",
                            entry.origin,
                            rel.display()
                        )),
                    }
                }
                _ => uploader
                    .resolve(&mut job, &entry.base, &entry.origin)
                    .map_err(|r| r.message),
            };
            if let Err(why) = resolved {
                eprintln!("error: {why}");
                refused += 1;
                continue;
            }
            accepted.push((entry.origin, job));
        }

        // Results are matched to jobs by id, so ids must be unique within a batch.
        let mut first_seen: HashMap<String, String> = HashMap::new();
        let mut jobs = Vec::with_capacity(accepted.len());
        for (origin, job) in accepted {
            if let Some(first) = first_seen.get(job.id()) {
                eprintln!(
                    "error: {origin}: id {:?} is already used by {first}; ids must be unique within a batch",
                    job.id()
                );
                refused += 1;
                continue;
            }
            first_seen.insert(job.id().to_owned(), origin);
            jobs.push(job);
        }
        let batch = self.batch.clone().unwrap_or_else(|| common_batch(&jobs));
        if self.batch.is_none()
            && jobs
                .iter()
                .any(|j| j.batch.as_deref().is_some_and(|b| b != batch))
        {
            eprintln!(
                "warning: the jobs name different batches; all were submitted as batch {batch}"
            );
        }
        let mut bodies = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            job.batch = Some(batch.clone());
            bodies.push((job.id().to_owned(), serde_json::to_vec(&job)?));
        }

        let client = Client::connect(&amqp_url, "wasmq submit", topology.clone()).await?;
        if self.result_ttl_secs.is_some() {
            eprintln!(
                "warning: --result-ttl-secs (WASMQ_RESULT_TTL_SECS) no longer applies: a batch's results are kept for batch_results_max_age_secs ({} s here)",
                topology.batch_retention.max_age_secs
            );
        }
        client.declare_batch_queue(&batch).await?;
        let total = bodies.len() as u64;
        let bar = ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{spinner} submitting [{bar:30}] {pos}/{len} {per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let started = Instant::now();
        let published = client
            .publish_jobs(&bodies, self.window, |n| bar.set_position(n))
            .await
            .context("publishing jobs")?;
        bar.finish_and_clear();
        let manifest = serde_json::json!({ "manifest": BatchManifest { batch: batch.clone(), jobs: published } });
        client
            .send_manifest(&batch, &serde_json::to_vec(&manifest)?)
            .await
            .context("recording the batch size")?;
        let secs = started.elapsed().as_secs_f64();
        client.close().await;
        println!("{batch}");
        eprintln!(
            "submitted {published} jobs to batch {batch} in {secs:.2} s ({:.0} jobs/s); read results with: wasmq results --batch {batch} --wait",
            published as f64 / secs.max(1e-9)
        );
        if refused > 0 {
            eprintln!("{refused} job(s) could not be submitted (see above)");
        }
        Ok(refused == 0)
    }
}

/// The batch every job names, when they all name the same one; otherwise a new id.
fn common_batch(jobs: &[Job]) -> String {
    let first = jobs.first().and_then(|j| j.batch.clone());
    match first {
        Some(b) if jobs.iter().all(|j| j.batch.as_deref() == Some(b.as_str())) => b,
        _ => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("b{:x}{:x}", nanos, std::process::id())
        }
    }
}
