//! Finding a job's compiled module: the in-memory hot set, then the artifact cache on disk,
//! then the compiler (`compile`), with one compile per module however many jobs ask at
//! once.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lru::LruCache;
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};
use wasmq_cache::{ArtifactKey, Cache, Digest};
use wasmq_spec::{CacheOutcome, Rejection, UnknownImports, codes};
use wasmtime::InstancePre;

use crate::compile::{Compile, Compiled, OnDisk, compile, link, load_artifact, pool_refusal};
use crate::engine::{ComponentState, Metering, Runtime, State};
use crate::fault::{BoxError, HostError};
use crate::fleet::{Remote, Shared};

/// The binary format of a module's bytes: a core module or a component. It decides the
/// engine's compile call, the artifact's cache key and the linker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// A core WebAssembly module.
    Core,
    /// A component (Component Model).
    Component,
}

impl Format {
    /// The format a job kind runs: the one place kinds map to formats.
    pub(crate) fn of_kind(kind: wasmq_spec::JobKind) -> Format {
        if kind.is_component() {
            Format::Component
        } else {
            Format::Core
        }
    }

    /// The cache file extension: the artifact kind is part of the cache key.
    fn extension(self) -> &'static str {
        match self {
            Format::Core => "cwasm",
            Format::Component => "component.cwasm",
        }
    }

    /// What the header of `bytes` says they are, if they are WebAssembly at all.
    fn of(bytes: &[u8]) -> Option<Format> {
        // magic, then a 16-bit version and a 16-bit layer: layer 0 is a core module,
        // layer 1 a component.
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return None;
        }
        match u16::from_le_bytes([bytes[6], bytes[7]]) {
            0 => Some(Format::Core),
            1 => Some(Format::Component),
            _ => None,
        }
    }
}

/// What `bytes` are: a core module or a component (`None` when not WebAssembly).
pub(crate) fn sniff(bytes: &[u8]) -> Option<Format> {
    Format::of(bytes)
}

/// A module or component ready to instantiate.
pub(crate) enum Loaded {
    /// A core module, imports resolved against the WASI preview 1 linker.
    Core(InstancePre<State>),
    /// A component, imports resolved against the WASI preview 2 linker, with what it
    /// exports (found once here, for jobs that leave the kind to the module).
    Component(
        wasmtime::component::InstancePre<ComponentState>,
        wasmq_spec::Exports,
    ),
}

/// Why a module could not be had for a job.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// The job's fault: a result is published, no retry.
    Rejected(Rejection),
    /// The host's fault (disk, runtime).
    Host(HostError),
}

impl ResolveError {
    pub(crate) fn host(message: impl Into<String>) -> Self {
        ResolveError::Host(HostError::new(message))
    }

    pub(crate) fn host_caused(message: String, source: impl Into<BoxError>) -> Self {
        ResolveError::Host(HostError::caused_by(message, source))
    }
}

pub(crate) use crate::admission::{Source, not_found};

/// A resolved module and how it was found.
pub(crate) struct Resolved {
    pub(crate) loaded: Arc<Loaded>,
    pub(crate) outcome: CacheOutcome,
    pub(crate) compile_us: u64,
}

/// Permanent outcomes are remembered: a module that does not compile or link never will.
type HotCell = Arc<OnceCell<Result<Arc<Loaded>, Rejection>>>;

/// What a loaded module is keyed by in the hot set: its digest, the engine, the artifact
/// kind, and how its unknown imports were linked.
type HotKey = (Digest, Metering, Format, UnknownImports);

/// The hot set: loaded modules by [`HotKey`], bounded, least recently used out.
pub(crate) struct Modules {
    hot: Mutex<LruCache<HotKey, HotCell>>,
    /// What each recently seen stored module is, for jobs that give no kind.
    layers: Mutex<LruCache<Digest, Format>>,
    cache: Arc<Cache>,
    /// The module store, shared artifacts and compile leases of the fleet, if any.
    remote: Remote,
    compiles: AtomicU64,
    /// Largest module compiled for a job, from the store or inline.
    max_module_bytes: usize,
}

impl Modules {
    pub(crate) fn new(
        cache: Arc<Cache>,
        remote: Remote,
        capacity: usize,
        max_module_bytes: usize,
    ) -> Modules {
        let cap = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        Modules {
            hot: Mutex::new(LruCache::new(cap)),
            layers: Mutex::new(LruCache::new(cap)),
            cache,
            remote,
            compiles: AtomicU64::new(0),
            max_module_bytes,
        }
    }

    /// The module store and artifact cache behind the hot set.
    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The same, shared, for blocking tasks.
    pub(crate) fn cache_arc(&self) -> Arc<Cache> {
        self.cache.clone()
    }

    /// The fleet's stores.
    pub(crate) fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Forgets every loaded module; the next job of each loads it from disk again.
    pub(crate) fn clear(&self) {
        self.hot.lock().expect("hot set lock").clear();
    }

    /// Modules compiled by this process.
    pub(crate) fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Whether module `digest` is a core module or a component, for a job that does not
    /// say (its kind is absent): the header of inline bytes, or of the stored module (read
    /// once per digest, then remembered). A module that is absent or not WebAssembly counts
    /// as core; resolving it then says what is wrong.
    pub(crate) async fn format_of(
        &self,
        digest: Digest,
        source: &Source,
    ) -> Result<Format, ResolveError> {
        let tenant = match source {
            Source::Bytes(b) => return Ok(Format::of(b).unwrap_or(Format::Core)),
            Source::Store | Source::Reference(_) => None,
            Source::Pinned(from) => {
                // Not in the store: the module comes from the reference's repository.
                return self.pulled_format(Some(from), digest).await;
            }
            Source::Tenant(t) => Some(t.clone()),
        };
        if let Some(a) = self.layers.lock().expect("layers lock").get(&digest) {
            return Ok(*a);
        }
        if tenant.is_none() && self.remote.has_store() && !self.cache.has_module(&digest) {
            return self.pulled_format(None, digest).await;
        }
        let cache = self.cache.clone();
        let head =
            tokio::task::spawn_blocking(move || cache.module_header(tenant.as_deref(), &digest))
                .await
                .map_err(|e| {
                    ResolveError::host_caused(format!("reading the module store panicked: {e}"), e)
                })?
                .map_err(|e| ResolveError::host_caused(e.to_string(), e))?;
        let Some(found) = head.as_ref().and_then(|h| Format::of(h)) else {
            return Ok(Format::Core);
        };
        self.layers.lock().expect("layers lock").put(digest, found);
        Ok(found)
    }

    /// What the module is, pulling it when this host has no copy.
    async fn pulled_format(
        &self,
        from: Option<&str>,
        digest: Digest,
    ) -> Result<Format, ResolveError> {
        if let Some(a) = self.layers.lock().expect("layers lock").get(&digest) {
            return Ok(*a);
        }
        let bytes = self.pulled(from, digest).await?;
        let found = Format::of(&bytes).unwrap_or(Format::Core);
        self.layers.lock().expect("layers lock").put(digest, found);
        Ok(found)
    }

    /// The loaded module for `digest` on `rt`, loading or compiling it if needed.
    pub(crate) async fn resolve(
        &self,
        rt: &Runtime,
        (kind, unknown): (Metering, UnknownImports),
        artifact: Format,
        digest: Digest,
        source: Source,
    ) -> Result<Resolved, ResolveError> {
        let slot = {
            let mut hot = self.hot.lock().expect("hot set lock");
            hot.get_or_insert((digest, kind, artifact, unknown), || {
                Arc::new(OnceCell::new())
            })
            .clone()
        };
        if let Some(done) = slot.get() {
            return hot_hit(done);
        }
        let mut first: Option<(CacheOutcome, u64)> = None;
        let done = slot
            .get_or_try_init(|| async {
                let (loaded, outcome, us) =
                    self.load(rt, artifact, unknown, digest, source).await?;
                first = Some((outcome, us));
                Ok::<_, ResolveError>(loaded)
            })
            .await?;
        match first {
            // This call did the loading.
            Some((outcome, compile_us)) => match done {
                Ok(loaded) => Ok(Resolved {
                    loaded: loaded.clone(),
                    outcome,
                    compile_us,
                }),
                Err(r) => Err(ResolveError::Rejected(r.clone())),
            },
            // Another job loaded it while this one waited.
            None => hot_hit(done),
        }
    }

    /// Loads from disk or compiles. The outer error is not remembered (the module may be
    /// uploaded later, the disk may recover); the inner one is.
    async fn load(
        &self,
        rt: &Runtime,
        artifact: Format,
        unknown: UnknownImports,
        digest: Digest,
        source: Source,
    ) -> Result<(Result<Arc<Loaded>, Rejection>, CacheOutcome, u64), ResolveError> {
        let link = |found: Result<Compiled, Rejection>| found.and_then(|c| link(rt, c, unknown));
        let key = ArtifactKey {
            engine: rt.fingerprint.clone(),
            module: digest,
            extension: artifact.extension(),
        };
        if let Some(compiled) = self.disk_artifact(rt, &key, artifact).await? {
            debug!(module = %digest, "artifact loaded from disk");
            return Ok((link(compiled), CacheOutcome::HitDisk, 0));
        }

        // Processes sharing this cache directory compile once between them: the first
        // takes the lock, the others wait and then find its artifact.
        let cache = self.cache.clone();
        let k = key.clone();
        let _host_lock = tokio::task::spawn_blocking(move || cache.lock_compile(&k))
            .await
            .map_err(|e| {
                ResolveError::host_caused(format!("taking the compile lock panicked: {e}"), e)
            })?;
        if let Some(compiled) = self.disk_artifact(rt, &key, artifact).await? {
            debug!(module = %digest, "artifact compiled by another process on this host");
            return Ok((link(compiled), CacheOutcome::HitDisk, 0));
        }
        // The fleet compiles once: another worker's artifact, or the lease to compile.
        let lease = match self.remote.shared_artifact(&self.cache, &key).await {
            Shared::Imported => match self.disk_artifact(rt, &key, artifact).await? {
                Some(compiled) => {
                    debug!(module = %digest, "artifact pulled from the shared store");
                    return Ok((link(compiled), CacheOutcome::HitRemote, 0));
                }
                None => None,
            },
            Shared::Compile(lease) => lease,
        };

        let bytes = match source {
            Source::Bytes(b) => b,
            Source::Pinned(from) => self.pulled(Some(&from), digest).await?,
            Source::Store if self.remote.has_store() => self.pulled(None, digest).await?,
            source => {
                let cache = self.cache.clone();
                let got = tokio::task::spawn_blocking(move || match &source {
                    Source::Tenant(tenant) => cache.get_tenant_module(tenant, &digest),
                    _ => cache.get_module(&digest),
                })
                .await
                .map_err(|e| {
                    ResolveError::host_caused(format!("reading the module store panicked: {e}"), e)
                })?;
                match got {
                    Ok(Some(b)) if b.len() > self.max_module_bytes => {
                        return Err(ResolveError::Rejected(too_large(
                            &digest,
                            b.len(),
                            self.max_module_bytes,
                        )));
                    }
                    Ok(Some(b)) => b,
                    Ok(None) => return Err(ResolveError::Rejected(not_found(&digest))),
                    Err(e) => return Err(ResolveError::host_caused(e.to_string(), e)),
                }
            }
        };

        if let Some(found) = Format::of(&bytes)
            && found != artifact
        {
            let r = Rejection::new(codes::WRONG_KIND, wrong_kind(artifact, found));
            return Ok((Err(r), CacheOutcome::Compiled, 0));
        }
        if let Err(why) = crate::bounds::check(&bytes) {
            let r = Rejection::new(codes::MODULE_TOO_COMPLEX, why);
            return Ok((Err(r), CacheOutcome::Compiled, 0));
        }
        let started = Instant::now();
        let engine = rt.engine.clone();
        let unpooled = rt.unpooled().ok().cloned();
        let pool = rt.pool;
        let compiled = tokio::task::spawn_blocking(move || {
            compile(&engine, unpooled.as_ref(), pool, artifact, &bytes)
        })
        .await
        .map_err(|e| ResolveError::host_caused(format!("compiling panicked: {e}"), e))?;
        let compile_us = started.elapsed().as_micros() as u64;
        let (module, serialized) = match compiled {
            Compile::Done(module, serialized) => (Ok(module), serialized),
            // The pool cannot hold it: refused, but its artifact is kept for a worker (or
            // a restart) whose pool can.
            Compile::PoolRefused(r, serialized) => (Err(r), serialized),
            Compile::Invalid(r) => return Ok((Err(r), CacheOutcome::Compiled, compile_us)),
        };
        self.compiles.fetch_add(1, Ordering::Relaxed);
        info!(module = %digest, compile_ms = compile_us / 1000, bytes = serialized.len(), "compiled module");
        let cache = self.cache.clone();
        let k = key.clone();
        let shared = self.remote.shares_artifacts().then(|| serialized.clone());
        let stored = tokio::task::spawn_blocking(move || cache.put_artifact(&k, &serialized)).await;
        // A cache that cannot be written costs a recompile later, never this job.
        match stored {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "could not store the compiled artifact; continuing without the disk cache")
            }
            Err(e) => {
                warn!(error = %e, "storing the compiled artifact panicked; continuing without the disk cache")
            }
        }
        if let Some(bytes) = shared {
            self.remote.share(&self.cache, &key, bytes).await;
        }
        // The lease goes only now, with the artifact in the shared store for its waiters.
        drop(lease);
        Ok((link(module), CacheOutcome::Compiled, compile_us))
    }

    /// The bytes of module `digest`: this host's copy, or pulled from `from` (a pinned
    /// reference) or the module store.
    async fn pulled(&self, from: Option<&str>, digest: Digest) -> Result<Vec<u8>, ResolveError> {
        match self.remote.module(&self.cache, from, digest).await? {
            Some(b) if b.len() > self.max_module_bytes => Err(ResolveError::Rejected(too_large(
                &digest,
                b.len(),
                self.max_module_bytes,
            ))),
            Some(b) => Ok(b),
            None => Err(ResolveError::Rejected(not_found(&digest))),
        }
    }

    /// The verified artifact for `key` on this host's disk, loaded; `None` on a miss or
    /// an artifact to recompile, a rejection when it is one the instance pool cannot hold.
    async fn disk_artifact(
        &self,
        rt: &Runtime,
        key: &ArtifactKey,
        artifact: Format,
    ) -> Result<Option<Result<Compiled, Rejection>>, ResolveError> {
        let engine = rt.engine.clone();
        let cache = self.cache.clone();
        let k = key.clone();
        let found =
            tokio::task::spawn_blocking(move || load_artifact(&cache, &engine, &k, artifact))
                .await
                .map_err(|e| {
                    ResolveError::host_caused(format!("loading an artifact panicked: {e}"), e)
                })?;
        let refusal = match found {
            OnDisk::Missing => return Ok(None),
            OnDisk::Loaded(c) => return Ok(Some(Ok(c))),
            OnDisk::Refused(e) => e,
        };
        // Refused by this engine: a pool too small for it if the on-demand twin loads it,
        // otherwise an artifact this build cannot use, compiled again.
        let unpooled = match rt.unpooled() {
            Ok(e) => e.clone(),
            Err(why) => {
                warn!(error = %why, "could not create an engine to check a refused artifact");
                return Ok(None);
            }
        };
        let cache = self.cache.clone();
        let k = key.clone();
        let pool = rt.pool;
        let twin = tokio::task::spawn_blocking(move || {
            match load_artifact(&cache, &unpooled, &k, artifact) {
                OnDisk::Loaded(c) => Some(pool_refusal(pool, &c, &refusal)),
                _ => None,
            }
        })
        .await
        .map_err(|e| ResolveError::host_caused(format!("checking an artifact panicked: {e}"), e))?;
        match twin {
            Some(r) => Ok(Some(Err(r))),
            None => {
                warn!(key = ?key, "engine refused a cached artifact; recompiling");
                Ok(None)
            }
        }
    }
}

fn too_large(digest: &Digest, len: usize, max: usize) -> Rejection {
    Rejection::new(
        codes::MODULE_TOO_LARGE,
        format!(
            "module sha256:{digest} is {len} bytes, larger than this worker's maximum of {max} bytes (max_module_bytes)"
        ),
    )
}

fn wrong_kind(wanted: Format, found: Format) -> String {
    match (wanted, found) {
        (Format::Component, _) => "the job's kind needs a component, but the bytes are a core WebAssembly module; run it as kind `command` (a WASI command) or `function` (the plugin ABI)".into(),
        (Format::Core, _) => "the job's kind needs a core WebAssembly module, but the bytes are a component; run it as kind `component` (a wasi:cli/run command) or `handler` (the wasmq:job/handler world)".into(),
    }
}

fn hot_hit(done: &Result<Arc<Loaded>, Rejection>) -> Result<Resolved, ResolveError> {
    match done {
        Ok(loaded) => Ok(Resolved {
            loaded: loaded.clone(),
            outcome: CacheOutcome::HitMemory,
            compile_us: 0,
        }),
        Err(r) => Err(ResolveError::Rejected(r.clone())),
    }
}
