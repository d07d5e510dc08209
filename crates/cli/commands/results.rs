//! `wasmq results` and `wasmq result`: read results from RabbitMQ as JSONL.
//!
//! A batch's results are in its own stream: reading leaves them there, for the next read
//! and for any number of readers at once; only the batch's retention removes them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use clap::{ArgMatches, Args};
use indicatif::{ProgressBar, ProgressStyle};
use wasmq_broker::client::{Client, Subscription, marker_of};
use wasmq_spec::control::ResultMessage;
use wasmq_spec::{JobResult, Status};

use crate::Outcome;
use crate::output::Printer;
use crate::settings::{self, BrokerSettings, ClientArgs};

/// Read results as JSONL, one per job: duplicates of a job (at-least-once delivery can
/// repeat one) are dropped.
///
/// With --batch, the batch's results stream is read from its first result, and nothing is
/// removed: run it again, or from several places at once, and the same results come.
/// Without --wait or --follow it prints the results published so far (of a job run twice,
/// the latest attempt) and exits; --wait follows until every job has a result; --follow
/// keeps following. Without --batch, the shared results queue is read, and what is read
/// is taken off it.
///
/// Exit status: 0 when every result printed succeeded (and, with --wait, all arrived), 1
/// otherwise, 2 for usage errors.
#[derive(Args)]
pub struct ResultsCommand {
    #[command(flatten)]
    client: ClientArgs,
    /// Read this batch's results stream [default: the shared results queue].
    #[arg(long)]
    batch: Option<String>,
    /// Keep reading until every job has a result (the batch's size comes from `submit`,
    /// or from --expect).
    #[arg(long, conflicts_with = "follow")]
    wait: bool,
    /// Keep reading new results as they come, until interrupted (or --timeout).
    #[arg(long, requires = "batch")]
    follow: bool,
    /// Print only results of these statuses (comma-separated, or repeated).
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    status: Vec<Status>,
    /// How many results to wait for.
    #[arg(long)]
    expect: Option<u64>,
    /// With --wait or --follow: give up after this many seconds [default: no limit].
    #[arg(long)]
    timeout: Option<u64>,
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| {
            let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            format!("{text:?} is not a status; one of {}", all.join(", "))
        })
}

/// Print one job's result: the latest attempt of job ID in the batch's results stream.
///
/// Exit status: 0 when the result is `succeeded`, 1 when it is another status or there is
/// no result for the job (yet), 2 for usage errors.
#[derive(Args)]
pub struct ResultCommand {
    #[command(flatten)]
    client: ClientArgs,
    /// The job's id.
    id: String,
    /// The job's batch.
    #[arg(long)]
    batch: String,
}

impl ResultCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (_, broker) = settings::start_client(&self.client, matches, "warn")?;
        settings::runtime()?.block_on(self.run(broker))
    }

    async fn run(self, broker: BrokerSettings) -> Outcome {
        let client = Client::connect(&broker.amqp_url, "wasmq result", broker.topology).await?;
        let messages = client.read_batch(&self.batch).await.map_err(not_found)?;
        client.close().await;
        let mut latest = Latest::default();
        for body in messages {
            if let Ok(ResultMessage::Result(r)) = serde_json::from_slice(&body)
                && r.id == self.id
            {
                latest.offer(*r);
            }
        }
        let Some(r) = latest.into_results().into_iter().next() else {
            eprintln!(
                "no result for job {:?} in batch {} (yet)",
                self.id, self.batch
            );
            return Ok(false);
        };
        let mut printer = Printer::default();
        printer.print(&r)?;
        Ok(printer.all_succeeded())
    }
}

fn not_found(e: wasmq_broker::BrokerError) -> anyhow::Error {
    anyhow::anyhow!(
        "{e}; a batch's results stream exists from its submit until its retention (batch_results_max_age_secs) ends"
    )
}

/// The latest attempt of each job, in the order the jobs first came.
#[derive(Default)]
struct Latest {
    order: Vec<String>,
    by_id: HashMap<String, JobResult>,
    /// Results without an id (unparseable messages), all kept.
    anonymous: Vec<JobResult>,
    duplicates: u64,
}

impl Latest {
    fn offer(&mut self, r: JobResult) {
        if r.id.is_empty() {
            self.anonymous.push(r);
            return;
        }
        match self.by_id.get_mut(&r.id) {
            Some(kept) => {
                self.duplicates += 1;
                if r.attempt >= kept.attempt {
                    *kept = r;
                }
            }
            None => {
                self.order.push(r.id.clone());
                self.by_id.insert(r.id.clone(), r);
            }
        }
    }

    fn into_results(mut self) -> Vec<JobResult> {
        let mut out: Vec<JobResult> = self
            .order
            .iter()
            .filter_map(|id| self.by_id.remove(id))
            .collect();
        out.append(&mut self.anonymous);
        out
    }
}

impl ResultsCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (_, broker) = settings::start_client(&self.client, matches, "warn")?;
        settings::runtime()?.block_on(self.run(broker))
    }

    fn wanted(&self, r: &JobResult) -> bool {
        self.status.is_empty() || self.status.contains(&r.status)
    }

    async fn run(self, broker: BrokerSettings) -> Outcome {
        let BrokerSettings {
            amqp_url, topology, ..
        } = broker;
        if self.wait && self.batch.is_none() && self.expect.is_none() {
            anyhow::bail!("--wait needs --batch (whose size submit recorded) or --expect N");
        }
        let client = Client::connect(&amqp_url, "wasmq results", topology.clone()).await?;
        let started = Instant::now();
        let outcome = match &self.batch {
            Some(b) if !self.wait && !self.follow => self.read_so_far(&client, b, started).await,
            Some(b) => {
                let queue = client.find_batch_queue(b).await?;
                client.queue_counts(&queue).await.map_err(not_found)?;
                // Every manifest before the marker counts toward the batch's size: a
                // batch submitted in parts is waited for whole.
                let marker = client.send_marker(b).await?;
                let sub = client.read_stream(&queue, 256).await?;
                self.follow(sub, &queue, &marker, started).await
            }
            None => {
                let queue = topology.results();
                let (ready, _) = client.queue_counts(&queue).await?;
                let sub = client.consume(&queue, 256).await?;
                self.take_shared(sub, &queue, u64::from(ready), started)
                    .await
            }
        };
        client.close().await;
        outcome
    }

    /// The batch's results published so far: of a job run twice, the latest attempt.
    async fn read_so_far(&self, client: &Client, batch: &str, started: Instant) -> Outcome {
        let messages = client.read_batch(batch).await.map_err(not_found)?;
        let mut latest = Latest::default();
        let mut expected = None;
        for body in messages {
            match serde_json::from_slice::<ResultMessage>(&body) {
                Ok(ResultMessage::Manifest { manifest }) => {
                    expected = Some(expected.unwrap_or(0) + manifest.jobs);
                }
                Ok(ResultMessage::Result(r)) => latest.offer(*r),
                Err(e) => eprintln!("warning: skipping a message that is not a result: {e}"),
            }
        }
        let duplicates = latest.duplicates;
        let results = latest.into_results();
        let read = results.len() as u64;
        let mut printer = Printer::default();
        for r in results.iter().filter(|r| self.wanted(r)) {
            printer.print(r)?;
        }
        let mut summary = printer.summary(started.elapsed());
        if duplicates > 0 {
            summary.push_str(&format!(" ({duplicates} duplicate(s) dropped)"));
        }
        if let Some(n) = expected
            && read < n
        {
            summary.push_str(&format!("; {read} of the batch's {n} jobs have a result"));
        }
        eprintln!("{summary}");
        Ok(printer.all_succeeded())
    }

    /// Follows the batch's stream from its first result: until every job has a result
    /// (--wait), or for ever (--follow), or until --timeout.
    async fn follow(
        &self,
        mut sub: Subscription,
        queue: &str,
        marker: &str,
        started: Instant,
    ) -> Outcome {
        let deadline = self.timeout.map(|s| started + Duration::from_secs(s));
        let mut expected = self.expect;
        let mut manifests: HashSet<String> = HashSet::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut duplicates = 0u64;
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
        let mut timed_out = false;
        let mut past_marker = false;
        loop {
            if self.wait && past_marker && expected.is_some_and(|n| seen.len() as u64 >= n) {
                break;
            }
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), sub.next()).await {
                    Ok(m) => m,
                    Err(_) => {
                        timed_out = true;
                        break;
                    }
                },
                None => sub.next().await,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the broker closed the results stream {queue}"),
            };
            let mine = marker_of(&msg.body);
            if mine.as_deref() == Some(marker) {
                past_marker = true;
            }
            if mine.is_none() {
                match serde_json::from_slice::<ResultMessage>(&msg.body) {
                    // A batch submitted in several parts has a manifest each: its size is
                    // their sum (a manifest read again after a reconnect counts once).
                    Ok(ResultMessage::Manifest { manifest })
                        if self.expect.is_none()
                            && msg
                                .message_id
                                .as_ref()
                                .is_none_or(|id| manifests.insert(id.clone())) =>
                    {
                        expected = Some(expected.unwrap_or(0) + manifest.jobs);
                        bar.set_length(expected.unwrap_or(0));
                    }
                    Ok(ResultMessage::Manifest { .. }) => {}
                    Ok(ResultMessage::Result(r)) => {
                        // Results without an id (unparseable messages) are all kept.
                        if !r.id.is_empty() && !seen.insert(r.id.clone()) {
                            duplicates += 1;
                        } else {
                            if r.id.is_empty() {
                                seen.insert(format!("\0{}", seen.len()));
                            }
                            if self.wanted(&r) {
                                bar.suspend(|| printer.print(&r))?;
                            }
                            bar.set_position(seen.len() as u64);
                        }
                    }
                    Err(e) => bar.suspend(|| {
                        eprintln!("warning: skipping a message that is not a result: {e}")
                    }),
                }
            }
            // Takes a result from an older batch's queue; on a stream (which the
            // subscription grants credit itself) it does nothing.
            let _ = msg.ack().await;
        }
        bar.finish_and_clear();
        let mut summary = printer.summary(started.elapsed());
        if duplicates > 0 {
            summary.push_str(&format!(" ({duplicates} duplicate(s) dropped)"));
        }
        eprintln!("{summary}");
        if self.wait
            && let Some(n) = expected
            && (seen.len() as u64) < n
        {
            eprintln!("timed out: {} of {n} results arrived", seen.len());
            return Ok(false);
        }
        if timed_out {
            tracing::debug!("--timeout reached");
        }
        Ok(printer.all_succeeded())
    }

    /// Takes results off the shared results queue: the `ready` ones, or (with --wait and
    /// --expect) until that many arrived.
    async fn take_shared(
        &self,
        mut sub: Subscription,
        queue: &str,
        ready: u64,
        started: Instant,
    ) -> Outcome {
        let deadline = self.timeout.map(|s| started + Duration::from_secs(s));
        let expected = self.expect;
        let mut seen: HashSet<String> = HashSet::new();
        let mut duplicates = 0u64;
        let mut read = 0u64;
        let mut printer = Printer::default();
        loop {
            let done = if self.wait {
                expected.is_some_and(|n| seen.len() as u64 >= n)
            } else {
                read >= ready
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
                Ok(ResultMessage::Manifest { .. }) => {}
                Ok(ResultMessage::Result(r)) => {
                    if !r.id.is_empty() && !seen.insert(r.id.clone()) {
                        duplicates += 1;
                    } else if self.wanted(&r) {
                        printer.print(&r)?;
                    }
                }
                Err(e) => eprintln!("warning: skipping a message that is not a result: {e}"),
            }
            // After a reconnect the broker delivers the unacked results again: a failed ack
            // only means this one comes back, and is then dropped as a duplicate.
            if let Err(e) = msg.ack().await {
                eprintln!("warning: {e}; the result will be read again");
            }
        }
        let mut summary = printer.summary(started.elapsed());
        if duplicates > 0 {
            summary.push_str(&format!(" ({duplicates} duplicate(s) dropped)"));
        }
        eprintln!("{summary}");
        if let Some(n) = expected.filter(|_| self.wait)
            && (seen.len() as u64) < n
        {
            eprintln!("timed out: {} of {n} results arrived", seen.len());
            return Ok(false);
        }
        Ok(printer.all_succeeded())
    }
}
