//! `wasmq cancel`: stop jobs of a batch, or jobs by id, on every worker.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{ArgMatches, Args};
use wasmq_broker::client::Client;
use wasmq_spec::control::{CancelReply, CancelRequest, CancelTarget};

use crate::Outcome;
use crate::settings::{self, BrokerSettings, ClientArgs};

/// Cancel jobs: every job of a batch, or jobs by id.
///
/// Jobs not yet started end `cancelled` without running; running jobs are stopped and end
/// `cancelled` with their output so far. The cancel reaches every worker, and holds for 24
/// hours for jobs delivered later (after a worker restart too). It applies only to jobs
/// published by the same broker user as this command: a tenant cancels its own jobs.
#[derive(Args)]
pub struct CancelCommand {
    #[command(flatten)]
    client: ClientArgs,
    /// Cancel every job of this batch.
    #[arg(long, conflicts_with = "ids")]
    batch: Option<String>,
    /// Seconds to wait for the workers' answers (which running jobs each one stopped).
    #[arg(long, default_value_t = settings::defaults::CANCEL_WAIT_SECS)]
    wait: f64,
    /// Ids of the jobs to cancel.
    #[arg(value_name = "ID", required_unless_present = "batch")]
    ids: Vec<String>,
}

impl CancelCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (_, broker) = settings::start_client(&self.client, matches, "warn")?;
        settings::runtime()?.block_on(self.run(broker))
    }

    async fn run(self, broker: BrokerSettings) -> Outcome {
        let wait = Duration::try_from_secs_f64(self.wait).map_err(|_| {
            anyhow::anyhow!("--wait must be a number of seconds, not {}", self.wait)
        })?;
        let client = Client::connect(&broker.amqp_url, "wasmq cancel", broker.topology).await?;
        let sent_at_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let request = CancelRequest {
            cancel: CancelTarget {
                batch: self.batch.clone(),
                ids: self.ids.clone(),
            },
            sent_at_ms,
        };
        let mut replies = client.private_queue(false).await?;
        let correlation = format!("cancel-{}-{sent_at_ms}", std::process::id());
        client
            .broadcast(&serde_json::to_vec(&request)?, &replies.queue, &correlation)
            .await?;
        let what = match &self.batch {
            Some(b) => format!("batch {b}"),
            None => format!("{} job(s)", self.ids.len()),
        };
        eprintln!("cancel of {what} sent to every worker; it holds for 24 h");
        let deadline = tokio::time::Instant::now() + wait;
        let (mut workers, mut stopped) = (0u32, 0usize);
        loop {
            let msg = match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(None) | Err(_) => break,
            };
            if msg.correlation_id.as_deref() != Some(correlation.as_str()) {
                msg.ack().await?;
                continue;
            }
            let reply: CancelReply =
                serde_json::from_slice(&msg.body).context("a worker sent an unreadable reply")?;
            msg.ack().await?;
            workers += 1;
            stopped += reply.stopped.len();
            for id in &reply.stopped {
                println!("stopped {id} on {}", reply.worker);
            }
        }
        client.close().await;
        eprintln!(
            "{workers} worker(s) answered within {:.1} s; {stopped} running job(s) stopped",
            wait.as_secs_f64()
        );
        Ok(true)
    }
}
