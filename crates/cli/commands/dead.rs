//! `wasmq dead`: inspect and repair the dead-letter queue.

use clap::{ArgMatches, Args, Subcommand};
use wasmq_broker::client::{Client, Peeked};

use crate::Outcome;
use crate::settings::{self, BrokerSettings, ClientArgs};

/// Inspect and repair the dead-letter queue: the job messages the broker gave up on after
/// the delivery limit (a host fault on every attempt, or a worker that died on each).
#[derive(Args)]
pub struct DeadCommand {
    #[command(subcommand)]
    action: DeadAction,
}

#[derive(Subcommand)]
enum DeadAction {
    /// List the dead-lettered jobs (they stay in the queue): id, batch, tenant, attempts
    /// and why the broker dead-lettered them.
    List(ListArgs),
    /// Move dead-lettered jobs back to the jobs queue, to be run again: those of one
    /// batch, those with the given ids, or all of them.
    Requeue(RequeueArgs),
    /// Delete every dead-lettered job.
    Purge(PurgeArgs),
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only this batch's jobs.
    #[arg(long)]
    batch: Option<String>,
    /// Print one JSON object per job instead of a table.
    #[arg(long)]
    json: bool,
    /// List at most this many.
    #[arg(long, default_value_t = settings::defaults::DEAD_LIST_LIMIT)]
    limit: u32,
}

#[derive(Args)]
struct RequeueArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Requeue this batch's jobs.
    #[arg(long, conflicts_with = "ids")]
    batch: Option<String>,
    /// Requeue every dead-lettered job.
    #[arg(long, conflicts_with_all = ["ids", "batch"])]
    all: bool,
    /// Ids of the jobs to requeue.
    #[arg(value_name = "ID")]
    ids: Vec<String>,
}

#[derive(Args)]
struct PurgeArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// A dead-lettered job as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) batch: String,
    pub(crate) tenant: String,
    pub(crate) attempts: Option<u64>,
    pub(crate) reason: String,
}

/// `delivery_limit`: a message dead-lettered for its delivery limit was delivered
/// `delivery_limit + 1` times. The delivery count a dead-lettered message carries counts
/// its reads from the dead-letter queue (each listing, each refresh of a dashboard), not
/// its attempts, so it is not shown for one.
pub(crate) fn row(p: &Peeked, delivery_limit: u32) -> Row {
    let body: Option<serde_json::Value> = serde_json::from_slice(&p.body).ok();
    let field = |k: &str| {
        body.as_ref()
            .and_then(|b| b.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Row {
        id: p
            .message_id
            .clone()
            .or_else(|| field("id"))
            .unwrap_or_default(),
        batch: field("batch").unwrap_or_default(),
        tenant: p.user_id.clone().unwrap_or_default(),
        attempts: match p.death_reason.as_deref() {
            Some("delivery_limit") => Some(u64::from(delivery_limit) + 1),
            Some(_) => None,
            None => p.attempts,
        },
        reason: match (&p.death_reason, &p.death_queue) {
            (Some(r), Some(q)) => format!("{r} (from {q})"),
            (Some(r), None) => r.clone(),
            _ => String::new(),
        },
    }
}

impl DeadCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let client = match &self.action {
            DeadAction::List(a) => &a.client,
            DeadAction::Requeue(a) => &a.client,
            DeadAction::Purge(a) => &a.client,
        };
        // The arguments are the action's.
        let (_, own) = matches.subcommand().expect("clap requires an action");
        let (_, broker) = settings::start_client(client, own, "warn")?;
        settings::runtime()?.block_on(self.run(broker))
    }

    async fn run(self, broker: BrokerSettings) -> Outcome {
        let BrokerSettings {
            amqp_url, topology, ..
        } = broker;
        let client = Client::connect(&amqp_url, "wasmq dead", topology.clone()).await?;
        let dead = topology.dead_queue();
        let outcome = match self.action {
            DeadAction::List(a) => {
                let rows: Vec<Row> = client
                    .peek(&dead, u32::MAX)
                    .await?
                    .iter()
                    .map(|p| row(p, topology.delivery_limit))
                    .filter(|r| a.batch.as_ref().is_none_or(|b| &r.batch == b))
                    .take(a.limit as usize)
                    .collect();
                if a.json {
                    for r in &rows {
                        println!("{}", serde_json::to_string(r)?);
                    }
                } else {
                    println!(
                        "{:<36}  {:<20}  {:<12}  {:>8}  REASON",
                        "ID", "BATCH", "TENANT", "ATTEMPTS"
                    );
                    for r in &rows {
                        let attempts = r.attempts.map_or("-".to_owned(), |n| n.to_string());
                        println!(
                            "{:<36}  {:<20}  {:<12}  {:>8}  {}",
                            r.id, r.batch, r.tenant, attempts, r.reason
                        );
                    }
                }
                eprintln!("{} dead-lettered job(s) in {dead}", rows.len());
                true
            }
            DeadAction::Requeue(a) => {
                if a.batch.is_none() && a.ids.is_empty() && !a.all {
                    anyhow::bail!("say which jobs to requeue: --batch B, job ids, or --all");
                }
                let (moved, left) = client
                    .requeue_dead(|p| {
                        let r = row(p, topology.delivery_limit);
                        a.all
                            || a.batch.as_ref().is_some_and(|b| &r.batch == b)
                            || a.ids.contains(&r.id)
                    })
                    .await?;
                eprintln!(
                    "requeued {moved} job(s) to {}; {left} left in {dead}",
                    topology.jobs_queue()
                );
                if !a.ids.is_empty() && (moved as usize) < a.ids.len() {
                    eprintln!(
                        "{} of the {} id(s) given were not found in {dead}",
                        a.ids.len() - moved as usize,
                        a.ids.len()
                    );
                    false
                } else {
                    true
                }
            }
            DeadAction::Purge(_) => {
                let n = client.purge(&dead).await?;
                eprintln!("purged {n} dead-lettered job(s) from {dead}");
                true
            }
        };
        client.close().await;
        Ok(outcome)
    }
}
