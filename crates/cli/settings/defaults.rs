//! The built-in value of every setting that has one, and of every command's own flags.
//!
//! The values the library crates define (the sandbox's, the job format's, the broker's)
//! are taken from there; the flags' help shows these values (see `args`), and
//! `wasmq config` prints them as resolved.

use std::time::Duration;

use wasmq_broker::amqp::{BatchRetention, Retention};
use wasmq_sandbox::{SandboxConfig, TenantPolicy};
use wasmq_spec::{LimitPolicy, UnknownImports};

/// `cache_dir`, relative to the working directory.
pub const CACHE_DIR: &str = "cache";
/// `amqp_url`.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// `queue_prefix`.
pub const QUEUE_PREFIX: &str = "wasmq";
/// `delivery_limit`.
pub const DELIVERY_LIMIT: u32 = 5;
/// `drain_timeout_secs`.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a worker publishes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// `max_message_bytes`.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// `consumer_timeout_ms`: RabbitMQ's default `consumer_timeout` (30 minutes, since
/// 3.8.15).
pub const CONSUMER_TIMEOUT_MS: u64 = 1_800_000;
/// `prefetch`: the concurrency plus this many results awaiting confirms.
pub const PREFETCH_PIPELINE: usize = 64;
/// `compile_wait_secs`: how long a worker waits for another worker's compile of the same
/// module.
pub const COMPILE_WAIT: Duration = Duration::from_secs(60);
/// `registry_retry_secs`: how long a worker retries a registry it cannot reach before
/// requeueing the job.
pub const REGISTRY_RETRY: Duration = Duration::from_secs(30);
/// `results_queue_ttl_secs` and `results_queue_max_length`: the broker's retention of
/// the shared results queue.
pub const RESULTS_RETENTION: Retention = Retention::DEFAULT;

/// How long a batch's results stream is kept, and how large it may grow.
pub const BATCH_RETENTION: BatchRetention = BatchRetention::DEFAULT;
/// `default_work_dir`: the job format's guest path of the job's directory.
pub const DEFAULT_WORK_DIR: &str = wasmq_spec::WORK_DIR;

/// `unknown_imports`: the job format's default for jobs that do not say.
pub fn unknown_imports() -> UnknownImports {
    UnknownImports::default()
}

/// `concurrency`: the number of cores (2 when it cannot be told).
pub fn concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// `worker_id`: `HOST-PID`.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The sandbox's own defaults: those of the settings only the config file sets
/// (`hot_set_size`, `max_module_bytes`, `max_core_instance_bytes`, `work_root`,
/// `pooling`), and of what the config cannot change.
pub fn sandbox() -> SandboxConfig {
    SandboxConfig::default()
}

/// `[limits.default]` and `[limits.maximum]`: the job format's built-in limits.
pub fn limits() -> LimitPolicy {
    LimitPolicy::default()
}

/// A tenant policy's keys it does not set (`weight`), and `[default_tenant]` when the
/// file has none: the sandbox's restrictive policy under the worker's `limits`.
pub fn tenant_policy(limits: &LimitPolicy) -> TenantPolicy {
    TenantPolicy::restrictive(limits)
}

/// `wasmq submit --window`.
pub const SUBMIT_WINDOW: usize = 1024;
/// `wasmq cancel --wait`, in seconds.
pub const CANCEL_WAIT_SECS: f64 = 2.0;
/// `wasmq dead list --limit`.
pub const DEAD_LIST_LIMIT: u32 = 1000;
/// `wasmq prewarm --timeout`, in seconds.
pub const PREWARM_TIMEOUT_SECS: u64 = 120;
/// `wasmq snapshot --init`: the sandbox's initializer export.
pub const SNAPSHOT_INIT: &str = wasmq_sandbox::DEFAULT_INIT;
