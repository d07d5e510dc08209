//! Finding a job's compiled module: the in-memory hot set, then the artifact cache on disk,
//! then the compiler, with one compile per module however many jobs ask at once.
//!
//! The only `unsafe` of the sandbox lives here: loading a precompiled artifact, which is sound
//! only for bytes this engine produced. The artifact's MAC is checked (on the same open
//! file) before it is handed to wasmtime.
#![allow(unsafe_code)]

use std::io::Read;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lru::LruCache;
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};
use wasmq_cache::{ArtifactKey, Cache, Digest};
use wasmq_spec::{CacheOutcome, Rejection, UnknownImports, codes};
use wasmtime::component::Component;
use wasmtime::{InstancePre, Module};

use crate::engine::{ComponentState, EngineKind, PoolSize, Runtime, State};
use crate::fleet::{Remote, Shared};

/// What the bytes are, and so which artifact they compile to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Artifact {
    /// A core WebAssembly module.
    Core,
    /// A component (Component Model).
    Component,
}

impl Artifact {
    /// The cache file extension: the artifact kind is part of the cache key.
    fn extension(self) -> &'static str {
        match self {
            Artifact::Core => "cwasm",
            Artifact::Component => "component.cwasm",
        }
    }

    /// What the header of `bytes` says they are, if they are WebAssembly at all.
    fn of(bytes: &[u8]) -> Option<Artifact> {
        // magic, then a 16-bit version and a 16-bit layer: layer 0 is a core module,
        // layer 1 a component.
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return None;
        }
        match u16::from_le_bytes([bytes[6], bytes[7]]) {
            0 => Some(Artifact::Core),
            1 => Some(Artifact::Component),
            _ => None,
        }
    }
}

/// What `bytes` are: a core module or a component (`None` when not WebAssembly).
pub(crate) fn sniff(bytes: &[u8]) -> Option<Artifact> {
    Artifact::of(bytes)
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
    Internal(String),
}

pub(crate) use crate::admission::{Source, not_found};

/// A resolved module and how it was found.
pub(crate) struct Resolved {
    pub(crate) loaded: Arc<Loaded>,
    pub(crate) outcome: CacheOutcome,
    pub(crate) compile_us: u64,
}

/// Permanent outcomes are remembered: a module that does not compile or link never will.
type Slot = Arc<OnceCell<Result<Arc<Loaded>, Rejection>>>;

/// What a loaded module is keyed by in the hot set: its digest, the engine, the artifact
/// kind, and how its unknown imports were linked.
type HotKey = (Digest, EngineKind, Artifact, UnknownImports);

/// The hot set: loaded modules by [`HotKey`], bounded, least recently used out.
pub(crate) struct Modules {
    hot: Mutex<LruCache<HotKey, Slot>>,
    /// What each recently seen stored module is, for jobs that give no kind.
    layers: Mutex<LruCache<Digest, Artifact>>,
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
    pub(crate) async fn artifact_of(
        &self,
        digest: Digest,
        source: &Source,
    ) -> Result<Artifact, ResolveError> {
        let tenant = match source {
            Source::Bytes(b) => return Ok(Artifact::of(b).unwrap_or(Artifact::Core)),
            Source::Store | Source::Reference(_) => None,
            Source::Pinned(from) => {
                // Not in the store: the module comes from the reference's repository.
                return self.pulled_artifact(Some(from), digest).await;
            }
            Source::Tenant(t) => Some(t.clone()),
        };
        if let Some(a) = self.layers.lock().expect("layers lock").get(&digest) {
            return Ok(*a);
        }
        if tenant.is_none() && self.remote.has_store() && !self.cache.has_module(&digest) {
            return self.pulled_artifact(None, digest).await;
        }
        let cache = self.cache.clone();
        let head =
            tokio::task::spawn_blocking(move || cache.module_header(tenant.as_deref(), &digest))
                .await
                .map_err(|e| {
                    ResolveError::Internal(format!("reading the module store panicked: {e}"))
                })?
                .map_err(|e| ResolveError::Internal(e.to_string()))?;
        let Some(found) = head.as_ref().and_then(|h| Artifact::of(h)) else {
            return Ok(Artifact::Core);
        };
        self.layers.lock().expect("layers lock").put(digest, found);
        Ok(found)
    }

    /// What the module is, pulling it when this host has no copy.
    async fn pulled_artifact(
        &self,
        from: Option<&str>,
        digest: Digest,
    ) -> Result<Artifact, ResolveError> {
        if let Some(a) = self.layers.lock().expect("layers lock").get(&digest) {
            return Ok(*a);
        }
        let bytes = self.pulled(from, digest).await?;
        let found = Artifact::of(&bytes).unwrap_or(Artifact::Core);
        self.layers.lock().expect("layers lock").put(digest, found);
        Ok(found)
    }

    /// The loaded module for `digest` on `rt`, loading or compiling it if needed.
    pub(crate) async fn resolve(
        &self,
        rt: &Runtime,
        (kind, unknown): (EngineKind, UnknownImports),
        artifact: Artifact,
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
        artifact: Artifact,
        unknown: UnknownImports,
        digest: Digest,
        source: Source,
    ) -> Result<(Result<Arc<Loaded>, Rejection>, CacheOutcome, u64), ResolveError> {
        let link = |found: Result<Compiled, Rejection>| found.and_then(|c| link(rt, c, unknown));
        let key = ArtifactKey {
            engine: rt.fingerprint.clone(),
            module: digest,
            kind: artifact.extension(),
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
                ResolveError::Internal(format!("taking the compile lock panicked: {e}"))
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
                    ResolveError::Internal(format!("reading the module store panicked: {e}"))
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
                    Err(e) => return Err(ResolveError::Internal(e.to_string())),
                }
            }
        };

        if let Some(found) = Artifact::of(&bytes)
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
        .map_err(|e| ResolveError::Internal(format!("compiling panicked: {e}")))?;
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
        artifact: Artifact,
    ) -> Result<Option<Result<Compiled, Rejection>>, ResolveError> {
        let engine = rt.engine.clone();
        let cache = self.cache.clone();
        let k = key.clone();
        let found =
            tokio::task::spawn_blocking(move || load_artifact(&cache, &engine, &k, artifact))
                .await
                .map_err(|e| {
                    ResolveError::Internal(format!("loading an artifact panicked: {e}"))
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
        .map_err(|e| ResolveError::Internal(format!("checking an artifact panicked: {e}")))?;
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

/// Compiled code of either kind.
enum Compiled {
    Core(Module),
    Component(Component),
}

/// What the disk cache had for an artifact key.
enum OnDisk {
    /// Nothing usable: no artifact, a failed check (logged), or unreadable.
    Missing,
    Loaded(Compiled),
    /// A verified artifact the engine would not load.
    Refused(wasmtime::Error),
}

/// Why the instance pool cannot hold `compiled` (which an engine without a pool loads),
/// naming the setting to raise; `refusal` is the pooled engine's own account.
fn pool_refusal(pool: PoolSize, compiled: &Compiled, refusal: &wasmtime::Error) -> Rejection {
    let needs = match compiled {
        Compiled::Core(m) => Some(m.resources_required()),
        Compiled::Component(c) => c.resources_required(),
    };
    if let Compiled::Core(m) = compiled
        && has_shared_memory(m)
    {
        return shared_memory_refused();
    }
    // A memory or table that starts larger than any job here may grow to is what
    // `memory_exceeded` means, though the module never ran.
    let over_memory = needs.as_ref().is_some_and(|r| {
        // In 64 KiB pages (custom page sizes are off).
        r.max_initial_memory_size
            .is_some_and(|pages| pages.saturating_mul(65536) > pool.max_memory_bytes)
            || r.max_initial_table_size
                .is_some_and(|t| t > pool.max_table_elements as u64)
    });
    if over_memory {
        return Rejection::new(
            codes::MEMORY_LIMIT,
            format!(
                "the module needs more than this worker allows: its initial memory or table is larger than the worker's maximum (limits.maximum.memory_bytes = {}, {} table elements) ({refusal:#})",
                pool.max_memory_bytes, pool.max_table_elements
            ),
        );
    }
    let what = match needs {
        Some(r) if u64::from(r.num_memories) > u64::from(pool.max_memories) => format!(
            "it has {} linear memories, more than limits.maximum.memories = {}; raise `memories` under [limits.maximum]",
            r.num_memories, pool.max_memories
        ),
        Some(r) if u64::from(r.num_tables) > u64::from(pool.max_tables) => format!(
            "it has {} tables, more than limits.maximum.tables = {}; raise `tables` under [limits.maximum]",
            r.num_tables, pool.max_tables
        ),
        _ if matches!(compiled, Compiled::Core(_)) => format!(
            "its instance state is larger than max_core_instance_bytes = {}; raise max_core_instance_bytes",
            pool.max_core_instance_bytes
        ),
        _ => format!(
            "one of its core instances is larger than max_core_instance_bytes = {}, or it has more core instances than limits.maximum.instances = {}; raise the one the detail names",
            pool.max_core_instance_bytes, pool.max_instances
        ),
    };
    Rejection::new(
        codes::POOL_LIMIT,
        format!(
            "this worker's instance pool cannot hold the module: {what} (the compiled module is kept; detail: {refusal:#})"
        ),
    )
}

/// Whether the module imports or exports a shared memory (the threads proposal).
fn has_shared_memory(m: &Module) -> bool {
    m.imports()
        .map(|i| i.ty())
        .chain(m.exports().map(|e| e.ty()))
        .any(|t| matches!(t, wasmtime::ExternType::Memory(m) if m.is_shared()))
}

fn shared_memory_refused() -> Rejection {
    Rejection::new(
        codes::INVALID_MODULE,
        "the module has a shared memory (the threads proposal), which this sandbox does not create: wasmtime keeps shared memories off by default (a tier 2 feature), and `wasmtime run` 48 refuses them too",
    )
}

/// How a compile ended.
enum Compile {
    /// Compiled and loaded, with its serialized artifact.
    Done(Compiled, Vec<u8>),
    /// Valid, but the instance pool cannot hold it: the rejection, and the artifact
    /// (compiled by the on-demand twin, which this engine can load once its pool can).
    PoolRefused(Rejection, Vec<u8>),
    /// Not a module this engine compiles.
    Invalid(Rejection),
}

/// Compiles `bytes` on `engine`; when the engine refuses them, compiles them on its
/// on-demand twin to tell a pool too small for the module (the twin takes it) from bytes
/// that are not valid (it refuses them too).
fn compile(
    engine: &wasmtime::Engine,
    unpooled: Option<&wasmtime::Engine>,
    pool: PoolSize,
    artifact: Artifact,
    bytes: &[u8],
) -> Compile {
    let build = |engine: &wasmtime::Engine| -> wasmtime::Result<(Compiled, Vec<u8>)> {
        match artifact {
            Artifact::Core => {
                let module = Module::new(engine, bytes)?;
                let serialized = module.serialize()?;
                Ok((Compiled::Core(module), serialized))
            }
            Artifact::Component => {
                let component = Component::new(engine, bytes)?;
                let serialized = component.serialize()?;
                Ok((Compiled::Component(component), serialized))
            }
        }
    };
    let refusal = match build(engine) {
        Ok((module, serialized)) => return Compile::Done(module, serialized),
        Err(e) => e,
    };
    match unpooled.map(build) {
        Some(Ok((module, serialized))) => {
            Compile::PoolRefused(pool_refusal(pool, &module, &refusal), serialized)
        }
        _ => Compile::Invalid(Rejection::new(
            codes::INVALID_MODULE,
            format!("the module is not valid WebAssembly: {refusal:#}"),
        )),
    }
}

fn wrong_kind(wanted: Artifact, found: Artifact) -> String {
    match (wanted, found) {
        (Artifact::Component, _) => "the job's kind needs a component, but the bytes are a core WebAssembly module; run it as kind `command` (a WASI command) or `function` (the plugin ABI)".into(),
        (Artifact::Core, _) => "the job's kind needs a core WebAssembly module, but the bytes are a component; run it as kind `component` (a wasi:cli/run command) or `handler` (the wasmq:job/handler world)".into(),
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

/// A verified artifact from disk, deserialized; `None` on a miss, a failed check, or an
/// artifact this engine refuses (each is logged and ends in a recompile).
fn load_artifact(
    cache: &Cache,
    engine: &wasmtime::Engine,
    key: &ArtifactKey,
    artifact: Artifact,
) -> OnDisk {
    let verified = match cache.open_artifact(key) {
        Ok(Some(v)) => v,
        Ok(None) => return OnDisk::Missing,
        Err(e) => {
            warn!(error = %e, "artifact cache unreadable; compiling instead");
            return OnDisk::Missing;
        }
    };
    let path = verified.path.clone();
    let loaded = match artifact {
        // SAFETY: the file holds exactly the bytes a wasmq process tagged, with the
        // artifact key, as the serialization of this module by an engine with the same
        // fingerprint (the tag binds module, engine, kind and length); the tag was checked
        // on this same open file just now, and cache writers only ever replace files by
        // rename, never in place.
        Artifact::Core => {
            unsafe { Module::deserialize_open_file(engine, verified.file) }.map(Compiled::Core)
        }
        Artifact::Component => {
            let mut bytes = Vec::with_capacity(usize::try_from(verified.len).unwrap_or(0));
            let mut file = verified.file;
            if let Err(e) = file.read_to_end(&mut bytes) {
                warn!(path = %path.display(), error = %e, "could not read a cached artifact; recompiling");
                return OnDisk::Missing;
            }
            // SAFETY: as above; the bytes are read through the same open file whose
            // tag was just checked, and no cache writer modifies a file in place.
            unsafe { Component::deserialize(engine, &bytes) }.map(Compiled::Component)
        }
    };
    match loaded {
        Ok(m) => OnDisk::Loaded(m),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "engine refused a cached artifact");
            OnDisk::Refused(e)
        }
    }
}

/// Resolves imports against the WASI linker of the artifact's kind. (Which exports a job
/// needs depends on its kind and is checked when it runs.)
///
/// With [`UnknownImports::Trap`], every function import the linker does not provide is
/// linked as a function that fails with wasmtime's [`wasmtime::UnknownImportError`] when
/// called (what `wasmtime run --trap-unknown-imports` does); other unknown imports are
/// still refused.
fn link(
    rt: &Runtime,
    compiled: Compiled,
    unknown: UnknownImports,
) -> Result<Arc<Loaded>, Rejection> {
    let linked = match compiled {
        Compiled::Core(module) => {
            if has_shared_memory(&module) {
                return Err(shared_memory_refused());
            }
            let linker = match unknown {
                UnknownImports::Reject => std::borrow::Cow::Borrowed(&rt.linker),
                UnknownImports::Trap => {
                    let mut l = rt.linker.clone();
                    l.define_unknown_imports_as_traps(&module)
                        .map_err(|e| Rejection::new(codes::UNKNOWN_IMPORT, format!("{e:#}")))?;
                    std::borrow::Cow::Owned(l)
                }
            };
            linker.instantiate_pre(&module).map(Loaded::Core).map_err(|e| {
                format!("the module imports something this sandbox does not provide (WASI preview 1 is available; `\"unknown_imports\": \"trap\"` links a missing function as a trap): {e:#}")
            })
        }
        Compiled::Component(component) => {
            let linker = match unknown {
                UnknownImports::Reject => std::borrow::Cow::Borrowed(&rt.component_linker),
                UnknownImports::Trap => {
                    let mut l = rt.component_linker.clone();
                    l.define_unknown_imports_as_traps(&component)
                        .map_err(|e| Rejection::new(codes::UNKNOWN_IMPORT, format!("{e:#}")))?;
                    std::borrow::Cow::Owned(l)
                }
            };
            linker
            .instantiate_pre(&component)
            .map(|pre| {
                let exports = crate::kinds::component_exports(&pre);
                Loaded::Component(pre, exports)
            })
            .map_err(|e| {
                format!("the component imports something this sandbox does not provide (WASI preview 2 is available): {e:#}")
            })
        }
    };
    linked
        .map(Arc::new)
        .map_err(|m| Rejection::new(codes::UNKNOWN_IMPORT, m))
}
