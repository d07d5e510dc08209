//! The settings of `wasmq worker`'s own flags.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::settings::args::WorkerArgs;
use crate::settings::defaults;
use crate::settings::sources::{Entries, Layers, Value};

/// The settings of [`WorkerArgs`], checked.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long jobs in flight may take to finish after a stop signal.
    pub drain_timeout: Duration,
    /// How often the worker publishes its heartbeat.
    pub heartbeat_interval: Duration,
    /// The largest job message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Job messages the broker may hand the worker before it acks them.
    pub prefetch: u16,
    /// The name written into every result.
    pub worker_id: String,
    /// The broker's `consumer_timeout`, in ms (0: none).
    pub consumer_timeout_ms: u64,
    /// Where metrics and health are served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Every setting above, with its source.
    pub entries: Entries,
}

impl WorkerSettings {
    /// Resolves and checks the worker's settings; the prefetch is checked against
    /// `concurrency` ([`SandboxSettings::concurrency`](super::SandboxSettings::concurrency)).
    pub fn resolve(
        layers: &Layers,
        args: &WorkerArgs,
        concurrency: usize,
    ) -> anyhow::Result<WorkerSettings> {
        let f = &layers.file;
        let mut entries = Entries::default();
        let drain_secs = entries.add(
            "drain_timeout_secs",
            layers.merge(
                "drain_timeout_secs",
                args.drain_timeout_secs,
                f.drain_timeout_secs,
                || defaults::DRAIN_TIMEOUT.as_secs(),
            ),
            u64::to_string,
        );
        let heartbeat_secs = entries.add(
            "heartbeat_interval_secs",
            layers.merge(
                "heartbeat_interval_secs",
                args.heartbeat_interval_secs,
                f.heartbeat_interval_secs,
                || defaults::HEARTBEAT_INTERVAL.as_secs(),
            ),
            u64::to_string,
        );
        if heartbeat_secs == 0 {
            bail!("heartbeat_interval_secs must be at least 1");
        }
        let max_message_bytes = entries.add(
            "max_message_bytes",
            layers.merge(
                "max_message_bytes",
                args.max_message_bytes,
                f.max_message_bytes,
                || defaults::MAX_MESSAGE_BYTES,
            ),
            usize::to_string,
        );
        let prefetch = layers
            .optional("prefetch", args.prefetch, f.prefetch)
            .try_map(|p| match p {
                Some(p) if usize::from(p) < concurrency => bail!(
                    "--prefetch {p} is below --concurrency {concurrency}: the worker could never fill its sandboxes"
                ),
                Some(p) => Ok(p),
                None => u16::try_from(concurrency + defaults::PREFETCH_PIPELINE)
                    .context("concurrency must be below 65000"),
            })?;
        let prefetch = entries.add("prefetch", prefetch, u16::to_string);
        let worker_id = entries.add(
            "worker_id",
            layers.merge(
                "worker_id",
                args.worker_id.clone(),
                f.worker_id.clone(),
                defaults::worker_id,
            ),
            String::clone,
        );
        let consumer_timeout_ms = entries.add(
            "consumer_timeout_ms",
            layers.merge(
                "consumer_timeout_ms",
                args.consumer_timeout_ms,
                f.consumer_timeout_ms,
                || defaults::CONSUMER_TIMEOUT_MS,
            ),
            u64::to_string,
        );
        // The file's address is read only when no flag replaces it.
        let metrics_addr = match (args.metrics_addr, &f.metrics_addr) {
            (Some(a), _) => Some(a),
            (None, Some(text)) => Some(text.parse::<SocketAddr>().with_context(|| {
                format!("metrics_addr {text:?} is not an address such as 0.0.0.0:9090")
            })?),
            (None, None) => None,
        };
        let source = layers.source(
            "metrics_addr",
            args.metrics_addr.is_some(),
            f.metrics_addr.is_some(),
        );
        let metrics_addr = entries.add(
            "metrics_addr",
            Value {
                value: metrics_addr,
                source,
            },
            |a| a.map_or("off".into(), |a| a.to_string()),
        );
        Ok(WorkerSettings {
            drain_timeout: Duration::from_secs(drain_secs),
            heartbeat_interval: Duration::from_secs(heartbeat_secs),
            max_message_bytes,
            prefetch,
            worker_id,
            consumer_timeout_ms,
            metrics_addr,
            entries,
        })
    }
}
