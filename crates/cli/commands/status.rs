//! `wasmq status`: queue depths, consumers, and a batch's progress.

use std::collections::BTreeMap;

use clap::{ArgMatches, Args};
use wasmq_broker::client::Client;
use wasmq_broker::management::Management;
use wasmq_spec::control::{Heartbeat, ResultMessage, WorkerState};

use crate::Outcome;
use crate::commands::now_ms;
use crate::settings::{self, BrokerSettings, ClientArgs, StatusSettings};

/// Show the depth (ready and unacked messages) and the consumers of the jobs, results and
/// dead-letter queues; the workers heard from in the last hour (from their heartbeats:
/// state, jobs in flight, done and failed, last seen; a worker silent for three of its
/// heartbeat intervals is shown as gone); with --batch, that batch's result queue and its
/// progress by status.
///
/// Ready messages and consumers come over AMQP, as of now; unacked messages come from
/// RabbitMQ's management API (the rabbitmq_management plugin), as of its last statistics
/// sample (every 5 s by default), shown as `-` when it cannot be reached.
#[derive(Args)]
pub struct StatusCommand {
    #[command(flatten)]
    client: ClientArgs,
    /// Also show this batch: its result queue, and its results by status.
    #[arg(long)]
    batch: Option<String>,
    /// RabbitMQ's management API [config: management_url]
    /// [default: http://AMQP-HOST:15672, with the AMQP URL's user].
    #[arg(long, env = "WASMQ_MANAGEMENT_URL")]
    management_url: Option<String>,
}

impl StatusCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (layers, _) = settings::start(&self.client.common, matches, "warn")?;
        let broker = BrokerSettings::resolve(&layers, &self.client.broker)?;
        let status = StatusSettings::resolve(&layers, self.management_url.clone(), &broker);
        settings::runtime()?.block_on(self.run(broker, status))
    }

    async fn run(self, broker: BrokerSettings, status: StatusSettings) -> Outcome {
        let first = broker.first_url();
        let BrokerSettings {
            amqp_url, topology, ..
        } = broker;
        let client = Client::connect(&amqp_url, "wasmq status", topology.clone()).await?;
        let api = match status
            .management_url
            .map(|base| Management::new(&base, &first))
        {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                eprintln!("warning: {e}");
                None
            }
            None => None,
        };
        let mut queues = vec![topology.jobs_queue()];
        // The tenants of this config file have jobs queues of their own.
        queues.extend(status.tenants.iter().map(|t| topology.tenant_jobs_queue(t)));
        queues.extend([topology.results(), topology.dead_queue()]);
        let batch_queue = match &self.batch {
            Some(b) => Some(client.find_batch_queue(b).await?),
            None => None,
        };
        queues.extend(batch_queue.clone());
        println!(
            "{:<48}  {:>9}  {:>9}  {:>9}",
            "QUEUE", "READY", "UNACKED", "CONSUMERS"
        );
        let mut api_error = None;
        let mut batch_exists = true;
        for q in &queues {
            let (ready, consumers) = match client.queue_counts(q).await {
                Ok(c) => c,
                Err(e) if Some(q) == batch_queue.as_ref() => {
                    eprintln!("{e}");
                    batch_exists = false;
                    continue;
                }
                Err(_) if q.starts_with(&format!("{}.jobs.t.", topology.prefix)) => {
                    println!(
                        "{q:<48}  {:>9}  {:>9}  {:>9}  (no worker with this tenant's policy has declared it)",
                        "-", "-", "-"
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let unacked = match &api {
                Some(m) if api_error.is_none() => match m.queue(q).await {
                    Ok(d) => d.messages_unacknowledged.to_string(),
                    Err(e) => {
                        api_error = Some(e.to_string());
                        "-".to_owned()
                    }
                },
                _ => "-".to_owned(),
            };
            println!("{q:<48}  {ready:>9}  {unacked:>9}  {consumers:>9}");
        }
        if let Some(e) = api_error {
            eprintln!(
                "unacked counts unknown: {e} (enable the rabbitmq_management plugin, or give --management-url)"
            );
        }
        match client.heartbeats().await {
            Ok(beats) => print_workers(&beats, now_ms()),
            Err(e) => eprintln!("workers unknown: {e}"),
        }
        if let (Some(b), Some(_)) = (&self.batch, &batch_queue)
            && batch_exists
        {
            let mut jobs = None;
            let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
            let mut seen = std::collections::HashSet::new();
            for body in client.read_batch(b).await? {
                match serde_json::from_slice::<ResultMessage>(&body) {
                    Ok(ResultMessage::Manifest { manifest }) => {
                        jobs = Some(jobs.unwrap_or(0) + manifest.jobs);
                    }
                    Ok(ResultMessage::Result(r)) => {
                        if seen.insert(r.id.clone()) {
                            *by_status.entry(r.status.as_str().to_owned()).or_default() += 1;
                        }
                    }
                    Err(_) => {}
                }
            }
            let done: u64 = by_status.values().sum();
            let counts: Vec<String> = by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
            println!();
            match jobs {
                Some(n) => println!(
                    "batch {b}: {n} jobs submitted, {done} with a result ({}), {} not finished",
                    if counts.is_empty() {
                        "none".to_owned()
                    } else {
                        counts.join(", ")
                    },
                    n.saturating_sub(done)
                ),
                None => println!(
                    "batch {b}: {done} results ({}); no manifest (the job count) in its stream",
                    if counts.is_empty() {
                        "none".to_owned()
                    } else {
                        counts.join(", ")
                    }
                ),
            }
        }
        client.close().await;
        Ok(batch_exists)
    }
}

/// The workers' table: one line per worker, its latest heartbeat.
fn print_workers(beats: &[Heartbeat], now_ms: u64) {
    println!();
    if beats.is_empty() {
        println!("no worker heard from in the last hour");
        return;
    }
    println!(
        "{:<32}  {:<8}  {:<8}  {:>11}  {:>9}  {:>9}  {:>9}  LAST SEEN",
        "WORKER", "STATE", "VERSION", "CONCURRENCY", "IN FLIGHT", "DONE", "FAILED"
    );
    for b in beats {
        let state = if b.gone_at(now_ms) {
            "gone"
        } else {
            match b.state {
                WorkerState::Running => "running",
                WorkerState::Draining => "draining",
                WorkerState::Stopped => "stopped",
            }
        };
        let ago = now_ms.saturating_sub(b.at_ms) as f64 / 1000.0;
        println!(
            "{:<32}  {:<8}  {:<8}  {:>11}  {:>9}  {:>9}  {:>9}  {ago:.0} s ago",
            b.worker, state, b.version, b.concurrency, b.in_flight, b.done, b.failed
        );
    }
}
