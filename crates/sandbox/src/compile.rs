//! Compiling, loading and linking one module: the engine's side of the artifact cache.
//!
//! The only `unsafe` of the sandbox lives here: loading a precompiled artifact, which is sound
//! only for bytes this engine produced. The artifact's MAC is checked (on the same open
//! file) before it is handed to wasmtime.
#![allow(unsafe_code)]

use std::io::Read;
use std::sync::Arc;

use tracing::{debug, warn};
use wasmq_cache::{ArtifactKey, Cache};
use wasmq_spec::{Rejection, UnknownImports, codes};
use wasmtime::Module;
use wasmtime::component::Component;

use crate::engine::{PoolSize, Runtime};
use crate::modules::{Format, Loaded};

/// Compiled code of either kind.
pub(crate) enum Compiled {
    Core(Module),
    Component(Component),
}

/// What the disk cache had for an artifact key.
pub(crate) enum OnDisk {
    /// Nothing usable: no artifact, a failed check (logged), or unreadable.
    Missing,
    Loaded(Compiled),
    /// A verified artifact the engine would not load.
    Refused(wasmtime::Error),
}

/// Why the instance pool cannot hold `compiled` (which an engine without a pool loads),
/// naming the setting to raise; `refusal` is the pooled engine's own account.
pub(crate) fn pool_refusal(
    pool: PoolSize,
    compiled: &Compiled,
    refusal: &wasmtime::Error,
) -> Rejection {
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
pub(crate) fn has_shared_memory(m: &Module) -> bool {
    m.imports()
        .map(|i| i.ty())
        .chain(m.exports().map(|e| e.ty()))
        .any(|t| matches!(t, wasmtime::ExternType::Memory(m) if m.is_shared()))
}

pub(crate) fn shared_memory_refused() -> Rejection {
    Rejection::new(
        codes::INVALID_MODULE,
        "the module has a shared memory (the threads proposal), which this sandbox does not create: wasmtime keeps shared memories off by default (a tier 2 feature), and `wasmtime run` 48 refuses them too",
    )
}

/// How a compile ended.
pub(crate) enum Compile {
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
pub(crate) fn compile(
    engine: &wasmtime::Engine,
    unpooled: Option<&wasmtime::Engine>,
    pool: PoolSize,
    artifact: Format,
    bytes: &[u8],
) -> Compile {
    let build = |engine: &wasmtime::Engine| -> wasmtime::Result<(Compiled, Vec<u8>)> {
        match artifact {
            Format::Core => {
                let module = Module::new(engine, bytes)?;
                let serialized = module.serialize()?;
                Ok((Compiled::Core(module), serialized))
            }
            Format::Component => {
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

/// A verified artifact from disk, deserialized; `None` on a miss, a failed check, or an
/// artifact this engine refuses (each is logged and ends in a recompile).
pub(crate) fn load_artifact(
    cache: &Cache,
    engine: &wasmtime::Engine,
    key: &ArtifactKey,
    artifact: Format,
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
        Format::Core => {
            unsafe { Module::deserialize_open_file(engine, verified.file) }.map(Compiled::Core)
        }
        Format::Component => {
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
pub(crate) fn link(
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
