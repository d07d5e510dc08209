//! `wasmq worker`: consume jobs from RabbitMQ, run them, publish results.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wasmq_broker::amqp::{AmqpConfig, AmqpTransport, Topology};
use wasmq_broker::client::Client;
use wasmq_cache::{Cache, Digest};
use wasmq_sandbox::Sandbox;
use wasmq_spec::CacheOutcome;
use wasmq_spec::control::{PrewarmOutcome, PrewarmReply, PrewarmRequest};
use wasmq_worker::{Worker, WorkerConfig};

use crate::Outcome;
use crate::config::{BrokerArgs, CommonArgs, SandboxArgs, Settings};

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
    /// Seconds jobs in flight may take to finish after a stop signal
    /// [config: drain_timeout_secs] [default: 30].
    #[arg(long, env = "WASMQ_DRAIN_TIMEOUT_SECS")]
    drain_timeout_secs: Option<u64>,
    /// Largest job message accepted, in bytes [config: max_message_bytes] [default: 16 MiB].
    #[arg(long, env = "WASMQ_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Job messages the broker may hand this worker before it acks them: the jobs running
    /// plus results waiting for the broker's confirm. Set it equal to --concurrency for
    /// long jobs, so no worker holds jobs it cannot start yet [config: prefetch]
    /// [default: concurrency + 64].
    #[arg(long, env = "WASMQ_PREFETCH")]
    prefetch: Option<u16>,
    /// Name written into every result [config: worker_id] [default: HOST-PID].
    #[arg(long, env = "WASMQ_WORKER_ID")]
    worker_id: Option<String>,
}

impl WorkerCommand {
    pub fn execute(self) -> Outcome {
        let settings = Settings::start(&self.common, "info")?;
        settings.runtime()?.block_on(self.run(settings))
    }

    async fn run(self, settings: Settings) -> Outcome {
        let concurrency = settings.concurrency(&self.sandbox);
        let (cache, sandbox) = settings.sandbox(&self.sandbox)?;
        let url = settings.amqp_url(&self.broker);
        let topology = settings.topology(&self.broker)?;
        let worker_id = self
            .worker_id
            .clone()
            .or_else(|| settings.file.worker_id.clone())
            .unwrap_or_else(default_worker_id);
        let drain = Duration::from_secs(
            self.drain_timeout_secs
                .or(settings.file.drain_timeout_secs)
                .unwrap_or(30),
        );
        let max_message_bytes = self
            .max_message_bytes
            .or(settings.file.max_message_bytes)
            .unwrap_or(16 << 20);
        let prefetch = match self.prefetch.or(settings.file.prefetch) {
            Some(p) if usize::from(p) < concurrency => {
                anyhow::bail!(
                    "--prefetch {p} is below --concurrency {concurrency}: the worker could never fill its sandboxes"
                )
            }
            Some(p) => p,
            None => u16::try_from(concurrency + 64).context("concurrency must be below 65000")?,
        };

        let shutdown = CancellationToken::new();
        // Control first, so that a worker counted by `prewarm --broadcast` always answers.
        let control = Client::connect(
            &url,
            &format!("wasmq-worker {worker_id} control"),
            topology.clone(),
        )
        .await
        .context("the worker could not start")?;
        let subscription = control.private_queue(true).await?;
        tokio::spawn(serve_control(
            control,
            subscription,
            (url.clone(), topology.clone()),
            worker_id.clone(),
            cache.clone(),
            sandbox.clone(),
            shutdown.clone(),
        ));

        let transport = Arc::new(
            AmqpTransport::connect(AmqpConfig {
                url,
                topology: topology.clone(),
                prefetch,
                connection_name: format!("wasmq-worker {worker_id}"),
            })
            .await
            .context("the worker could not start")?,
        );
        info!(worker = %worker_id, queue = %topology.jobs_queue(), concurrency, prefetch, engine = sandbox.fingerprint(), "worker consuming");

        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            info!("stop signal: draining (a second signal stops at once)");
            signals.cancel();
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            warn!("second stop signal: exiting now; unacked jobs return to the queue");
            std::process::exit(130);
        });

        let worker = Worker::new(
            sandbox,
            transport.clone(),
            WorkerConfig {
                concurrency,
                worker_id,
                max_message_bytes,
            },
        );
        let run = worker.run(shutdown.clone());
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => info!("drained; every job taken was published and acked"),
            _ = async { shutdown.cancelled().await; tokio::time::sleep(drain).await } => {
                warn!(drain_timeout_secs = drain.as_secs(), "jobs still running at the drain timeout; exiting, they return to the queue");
            }
        }
        transport.close().await;
        Ok(true)
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Answers broadcasts on the control exchange (prewarm) until shutdown, reconnecting when
/// the connection drops.
async fn serve_control(
    mut client: Client,
    mut sub: wasmq_broker::client::Subscription,
    (url, topology): (String, Topology),
    worker_id: String,
    cache: Arc<Cache>,
    sandbox: Sandbox,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = shutdown.cancelled() => return,
        };
        match msg {
            Some(Ok(m)) => {
                delay = Duration::from_millis(100);
                let reply_to = m.reply_to.clone();
                let correlation = m.correlation_id.clone();
                let reply = prewarm(&m.body, &worker_id, &cache, &sandbox).await;
                if let Err(e) = m.ack().await {
                    warn!(error = %e, "could not ack a control message");
                }
                if let Some(to) = reply_to {
                    let body = serde_json::to_vec(&reply).expect("a reply serializes");
                    if let Err(e) = client
                        .send_to_queue(&to, &body, correlation.as_deref())
                        .await
                    {
                        warn!(error = %e, "could not answer a prewarm request");
                    }
                }
                continue;
            }
            Some(Err(e)) => warn!(error = %e, "control connection lost; reconnecting"),
            None => warn!("control consumer ended; reconnecting"),
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
            let name = format!("wasmq-worker {worker_id} control");
            match Client::connect(&url, &name, topology.clone()).await {
                Ok(c) => match c.private_queue(true).await {
                    Ok(s) => {
                        (client, sub) = (c, s);
                        break;
                    }
                    Err(e) => warn!(error = %e, "could not subscribe to the control exchange"),
                },
                Err(e) => warn!(error = %e, "control connection failed"),
            }
        }
    }
}

async fn prewarm(body: &[u8], worker_id: &str, cache: &Cache, sandbox: &Sandbox) -> PrewarmReply {
    let mut reply = PrewarmReply {
        worker: worker_id.to_owned(),
        engine: sandbox.fingerprint().to_owned(),
        modules: Vec::new(),
    };
    let request: PrewarmRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "ignoring a control message that is not a prewarm request");
            return reply;
        }
    };
    for hex in request.modules {
        let failed = |why: String| PrewarmOutcome {
            sha256: hex.clone(),
            outcome: "failed".into(),
            compile_us: 0,
            error: Some(why),
        };
        let outcome = match hex.parse::<Digest>() {
            Err(e) => failed(e.to_string()),
            Ok(d) => match cache.get_module(&d) {
                Ok(None) => failed(format!(
                    "module sha256:{hex} is not in this worker's module store"
                )),
                Err(e) => failed(e.to_string()),
                Ok(Some(bytes)) => match sandbox.prewarm(bytes).await {
                    Ok(p) => PrewarmOutcome {
                        sha256: hex.clone(),
                        outcome: if p.outcome == CacheOutcome::Compiled {
                            "compiled"
                        } else {
                            "cached"
                        }
                        .into(),
                        compile_us: p.compile_us,
                        error: None,
                    },
                    Err(why) => failed(why),
                },
            },
        };
        info!(module = %hex, outcome = %outcome.outcome, "prewarm");
        reply.modules.push(outcome);
    }
    reply
}
