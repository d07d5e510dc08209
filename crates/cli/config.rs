//! Settings: the TOML config file, then `WASMQ_*` environment variables, then flags.
//!
//! Every setting is resolved by one method of [`Settings`], which also records where its
//! value came from (default, file, env, flag) for `wasmq config`; every default is one of
//! the constants in [`defaults`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use wasmq_broker::amqp::{Retention, Topology};
use wasmq_cache::remote::{ArtifactSource, Fleet, ModuleSource};
use wasmq_cache::{Cache, CacheOptions};
use wasmq_registry::{ArtifactStore, Credentials, Registry, RegistryConfig, StoreUrl};
use wasmq_sandbox::{Sandbox, SandboxConfig, Tenancy, TenantPolicy, UnverifiedJobs, Volume};
use wasmq_spec::UnknownImports;
use wasmq_spec::{LimitPolicy, LimitsRequest};

/// The built-in value of every setting that has one.
pub mod defaults {
    use std::time::Duration;

    pub const CACHE_DIR: &str = "cache";
    pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    pub const QUEUE_PREFIX: &str = "wasmq";
    pub const DELIVERY_LIMIT: u32 = 5;
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
    /// RabbitMQ's default `consumer_timeout` (30 minutes, since 3.8.15).
    pub const CONSUMER_TIMEOUT_MS: u64 = 1_800_000;
    /// The prefetch is the concurrency plus this many results awaiting confirms.
    pub const PREFETCH_PIPELINE: usize = 64;
    /// How long a worker waits for another worker's compile of the same module.
    pub const COMPILE_WAIT: Duration = Duration::from_secs(60);
    /// How long a worker retries a registry it cannot reach before requeueing the job.
    pub const REGISTRY_RETRY: Duration = Duration::from_secs(30);
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
            Source::Flag => "flag",
        }
    }
}

/// One resolved setting, as `wasmq config` shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The config-file key.
    pub key: String,
    /// The value, secrets redacted.
    pub value: String,
    pub source: Source,
}

/// The parsed command line of the command being run, to tell a flag from its env var.
static MATCHES: OnceLock<clap::ArgMatches> = OnceLock::new();

/// Records the matches of the subcommand being run (called once, by `main`).
pub fn set_matches(m: clap::ArgMatches) {
    let _ = MATCHES.set(m);
}

/// Where the value of the argument `id` (a clap field name) came from, given that it is
/// set (`Some`); `None` when it is not.
fn arg_source(id: &str, set: bool) -> Option<Source> {
    if !set {
        return None;
    }
    let from_env = MATCHES.get().and_then(|m| {
        m.try_contains_id(id)
            .ok()
            .filter(|known| *known)
            .and_then(|_| m.value_source(id))
    }) == Some(clap::parser::ValueSource::EnvVariable);
    Some(if from_env { Source::Env } else { Source::Flag })
}

/// The source of a setting: the flag (or its env var), then the file, then the default.
fn source(id: &str, flag: bool, file: bool) -> Source {
    arg_source(id, flag).unwrap_or(if file { Source::File } else { Source::Default })
}

/// Flags every command shares.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// TOML config file (see docs/configuration.md).
    #[arg(long, env = "WASMQ_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Root of the module store and artifact cache [config: cache_dir] [default: ./cache].
    #[arg(long, env = "WASMQ_CACHE_DIR", global = true)]
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
    /// Guest path of the job's directory for jobs that give no `work_dir`, e.g. `/` to
    /// run WASI programs as `wasmtime run --dir DIR::/` does [config: default_work_dir]
    /// [default: /work].
    #[arg(long, env = "WASMQ_DEFAULT_WORK_DIR")]
    pub default_work_dir: Option<String>,
    /// What imports the sandbox does not provide do in jobs that do not say: `reject`
    /// (the job is `rejected`, `unknown_import`) or `trap` (linked as functions that trap
    /// when called, as `wasmtime run --trap-unknown-imports` does)
    /// [config: unknown_imports] [default: reject].
    #[arg(long, env = "WASMQ_UNKNOWN_IMPORTS", value_parser = parse_unknown_imports)]
    pub unknown_imports: Option<UnknownImports>,
    /// Seconds a worker waits for another worker's compile of the same module (with a
    /// shared artifact store) before compiling it itself [config: compile_wait_secs]
    /// [default: 60].
    #[arg(long, env = "WASMQ_COMPILE_WAIT_SECS")]
    pub compile_wait_secs: Option<u64>,
    /// Seconds a registry that cannot be reached is retried before the job goes back to
    /// the broker [config: registry_retry_secs] [default: 30].
    #[arg(long, env = "WASMQ_REGISTRY_RETRY_SECS")]
    pub registry_retry_secs: Option<u64>,
}

/// Flags of the commands that talk to RabbitMQ.
#[derive(Args, Debug, Clone)]
pub struct BrokerArgs {
    /// Broker URL [config: amqp_url] [default: amqp://guest:guest@127.0.0.1:5672/%2f].
    #[arg(long, env = "WASMQ_AMQP_URL")]
    pub amqp_url: Option<String>,
    /// Prefix of every queue and exchange name, so deployments and tests can share a
    /// broker [config: queue_prefix] [default: wasmq].
    #[arg(long, env = "WASMQ_QUEUE_PREFIX")]
    pub queue_prefix: Option<String>,
    /// Deliveries of one job before the broker dead-letters it; must be the same for
    /// every process on one prefix [config: delivery_limit] [default: 5].
    #[arg(long, env = "WASMQ_DELIVERY_LIMIT")]
    pub delivery_limit: Option<u32>,
    /// Seconds the shared results queue keeps a result nobody reads; 0 for no limit. Must
    /// be the same for every process on one prefix [config: results_queue_ttl_secs]
    /// [default: 604800, 7 days].
    #[arg(long, env = "WASMQ_RESULTS_QUEUE_TTL_SECS")]
    pub results_queue_ttl_secs: Option<u32>,
    /// Results the shared results queue keeps at most; past it the oldest are dropped; 0
    /// for no limit. Must be the same for every process on one prefix
    /// [config: results_queue_max_length] [default: 1000000].
    #[arg(long, env = "WASMQ_RESULTS_QUEUE_MAX_LENGTH")]
    pub results_queue_max_length: Option<u32>,
}

/// How logs are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// The config file. Every key is optional; unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub cache_dir: Option<PathBuf>,
    pub cache_max_bytes: Option<u64>,
    pub artifact_key_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub concurrency: Option<usize>,
    pub hot_set_size: Option<usize>,
    pub max_module_bytes: Option<usize>,
    pub max_core_instance_bytes: Option<usize>,
    pub unknown_imports: Option<UnknownImports>,
    pub work_root: Option<PathBuf>,
    pub default_work_dir: Option<String>,
    pub pooling: Option<bool>,
    pub amqp_url: Option<String>,
    pub queue_prefix: Option<String>,
    pub delivery_limit: Option<u32>,
    pub drain_timeout_secs: Option<u64>,
    pub max_message_bytes: Option<usize>,
    pub worker_id: Option<String>,
    pub prefetch: Option<u16>,
    pub consumer_timeout_ms: Option<u64>,
    pub metrics_addr: Option<String>,
    pub results_queue_ttl_secs: Option<u32>,
    pub results_queue_max_length: Option<u32>,
    pub management_url: Option<String>,
    pub module_store: Option<String>,
    pub artifact_store: Option<String>,
    pub insecure_registries: Option<Vec<String>>,
    pub compile_wait_secs: Option<u64>,
    pub registry_retry_secs: Option<u64>,
    /// Credentials by registry (`HOST[:PORT]`).
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryAuthConfig>,
    #[serde(default)]
    pub volumes: BTreeMap<String, VolumeConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Tenant policies, by broker user (`wasmq worker`; see docs/configuration.md).
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// The policy of jobs without a verified tenant that has a policy.
    pub default_tenant: Option<TenantConfig>,
    /// Whether such jobs run under `default_tenant` or are rejected.
    pub unverified_jobs: Option<UnverifiedJobsConfig>,
}

/// `[registries."HOST:PORT"]`: a username and password, or a bearer token.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuthConfig {
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// `[tenants.NAME]` and `[default_tenant]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Names of `[volumes]` its jobs may mount.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Whether its jobs may carry their module inline.
    #[serde(default)]
    pub inline_modules: bool,
    #[serde(default)]
    pub limits: TenantLimitsConfig,
    /// Registries or repository prefixes its jobs may name in `module.oci`.
    #[serde(default)]
    pub registries: Vec<String>,
    /// Its share of a worker against other tenants' (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
    /// The most of its jobs running at once on one worker.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

/// `[tenants.NAME.limits.maximum]`: a tenant has the worker's defaults (lowered to its
/// maximum) and a maximum of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitsConfig {
    #[serde(default)]
    pub maximum: LimitsRequest,
}

/// `unverified_jobs = "default" | "reject"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnverifiedJobsConfig {
    Default,
    Reject,
}

/// A volume in the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub writable: bool,
}

/// `[limits.default]` and `[limits.maximum]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default)]
    pub default: LimitsRequest,
    #[serde(default)]
    pub maximum: LimitsRequest,
}

/// Everything a command needs, merged and checked once.
pub struct Settings {
    pub file: FileConfig,
    pub cache_dir: PathBuf,
    pub cache_max_bytes: Option<u64>,
    pub artifact_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Where modules are stored.
    pub module_store: ModuleStore,
    /// Where compiled artifacts are shared, if anywhere.
    pub artifact_store: Option<StoreUrl>,
    /// How registries are reached.
    pub registry_config: RegistryConfig,
    /// The registry client, made on first use.
    registry: OnceLock<Arc<Registry>>,
    /// Every setting resolved so far, with its source, in the order resolved.
    entries: Mutex<Vec<Entry>>,
}

/// Where `submit` and `prewarm` put modules and workers look for them.
#[derive(Debug, Clone)]
pub enum ModuleStore {
    /// A directory holding `modules/` (the cache directory by default).
    Dir(PathBuf),
    /// A repository of an OCI registry.
    Oci(StoreUrl),
}

/// The worker's own settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub drain_timeout: std::time::Duration,
    pub max_message_bytes: usize,
    pub prefetch: u16,
    pub worker_id: String,
    pub consumer_timeout_ms: u64,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Settings {
    /// Loads the config file (if any) and applies environment and flags over it.
    pub fn load(common: &CommonArgs) -> anyhow::Result<Settings> {
        let file = match &common.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let cache_dir = common
            .cache_dir
            .clone()
            .or_else(|| file.cache_dir.clone())
            .unwrap_or_else(|| PathBuf::from(defaults::CACHE_DIR));
        let module_store = match common.module_store.as_ref().or(file.module_store.as_ref()) {
            None => ModuleStore::Dir(cache_dir.clone()),
            Some(text) => match StoreUrl::parse(text) {
                Some(url) => ModuleStore::Oci(
                    url.map_err(|why| anyhow::anyhow!("invalid module_store: {why}"))?,
                ),
                None => ModuleStore::Dir(PathBuf::from(text)),
            },
        };
        let artifact_store = match common
            .artifact_store
            .as_ref()
            .or(file.artifact_store.as_ref())
        {
            None => None,
            Some(text) => Some(
                StoreUrl::parse(text)
                    .unwrap_or_else(|| Err(format!("{text:?} is not oci://HOST[:PORT]/REPOSITORY")))
                    .map_err(|why| anyhow::anyhow!("invalid artifact_store: {why}"))?,
            ),
        };
        let registry_config = registry_config(common, &file)?;
        let s = Settings {
            module_store,
            artifact_store,
            registry_config,
            registry: OnceLock::new(),
            cache_dir,
            cache_max_bytes: common.cache_max_bytes.or(file.cache_max_bytes),
            artifact_key_file: common
                .artifact_key_file
                .clone()
                .or_else(|| file.artifact_key_file.clone()),
            log_format: common
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
            file,
            entries: Mutex::new(Vec::new()),
        };
        let f = &s.file;
        s.record(
            "config",
            common
                .config
                .as_ref()
                .map_or("none".into(), |p| p.display().to_string()),
            source("config", common.config.is_some(), false),
        );
        s.record(
            "cache_dir",
            s.cache_dir.display().to_string(),
            source(
                "cache_dir",
                common.cache_dir.is_some(),
                f.cache_dir.is_some(),
            ),
        );
        s.record(
            "cache_max_bytes",
            s.cache_max_bytes.map_or("no cap".into(), |n| n.to_string()),
            source(
                "cache_max_bytes",
                common.cache_max_bytes.is_some(),
                f.cache_max_bytes.is_some(),
            ),
        );
        s.record(
            "artifact_key_file",
            s.artifact_key_file.as_ref().map_or_else(
                || format!("{}.key", s.cache_dir.display()),
                |p| p.display().to_string(),
            ),
            source(
                "artifact_key_file",
                common.artifact_key_file.is_some(),
                f.artifact_key_file.is_some(),
            ),
        );
        s.record(
            "module_store",
            match &s.module_store {
                ModuleStore::Dir(d) => d.display().to_string(),
                ModuleStore::Oci(u) => u.to_string(),
            },
            source(
                "module_store",
                common.module_store.is_some(),
                f.module_store.is_some(),
            ),
        );
        s.record(
            "artifact_store",
            s.artifact_store
                .as_ref()
                .map_or("none".into(), |u| u.to_string()),
            source(
                "artifact_store",
                common.artifact_store.is_some(),
                f.artifact_store.is_some(),
            ),
        );
        s.record(
            "insecure_registries",
            if s.registry_config.insecure.is_empty() {
                "none".into()
            } else {
                s.registry_config.insecure.join(",")
            },
            source(
                "insecure_registries",
                !common.insecure_registries.is_empty(),
                f.insecure_registries.is_some(),
            ),
        );
        s.record(
            "registries",
            registries_shown(&s.registry_config),
            if f.registries.is_empty()
                && s.registry_config.default_credentials == Credentials::Anonymous
            {
                Source::Default
            } else if f.registries.is_empty() {
                Source::Env
            } else {
                Source::File
            },
        );
        s.record(
            "log_format",
            format!("{:?}", s.log_format).to_lowercase(),
            source(
                "log_format",
                common.log_format.is_some(),
                f.log_format.is_some(),
            ),
        );
        Ok(s)
    }

    /// Records a resolved setting (a later record of the same key replaces it).
    fn record(&self, key: &str, value: String, source: Source) {
        let mut e = self.entries.lock().expect("entries lock");
        let entry = Entry {
            key: key.to_owned(),
            value,
            source,
        };
        match e.iter_mut().find(|x| x.key == key) {
            Some(x) => *x = entry,
            None => e.push(entry),
        }
    }

    /// Every setting resolved so far, with where it came from.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().expect("entries lock").clone()
    }

    /// The worker's own settings, checked (`concurrency` is resolved by
    /// [`Settings::concurrency`]).
    pub fn worker(
        &self,
        args: &crate::commands::worker::WorkerArgs,
        concurrency: usize,
    ) -> anyhow::Result<WorkerSettings> {
        let f = &self.file;
        let drain_secs = args
            .drain_timeout_secs
            .or(f.drain_timeout_secs)
            .unwrap_or(defaults::DRAIN_TIMEOUT.as_secs());
        self.record(
            "drain_timeout_secs",
            drain_secs.to_string(),
            source(
                "drain_timeout_secs",
                args.drain_timeout_secs.is_some(),
                f.drain_timeout_secs.is_some(),
            ),
        );
        let max_message_bytes = args
            .max_message_bytes
            .or(f.max_message_bytes)
            .unwrap_or(defaults::MAX_MESSAGE_BYTES);
        self.record(
            "max_message_bytes",
            max_message_bytes.to_string(),
            source(
                "max_message_bytes",
                args.max_message_bytes.is_some(),
                f.max_message_bytes.is_some(),
            ),
        );
        let prefetch = match args.prefetch.or(f.prefetch) {
            Some(p) if usize::from(p) < concurrency => {
                bail!(
                    "--prefetch {p} is below --concurrency {concurrency}: the worker could never fill its sandboxes"
                )
            }
            Some(p) => p,
            None => u16::try_from(concurrency + defaults::PREFETCH_PIPELINE)
                .context("concurrency must be below 65000")?,
        };
        self.record(
            "prefetch",
            prefetch.to_string(),
            source("prefetch", args.prefetch.is_some(), f.prefetch.is_some()),
        );
        let worker_id = args
            .worker_id
            .clone()
            .or_else(|| f.worker_id.clone())
            .unwrap_or_else(default_worker_id);
        self.record(
            "worker_id",
            worker_id.clone(),
            source("worker_id", args.worker_id.is_some(), f.worker_id.is_some()),
        );
        let consumer_timeout_ms = args
            .consumer_timeout_ms
            .or(f.consumer_timeout_ms)
            .unwrap_or(defaults::CONSUMER_TIMEOUT_MS);
        self.record(
            "consumer_timeout_ms",
            consumer_timeout_ms.to_string(),
            source(
                "consumer_timeout_ms",
                args.consumer_timeout_ms.is_some(),
                f.consumer_timeout_ms.is_some(),
            ),
        );
        let metrics_addr = match (args.metrics_addr, &f.metrics_addr) {
            (Some(a), _) => Some(a),
            (None, Some(text)) => {
                Some(text.parse::<std::net::SocketAddr>().with_context(|| {
                    format!("metrics_addr {text:?} is not an address such as 0.0.0.0:9090")
                })?)
            }
            (None, None) => None,
        };
        self.record(
            "metrics_addr",
            metrics_addr.map_or("off".into(), |a| a.to_string()),
            source(
                "metrics_addr",
                args.metrics_addr.is_some(),
                f.metrics_addr.is_some(),
            ),
        );
        Ok(WorkerSettings {
            drain_timeout: std::time::Duration::from_secs(drain_secs),
            max_message_bytes,
            prefetch,
            worker_id,
            consumer_timeout_ms,
            metrics_addr,
        })
    }

    /// Loads the settings and sets up logging (at `default_log` unless `WASMQ_LOG` or
    /// `RUST_LOG` say otherwise): what every command does first.
    pub fn start(common: &CommonArgs, default_log: &str) -> anyhow::Result<Settings> {
        let settings = Settings::load(common)?;
        settings.init_logging(default_log);
        Ok(settings)
    }

    /// Sets up logging to stderr; `WASMQ_LOG` (or `RUST_LOG`) filters, `default` otherwise.
    ///
    /// By default lapin's own line for a channel the broker closed is left out: every
    /// such close comes back to wasmq as an error it reports with its context (or
    /// expects: `submit` asks whether its user's jobs queue exists, and a miss closes a
    /// channel).
    fn init_logging(&self, default: &str) {
        let filter = std::env::var("WASMQ_LOG")
            .or_else(|_| std::env::var("RUST_LOG"))
            .unwrap_or_else(|_| format!("{default},lapin::channel=off"));
        let filter = tracing_subscriber::EnvFilter::new(filter);
        // Colours only for a terminal: logs piped to a file or a collector stay plain text.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Human => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }

    /// The multi-threaded async runtime the job-running commands use.
    pub fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("wasmq")
            .build()
            .context("failed to start the async runtime")
    }

    /// Opens the cache directory.
    pub fn open_cache(&self) -> anyhow::Result<Arc<Cache>> {
        let options = CacheOptions {
            max_bytes: self.cache_max_bytes,
            key_file: self.artifact_key_file.clone(),
            module_root: match &self.module_store {
                ModuleStore::Dir(d) if *d != self.cache_dir => Some(d.clone()),
                _ => None,
            },
            // With a registry as the module store, the modules here are copies.
            modules_evictable: matches!(self.module_store, ModuleStore::Oci(_)),
        };
        let cache = Cache::open_with(&self.cache_dir, options)
            .with_context(|| format!("failed to open the cache at {}", self.cache_dir.display()))?;
        Ok(Arc::new(cache))
    }

    /// The concurrency for commands that run jobs.
    pub fn concurrency(&self, args: &SandboxArgs) -> usize {
        let n = args
            .concurrency
            .or(self.file.concurrency)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            });
        self.record(
            "concurrency",
            n.to_string(),
            source(
                "concurrency",
                args.concurrency.is_some(),
                self.file.concurrency.is_some(),
            ),
        );
        n
    }

    /// The sandbox configuration, checked.
    pub fn sandbox_config(&self, args: &SandboxArgs) -> anyhow::Result<SandboxConfig> {
        let mut c = SandboxConfig {
            max_concurrency: self.concurrency(args),
            ..SandboxConfig::default()
        };
        if let Some(n) = self.file.hot_set_size {
            c.hot_set_size = n;
        }
        if let Some(n) = self.file.max_module_bytes {
            c.max_module_bytes = n;
        }
        if let Some(n) = self.file.max_core_instance_bytes {
            c.max_core_instance_bytes = n;
        }
        if let Some(u) = args.unknown_imports.or(self.file.unknown_imports) {
            c.unknown_imports = u;
        }
        self.record(
            "unknown_imports",
            c.unknown_imports.as_str().to_owned(),
            source(
                "unknown_imports",
                args.unknown_imports.is_some(),
                self.file.unknown_imports.is_some(),
            ),
        );
        if let Some(p) = &self.file.pooling {
            c.pooling = *p;
        }
        c.work_root = self.file.work_root.clone();
        if let Some(d) = args
            .default_work_dir
            .as_ref()
            .or(self.file.default_work_dir.as_ref())
        {
            c.default_work_dir = d.clone();
        }
        self.record(
            "default_work_dir",
            c.default_work_dir.clone(),
            source(
                "default_work_dir",
                args.default_work_dir.is_some(),
                self.file.default_work_dir.is_some(),
            ),
        );
        let file_only = |set: bool| if set { Source::File } else { Source::Default };
        self.record(
            "hot_set_size",
            c.hot_set_size.to_string(),
            file_only(self.file.hot_set_size.is_some()),
        );
        self.record(
            "max_module_bytes",
            c.max_module_bytes.to_string(),
            file_only(self.file.max_module_bytes.is_some()),
        );
        self.record(
            "max_core_instance_bytes",
            c.max_core_instance_bytes.to_string(),
            file_only(self.file.max_core_instance_bytes.is_some()),
        );
        self.record(
            "work_root",
            c.work_root
                .as_ref()
                .map_or("the system temp dir".into(), |p| p.display().to_string()),
            file_only(self.file.work_root.is_some()),
        );
        self.record(
            "pooling",
            c.pooling.to_string(),
            file_only(self.file.pooling.is_some()),
        );
        c.limits = limit_policy(&self.file.limits, args)?;
        self.record_limits(&c.limits, args);
        for (name, v) in &self.file.volumes {
            c.volumes.insert(
                name.clone(),
                Volume {
                    host: v.path.clone(),
                    writable: v.writable,
                },
            );
        }
        for spec in &args.volumes {
            let (name, volume) = parse_volume(spec)?;
            c.volumes.insert(name, volume);
        }
        self.record(
            "volumes",
            if c.volumes.is_empty() {
                "none".into()
            } else {
                c.volumes
                    .iter()
                    .map(|(n, v)| {
                        format!(
                            "{n}={}{}",
                            v.host.display(),
                            if v.writable { ":rw" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            },
            source(
                "volumes",
                !args.volumes.is_empty(),
                !self.file.volumes.is_empty(),
            ),
        );
        c.tenancy = self.tenancy(&c.limits);
        self.record(
            "tenants",
            match &c.tenancy {
                None => "off".into(),
                Some(t) => format!(
                    "{} tenant(s){}, unverified jobs: {:?}",
                    t.tenants.len(),
                    if t.tenants.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({})",
                            t.tenants.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                    t.unverified
                ),
            },
            file_only(c.tenancy.is_some()),
        );
        c.check().map_err(anyhow::Error::msg)?;
        Ok(c)
    }

    /// Records every default and maximum limit.
    fn record_limits(&self, p: &LimitPolicy, args: &SandboxArgs) {
        let f = &self.file.limits;
        for (which, limits, req) in [
            ("default", &p.default, &f.default),
            ("maximum", &p.maximum, &f.maximum),
        ] {
            let fields: [(&str, String, bool); 11] = [
                (
                    "timeout_ms",
                    limits.timeout_ms.to_string(),
                    req.timeout_ms.is_some(),
                ),
                (
                    "fuel",
                    limits.fuel.map_or("unmetered".into(), |n| n.to_string()),
                    req.fuel.is_some(),
                ),
                (
                    "memory_bytes",
                    limits.memory_bytes.to_string(),
                    req.memory_bytes.is_some(),
                ),
                (
                    "stdout_bytes",
                    limits.stdout_bytes.to_string(),
                    req.stdout_bytes.is_some(),
                ),
                (
                    "stderr_bytes",
                    limits.stderr_bytes.to_string(),
                    req.stderr_bytes.is_some(),
                ),
                (
                    "output_bytes",
                    limits.output_bytes.to_string(),
                    req.output_bytes.is_some(),
                ),
                (
                    "disk_bytes",
                    limits.disk_bytes.to_string(),
                    req.disk_bytes.is_some(),
                ),
                ("files", limits.files.to_string(), req.files.is_some()),
                (
                    "instances",
                    limits.instances.to_string(),
                    req.instances.is_some(),
                ),
                ("tables", limits.tables.to_string(), req.tables.is_some()),
                (
                    "memories",
                    limits.memories.to_string(),
                    req.memories.is_some(),
                ),
            ];
            for (name, value, in_file) in fields {
                let flag = match (which, name) {
                    ("default", "timeout_ms") => Some(("timeout_ms", args.timeout_ms.is_some())),
                    ("default", "memory_bytes") => {
                        Some(("memory_bytes", args.memory_bytes.is_some()))
                    }
                    _ => None,
                };
                let src = match flag {
                    Some((id, set)) => source(id, set, in_file),
                    None if in_file => Source::File,
                    None => Source::Default,
                };
                self.record(&format!("limits.{which}.{name}"), value, src);
            }
        }
    }

    /// The tenant policies of the config file; `None` (tenancy off) when it has none of
    /// `[tenants]`, `[default_tenant]` and `unverified_jobs`.
    fn tenancy(&self, limits: &LimitPolicy) -> Option<Tenancy> {
        let f = &self.file;
        if f.tenants.is_empty() && f.default_tenant.is_none() && f.unverified_jobs.is_none() {
            return None;
        }
        let policy = |t: &TenantConfig| {
            let mut maximum = limits.maximum;
            overlay(&mut maximum, &t.limits.maximum);
            TenantPolicy {
                volumes: t.volumes.iter().cloned().collect(),
                inline_modules: t.inline_modules,
                registries: t.registries.clone(),
                maximum,
                weight: t.weight.unwrap_or(1),
                max_in_flight: t.max_in_flight,
            }
        };
        Some(Tenancy {
            tenants: f
                .tenants
                .iter()
                .map(|(name, t)| (name.clone(), policy(t)))
                .collect(),
            default: f
                .default_tenant
                .as_ref()
                .map(policy)
                .unwrap_or_else(|| TenantPolicy::restrictive(limits)),
            unverified: match f.unverified_jobs {
                Some(UnverifiedJobsConfig::Reject) => UnverifiedJobs::Reject,
                Some(UnverifiedJobsConfig::Default) | None => UnverifiedJobs::Default,
            },
        })
    }

    /// The broker URL.
    pub fn amqp_url(&self, args: &BrokerArgs) -> String {
        let url = args
            .amqp_url
            .clone()
            .or_else(|| self.file.amqp_url.clone())
            .unwrap_or_else(|| defaults::AMQP_URL.to_owned());
        self.record(
            "amqp_url",
            url.split(',')
                .map(|u| wasmq_broker::amqp::redact(u.trim()))
                .collect::<Vec<_>>()
                .join(","),
            source(
                "amqp_url",
                args.amqp_url.is_some(),
                self.file.amqp_url.is_some(),
            ),
        );
        url
    }

    /// The queue and exchange names, checked.
    pub fn topology(&self, args: &BrokerArgs) -> anyhow::Result<Topology> {
        let prefix = args
            .queue_prefix
            .clone()
            .or_else(|| self.file.queue_prefix.clone())
            .unwrap_or_else(|| defaults::QUEUE_PREFIX.to_owned());
        if prefix.is_empty()
            || prefix.len() > 100
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            bail!(
                "queue prefix {prefix:?} must be 1 to 100 characters of A-Z, a-z, 0-9, '.', '-', '_' or ':'"
            );
        }
        let delivery_limit = args
            .delivery_limit
            .or(self.file.delivery_limit)
            .unwrap_or(defaults::DELIVERY_LIMIT);
        if delivery_limit == 0 {
            bail!("the delivery limit must be at least 1");
        }
        let d = Retention::DEFAULT;
        let results_retention = Retention {
            ttl_secs: args
                .results_queue_ttl_secs
                .or(self.file.results_queue_ttl_secs)
                .unwrap_or(d.ttl_secs),
            max_length: args
                .results_queue_max_length
                .or(self.file.results_queue_max_length)
                .unwrap_or(d.max_length),
        };
        if results_retention.ttl_secs > u32::MAX / 1000 {
            bail!(
                "results_queue_ttl_secs = {} is above the most RabbitMQ takes ({})",
                results_retention.ttl_secs,
                u32::MAX / 1000
            );
        }
        let f = &self.file;
        self.record(
            "queue_prefix",
            prefix.clone(),
            source(
                "queue_prefix",
                args.queue_prefix.is_some(),
                f.queue_prefix.is_some(),
            ),
        );
        self.record(
            "delivery_limit",
            delivery_limit.to_string(),
            source(
                "delivery_limit",
                args.delivery_limit.is_some(),
                f.delivery_limit.is_some(),
            ),
        );
        self.record(
            "results_queue_ttl_secs",
            results_retention.ttl_secs.to_string(),
            source(
                "results_queue_ttl_secs",
                args.results_queue_ttl_secs.is_some(),
                f.results_queue_ttl_secs.is_some(),
            ),
        );
        self.record(
            "results_queue_max_length",
            results_retention.max_length.to_string(),
            source(
                "results_queue_max_length",
                args.results_queue_max_length.is_some(),
                f.results_queue_max_length.is_some(),
            ),
        );
        Ok(Topology {
            prefix,
            delivery_limit,
            results_retention,
        })
    }

    /// Opens the cache and builds the sandbox.
    pub fn sandbox(&self, args: &SandboxArgs) -> anyhow::Result<(Arc<Cache>, Sandbox)> {
        let fleet = self.fleet(args)?;
        self.sandbox_with(self.sandbox_config(args)?, fleet)
    }

    /// Opens the cache and builds the sandbox of a configuration already resolved, in
    /// `fleet` ([`Settings::fleet`], plus whatever the command adds).
    pub fn sandbox_with(
        &self,
        config: SandboxConfig,
        fleet: Fleet,
    ) -> anyhow::Result<(Arc<Cache>, Sandbox)> {
        let cache = self.open_cache()?;
        if fleet.artifacts.is_some()
            && let Some(why) = cache.artifacts_disabled()
        {
            bail!("artifact_store needs the artifact cache, which is disabled: {why}");
        }
        let sandbox = Sandbox::in_fleet(config, cache.clone(), fleet)?;
        Ok((cache, sandbox))
    }

    /// Whether modules are pushed to a registry (the module store is one).
    pub fn pushes_to_registry(&self) -> bool {
        matches!(self.module_store, ModuleStore::Oci(_))
    }

    /// A duration in whole seconds: the flag (or its env var), the file, or the default;
    /// recorded under `key` (also the flag's clap id).
    fn seconds(
        &self,
        key: &str,
        flag: Option<u64>,
        file: Option<u64>,
        default: std::time::Duration,
    ) -> std::time::Duration {
        let d = flag
            .or(file)
            .map_or(default, std::time::Duration::from_secs);
        self.record(
            key,
            d.as_secs().to_string(),
            source(key, flag.is_some(), file.is_some()),
        );
        d
    }

    /// The registry client of this process (made once).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .get_or_init(|| {
                let store = match &self.module_store {
                    ModuleStore::Oci(u) => Some(u.clone()),
                    ModuleStore::Dir(_) => None,
                };
                Arc::new(Registry::new(self.registry_config.clone(), store))
            })
            .clone()
    }

    /// What a process that runs jobs takes from registries: modules (from the module
    /// store when it is one, and for `module.oci` references) and, with an artifact
    /// store, shared artifacts. Leases are the worker's to add.
    pub fn fleet(&self, args: &SandboxArgs) -> anyhow::Result<Fleet> {
        let compile_wait = self.seconds(
            "compile_wait_secs",
            args.compile_wait_secs,
            self.file.compile_wait_secs,
            defaults::COMPILE_WAIT,
        );
        let retry_for = self.seconds(
            "registry_retry_secs",
            args.registry_retry_secs,
            self.file.registry_retry_secs,
            defaults::REGISTRY_RETRY,
        );
        let registry = self.registry();
        Ok(Fleet {
            modules: Some(registry.clone() as Arc<dyn ModuleSource>),
            artifacts: self.artifact_store.as_ref().map(|url| {
                Arc::new(ArtifactStore::new(registry.clone(), url.clone()))
                    as Arc<dyn ArtifactSource>
            }),
            leases: None,
            compile_wait,
            retry_for,
        })
    }

    /// As [`Settings::sandbox`], for the operator's own jobs (`wasmq run`): tenant
    /// policies are checked but not applied, since those jobs come from local files, not
    /// from a broker user.
    pub fn local_sandbox(&self, args: &SandboxArgs) -> anyhow::Result<(Arc<Cache>, Sandbox)> {
        let mut config = self.sandbox_config(args)?;
        config.tenancy = None;
        let fleet = self.fleet(args)?;
        self.sandbox_with(config, fleet)
    }
}

/// Registries: plain HTTP for the listed ones (flag or env, else the file), credentials
/// from the file by registry, else from `WASMQ_REGISTRY_USERNAME` and
/// `WASMQ_REGISTRY_PASSWORD` (or `WASMQ_REGISTRY_TOKEN`) for every registry.
fn registry_config(common: &CommonArgs, file: &FileConfig) -> anyhow::Result<RegistryConfig> {
    let insecure = if common.insecure_registries.is_empty() {
        file.insecure_registries.clone().unwrap_or_default()
    } else {
        common.insecure_registries.clone()
    };
    for host in &insecure {
        let probe = format!("{host}/probe:probe");
        if host.contains('/') || wasmq_spec::parse_oci_reference(&probe).is_err() {
            bail!("insecure registry {host:?} is not HOST[:PORT]");
        }
    }
    let credentials = |key: &str, a: &RegistryAuthConfig| -> anyhow::Result<Credentials> {
        match (&a.username, &a.password, &a.token) {
            (None, None, None) => Ok(Credentials::Anonymous),
            (Some(u), Some(p), None) => Ok(Credentials::Basic {
                username: u.clone(),
                password: p.clone(),
            }),
            (None, None, Some(t)) => Ok(Credentials::Bearer(t.clone())),
            _ => bail!("{key}: give username and password together, or a token alone"),
        }
    };
    let mut by_host = BTreeMap::new();
    for (host, auth) in &file.registries {
        by_host.insert(
            host.clone(),
            credentials(&format!("registries.{host:?}"), auth)?,
        );
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let default_credentials = credentials(
        "WASMQ_REGISTRY_USERNAME/WASMQ_REGISTRY_PASSWORD/WASMQ_REGISTRY_TOKEN",
        &RegistryAuthConfig {
            username: env("WASMQ_REGISTRY_USERNAME"),
            password: env("WASMQ_REGISTRY_PASSWORD"),
            token: env("WASMQ_REGISTRY_TOKEN"),
        },
    )?;
    Ok(RegistryConfig {
        insecure,
        credentials: by_host,
        default_credentials,
        ..RegistryConfig::default()
    })
}

/// The credentials of each registry, secrets left out.
fn registries_shown(c: &RegistryConfig) -> String {
    let mut parts: Vec<String> = c
        .credentials
        .iter()
        .map(|(h, cred)| format!("{h}: {cred:?}"))
        .collect();
    parts.push(format!("others: {:?}", c.default_credentials));
    parts.join(", ")
}

/// `HOST-PID`.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Overlays the config file's and the flags' limits on the built-in ones.
fn limit_policy(file: &LimitsConfig, args: &SandboxArgs) -> anyhow::Result<LimitPolicy> {
    let mut p = LimitPolicy::default();
    overlay(&mut p.maximum, &file.maximum);
    overlay(&mut p.default, &file.default);
    if let Some(t) = args.timeout_ms {
        p.default.timeout_ms = t;
    }
    if let Some(m) = args.memory_bytes {
        p.default.memory_bytes = m;
    }
    p.check()
        .map_err(anyhow::Error::msg)
        .context("invalid limits")?;
    Ok(p)
}

fn overlay(l: &mut wasmq_spec::Limits, r: &LimitsRequest) {
    l.timeout_ms = r.timeout_ms.unwrap_or(l.timeout_ms);
    l.fuel = r.fuel.or(l.fuel);
    l.memory_bytes = r.memory_bytes.unwrap_or(l.memory_bytes);
    l.stdout_bytes = r.stdout_bytes.unwrap_or(l.stdout_bytes);
    l.stderr_bytes = r.stderr_bytes.unwrap_or(l.stderr_bytes);
    l.output_bytes = r.output_bytes.unwrap_or(l.output_bytes);
    l.disk_bytes = r.disk_bytes.unwrap_or(l.disk_bytes);
    l.files = r.files.unwrap_or(l.files);
    l.instances = r.instances.unwrap_or(l.instances);
    l.tables = r.tables.unwrap_or(l.tables);
    l.memories = r.memories.unwrap_or(l.memories);
}

fn parse_unknown_imports(s: &str) -> Result<UnknownImports, wasmq_spec::UnknownImportsError> {
    s.parse()
}

/// `NAME=DIR` or `NAME=DIR:rw` (or `:ro`).
fn parse_volume(spec: &str) -> anyhow::Result<(String, Volume)> {
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

    #[test]
    fn config_file_rejects_unknown_keys() {
        let err = toml::from_str::<FileConfig>("cache_dirr = 'x'").unwrap_err();
        assert!(err.to_string().contains("cache_dirr"), "{err}");
        let ok: FileConfig = toml::from_str(
            "concurrency = 4\n[limits.maximum]\nmemory_bytes = 1048576\n[volumes.data]\npath = '/tmp'\n",
        )
        .unwrap();
        assert_eq!(ok.limits.maximum.memory_bytes, Some(1048576));
    }

    fn settings(toml_text: &str) -> Settings {
        Settings {
            file: toml::from_str(toml_text).unwrap(),
            cache_dir: PathBuf::from("cache"),
            cache_max_bytes: None,
            artifact_key_file: None,
            log_format: LogFormat::Human,
            module_store: ModuleStore::Dir(PathBuf::from("cache")),
            artifact_store: None,
            registry_config: RegistryConfig::default(),
            registry: OnceLock::new(),
            entries: Mutex::new(Vec::new()),
        }
    }

    fn no_flags() -> SandboxArgs {
        SandboxArgs {
            concurrency: Some(1),
            volumes: Vec::new(),
            timeout_ms: None,
            memory_bytes: None,
            default_work_dir: None,
            unknown_imports: None,
            compile_wait_secs: None,
            registry_retry_secs: None,
        }
    }

    #[test]
    fn the_default_work_dir_comes_from_the_file_then_the_flag_and_is_checked() {
        assert_eq!(
            settings("")
                .sandbox_config(&no_flags())
                .unwrap()
                .default_work_dir,
            "/work"
        );
        let s = settings("default_work_dir = '/'\n");
        assert_eq!(s.sandbox_config(&no_flags()).unwrap().default_work_dir, "/");
        let flag = SandboxArgs {
            default_work_dir: Some("/home/user".into()),
            ..no_flags()
        };
        assert_eq!(
            s.sandbox_config(&flag).unwrap().default_work_dir,
            "/home/user"
        );
        let err = settings("default_work_dir = 'work'\n")
            .sandbox_config(&no_flags())
            .unwrap_err();
        assert!(format!("{err:#}").contains("default_work_dir"), "{err:#}");
    }

    #[test]
    fn tenants_are_off_unless_configured() {
        let s = settings("concurrency = 1\n");
        assert!(s.sandbox_config(&no_flags()).unwrap().tenancy.is_none());
        let s = settings("unverified_jobs = 'reject'\n");
        let t = s.sandbox_config(&no_flags()).unwrap().tenancy.unwrap();
        assert!(t.tenants.is_empty());
        assert_eq!(t.unverified, UnverifiedJobs::Reject);
        assert_eq!(t.default.maximum, LimitPolicy::default().maximum);
        assert!(!t.default.inline_modules && t.default.volumes.is_empty());
    }

    #[test]
    fn tenant_policies_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let base = format!(
            "[volumes.ref]\npath = '{d}'\n[limits.maximum]\nmemory_bytes = 1073741824\ndisk_bytes = 134217728\n"
        );
        let s = settings(&format!(
            "{base}[tenants.alice]\nvolumes = ['ref']\ninline_modules = true\nweight = 3\nmax_in_flight = 2\nregistries = ['registry.example:5000/alice']\n[tenants.alice.limits.maximum]\nmemory_bytes = 536870912\n[default_tenant.limits.maximum]\ntimeout_ms = 100\n"
        ));
        let c = s.sandbox_config(&no_flags()).unwrap();
        assert_eq!(
            c.limits.maximum.disk_bytes, 134217728,
            "[limits.maximum] disk_bytes applies"
        );
        let t = c.tenancy.unwrap();
        let alice = &t.tenants["alice"];
        assert!(alice.inline_modules && alice.volumes.contains("ref"));
        assert_eq!(
            (alice.maximum.memory_bytes, alice.maximum.disk_bytes),
            (536870912, 134217728)
        );
        assert_eq!(t.default.maximum.timeout_ms, 100);
        assert_eq!((alice.weight, alice.max_in_flight), (3, Some(2)));
        assert_eq!(alice.registries, ["registry.example:5000/alice"]);
        assert!(t.default.registries.is_empty(), "no registry unless listed");
        assert_eq!((t.default.weight, t.default.max_in_flight), (1, None));
        assert_eq!(t.unverified, UnverifiedJobs::Default);

        let err = |extra: &str| {
            format!(
                "{:#}",
                settings(&format!("{base}{extra}"))
                    .sandbox_config(&no_flags())
                    .expect_err("refused")
            )
        };
        let e = err("[tenants.bob]\nregistries = ['oci://registry.example/x']\n");
        assert!(
            e.contains(
                "tenants.bob: registries entry \"oci://registry.example/x\" is not HOST[:PORT]"
            ),
            "{e}"
        );
        let e = err("[tenants.bob]\nvolumes = ['nope']\n");
        assert!(
            e.contains("tenants.bob: volume \"nope\" is not declared (declared volumes: [ref])"),
            "{e}"
        );
        let e = err("[tenants.bob.limits.maximum]\nmemory_bytes = 2147483648\n");
        assert!(
            e.contains("tenants.bob: limits.maximum.memory_bytes = 2147483648 is above the worker's maximum of 1073741824"),
            "{e}"
        );
        let e = err("[default_tenant.limits.maximum]\nfiles = 2000000\n");
        assert!(e.contains("default_tenant: limits.maximum.files"), "{e}");
        let e = err("[tenants.'../x']\n");
        assert!(e.contains("tenant name \"../x\" must be"), "{e}");
        let bad = toml::from_str::<FileConfig>("[tenants.a]\ninline_module = true\n").unwrap_err();
        assert!(bad.to_string().contains("inline_module"), "{bad}");
        let bad = toml::from_str::<FileConfig>("unverified_jobs = 'allow'\n").unwrap_err();
        assert!(
            bad.to_string().contains("unverified_jobs") || bad.to_string().contains("allow"),
            "{bad}"
        );
    }
}
