//! The flags of the settings, in groups that commands flatten into their own arguments:
//! [`CommonArgs`] (every command), [`SandboxArgs`] (commands that run jobs),
//! [`BrokerArgs`] (commands that talk to RabbitMQ), [`WorkerArgs`] (`wasmq worker` and
//! `wasmq config`).
//!
//! Every field is `None` (or empty) unless given as a flag or its `WASMQ_*` environment
//! variable: the config file and the defaults come under them at resolution. A help that
//! names a default builds it from [`defaults`].

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use serde::Deserialize;
use wasmq_sandbox::Volume;
use wasmq_spec::{UnknownImports, UnknownImportsError};

use super::defaults;

/// The help of a setting's flag: what it does, then its config key and its default.
fn help(what: &str, key: &str, default: impl Display) -> String {
    format!("{what} [config: {key}] [default: {default}]")
}

/// Flags every command shares.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// TOML config file (see docs/configuration.md).
    #[arg(long, env = "WASMQ_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[arg(long, env = "WASMQ_CACHE_DIR", global = true, help = help(
        "Root of the module store and artifact cache",
        "cache_dir",
        format_args!("./{}", defaults::CACHE_DIR),
    ))]
    pub cache_dir: Option<PathBuf>,
    /// Cap on compiled artifacts on disk, in bytes; least recently used go first
    /// [config: cache_max_bytes].
    #[arg(long, env = "WASMQ_CACHE_MAX_BYTES", global = true)]
    pub cache_max_bytes: Option<u64>,
    /// File holding the key that authenticates compiled artifacts; created when missing.
    /// Keep it outside the cache directory [config: artifact_key_file]
    /// [default: the cache directory's path + `.key`].
    #[arg(long, env = "WASMQ_ARTIFACT_KEY_FILE", global = true)]
    pub artifact_key_file: Option<PathBuf>,
    /// Log format: human or json [config: log_format].
    #[arg(long, env = "WASMQ_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// The module store: a directory (holding `modules/`), or an OCI registry repository,
    /// oci://HOST[:PORT]/REPOSITORY [config: module_store] [default: the cache directory].
    /// A registry's credentials come from `[registries."HOST:PORT"]` in the config file,
    /// else from WASMQ_REGISTRY_USERNAME and WASMQ_REGISTRY_PASSWORD (or
    /// WASMQ_REGISTRY_TOKEN); never from a job.
    #[arg(long, env = "WASMQ_MODULE_STORE", global = true)]
    pub module_store: Option<String>,
    /// A registry repository where workers share compiled artifacts,
    /// oci://HOST[:PORT]/REPOSITORY; every worker needs the same artifact key file
    /// [config: artifact_store] [default: none].
    #[arg(long, env = "WASMQ_ARTIFACT_STORE", global = true)]
    pub artifact_store: Option<String>,
    /// A registry (HOST:PORT) reached over plain HTTP instead of HTTPS (repeatable; env:
    /// comma-separated) [config: insecure_registries].
    #[arg(
        long = "insecure-registry",
        env = "WASMQ_INSECURE_REGISTRIES",
        value_delimiter = ',',
        global = true
    )]
    pub insecure_registries: Vec<String>,
}

/// Flags of the commands that run jobs.
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Jobs run at once [config: concurrency] [default: number of cores].
    #[arg(long, short = 'j', env = "WASMQ_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// A host directory jobs may mount by NAME: NAME=DIR, or NAME=DIR:rw to allow writes
    /// (repeatable; env: comma-separated) [config: [volumes]].
    #[arg(long = "volume", env = "WASMQ_VOLUMES", value_delimiter = ',')]
    pub volumes: Vec<String>,
    /// Default wall-clock limit per job, in ms [config: limits.default.timeout_ms].
    #[arg(long, env = "WASMQ_TIMEOUT_MS")]
    pub timeout_ms: Option<u64>,
    /// Default memory limit per job, in bytes [config: limits.default.memory_bytes].
    #[arg(long, env = "WASMQ_MEMORY_BYTES")]
    pub memory_bytes: Option<u64>,
    #[arg(long, env = "WASMQ_DEFAULT_WORK_DIR", help = help(
        "Guest path of the job's directory for jobs that give no `work_dir`, e.g. `/` to \
         run WASI programs as `wasmtime run --dir DIR::/` does",
        "default_work_dir",
        defaults::DEFAULT_WORK_DIR,
    ))]
    pub default_work_dir: Option<String>,
    #[arg(long, env = "WASMQ_UNKNOWN_IMPORTS", value_parser = parse_unknown_imports, help = help(
        "What imports the sandbox does not provide do in jobs that do not say: `reject` \
         (the job is `rejected`, `unknown_import`) or `trap` (linked as functions that trap \
         when called, as `wasmtime run --trap-unknown-imports` does)",
        "unknown_imports",
        defaults::unknown_imports().as_str(),
    ))]
    pub unknown_imports: Option<UnknownImports>,
    #[arg(long, env = "WASMQ_COMPILE_WAIT_SECS", help = help(
        "Seconds a worker waits for another worker's compile of the same module (with a \
         shared artifact store) before compiling it itself",
        "compile_wait_secs",
        defaults::COMPILE_WAIT.as_secs(),
    ))]
    pub compile_wait_secs: Option<u64>,
    #[arg(long, env = "WASMQ_REGISTRY_RETRY_SECS", help = help(
        "Seconds a registry that cannot be reached is retried before the job goes back to \
         the broker",
        "registry_retry_secs",
        defaults::REGISTRY_RETRY.as_secs(),
    ))]
    pub registry_retry_secs: Option<u64>,
    /// An outbound host components may send HTTP requests to: scheme://host[:port], with
    /// `*.` for subdomains and `*` for any host or port (repeatable; env: comma-separated)
    /// [config: allowed_outbound_hosts] [default: none: no network].
    #[arg(
        long = "allowed-outbound-host",
        env = "WASMQ_ALLOWED_OUTBOUND_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_outbound_hosts: Vec<String>,
    /// A network (CIDR) of private, loopback or other special addresses that allowed hosts
    /// may resolve to (repeatable; env: comma-separated) [config: outbound_private_networks]
    /// [default: none].
    #[arg(
        long = "outbound-private-network",
        env = "WASMQ_OUTBOUND_PRIVATE_NETWORKS",
        value_delimiter = ','
    )]
    pub outbound_private_networks: Vec<String>,
    /// A PEM file of CA certificates trusted for outbound HTTPS besides the system's
    /// [config: outbound_ca_file].
    #[arg(long, env = "WASMQ_OUTBOUND_CA_FILE")]
    pub outbound_ca_file: Option<std::path::PathBuf>,
}

/// The flags of a command that only talks to RabbitMQ: the common ones and the broker's.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// Flags of the commands that talk to RabbitMQ.
#[derive(Args, Debug, Clone)]
pub struct BrokerArgs {
    #[arg(long, env = "WASMQ_AMQP_URL", help = help("Broker URL", "amqp_url", defaults::AMQP_URL))]
    pub amqp_url: Option<String>,
    #[arg(long, env = "WASMQ_QUEUE_PREFIX", help = help(
        "Prefix of every queue and exchange name, so deployments and tests can share a \
         broker",
        "queue_prefix",
        defaults::QUEUE_PREFIX,
    ))]
    pub queue_prefix: Option<String>,
    #[arg(long, env = "WASMQ_DELIVERY_LIMIT", help = help(
        "Deliveries of one job before the broker dead-letters it; must be the same for \
         every process on one prefix",
        "delivery_limit",
        defaults::DELIVERY_LIMIT,
    ))]
    pub delivery_limit: Option<u32>,
    #[arg(long, env = "WASMQ_RESULTS_QUEUE_TTL_SECS", help = help(
        "Seconds the shared results queue keeps a result nobody reads; 0 for no limit. \
         Must be the same for every process on one prefix",
        "results_queue_ttl_secs",
        format_args!(
            "{}, {} days",
            defaults::RESULTS_RETENTION.ttl_secs,
            defaults::RESULTS_RETENTION.ttl_secs / 86_400
        ),
    ))]
    pub results_queue_ttl_secs: Option<u32>,
    #[arg(long, env = "WASMQ_RESULTS_QUEUE_MAX_LENGTH", help = help(
        "Results the shared results queue keeps at most; past it the oldest are dropped; 0 \
         for no limit. Must be the same for every process on one prefix",
        "results_queue_max_length",
        defaults::RESULTS_RETENTION.max_length,
    ))]
    pub results_queue_max_length: Option<u32>,
    #[arg(long, env = "WASMQ_BATCH_RESULTS_MAX_AGE_SECS", help = help(
        "Seconds a batch's results stream is kept after its submit (at most 30 days); \
         workers delete it then. Must be the same for every process on one prefix",
        "batch_results_max_age_secs",
        format_args!(
            "{}, {} days",
            defaults::BATCH_RETENTION.max_age_secs,
            defaults::BATCH_RETENTION.max_age_secs / 86_400
        ),
    ))]
    pub batch_results_max_age_secs: Option<u64>,
    #[arg(long, env = "WASMQ_BATCH_RESULTS_MAX_BYTES", help = help(
        "Bytes a batch's results stream holds at most; past it the oldest are dropped. Must \
         be the same for every process on one prefix",
        "batch_results_max_bytes",
        format_args!("{} GiB", defaults::BATCH_RETENTION.max_bytes >> 30),
    ))]
    pub batch_results_max_bytes: Option<u64>,
}

/// The worker's own flags (`wasmq config` takes them too).
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    #[arg(long, env = "WASMQ_DRAIN_TIMEOUT_SECS", help = help(
        "Seconds jobs in flight may take to finish after a stop signal",
        "drain_timeout_secs",
        defaults::DRAIN_TIMEOUT.as_secs(),
    ))]
    pub drain_timeout_secs: Option<u64>,
    #[arg(long, env = "WASMQ_HEARTBEAT_INTERVAL_SECS", help = help(
        "Seconds between two heartbeats of the worker (`wasmq status` shows a worker silent \
         for three of them as gone)",
        "heartbeat_interval_secs",
        defaults::HEARTBEAT_INTERVAL.as_secs(),
    ))]
    pub heartbeat_interval_secs: Option<u64>,
    #[arg(long, env = "WASMQ_MAX_MESSAGE_BYTES", help = help(
        "Largest job message accepted, in bytes",
        "max_message_bytes",
        format_args!("{} MiB", defaults::MAX_MESSAGE_BYTES >> 20),
    ))]
    pub max_message_bytes: Option<usize>,
    #[arg(long, env = "WASMQ_PREFETCH", help = help(
        "Job messages the broker may hand this worker before it acks them: the jobs running \
         plus results waiting for the broker's confirm. Set it equal to --concurrency for \
         long jobs, so no worker holds jobs it cannot start yet",
        "prefetch",
        format_args!("concurrency + {}", defaults::PREFETCH_PIPELINE),
    ))]
    pub prefetch: Option<u16>,
    /// Name written into every result [config: worker_id] [default: HOST-PID].
    #[arg(long, env = "WASMQ_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address, e.g.
    /// 0.0.0.0:9090 [config: metrics_addr] [default: off].
    #[arg(long, env = "WASMQ_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    #[arg(long, env = "WASMQ_CONSUMER_TIMEOUT_MS", help = help(
        "The broker's `consumer_timeout`, in ms: how long RabbitMQ lets a delivery stay \
         unacked before it closes the channel. The worker refuses to start when its longest \
         job (limits.maximum.timeout_ms) plus a 60 s margin would not finish within it; 0 if \
         the broker has no consumer timeout",
        "consumer_timeout_ms",
        format_args!("{}, RabbitMQ's default", defaults::CONSUMER_TIMEOUT_MS),
    ))]
    pub consumer_timeout_ms: Option<u64>,
}

/// How logs are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

fn parse_unknown_imports(s: &str) -> Result<UnknownImports, UnknownImportsError> {
    s.parse()
}

/// `NAME=DIR` or `NAME=DIR:rw` (or `:ro`): a `--volume`.
pub(super) fn parse_volume(spec: &str) -> anyhow::Result<(String, Volume)> {
    let Some((name, rest)) = spec.split_once('=') else {
        bail!("--volume {spec:?} must look like NAME=DIR or NAME=DIR:rw");
    };
    let (dir, writable) = match rest.rsplit_once(':') {
        Some((d, "rw")) => (d, true),
        Some((d, "ro")) => (d, false),
        _ => (rest, false),
    };
    if name.is_empty() || dir.is_empty() {
        bail!("--volume {spec:?} must look like NAME=DIR or NAME=DIR:rw");
    }
    Ok((
        name.to_owned(),
        Volume {
            host: Path::new(dir).to_owned(),
            writable,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs() {
        let (n, v) = parse_volume("data=/srv/d:rw").unwrap();
        assert_eq!(
            (n.as_str(), v.host.to_str().unwrap(), v.writable),
            ("data", "/srv/d", true)
        );
        let (_, v) = parse_volume("data=/srv/d").unwrap();
        assert!(!v.writable);
        assert!(parse_volume("/srv/d").is_err());
    }
}
