//! The batches the dashboard shows: found in the batches index (followed from its first
//! manifest), each followed in its own results stream, their results counted as they come.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmq_broker::amqp::{Topology, manifest_names_stream};
use wasmq_broker::client::Client;
use wasmq_spec::control::ResultMessage;
use wasmq_spec::{JobResult, Status};

/// The most batches followed: the latest submitted.
pub const SHOWN: usize = 20;

/// How long before following a stream again after its consumer ended.
const PAUSE: Duration = Duration::from_secs(2);

/// One job of a batch, as its latest result says.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub status: Status,
    pub code: String,
    pub message: String,
    pub exit_code: Option<i32>,
    pub total_us: u64,
    pub worker: String,
    pub attempt: u32,
}

/// One batch, as far as its stream has been read.
#[derive(Debug)]
pub struct BatchView {
    /// A number of this dashboard's own, for the batch's page (`/batch/N`).
    pub n: u64,
    pub name: String,
    /// The tenant that submitted it (its routing key word), or none.
    pub owner: Option<String>,
    pub stream: String,
    /// The jobs of its manifests.
    pub jobs: u64,
    pub submitted_s: u64,
    manifests: HashSet<String>,
    pub results: HashMap<String, JobRow>,
    /// Job ids in the order their first result came.
    pub order: Vec<String>,
    /// When its last result was published (seconds; the result message's timestamp).
    pub last_result_s: Option<u64>,
    follower: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for BatchView {
    fn drop(&mut self) {
        if let Some(f) = self.follower.take() {
            f.abort();
        }
    }
}

impl BatchView {
    /// Results by status, in the order of [`Status::ALL`].
    pub fn by_status(&self) -> Vec<(Status, u64)> {
        Status::ALL
            .into_iter()
            .map(|s| {
                (
                    s,
                    self.results.values().filter(|r| r.status == s).count() as u64,
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Results by code: (code, how many, an example message), most first.
    pub fn by_code(&self, failures_only: bool) -> Vec<(String, u64, String)> {
        let mut m: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
        for id in &self.order {
            let r = &self.results[id];
            if failures_only && r.status == Status::Succeeded {
                continue;
            }
            let e = m.entry(r.code.as_str()).or_insert((0, r.message.as_str()));
            e.0 += 1;
        }
        let mut v: Vec<(String, u64, String)> = m
            .into_iter()
            .map(|(c, (n, ex))| (c.to_owned(), n, ex.to_owned()))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Jobs with a result.
    pub fn done(&self) -> u64 {
        self.results.len() as u64
    }
}

/// The batches shown, by stream name.
pub type Batches = Arc<Mutex<BTreeMap<String, BatchView>>>;

/// Follows the batches index: each manifest adds its batch (or its jobs to a batch
/// submitted in parts), and the latest [`SHOWN`] batches are followed.
///
/// A user that may not read the batches index (a tenant, with the permissions
/// `deploy/rabbitmq/add-tenant.sh` gives) follows its own index instead: its own batches.
pub async fn follow_index(client: Arc<Client>, topology: Topology, batches: Batches) {
    let mut index = topology.batches_index();
    let mut next_n = 0u64;
    loop {
        let feed = match client.follow_stream(&index).await {
            Err(e) if e.access_refused() && index == topology.batches_index() => {
                match client.user() {
                    Some(user) => {
                        index = topology.tenant_batches_index(user);
                        continue;
                    }
                    None => Err(e),
                }
            }
            other => other,
        };
        if let Ok(mut feed) = feed {
            while let Some(Ok(m)) = feed.next().await {
                let Ok(ResultMessage::Manifest { manifest }) = serde_json::from_slice(&m.body)
                else {
                    continue;
                };
                let Some(stream) = m.stream.clone() else {
                    continue;
                };
                if !manifest_names_stream(
                    &topology,
                    &m.exchange,
                    &m.routing_key,
                    &manifest.batch,
                    &stream,
                ) {
                    continue;
                }
                let mut map = batches.lock().expect("batches lock");
                let fresh = !map.contains_key(&stream);
                let b = map.entry(stream.clone()).or_insert_with(|| {
                    next_n += 1;
                    BatchView {
                        n: next_n,
                        name: manifest.batch.clone(),
                        owner: (!m.exchange.is_empty())
                            .then(|| m.routing_key.split('.').next().unwrap_or("").to_owned()),
                        stream: stream.clone(),
                        jobs: 0,
                        submitted_s: m.timestamp.unwrap_or(0),
                        manifests: HashSet::new(),
                        results: HashMap::new(),
                        order: Vec::new(),
                        last_result_s: None,
                        follower: None,
                    }
                });
                if m.message_id
                    .as_ref()
                    .is_none_or(|id| b.manifests.insert(id.clone()))
                {
                    b.jobs += manifest.jobs;
                }
                if fresh {
                    b.follower = Some(tokio::spawn(follow_batch(
                        client.clone(),
                        stream.clone(),
                        batches.clone(),
                    )));
                    // Only the latest batches are followed.
                    while map.len() > SHOWN {
                        let oldest = map
                            .values()
                            .min_by_key(|b| (b.submitted_s, b.n))
                            .map(|b| b.stream.clone());
                        match oldest {
                            Some(s) => map.remove(&s),
                            None => break,
                        };
                    }
                }
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// Reads one batch's results stream from the first result on, keeping each job's latest
/// attempt, until the stream is gone.
async fn follow_batch(client: Arc<Client>, stream: String, batches: Batches) {
    loop {
        match client.follow_stream(&stream).await {
            Ok(mut feed) => {
                while let Some(Ok(m)) = feed.next().await {
                    let Ok(ResultMessage::Result(r)) = serde_json::from_slice(&m.body) else {
                        continue;
                    };
                    record(&batches, &stream, &r, m.timestamp);
                }
            }
            // Deleted at the end of its retention (or not there at all): not shown.
            Err(e) if e.not_found() => {
                batches.lock().expect("batches lock").remove(&stream);
                return;
            }
            Err(_) => {}
        }
        tokio::time::sleep(PAUSE).await;
    }
}

fn record(batches: &Batches, stream: &str, r: &JobResult, at_s: Option<u64>) {
    let mut map = batches.lock().expect("batches lock");
    let Some(b) = map.get_mut(stream) else {
        return;
    };
    let row = JobRow {
        id: r.id.clone(),
        status: r.status,
        code: r.code.clone(),
        message: r.message.clone(),
        exit_code: r.exit_code,
        total_us: r.timings.total_us,
        worker: r.worker.clone().unwrap_or_default(),
        attempt: r.attempt,
    };
    if let Some(at) = at_s {
        b.last_result_s = Some(b.last_result_s.map_or(at, |l| l.max(at)));
    }
    match b.results.get_mut(&r.id) {
        Some(kept) if kept.attempt > r.attempt => {}
        Some(kept) => *kept = row,
        None => {
            b.order.push(r.id.clone());
            b.results.insert(r.id.clone(), row);
        }
    }
}

/// What the batches' table shows of one batch.
#[derive(Debug, Clone)]
pub struct BatchSummary {
    pub n: u64,
    pub name: String,
    pub owner: Option<String>,
    pub stream: String,
    pub jobs: u64,
    pub done: u64,
    pub failed: u64,
    pub by_status: Vec<(Status, u64)>,
    /// Its jobs in the dead-letter queue (of those the page reads): they have no result
    /// until they are requeued.
    pub dead: u64,
    pub submitted_s: u64,
    /// When its last result was published, once every job has one.
    pub finished_s: Option<u64>,
    last_result_s: Option<u64>,
}

impl BatchSummary {
    /// Jobs per second from the submit to the last result so far.
    pub fn rate(&self) -> Option<f64> {
        let last = self.last_result_s?;
        (self.done > 0)
            .then(|| self.done as f64 / (last.saturating_sub(self.submitted_s).max(1)) as f64)
    }
}

/// What a batch's page shows.
#[derive(Debug, Clone)]
pub struct BatchDetail {
    pub summary: BatchSummary,
    pub by_code: Vec<(String, u64, String)>,
    pub failures: Vec<(String, u64, String)>,
    /// The jobs, in the order their first result came (the first [`JOBS_SHOWN`]).
    pub jobs: Vec<JobRow>,
    pub more: usize,
}

/// The most jobs a batch's page lists.
pub const JOBS_SHOWN: usize = 1000;

impl BatchView {
    pub fn summary(&self) -> BatchSummary {
        let done = self.done();
        BatchSummary {
            n: self.n,
            name: self.name.clone(),
            owner: self.owner.clone(),
            stream: self.stream.clone(),
            jobs: self.jobs,
            done,
            failed: self
                .results
                .values()
                .filter(|r| r.status != Status::Succeeded)
                .count() as u64,
            by_status: self.by_status(),
            dead: 0,
            submitted_s: self.submitted_s,
            finished_s: self
                .last_result_s
                .filter(|_| self.jobs > 0 && done >= self.jobs),
            last_result_s: self.last_result_s,
        }
    }

    pub fn detail(&self) -> BatchDetail {
        BatchDetail {
            summary: self.summary(),
            by_code: self.by_code(false),
            failures: self.by_code(true),
            jobs: self
                .order
                .iter()
                .take(JOBS_SHOWN)
                .map(|id| self.results[id].clone())
                .collect(),
            more: self.order.len().saturating_sub(JOBS_SHOWN),
        }
    }
}
