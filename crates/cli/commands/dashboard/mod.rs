//! `wasmq dashboard`: a read-only web page of the broker's side of wasmq, live.
//!
//! - this module: the command, and the collector that keeps a [`Snapshot`] of the queues,
//!   the workers (from the heartbeats stream, followed) and the dead-letter queue.
//! - `batches`: the batches, from the batches index, each followed in its results stream.
//! - `page`: the HTML (maud, so every value is escaped), the page's script and style.

mod batches;
mod page;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::{ArgMatches, Args};
use tokio_util::sync::CancellationToken;
use wasmq_broker::amqp::Topology;
use wasmq_broker::client::Client;
use wasmq_broker::management::{Management, MessageStats};
use wasmq_spec::control::{Heartbeat, ResultMessage};

use crate::Outcome;
use crate::commands::dead;
use crate::commands::now_ms;
use crate::settings::{self, BrokerSettings, ClientArgs, StatusSettings};

/// How often the page's figures are read again.
const REFRESH: Duration = Duration::from_secs(2);

/// Dead-lettered jobs shown at most.
const DEAD_SHOWN: u32 = 200;

/// Serve a read-only web page of the queues (ready, unacked, consumers, published and
/// acked per second), the workers (from
/// their heartbeats: state, jobs in flight, done, failed, last seen; a worker silent for
/// three of its intervals shown as gone) and the dead-letter queue (with the reasons),
/// refreshed every 2 s without reloading the page.
///
/// It reads with the broker user of its AMQP URL and shows nothing of the URL's password.
/// Bound to 127.0.0.1 by default; every route is a GET.
#[derive(Args)]
pub struct DashboardCommand {
    #[command(flatten)]
    client: ClientArgs,
    /// The address to serve on (port 0: a free one, printed at start)
    /// [config: dashboard_addr] [default: 127.0.0.1:8080].
    #[arg(long, env = "WASMQ_DASHBOARD_ADDR")]
    addr: Option<SocketAddr>,
    /// RabbitMQ's management API, for unacked counts and rates [config: management_url]
    /// [default: http://AMQP-HOST:15672, with the AMQP URL's user].
    #[arg(long, env = "WASMQ_MANAGEMENT_URL")]
    management_url: Option<String>,
}

/// A queue's row.
#[derive(Debug, Clone)]
struct QueueRow {
    name: String,
    ready: Option<u32>,
    unacked: Option<u64>,
    consumers: Option<u32>,
    /// Published and acked per second over the last [`RATE_WINDOW`] (from the management
    /// API's counts).
    rates: Option<(f64, f64)>,
}

/// The window a queue's rates are averaged over: two of the broker's statistics intervals
/// (it refreshes its counts every 5 s), so that a burst shows for as long.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Each queue's recent message counts, as read: what its rates are made of.
#[derive(Debug, Default)]
struct RateHistory(HashMap<String, VecDeque<(Instant, MessageStats)>>);

impl RateHistory {
    /// Records the counts of `queue` read at `now`; returns its messages published and
    /// acked per second over the last [`RATE_WINDOW`] (over what has been seen, until the
    /// window is full), or `None` before a second has been seen.
    fn record(&mut self, queue: &str, now: Instant, counts: MessageStats) -> Option<(f64, f64)> {
        let seen = self.0.entry(queue.to_owned()).or_default();
        // A queue deleted and declared again counts from zero.
        if seen
            .back()
            .is_some_and(|(_, last)| counts.publish < last.publish || counts.ack < last.ack)
        {
            seen.clear();
        }
        seen.push_back((now, counts));
        while seen
            .get(1)
            .is_some_and(|(t, _)| now.duration_since(*t) >= RATE_WINDOW)
        {
            seen.pop_front();
        }
        let (then, first) = seen.front()?;
        let secs = now.duration_since(*then).as_secs_f64();
        (secs >= 1.0).then(|| {
            (
                (counts.publish - first.publish) as f64 / secs,
                (counts.ack - first.ack) as f64 / secs,
            )
        })
    }
}

/// What the page shows, as of `at_ms`.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    at_ms: u64,
    prefix: String,
    broker: String,
    queues: Vec<QueueRow>,
    workers: Vec<Heartbeat>,
    dead: Vec<dead::Row>,
    batches: Vec<batches::BatchSummary>,
    /// What could not be read, for the page to say.
    problems: Vec<String>,
}

type Shared = Arc<Mutex<Snapshot>>;

/// What the routes read.
#[derive(Clone)]
struct App {
    shared: Shared,
    batches: batches::Batches,
    client: Arc<Client>,
}

impl DashboardCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (layers, _) = settings::start(&self.client.common, matches, "warn")?;
        let broker = BrokerSettings::resolve(&layers, &self.client.broker)?;
        let status = StatusSettings::resolve(&layers, self.management_url.clone(), &broker);
        let addr = settings::dashboard_addr(&layers, self.addr)?;
        settings::runtime()?.block_on(run(broker, status, addr))
    }
}

async fn run(broker: BrokerSettings, status: StatusSettings, addr: SocketAddr) -> Outcome {
    let host = broker.first_url();
    let BrokerSettings {
        amqp_url, topology, ..
    } = broker;
    let client = Arc::new(Client::connect(&amqp_url, "wasmq dashboard", topology.clone()).await?);
    let api = match status
        .management_url
        .map(|base| Management::new(&base, &host))
    {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            eprintln!("warning: {e}");
            None
        }
        None => None,
    };
    let shared: Shared = Arc::new(Mutex::new(Snapshot {
        prefix: topology.prefix.clone(),
        broker: redacted(&host),
        ..Snapshot::default()
    }));
    let workers: Arc<Mutex<BTreeMap<String, Heartbeat>>> = Arc::default();
    let heartbeats_refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(follow_workers(
        client.clone(),
        workers.clone(),
        heartbeats_refused.clone(),
    ));
    let followed: batches::Batches = Arc::default();
    tokio::spawn(batches::follow_index(
        client.clone(),
        topology.clone(),
        followed.clone(),
    ));
    let mut queues = vec![topology.jobs_queue()];
    queues.extend(status.tenants.iter().map(|t| topology.tenant_jobs_queue(t)));
    queues.extend([topology.results(), topology.dead_queue()]);
    // Polled beside the server (in this task: reading the dead-letter queue is not Send).
    let collector = collect(
        client.clone(),
        api,
        topology.clone(),
        queues,
        (workers, heartbeats_refused),
        followed.clone(),
        shared.clone(),
    );

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not serve the dashboard on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(whole_page))
        .route("/state", get(state_fragment))
        .route("/batch/{n}", get(batch_page))
        .route("/batch/{n}/job/{id}", get(job_page))
        .route("/dashboard.js", get(script))
        .route("/dashboard.css", get(style))
        .with_state(App {
            shared,
            batches: followed,
            client: client.clone(),
        });
    eprintln!("dashboard on http://{bound}/");
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        signal.cancel();
    });
    let serve = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .into_future();
    tokio::select! {
        served = serve => served.context("serving the dashboard")?,
        () = collector => {}
    }
    Ok(true)
}

/// A node URL without its password: `amqp://user@host:port/vhost`.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Keeps the latest heartbeat of each worker, following the stream (again after a lost
/// connection, or once a worker has declared it).
async fn follow_workers(
    client: Arc<Client>,
    workers: Arc<Mutex<BTreeMap<String, Heartbeat>>>,
    refused: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        match client.follow_heartbeats().await {
            Ok(Some(mut feed)) => {
                while let Some(Ok(h)) = feed.next().await {
                    let mut map = workers.lock().expect("workers lock");
                    if map.get(&h.worker).is_none_or(|old| old.at_ms <= h.at_ms) {
                        map.insert(h.worker.clone(), h);
                    }
                }
            }
            Ok(None) => {}
            // Not this user's to read (a tenant): asking again would only cost the
            // connection each time (a refusal closes it).
            Err(e) if e.access_refused() => {
                refused.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "could not follow the heartbeats"),
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// Reads the queues and the dead-letter queue every [`REFRESH`] into `shared`, for ever.
async fn collect(
    client: Arc<Client>,
    api: Option<Management>,
    topology: Topology,
    queues: Vec<String>,
    (workers, heartbeats_refused): (
        Arc<Mutex<BTreeMap<String, Heartbeat>>>,
        Arc<std::sync::atomic::AtomicBool>,
    ),
    followed: batches::Batches,
    shared: Shared,
) {
    let mut dead_refused = false;
    let mut history = RateHistory::default();
    loop {
        let mut problems = Vec::new();
        let mut rows = Vec::new();
        for q in &queues {
            let (ready, consumers) = match client.queue_counts(q).await {
                Ok((r, c)) => (Some(r), Some(c)),
                Err(e) => {
                    problems.push(e.to_string());
                    (None, None)
                }
            };
            let (unacked, rates) = match &api {
                Some(m) => match m.queue(q).await {
                    Ok(d) => (
                        Some(d.messages_unacknowledged),
                        history.record(q, Instant::now(), d.message_stats),
                    ),
                    Err(e) => {
                        problems.push(format!("unacked counts and rates unknown: {e}"));
                        (None, None)
                    }
                },
                None => (None, None),
            };
            rows.push(QueueRow {
                name: q.clone(),
                ready,
                unacked,
                consumers,
                rates,
            });
        }
        let dead = if dead_refused {
            problems.push("this broker user may not read the dead-letter queue".to_owned());
            Vec::new()
        } else {
            match client.peek(&topology.dead_queue(), DEAD_SHOWN).await {
                Ok(peeked) => peeked
                    .iter()
                    .map(|p| dead::row(p, topology.delivery_limit))
                    .collect(),
                // Not asked again: a refusal costs the connection.
                Err(e) if e.access_refused() => {
                    dead_refused = true;
                    Vec::new()
                }
                Err(e) => {
                    problems.push(e.to_string());
                    Vec::new()
                }
            }
        };
        if heartbeats_refused.load(std::sync::atomic::Ordering::Relaxed) {
            problems.push("this broker user may not read the workers' heartbeats".to_owned());
        }
        problems.dedup();
        let workers = workers
            .lock()
            .expect("workers lock")
            .values()
            .cloned()
            .collect();
        let mut summaries: Vec<batches::BatchSummary> = followed
            .lock()
            .expect("batches lock")
            .values()
            .map(batches::BatchView::summary)
            .collect();
        summaries.sort_by_key(|b| std::cmp::Reverse((b.submitted_s, b.n)));
        for b in &mut summaries {
            b.dead = dead.iter().filter(|d| d.batch == b.name).count() as u64;
        }
        {
            let mut s = shared.lock().expect("snapshot lock");
            s.batches = summaries;
            s.at_ms = now_ms();
            s.queues = rows;
            s.workers = workers;
            s.dead = dead;
            s.problems = problems;
        }
        tokio::time::sleep(REFRESH).await;
    }
}

async fn whole_page(State(app): State<App>) -> impl IntoResponse {
    let snapshot = app.shared.lock().expect("snapshot lock").clone();
    page::whole(&snapshot, now_ms())
}

async fn state_fragment(State(app): State<App>) -> impl IntoResponse {
    let snapshot = app.shared.lock().expect("snapshot lock").clone();
    page::state(&snapshot, now_ms())
}

/// A batch's page, by the number the batches' table links to.
async fn batch_page(State(app): State<App>, Path(n): Path<u64>) -> Response {
    let detail = app
        .batches
        .lock()
        .expect("batches lock")
        .values()
        .find(|b| b.n == n)
        .map(batches::BatchView::detail);
    match detail {
        Some(d) => page::batch_page(&d, now_ms()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no such batch (or no longer shown)\n",
        )
            .into_response(),
    }
}

/// One job's whole result, read from its batch's stream.
async fn job_page(State(app): State<App>, Path((n, id)): Path<(u64, String)>) -> Response {
    let found = app
        .batches
        .lock()
        .expect("batches lock")
        .values()
        .find(|b| b.n == n)
        .map(|b| (b.stream.clone(), b.name.clone(), b.owner.clone()));
    let Some((stream, name, owner)) = found else {
        return (
            StatusCode::NOT_FOUND,
            "no such batch (or no longer shown)\n",
        )
            .into_response();
    };
    // A tenant writes its marker through its own route (as its `results` does); an
    // operator, straight to the stream.
    let own = owner.is_some() && app.client.user().map(Topology::user_word) == owner;
    let read = if own {
        app.client.read_batch(&name).await
    } else {
        app.client.read_stream_to_marker(&stream).await
    };
    let bodies = match read {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("reading the batch's results: {e}\n"),
            )
                .into_response();
        }
    };
    let latest = bodies
        .iter()
        .filter_map(|b| match serde_json::from_slice::<ResultMessage>(b) {
            Ok(ResultMessage::Result(r)) if r.id == id => Some(*r),
            _ => None,
        })
        .max_by_key(|r| r.attempt);
    match latest {
        Some(r) => page::job_page(n, &name, &r).into_response(),
        None => (StatusCode::NOT_FOUND, "no result for this job (yet)\n").into_response(),
    }
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        page::SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        page::STYLE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_averaged_over_the_window_from_the_counts() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let counts = |publish, ack| MessageStats { publish, ack };
        let mut h = RateHistory::default();
        assert_eq!(h.record("q", at(0), counts(5, 5)), None);
        assert_eq!(h.record("q", at(2), counts(5, 5)), Some((0.0, 0.0)));
        // 40 in and 20 acked, counted by the broker between two reads.
        assert_eq!(h.record("q", at(4), counts(45, 25)), Some((10.0, 5.0)));
        assert_eq!(h.record("q", at(10), counts(45, 45)), Some((4.0, 4.0)));
        // Once the burst is older than the window, the rates fall back to zero.
        assert_eq!(h.record("q", at(12), counts(45, 45)), Some((4.0, 4.0)));
        assert_eq!(
            h.record("q", at(16), counts(45, 45)),
            Some((0.0, 20.0 / 12.0))
        );
        assert_eq!(h.record("q", at(30), counts(45, 45)), Some((0.0, 0.0)));
        // Another queue is its own; a queue declared again starts over.
        assert_eq!(h.record("r", at(30), counts(1, 0)), None);
        assert_eq!(h.record("q", at(32), counts(2, 0)), None);
        assert_eq!(h.record("q", at(34), counts(6, 2)), Some((2.0, 1.0)));
    }

    #[test]
    fn the_brokers_password_is_never_shown() {
        assert_eq!(
            redacted("amqp://alice:s3cret@broker:5672/%2f"),
            "amqp://alice@broker:5672/%2f"
        );
        assert_eq!(redacted("amqp://broker:5672"), "amqp://broker:5672");
    }
}
