//! Runs one job in a fresh WebAssembly sandbox, with the module compiled ahead of time
//! through the artifact cache.
//!
//! This is the only crate that touches wasmtime. It narrows wasmtime to what wasmq needs:
//! [`Sandbox::new`] builds the engine(s) once per process, [`Sandbox::run_cancellable`]
//! turns a [`Job`](wasmq_spec::Job) into its [`JobResult`](wasmq_spec::JobResult), or a
//! [`HostFault`] when the host, not the job, failed, and
//! [`Sandbox::prewarm`] compiles a module into the cache without running it. Every way a
//! guest can misbehave ends in a result status; none of them takes the process down.
//!
//! # Layout
//! - [`config`]: [`SandboxConfig`], [`Volume`] and the tenant policies ([`Tenancy`]),
//!   fixed at start.
//! - `engine`: the engines (plain and fuel-metering: `Metering`), pooling allocator, epoch
//!   tickers, fingerprints.
//! - `modules`: a module's binary `Format` (core or component), the hot set, single-flight
//!   compile through the caches.
//! - `compile`: the engine's side: compile (and the twin engine's second opinion), load an
//!   artifact from disk (the one `unsafe`), link.
//! - `bounds`: the pre-compile check that refuses code shapes whose compile time explodes.
//! - `fleet`: what comes from the rest of a fleet ([`Sandbox::in_fleet`]): modules pulled
//!   from a registry, references resolved, shared artifacts and compile leases.
//! - `admission`: whether a job may run, and its plan (tenant policy, limits, volumes,
//!   inputs, module namespace), before any wasmtime call; the one job error type.
//! - `run`: one job: WASI context, limits, a store whose epoch callback records why it
//!   stops a guest, instantiate, call.
//! - `classify`: how the job ended, in one `match`: status, code, message.
//! - `kinds`: what each job kind needs of a module's exports, and how it is called.
//! - `egress`: outbound HTTP of components (`wasi:http`): the job's hooks, which refuse
//!   every request.
//! - `fault`: [`HostFault`] and [`HostError`], the host's failures, which are not results.
//! - `snapshot`: pre-initialised snapshots of a job's module ([`Sandbox::snapshot`],
//!   wasmtime-wizer).
//! - `limiter`: the per-job limits of memory, tables, instance counts and disk, and why a
//!   guest was stopped.
//! - `pipe`: capped stdout/stderr capture.
//! - `files`: the job's own directory (at `/work` or its `work_dir`): inputs in, collected
//!   files out; `tree`: walking and removing what a guest left there.

mod admission;
mod bounds;
mod classify;
mod compile;
pub mod config;
mod egress;
mod engine;
mod fault;
mod files;
mod fleet;
mod kinds;
mod limiter;
mod modules;
mod pipe;
mod run;
mod snapshot;
mod tree;

use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmq_cache::remote::Fleet;
use wasmq_cache::{Cache, Digest};
use wasmq_spec::CacheOutcome;

pub use config::{
    DEFAULT_MAX_CORE_INSTANCE_BYTES, DEFAULT_MAX_MODULE_BYTES, SandboxConfig, Tenancy,
    TenantPolicy, UnverifiedJobs, Volume,
};
pub use fault::{BoxError, HostError, HostFault};
pub use snapshot::{DEFAULT_INIT, Provenance, Snapshot, SnapshotError};

/// The version of wasmtime jobs run on (the workspace pins it exactly).
pub const WASMTIME_VERSION: &str = "48.0.8";

use engine::{EngineOptions, Engines, Metering};
use modules::{Format, Modules, ResolveError, Source};

/// Why a module could not be prewarmed.
#[derive(Debug, thiserror::Error)]
pub enum PrewarmError {
    /// The bytes are not a module that can run here (a compiled artifact may be kept all
    /// the same, as for `pool_limit`).
    #[error("{}", .0.message)]
    Refused(wasmq_spec::Rejection),
    /// The host failed (disk, engine).
    #[error(transparent)]
    Host(HostError),
}

/// The sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration is not one a sandbox can run with.
    #[error("{0}")]
    Config(String),
    /// The directory for job files could not be made.
    #[error("could not create the directory for job files: {0}")]
    WorkDir(#[source] std::io::Error),
    /// The wasm engine refused its configuration.
    #[error("the wasm engine refused its configuration: {message}")]
    Engine {
        message: String,
        #[source]
        source: BoxError,
    },
}

/// What a prewarm did for one module.
#[derive(Debug, Clone)]
pub struct Prewarmed {
    /// The module's digest.
    pub digest: Digest,
    /// Whether it was compiled now or was already cached.
    pub outcome: CacheOutcome,
    /// Time spent compiling, in microseconds (0 when cached).
    pub compile_us: u64,
}

/// Runs jobs; one per process, shared by every task (it is cheap to clone).
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    engines: Engines,
    modules: Modules,
    /// One permit per pooled instance slot: a job holds one while its store lives.
    slots: Semaphore,
    /// The jobs' `/work` directories.
    work_dirs: files::WorkDirs,
    /// The private networks and TLS roots of outbound requests.
    outbound: Arc<egress::Outbound>,
}

impl Sandbox {
    /// Builds the engine and checks the configuration; call once per process.
    pub fn new(config: SandboxConfig, cache: Arc<Cache>) -> Result<Sandbox, SetupError> {
        Sandbox::in_fleet(config, cache, Fleet::default())
    }

    /// Builds the engine for a worker of a fleet: modules this host has no copy of come
    /// from `fleet`'s module store, artifacts are shared through its artifact store, and
    /// its leases make one worker compile what nobody has compiled yet.
    pub fn in_fleet(
        config: SandboxConfig,
        cache: Arc<Cache>,
        fleet: Fleet,
    ) -> Result<Sandbox, SetupError> {
        config.check().map_err(SetupError::Config)?;
        let outbound = egress::Outbound::new(
            config.outbound_private_networks.clone(),
            config.outbound_ca_file.clone(),
        );
        let slots = config.instance_slots();
        let engines = Engines::new(EngineOptions {
            pooling: config.pooling,
            slots,
            pool: config.pool_size(),
            keep_resident_bytes: config.keep_resident_bytes,
            epoch_tick: config.epoch_tick,
        })
        .map_err(|e| SetupError::Engine {
            message: format!("{e:#}"),
            source: e.into(),
        })?;
        let modules = Modules::new(
            cache,
            fleet::Remote::new(fleet),
            config.hot_set_size,
            config.max_module_bytes,
        );
        let work_dirs = files::WorkDirs::new(config.work_root.as_deref(), slots as usize)
            .map_err(SetupError::WorkDir)?;
        Ok(Sandbox {
            inner: Arc::new(Inner {
                slots: Semaphore::new(slots as usize),
                work_dirs,
                config,
                engines,
                modules,
                outbound: Arc::new(outbound),
            }),
        })
    }

    /// The fingerprint of the default (no fuel) engine: which artifacts it can load.
    pub fn fingerprint(&self) -> &str {
        &self
            .inner
            .engines
            .get(Metering::Plain)
            .expect("the plain engine exists from the start")
            .fingerprint
    }

    /// Modules compiled by this process so far.
    pub fn compiles(&self) -> u64 {
        self.inner.modules.compiles()
    }

    /// Drops every loaded module from memory (jobs in flight keep theirs); later jobs load
    /// them from the disk cache again.
    pub fn clear_hot_set(&self) {
        self.inner.modules.clear();
    }

    /// The configuration this sandbox runs with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Compiles `bytes` into the cache for the default engine, without running anything.
    ///
    /// Fails when the bytes are not a module that can run here, or the host failed.
    pub async fn prewarm(&self, bytes: Vec<u8>) -> Result<Prewarmed, PrewarmError> {
        let digest = Digest::of(&bytes);
        let artifact = modules::sniff(&bytes).unwrap_or(Format::Core);
        self.prewarm_from(digest, artifact, Source::Bytes(bytes))
            .await
    }

    /// Loads the module `digest` of the module store, a core module or a `component`, for
    /// the default engine, compiling it only if no artifact is cached: what a job naming it
    /// by sha256 does before it runs. The bytes are read (and hashed) only on a compile.
    pub async fn prewarm_stored(
        &self,
        digest: Digest,
        component: bool,
    ) -> Result<Prewarmed, PrewarmError> {
        let artifact = if component {
            Format::Component
        } else {
            Format::Core
        };
        self.prewarm_from(digest, artifact, Source::Store).await
    }

    async fn prewarm_from(
        &self,
        digest: Digest,
        artifact: Format,
        source: Source,
    ) -> Result<Prewarmed, PrewarmError> {
        let rt = self
            .inner
            .engines
            .get(Metering::Plain)
            .map_err(|e| PrewarmError::Host(HostError::caused_by(format!("{e:#}"), e)))?;
        match self
            .inner
            .modules
            // Linked as the worker's jobs are by default: a module that cannot run here
            // fails the prewarm (its artifact is kept all the same).
            .resolve(
                rt,
                (Metering::Plain, self.inner.config.unknown_imports),
                artifact,
                digest,
                source,
            )
            .await
        {
            Ok(r) => Ok(Prewarmed {
                digest,
                outcome: r.outcome,
                compile_us: r.compile_us,
            }),
            Err(ResolveError::Rejected(r)) => Err(PrewarmError::Refused(r)),
            Err(ResolveError::Host(e)) => Err(PrewarmError::Host(e)),
        }
    }
}

#[cfg(test)]
mod version_tests {
    /// [`super::WASMTIME_VERSION`] is the wasmtime that Cargo.lock resolved.
    #[test]
    fn the_wasmtime_version_is_the_locked_one() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .expect("reading Cargo.lock");
        let entry = format!(
            "name = \"wasmtime\"\nversion = \"{}\"",
            super::WASMTIME_VERSION
        );
        assert!(lock.contains(&entry), "Cargo.lock has no {entry:?}");
    }
}
