//! A worker's metrics (Prometheus, through `prometheus-client`) and its health and
//! readiness, served over HTTP by [`serve`]:
//!
//! - `GET /metrics`: every metric in the OpenMetrics text format, which Prometheus scrapes.
//! - `GET /healthz`: 200 while the process serves at all (a liveness probe).
//! - `GET /readyz`: 200 only while the worker is connected to the broker and consuming the
//!   jobs queue; 503 with a one-line reason otherwise (connecting, broker unreachable,
//!   draining).
//!
//! The metric names are a public contract (docs/configuration.md lists them). Counters
//! count exactly: each job whose result is published counts once in `wasmq_jobs_total`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wasmq_queue::link::LinkObserver;
use wasmq_spec::{CacheOutcome, JobKind, JobResult, Status};

/// `wasmq_jobs_total`'s labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    status: &'static str,
    kind: &'static str,
}

/// `wasmq_http_requests_total`'s label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    outcome: &'static str,
}

/// `wasmq_http_requests_total`'s outcomes.
const HTTP_OUTCOMES: [&str; 4] = ["ok", "denied", "error", "timeout"];

/// `wasmq_module_cache_total`'s label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

/// `wasmq_build_info`'s labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    wasmtime: &'static str,
}

/// Upper bounds of the job duration buckets, in seconds: 100 µs to 10 min.
const JOB_BUCKETS: [f64; 20] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

/// Upper bounds of the compile duration buckets, in seconds: 1 ms to 5 min.
const COMPILE_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

/// What `/readyz` answers.
#[derive(Debug)]
struct Readiness {
    connected: bool,
    consuming: bool,
    draining: bool,
    /// Why the broker blocks this worker's publishes, while it does.
    blocked: Option<String>,
    /// Why the link is down, when it is.
    down: String,
}

/// A worker's metrics and readiness; shared by the run loop, the broker link and the
/// HTTP server.
pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    job_duration: Histogram,
    in_flight: Gauge,
    compiles: Counter,
    compile_duration: Histogram,
    module_cache: Family<CacheLabels, Counter>,
    broker_connected: Gauge,
    broker_blocked: Gauge,
    broker_reconnects: Counter,
    redeliveries: Counter,
    http_requests: Family<HttpLabels, Counter>,
    http_response_bytes: Counter,
    /// Results published, and those of them not `succeeded`: the heartbeat's counts.
    published: AtomicU64,
    not_succeeded: AtomicU64,
    readiness: Mutex<Readiness>,
}

/// What a worker's heartbeat reports of its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCounts {
    /// Jobs taken and not yet acked or requeued.
    pub in_flight: u64,
    /// Results published.
    pub done: u64,
    /// Of those, the ones not `succeeded`.
    pub failed: u64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every metric at zero; `wasmtime` is the version of wasmtime the sandbox runs on.
    pub fn new(wasmtime: &'static str) -> Metrics {
        let mut registry = Registry::default();
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "wasmq_jobs",
            "Jobs whose result was published, by status and kind",
            jobs.clone(),
        );
        let job_duration = Histogram::new(JOB_BUCKETS);
        registry.register(
            "wasmq_job_duration_seconds",
            "Time from taking a job to its result (the result's timings.total_us)",
            job_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "wasmq_jobs_in_flight",
            "Jobs taken from the queue and not yet acked or requeued",
            in_flight.clone(),
        );
        let compiles = Counter::default();
        registry.register(
            "wasmq_compiles",
            "Modules compiled by this worker (for jobs and for prewarm requests)",
            compiles.clone(),
        );
        let compile_duration = Histogram::new(COMPILE_BUCKETS);
        registry.register(
            "wasmq_compile_duration_seconds",
            "Time to compile one module",
            compile_duration.clone(),
        );
        let module_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "wasmq_module_cache",
            "Where each job's compiled module came from: hit-memory, hit-disk, hit-remote or compiled",
            module_cache.clone(),
        );
        let broker_connected = Gauge::default();
        registry.register(
            "wasmq_broker_connected",
            "1 while the worker has a connection to the broker",
            broker_connected.clone(),
        );
        let broker_blocked = Gauge::default();
        registry.register(
            "wasmq_broker_blocked",
            "1 while the broker blocks the worker's publishes (a memory or disk alarm on the broker)",
            broker_blocked.clone(),
        );
        let broker_reconnects = Counter::default();
        registry.register(
            "wasmq_broker_reconnects",
            "Connections to the broker made after losing one",
            broker_reconnects.clone(),
        );
        let redeliveries = Counter::default();
        registry.register(
            "wasmq_redeliveries",
            "Job messages received that had been delivered before",
            redeliveries.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "wasmq_http_requests",
            "Outbound HTTP requests of published jobs, by outcome: ok (answered), denied (refused before a connection), error, timeout",
            http_requests.clone(),
        );
        let http_response_bytes = Counter::default();
        registry.register(
            "wasmq_http_response_bytes",
            "Bytes of HTTP response bodies received by published jobs",
            http_response_bytes.clone(),
        );
        registry.register(
            "wasmq_build",
            "The version of wasmq and of the wasmtime it runs on",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                wasmtime,
            }),
        );
        // Every label set at zero from the start: `rate()` and `increase()` see a series'
        // first increment only when a sample before it exists (a failure status first seen
        // would otherwise stay off the dashboard until its second occurrence).
        for status in Status::ALL {
            for kind in JobKind::ALL
                .map(JobKind::as_str)
                .into_iter()
                .chain(["none"])
            {
                let _ = jobs.get_or_create(&JobLabels {
                    status: status.as_str(),
                    kind,
                });
            }
        }
        for outcome in [
            CacheOutcome::HitMemory,
            CacheOutcome::HitDisk,
            CacheOutcome::HitRemote,
            CacheOutcome::Compiled,
        ] {
            let _ = module_cache.get_or_create(&CacheLabels {
                result: cache_label(outcome),
            });
        }
        for outcome in HTTP_OUTCOMES {
            let _ = http_requests.get_or_create(&HttpLabels { outcome });
        }
        Metrics {
            registry,
            jobs,
            job_duration,
            in_flight,
            compiles,
            compile_duration,
            module_cache,
            broker_connected,
            broker_blocked,
            broker_reconnects,
            redeliveries,
            http_requests,
            http_response_bytes,
            published: AtomicU64::new(0),
            not_succeeded: AtomicU64::new(0),
            readiness: Mutex::new(Readiness {
                connected: false,
                consuming: false,
                draining: false,
                blocked: None,
                down: "connecting to the broker".into(),
            }),
        }
    }

    /// A job message was taken (attempt 1 for its first delivery).
    pub fn job_taken(&self, attempt: u32) {
        self.in_flight.inc();
        if attempt > 1 {
            self.redeliveries.inc();
        }
    }

    /// A job taken is over: acked or requeued.
    pub fn job_left(&self) {
        self.in_flight.dec();
    }

    /// A job's result was published.
    pub fn job_published(&self, r: &JobResult) {
        self.published.fetch_add(1, Ordering::Relaxed);
        if r.status != Status::Succeeded {
            self.not_succeeded.fetch_add(1, Ordering::Relaxed);
        }
        let kind = r.kind.map_or("none", |k| k.as_str());
        self.jobs
            .get_or_create(&JobLabels {
                status: r.status.as_str(),
                kind,
            })
            .inc();
        self.job_duration
            .observe(r.timings.total_us as f64 / 1_000_000.0);
        if let Some(outcome) = r.cache {
            self.module_cache
                .get_or_create(&CacheLabels {
                    result: cache_label(outcome),
                })
                .inc();
            if outcome == CacheOutcome::Compiled {
                self.compiled(r.timings.compile_us);
            }
        }
        if let Some(http) = &r.http {
            for (outcome, n) in
                HTTP_OUTCOMES
                    .into_iter()
                    .zip([http.ok, http.denied, http.errors, http.timeouts])
            {
                if n > 0 {
                    self.http_requests
                        .get_or_create(&HttpLabels { outcome })
                        .inc_by(n);
                }
            }
            self.http_response_bytes.inc_by(http.bytes_received);
        }
    }

    /// A module was compiled in `us` microseconds.
    pub fn compiled(&self, us: u64) {
        self.compiles.inc();
        self.compile_duration.observe(us as f64 / 1_000_000.0);
    }

    /// The counts a heartbeat reports.
    pub fn job_counts(&self) -> JobCounts {
        JobCounts {
            in_flight: u64::try_from(self.in_flight.get()).unwrap_or(0),
            done: self.published.load(Ordering::Relaxed),
            failed: self.not_succeeded.load(Ordering::Relaxed),
        }
    }

    /// Whether the worker is draining.
    pub fn is_draining(&self) -> bool {
        self.readiness.lock().expect("readiness lock").draining
    }

    /// The worker began its drain: it is no longer ready.
    pub fn draining(&self) {
        self.readiness.lock().expect("readiness lock").draining = true;
    }

    /// The text `/metrics` serves.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// `Ok` when ready, or why not.
    pub fn ready(&self) -> Result<(), String> {
        let r = self.readiness.lock().expect("readiness lock");
        if r.draining {
            Err("draining: not taking new jobs".into())
        } else if !r.connected {
            Err(format!("not connected to the broker: {}", r.down))
        } else if let Some(reason) = &r.blocked {
            Err(format!(
                "the broker is blocking this worker's publishes: {reason}; results wait until it lifts"
            ))
        } else if !r.consuming {
            Err("connected, not consuming the jobs queue yet".into())
        } else {
            Ok(())
        }
    }
}

fn cache_label(outcome: CacheOutcome) -> &'static str {
    match outcome {
        CacheOutcome::HitMemory => "hit-memory",
        CacheOutcome::HitDisk => "hit-disk",
        CacheOutcome::HitRemote => "hit-remote",
        CacheOutcome::Compiled => "compiled",
    }
}

impl LinkObserver for Metrics {
    fn connected(&self, _generation: u64, reconnect: bool) {
        self.broker_connected.set(1);
        if reconnect {
            self.broker_reconnects.inc();
        }
        self.readiness.lock().expect("readiness lock").connected = true;
    }

    fn disconnected(&self, why: &str) {
        self.broker_connected.set(0);
        let mut r = self.readiness.lock().expect("readiness lock");
        r.connected = false;
        r.consuming = false;
        r.down = why.to_owned();
    }

    fn consuming(&self, consuming: bool) {
        self.readiness.lock().expect("readiness lock").consuming = consuming;
    }

    fn blocked(&self, reason: Option<&str>) {
        self.broker_blocked.set(i64::from(reason.is_some()));
        self.readiness.lock().expect("readiness lock").blocked = reason.map(str::to_owned);
    }
}

/// Binds `addr` now (so a taken port is an error at start), then serves `/metrics`,
/// `/healthz` and `/readyz` until `shutdown`. Returns the bound address (port 0 picks a
/// free one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(metrics);
    info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "the metrics server stopped");
        }
    });
    Ok(bound)
}

async fn scrape(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn ready(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_and_named_as_documented() {
        let m = Metrics::new("48.0.8");
        let mut r = JobResult::new("a", None);
        r.status = Status::Succeeded;
        r.kind = Some(JobKind::Command);
        r.cache = Some(CacheOutcome::Compiled);
        r.timings.compile_us = 20_000;
        r.timings.total_us = 25_000;
        m.job_taken(1);
        m.job_published(&r);
        m.job_left();
        r.cache = Some(CacheOutcome::HitMemory);
        r.http = Some(wasmq_spec::HttpUsage {
            requests: 5,
            ok: 2,
            denied: 1,
            errors: 1,
            timeouts: 1,
            bytes_sent: 10,
            bytes_received: 300,
        });
        m.job_taken(2);
        m.job_published(&r);
        m.job_left();
        let text = m.encode();
        for line in [
            "wasmq_jobs_total{status=\"succeeded\",kind=\"command\"} 2",
            "wasmq_compiles_total 1",
            "wasmq_module_cache_total{result=\"compiled\"} 1",
            "wasmq_module_cache_total{result=\"hit-memory\"} 1",
            "wasmq_redeliveries_total 1",
            "wasmq_jobs_in_flight 0",
            "wasmq_job_duration_seconds_count 2",
            "wasmq_job_duration_seconds_bucket{le=\"0.0001\"} 0",
            "wasmq_job_duration_seconds_bucket{le=\"600.0\"} 2",
            "wasmq_compile_duration_seconds_count 1",
            "wasmq_broker_connected 0",
            "wasmq_broker_blocked 0",
            "wasmq_broker_reconnects_total 0",
            "wasmq_http_requests_total{outcome=\"ok\"} 2",
            "wasmq_http_requests_total{outcome=\"denied\"} 1",
            "wasmq_http_requests_total{outcome=\"error\"} 1",
            "wasmq_http_requests_total{outcome=\"timeout\"} 1",
            "wasmq_http_response_bytes_total 300",
            // Label sets not seen yet are there at zero.
            "wasmq_jobs_total{status=\"timed_out\",kind=\"handler\"} 0",
            "wasmq_jobs_total{status=\"rejected\",kind=\"none\"} 0",
            "wasmq_module_cache_total{result=\"hit-remote\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
        // Both results succeeded; one job is counted failed once it does not.
        assert_eq!(
            m.job_counts(),
            JobCounts {
                in_flight: 0,
                done: 2,
                failed: 0
            }
        );
        r.status = Status::Trapped;
        m.job_published(&r);
        assert_eq!((m.job_counts().done, m.job_counts().failed), (3, 1));
        let build = format!(
            "wasmq_build_info{{version=\"{}\",wasmtime=\"48.0.8\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(
            text.lines().any(|l| l == build),
            "{build:?} missing from\n{text}"
        );
    }

    #[test]
    fn readiness_follows_the_link_and_the_drain() {
        let m = Metrics::new("x");
        assert!(m.ready().unwrap_err().contains("connecting"));
        m.connected(1, false);
        assert!(m.ready().unwrap_err().contains("not consuming"));
        m.consuming(true);
        assert_eq!(m.ready(), Ok(()));
        m.disconnected("connection reset");
        assert!(m.ready().unwrap_err().contains("connection reset"));
        m.connected(2, true);
        m.consuming(true);
        assert_eq!(m.ready(), Ok(()));
        assert!(m.encode().contains("wasmq_broker_reconnects_total 1"));
        m.blocked(Some("low on memory"));
        assert!(m.ready().unwrap_err().contains("low on memory"));
        assert!(m.encode().contains("wasmq_broker_blocked 1"));
        m.blocked(None);
        assert_eq!(m.ready(), Ok(()));
        assert!(m.encode().contains("wasmq_broker_blocked 0"));
        m.draining();
        assert!(m.ready().unwrap_err().contains("draining"));
    }
}
