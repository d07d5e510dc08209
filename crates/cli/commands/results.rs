//! `wasmq results`: read results from RabbitMQ as JSONL.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clap::{ArgMatches, Args};
use indicatif::{ProgressBar, ProgressStyle};
use wasmq_broker::client::Client;
use wasmq_spec::control::ResultMessage;

use crate::Outcome;
use crate::output::Printer;
use crate::settings::{self, BrokerSettings, ClientArgs};

/// Read results as JSONL, one per job: duplicates of a job (at-least-once delivery can
/// repeat one) are dropped.
///
/// Exit status: 0 when every result read succeeded (and, with --wait, all arrived), 1
/// otherwise, 2 for usage errors.
#[derive(Args)]
pub struct ResultsCommand {
    #[command(flatten)]
    client: ClientArgs,
    /// Read this batch's own result queue [default: the shared results queue].
    #[arg(long)]
    batch: Option<String>,
    /// Keep reading until every job has a result (the batch's size comes from `submit`,
    /// or from --expect).
    #[arg(long)]
    wait: bool,
    /// How many results to wait for.
    #[arg(long)]
    expect: Option<u64>,
    /// With --wait: give up after this many seconds [default: no limit].
    #[arg(long)]
    timeout: Option<u64>,
}

impl ResultsCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (_, broker) = settings::start_client(&self.client, matches, "warn")?;
        settings::runtime()?.block_on(self.run(broker))
    }

    async fn run(self, broker: BrokerSettings) -> Outcome {
        let BrokerSettings {
            amqp_url, topology, ..
        } = broker;
        if self.wait && self.batch.is_none() && self.expect.is_none() {
            anyhow::bail!("--wait needs --batch (whose size submit recorded) or --expect N");
        }
        let client = Client::connect(&amqp_url, "wasmq results", topology.clone()).await?;
        let queue = match &self.batch {
            Some(b) => client.find_batch_queue(b).await?,
            None => topology.results(),
        };
        let (ready, _) = client.queue_counts(&queue).await.map_err(|e| {
            anyhow::anyhow!("{e}; a batch's result queue exists from its submit until it is unused for the result TTL")
        })?;
        let mut sub = client.consume(&queue, 256).await?;
        let started = Instant::now();
        let deadline = self.timeout.map(|s| started + Duration::from_secs(s));
        let mut expected = self.expect;
        let mut seen: HashSet<String> = HashSet::new();
        let mut duplicates = 0u64;
        let mut read = 0u64;
        let mut printer = Printer::default();
        let bar = if self.wait {
            ProgressBar::new(expected.unwrap_or(0)).with_style(
                ProgressStyle::with_template("{spinner} results [{bar:30}] {pos}/{len} {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            )
        } else {
            ProgressBar::hidden()
        };
        loop {
            let done = if self.wait {
                expected.is_some_and(|n| printer.total() >= n)
            } else {
                read >= u64::from(ready)
            };
            if done {
                break;
            }
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), sub.next()).await {
                    Ok(m) => m,
                    Err(_) => break,
                },
                None => sub.next().await,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the broker closed the result queue {queue}"),
            };
            read += 1;
            match serde_json::from_slice::<ResultMessage>(&msg.body) {
                Ok(ResultMessage::Manifest { manifest }) => {
                    expected = Some(expected.unwrap_or(manifest.jobs));
                    bar.set_length(expected.unwrap_or(0));
                }
                Ok(ResultMessage::Result(r)) => {
                    // Results without an id (unparseable messages) are all kept.
                    if !r.id.is_empty() && !seen.insert(r.id.clone()) {
                        duplicates += 1;
                    } else {
                        bar.suspend(|| printer.print(&r))?;
                        bar.set_position(printer.total());
                    }
                }
                Err(e) => bar
                    .suspend(|| eprintln!("warning: skipping a message that is not a result: {e}")),
            }
            // After a reconnect the broker delivers the unacked results again: a failed ack
            // only means this one comes back, and is then dropped as a duplicate.
            if let Err(e) = msg.ack().await {
                bar.suspend(|| eprintln!("warning: {e}; the result will be read again"));
            }
        }
        bar.finish_and_clear();
        let mut summary = printer.summary(started.elapsed());
        if duplicates > 0 {
            summary.push_str(&format!(" ({duplicates} duplicate(s) dropped)"));
        }
        eprintln!("{summary}");
        client.close().await;
        if let Some(n) = expected.filter(|_| self.wait)
            && printer.total() < n
        {
            eprintln!("timed out: {} of {n} results arrived", printer.total());
            return Ok(false);
        }
        Ok(printer.all_succeeded())
    }
}
