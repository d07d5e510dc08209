//! `wasmq worker`: consume jobs from RabbitMQ, run them, publish results.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{ArgMatches, Args};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wasmq_broker::amqp::{AmqpConfig, AmqpTransport};
use wasmq_broker::client::split_urls;
use wasmq_broker::lease::AmqpLeases;
use wasmq_cache::{Cache, Digest};
use wasmq_sandbox::{Sandbox, TenantPolicy, WASMTIME_VERSION};
use wasmq_spec::CacheOutcome;
use wasmq_spec::control::{
    CancelReply, ControlRequest, Heartbeat, HeartbeatMessage, PrewarmOutcome, PrewarmReply,
    PrewarmRequest, WorkerState,
};
use wasmq_worker::cancel::Cancels;
use wasmq_worker::fair::{Share, Shares};
use wasmq_worker::metrics::{self, Metrics};
use wasmq_worker::{Worker, WorkerConfig};

use crate::Outcome;
use crate::commands::now_ms;
use crate::settings::{
    self, BrokerArgs, BrokerSettings, CommonArgs, CommonSettings, SandboxArgs, SandboxSettings,
    WorkerArgs, WorkerSettings,
};

/// Consume jobs from RabbitMQ, run each in a sandbox, publish its result, then ack it.
///
/// SIGTERM or SIGINT drains: no new jobs are taken, jobs in flight finish, are published
/// and acked, then the worker exits. A second signal exits at once (unacked jobs return to
/// the queue).
#[derive(Args)]
pub struct WorkerCommand {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    worker: WorkerArgs,
}

/// How long a delivery stays unacked besides the run itself, at most: compiling its module
/// (not counted in `timeout_ms`), publishing the result and waiting for the broker's
/// confirm, and the broker's own interval between consumer-timeout checks.
const CONSUMER_TIMEOUT_MARGIN_MS: u64 = 60_000;

/// Refuses a job timeout the broker would cut short: a delivery unacked past the broker's
/// `consumer_timeout` closes the worker's consuming channel, so the job's ack fails and the
/// job goes back to the queue; it runs again (its result may be published each time), and
/// at the delivery limit it is dead-lettered.
fn check_consumer_timeout(max_timeout_ms: u64, consumer_timeout_ms: u64) -> anyhow::Result<()> {
    if consumer_timeout_ms == 0 {
        return Ok(());
    }
    let needed = max_timeout_ms.saturating_add(CONSUMER_TIMEOUT_MARGIN_MS);
    if needed < consumer_timeout_ms {
        return Ok(());
    }
    let fix = match consumer_timeout_ms.checked_sub(CONSUMER_TIMEOUT_MARGIN_MS + 1) {
        Some(most) if most > 0 => format!(
            "lower limits.maximum.timeout_ms to at most {most} ([limits.maximum] timeout_ms in the config file), or "
        ),
        _ => String::new(),
    };
    anyhow::bail!(
        "limits.maximum.timeout_ms = {max_timeout_ms} ms (the longest job this worker accepts) plus a {CONSUMER_TIMEOUT_MARGIN_MS} ms margin for compiling and publishing is not below the broker's consumer timeout, consumer_timeout_ms = {consumer_timeout_ms} ms: RabbitMQ would close the worker's channel before such a job is acked, and the job would run again and again until the delivery limit dead-letters it. To fix it, {fix}raise consumer_timeout in the broker's rabbitmq.conf above {needed} and give the worker the same value (--consumer-timeout-ms, WASMQ_CONSUMER_TIMEOUT_MS or consumer_timeout_ms; 0 when the broker has no consumer timeout)"
    )
}

impl WorkerCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (layers, common) = settings::start(&self.common, matches, "info")?;
        let concurrency = SandboxSettings::concurrency(&layers, &self.sandbox).value;
        let w = WorkerSettings::resolve(&layers, &self.worker, concurrency)?;
        // Checked before anything is built or connected: a worker the broker would cut short
        // must not take a single job.
        let sandbox = SandboxSettings::resolve(&layers, &self.sandbox)?;
        check_consumer_timeout(
            sandbox.config.limits.maximum.timeout_ms,
            w.consumer_timeout_ms,
        )?;
        let broker = BrokerSettings::resolve(&layers, &self.broker)?;
        settings::runtime()?.block_on(Self::run(common, sandbox, broker, w))
    }

    async fn run(
        settings: CommonSettings,
        sandbox_settings: SandboxSettings,
        broker: BrokerSettings,
        w: WorkerSettings,
    ) -> Outcome {
        let concurrency = sandbox_settings.concurrency;
        let max_timeout_ms = sandbox_settings.config.limits.maximum.timeout_ms;
        let BrokerSettings {
            amqp_url: url,
            topology,
            ..
        } = broker;
        let WorkerSettings {
            drain_timeout: drain,
            max_message_bytes,
            prefetch,
            worker_id,
            consumer_timeout_ms,
            metrics_addr,
            heartbeat_interval,
            ..
        } = w;
        // `shutdown` starts the drain; `link` closes the broker connections after it, so
        // results of the jobs in flight can still be published while draining.
        let shutdown = CancellationToken::new();
        let link = CancellationToken::new();
        let mut fleet = sandbox_settings.fleet(&settings);
        if fleet.artifacts.is_some() {
            // Workers that share artifacts compile each module once between them.
            fleet.leases = Some(Arc::new(AmqpLeases::start(
                split_urls(&url),
                format!("wasmq-worker {worker_id} leases"),
                topology.prefix.clone(),
                link.clone(),
            )));
        }
        let (cache, sandbox) = sandbox_settings.build(&settings, fleet)?;
        // Deliveries beyond the running jobs wait in this worker, unacked, for a free slot; the
        // broker's clock runs for them too.
        let rounds = usize::from(prefetch).div_ceil(concurrency.max(1)) as u64;
        let worst_ms = rounds
            .saturating_mul(max_timeout_ms)
            .saturating_add(CONSUMER_TIMEOUT_MARGIN_MS);
        if rounds > 1 && consumer_timeout_ms != 0 && worst_ms >= consumer_timeout_ms {
            info!(
                prefetch,
                concurrency,
                max_timeout_ms,
                consumer_timeout_ms,
                "with this prefetch a job can wait unacked behind up to {} others in this worker before it starts: up to {worst_ms} ms if every job runs its maximum, past the broker's consumer timeout; for long jobs set --prefetch to --concurrency",
                usize::from(prefetch) - 1,
            );
        }

        let metrics = Arc::new(Metrics::new(WASMTIME_VERSION));
        let server = CancellationToken::new();
        if let Some(addr) = metrics_addr {
            metrics::serve(addr, metrics.clone(), server.clone())
                .await
                .with_context(|| format!("could not serve metrics on {addr}"))?;
        }
        // Connects in the background, retrying while the broker is down (not ready then).
        let transport = Arc::new(AmqpTransport::start(
            AmqpConfig {
                urls: split_urls(&url),
                topology: topology.clone(),
                prefetch,
                connection_name: format!("wasmq-worker {worker_id}"),
                tenants: sandbox
                    .config()
                    .tenancy
                    .as_ref()
                    .map(|t| t.tenants.keys().cloned().collect())
                    .unwrap_or_default(),
            },
            metrics.clone(),
            link.clone(),
        ));
        let cancels = Arc::new(Cancels::new());
        let shares = shares(&sandbox);
        info!(worker = %worker_id, queue = %topology.jobs_queue(), concurrency, prefetch, engine = sandbox.fingerprint(), "worker starting");
        tokio::spawn(serve_control(
            transport.clone(),
            worker_id.clone(),
            cache.clone(),
            sandbox.clone(),
            metrics.clone(),
            cancels.clone(),
            shutdown.clone(),
        ));

        let signals = shutdown.clone();
        let draining = metrics.clone();
        tokio::spawn(async move {
            let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            info!("stop signal: draining (a second signal stops at once)");
            draining.draining();
            signals.cancel();
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            warn!("second stop signal: exiting now; unacked jobs return to the queue");
            std::process::exit(130);
        });

        let beats = Beats {
            transport: transport.clone(),
            metrics: metrics.clone(),
            worker: worker_id.clone(),
            concurrency,
            started_at_ms: now_ms(),
            interval: heartbeat_interval,
        };
        let beating = CancellationToken::new();
        tokio::spawn(beats.clone().run(beating.clone()));
        tokio::spawn(sweep_batches(
            transport.clone(),
            Duration::from_secs(topology.batch_retention.max_age_secs),
            shutdown.clone(),
        ));

        let worker = Worker::new(
            sandbox,
            transport.clone(),
            WorkerConfig {
                concurrency,
                worker_id,
                max_message_bytes,
            },
        )
        .with_metrics(metrics)
        .with_cancels(cancels)
        .with_shares(shares);
        let run = worker.run(shutdown.clone());
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => info!("drained; every job taken was published and acked"),
            _ = async { shutdown.cancelled().await; tokio::time::sleep(drain).await } => {
                warn!(drain_timeout_secs = drain.as_secs(), "jobs still running at the drain timeout; exiting, they return to the queue");
            }
        }
        beating.cancel();
        beats.send(WorkerState::Stopped).await;
        transport.close().await;
        server.cancel();
        Ok(true)
    }
}

/// Deletes the results streams of batches past `max_age`, every quarter of it (1 s to 10
/// min), until `stop`.
async fn sweep_batches(transport: Arc<AmqpTransport>, max_age: Duration, stop: CancellationToken) {
    let every = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match transport.sweep_batches(max_age).await {
            Ok(0) => {}
            Ok(n) => info!(
                streams = n,
                "deleted the results streams of batches past their retention"
            ),
            Err(e) => tracing::debug!(error = %e, "no sweep of expired batches this time"),
        }
    }
}

/// The worker's heartbeats: who it is and what it has done, every `interval`.
#[derive(Clone)]
struct Beats {
    transport: Arc<AmqpTransport>,
    metrics: Arc<Metrics>,
    worker: String,
    concurrency: usize,
    started_at_ms: u64,
    interval: Duration,
}

impl Beats {
    /// Sends a heartbeat every interval (the first at once) until `stop`.
    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let state = if self.metrics.is_draining() {
                WorkerState::Draining
            } else {
                WorkerState::Running
            };
            self.send(state).await;
        }
    }

    /// Publishes one heartbeat; a failure (the broker away) is logged at debug level: the
    /// next one is sent on time.
    async fn send(&self, state: WorkerState) {
        let counts = self.metrics.job_counts();
        let beat = HeartbeatMessage::Heartbeat {
            heartbeat: Heartbeat {
                worker: self.worker.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                wasmtime: WASMTIME_VERSION.to_owned(),
                concurrency: u32::try_from(self.concurrency).unwrap_or(u32::MAX),
                in_flight: counts.in_flight,
                done: counts.done,
                failed: counts.failed,
                started_at_ms: self.started_at_ms,
                at_ms: now_ms(),
                interval_ms: self.interval.as_millis() as u64,
                state,
            },
        };
        let body = serde_json::to_vec(&beat).expect("a heartbeat encodes");
        if let Err(e) = self.transport.heartbeat(&body).await {
            tracing::debug!(error = %e, "heartbeat not sent");
        }
    }
}

/// Answers broadcasts on the control exchange (prewarm) until shutdown.
async fn serve_control(
    transport: Arc<AmqpTransport>,
    worker_id: String,
    cache: Arc<Cache>,
    sandbox: Sandbox,
    metrics: Arc<Metrics>,
    cancels: Arc<Cancels>,
    shutdown: CancellationToken,
) {
    transport
        .serve_control(shutdown, |message| {
            let (worker_id, cache, sandbox, metrics, cancels) =
                (&worker_id, &cache, &sandbox, &metrics, &cancels);
            async move {
                match serde_json::from_slice::<ControlRequest>(&message.body) {
                    Ok(ControlRequest::Cancel(request)) => {
                        let stopped =
                            cancels.apply(message.user_id.as_deref(), &request, SystemTime::now());
                        if !message.replayed {
                            info!(user = message.user_id.as_deref().unwrap_or(""), batch = request.cancel.batch.as_deref().unwrap_or(""), ids = request.cancel.ids.len(), stopped = stopped.len(), "cancel");
                        }
                        let reply = CancelReply {
                            worker: worker_id.clone(),
                            stopped,
                        };
                        serde_json::to_vec(&reply).expect("a reply serializes")
                    }
                    // The log's copy of a prewarm was answered when it was sent.
                    Ok(ControlRequest::Prewarm(_)) if message.replayed => Vec::new(),
                    Ok(ControlRequest::Prewarm(request)) => {
                        // A tenant may cancel its jobs, but compiling is the operator's.
                        let user = message.user_id.as_deref();
                        let refusal = is_tenant(sandbox, user).then(|| {
                            warn!(user, "refusing a prewarm request from a tenant");
                            format!(
                                "prewarm is for the operator: broker user {:?} is a tenant of this worker",
                                user.unwrap_or("")
                            )
                        });
                        let reply =
                            prewarm(request, refusal, worker_id, cache, sandbox, metrics).await;
                        serde_json::to_vec(&reply).expect("a reply serializes")
                    }
                    Err(e) => {
                        if !message.replayed {
                            warn!(error = %e, "ignoring a control message that is neither a prewarm nor a cancel");
                        }
                        Vec::new()
                    }
                }
            }
        })
        .await;
}

/// Each tenant's share of this worker, from its policy.
fn shares(sandbox: &Sandbox) -> Shares {
    let share = |p: &TenantPolicy| Share {
        weight: p.weight,
        max_in_flight: p.max_in_flight,
    };
    match &sandbox.config().tenancy {
        Some(t) => Shares {
            tenants: t
                .tenants
                .iter()
                .map(|(name, p)| (name.clone(), share(p)))
                .collect(),
            default: share(&t.default),
        },
        None => Shares::default(),
    }
}

/// Whether `user` is a tenant of this worker (has a policy of its own).
fn is_tenant(sandbox: &Sandbox, user: Option<&str>) -> bool {
    let tenancy = sandbox.config().tenancy.as_ref();
    user.is_some_and(|u| tenancy.is_some_and(|t| t.tenants.contains_key(u)))
}

/// Compiles the requested modules, or (with `refusal`) reports each as failed for that
/// reason.
async fn prewarm(
    request: PrewarmRequest,
    refusal: Option<String>,
    worker_id: &str,
    cache: &Cache,
    sandbox: &Sandbox,
    metrics: &Metrics,
) -> PrewarmReply {
    let mut reply = PrewarmReply {
        worker: worker_id.to_owned(),
        engine: sandbox.fingerprint().to_owned(),
        modules: Vec::new(),
    };
    for hex in request.modules {
        let failed = |why: String| PrewarmOutcome {
            sha256: hex.clone(),
            outcome: "failed".into(),
            compile_us: 0,
            error: Some(why),
        };
        let outcome = match (&refusal, hex.parse::<Digest>()) {
            (Some(why), _) => failed(why.clone()),
            (None, Err(e)) => failed(e.to_string()),
            (None, Ok(d)) => match cache.get_module(&d) {
                Ok(None) => failed(format!(
                    "module sha256:{hex} is not in this worker's module store"
                )),
                Err(e) => failed(e.to_string()),
                Ok(Some(bytes)) => match sandbox.prewarm(bytes).await {
                    Ok(p) => {
                        if p.outcome == CacheOutcome::Compiled {
                            metrics.compiled(p.compile_us);
                        }
                        PrewarmOutcome {
                            sha256: hex.clone(),
                            outcome: if p.outcome == CacheOutcome::Compiled {
                                "compiled"
                            } else {
                                "cached"
                            }
                            .into(),
                            compile_us: p.compile_us,
                            error: None,
                        }
                    }
                    Err(why) => failed(why.to_string()),
                },
            },
        };
        info!(module = %hex, outcome = %outcome.outcome, "prewarm");
        reply.modules.push(outcome);
    }
    reply
}
