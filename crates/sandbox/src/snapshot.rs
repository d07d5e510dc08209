//! Pre-initialised snapshots: a job's core module with an initializer export called once,
//! its memories and globals written back into a new module (wasmtime-wizer), so that every
//! later job starts where the initializer left off.
//!
//! The job gives the initializer its inputs as any job would (args, env, stdin, files,
//! volumes) and runs it under its limits. The new module is content-addressed like any
//! other; [`Provenance`] says what it was made from.

use std::time::{Instant, SystemTime};

use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;
use wasmq_cache::Digest;
use wasmq_spec::{Job, Rejection, codes};
use wasmtime::{Instance, Module, Store};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use crate::Sandbox;
use crate::admission::{self, Intake, JobError, Source};
use crate::engine::{EngineOptions, Runtime, State};
use crate::fault::HostError;
use crate::limiter::{Counts, DiskQuota, JobLimiter};
use crate::pipe::CappedPipe;

/// The initializer a snapshot calls unless told otherwise: the wizer convention.
pub const DEFAULT_INIT: &str = "wizer.initialize";

/// A pre-initialised module and where it came from.
#[derive(Debug)]
pub struct Snapshot {
    /// The new module's bytes.
    pub bytes: Vec<u8>,
    /// What it was made from.
    pub provenance: Provenance,
    /// What the initializer wrote to stdout and stderr (capped by the job's limits).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Time to compile the instrumented module, and to run the initializer, in
    /// microseconds.
    pub compile_us: u64,
    pub init_us: u64,
}

/// What a snapshot was made from, kept beside it in the module store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// `sha256:<hex>` of the module it was made from.
    pub base: String,
    /// The export that was called.
    pub init: String,
    /// `sha256:<hex>` of the job's inputs (args, env, stdin, files, volume names), in a
    /// canonical JSON form.
    pub inputs: String,
    /// The wasmtime that made it.
    pub wasmtime: String,
}

/// Why a snapshot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The job or its module cannot be pre-initialised (its fault).
    #[error("{0}")]
    Refused(Rejection),
    /// The initializer trapped, exited or ran out of time.
    #[error("the initializer `{init}` did not finish: {why}")]
    Init { init: String, why: String },
    /// The host failed (disk, engine).
    #[error(transparent)]
    Host(HostError),
}

impl From<JobError> for SnapshotError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Rejected(r) | JobError::OverMemory(r) => SnapshotError::Refused(r),
            JobError::Host(e) => SnapshotError::Host(e),
            JobError::Cancelled(m) | JobError::Expired(m) => {
                SnapshotError::Refused(Rejection::new(codes::INVALID_FIELD, m))
            }
        }
    }
}

impl Sandbox {
    /// Pre-initialises `job`'s module: instantiates it with the job's inputs, calls
    /// `_initialize` when exported and then `init` (a `() -> ()` export), and returns the
    /// module with the memories and globals the initializer left, `init` no longer
    /// exported. Only core modules, by `path`, `base64` or `sha256`.
    pub async fn snapshot(&self, job: &Job, init: &str) -> Result<Snapshot, SnapshotError> {
        let inner = &self.inner;
        let intake = Intake {
            tenant: None,
            now: SystemTime::now(),
            cancelled: false,
        };
        let store = admission::ModuleAccess {
            cache: inner.modules.cache(),
            remote: false,
        };
        let admitted = admission::admit(&inner.config, store, job, intake)
            .map_err(|refused| SnapshotError::from(refused.error))?;
        let bytes = match (&admitted.source, admitted.digest) {
            (Source::Bytes(b), _) => b.clone(),
            (Source::Store, Some(digest)) => inner
                .modules
                .cache()
                .get_module(&digest)
                .map_err(|e| SnapshotError::Host(HostError::caused_by(e.to_string(), e)))?
                .ok_or_else(|| SnapshotError::Refused(admission::not_found(&digest)))?,
            _ => {
                return Err(SnapshotError::Refused(Rejection::new(
                    codes::INVALID_FIELD,
                    "a snapshot takes a module by path, base64 or sha256 from this host's store",
                )));
            }
        };
        if crate::modules::sniff(&bytes) != Some(crate::modules::Format::Core) {
            return Err(SnapshotError::Refused(Rejection::new(
                codes::WRONG_KIND,
                "only a core WebAssembly module can be pre-initialised here, not a component",
            )));
        }
        let base = Digest::of(&bytes);
        let mut wizer = Wizer::new();
        wizer.init_func(init);
        let (cx, instrumented) = wizer.instrument(&bytes).map_err(|e| {
            SnapshotError::Refused(Rejection::new(
                codes::INVALID_MODULE,
                format!("the module cannot be pre-initialised: {e:#}"),
            ))
        })?;

        // An engine of its own, without the pool (the instrumented module exports every
        // global and memory) and with deterministic relaxed SIMD, so that what the
        // snapshot holds does not depend on this host's CPU.
        let rt = Runtime::for_snapshots(&EngineOptions {
            pooling: false,
            slots: 1,
            pool: inner.config.pool_size(),
            keep_resident_bytes: 0,
            epoch_tick: inner.config.epoch_tick,
        })
        .map_err(|e| {
            SnapshotError::Host(HostError::caused_by(
                format!("could not create an engine: {e:#}"),
                e,
            ))
        })?;
        let t = Instant::now();
        let engine = rt.engine.clone();
        let module = tokio::task::spawn_blocking(move || Module::new(&engine, &instrumented))
            .await
            .map_err(|e| {
                SnapshotError::Host(HostError::caused_by(format!("compiling panicked: {e}"), e))
            })?
            .map_err(|e| {
                SnapshotError::Refused(Rejection::new(
                    codes::INVALID_MODULE,
                    format!("the module is not valid WebAssembly: {e:#}"),
                ))
            })?;
        let compile_us = t.elapsed().as_micros() as u64;
        match module.get_export(init) {
            Some(wasmtime::ExternType::Func(f))
                if f.params().len() == 0 && f.results().len() == 0 => {}
            Some(_) => {
                return Err(SnapshotError::Refused(Rejection::new(
                    codes::ABI_MISMATCH,
                    format!(
                        "the initializer `{init}` is not a function taking and returning nothing"
                    ),
                )));
            }
            None => {
                return Err(SnapshotError::Refused(Rejection::new(
                    codes::NO_ENTRY_POINT,
                    format!(
                        "the module exports no initializer `{init}` (name another with --init)"
                    ),
                )));
            }
        }

        let limits = admitted.limits;
        let dir = self.job_dir(&admitted).map_err(|e| {
            SnapshotError::Host(HostError::caused_by(
                format!("could not prepare the job directory: {e}"),
                e,
            ))
        })?;
        let stdout = CappedPipe::new(usize::try_from(limits.stdout_bytes).unwrap_or(usize::MAX));
        let stderr = CappedPipe::new(usize::try_from(limits.stderr_bytes).unwrap_or(usize::MAX));
        let mut wasi = self
            .wasi_builder(&admitted, dir.path(), &stdout, &stderr)
            .map_err(|m| SnapshotError::Host(HostError::new(m)))?;
        let quota = DiskQuota::new(dir.path().to_owned(), limits.disk_bytes, limits.files, None);
        let limiter = JobLimiter::new(
            limits.memory_bytes,
            inner.config.max_table_elements,
            Counts::of(&limits),
            quota,
        );
        let state = State {
            wasi: wasi.build_p1(),
            limiter,
        };
        let cancel = CancellationToken::new();
        let mut store = crate::run::new_store(&rt.engine, state, &limits, &cancel)
            .map_err(|m| SnapshotError::Host(HostError::new(m)))?;
        let mut linker = rt.linker.clone();
        if job.unknown_imports.unwrap_or(inner.config.unknown_imports)
            == wasmq_spec::UnknownImports::Trap
        {
            linker
                .define_unknown_imports_as_traps(&module)
                .map_err(|e| {
                    SnapshotError::Refused(Rejection::new(codes::UNKNOWN_IMPORT, format!("{e:#}")))
                })?;
        }
        let t = Instant::now();
        let timeout = std::time::Duration::from_millis(limits.timeout_ms);
        let ran = tokio::time::timeout(timeout, async {
            let instance = linker.instantiate_async(&mut store, &module).await?;
            if init != "_initialize"
                && let Ok(f) = instance.get_typed_func::<(), ()>(&mut store, "_initialize")
            {
                f.call_async(&mut store, ()).await?;
            }
            let f = instance.get_typed_func::<(), ()>(&mut store, init)?;
            f.call_async(&mut store, ()).await?;
            Ok::<_, wasmtime::Error>(instance)
        })
        .await;
        let init_us = t.elapsed().as_micros() as u64;
        let failed = |why: String| SnapshotError::Init {
            init: init.to_owned(),
            why,
        };
        let instance = match ran {
            Err(_) => {
                return Err(failed(format!(
                    "it ran past the time limit of {} ms",
                    limits.timeout_ms
                )));
            }
            Ok(Err(e)) => {
                let why = match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    Some(exit) => format!("it exited with status {}", exit.0),
                    None => match e.downcast_ref::<wasmtime::Trap>() {
                        Some(wasmtime::Trap::Interrupt) => {
                            format!("it ran past the time limit of {} ms", limits.timeout_ms)
                        }
                        _ => format!("{e:#}"),
                    },
                };
                let (err, _) = stderr.take();
                let tail =
                    String::from_utf8_lossy(&err[err.len().saturating_sub(2000)..]).into_owned();
                return Err(failed(if tail.is_empty() {
                    why
                } else {
                    format!("{why}; its stderr ends: {tail}")
                }));
            }
            Ok(Ok(instance)) => instance,
        };
        let bytes = wizer
            .snapshot(
                &cx,
                &mut Live {
                    store: &mut store,
                    instance,
                },
            )
            .await
            .map_err(|e| {
                SnapshotError::Host(HostError::caused_by(
                    format!("taking the snapshot failed: {e:#}"),
                    e,
                ))
            })?;
        drop(store);
        let (out, _) = stdout.take();
        let (err, _) = stderr.take();
        Ok(Snapshot {
            bytes,
            provenance: Provenance {
                base: format!("sha256:{base}"),
                init: init.to_owned(),
                inputs: inputs_digest(job),
                wasmtime: crate::WASMTIME_VERSION.to_owned(),
            },
            stdout: out,
            stderr: err,
            compile_us,
            init_us,
        })
    }
}

/// `sha256:<hex>` of what the job gives its initializer, in a canonical form.
fn inputs_digest(job: &Job) -> String {
    let inputs = serde_json::json!({
        "args": job.args,
        "env": job.env,
        "stdin": job.stdin,
        "stdin_base64": job.stdin_base64,
        "files": job.files,
        "volumes": job.volumes,
        "work_dir": job.work_dir,
    });
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(inputs.to_string().as_bytes()))
    )
}

/// The instance after its initializer, as wizer reads it.
struct Live<'a> {
    store: &'a mut Store<State>,
    instance: Instance,
}

impl InstanceState for Live<'_> {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let global = self
            .instance
            .get_global(&mut *self.store, name)
            .expect("wizer names a global it exported");
        match global.get(&mut *self.store) {
            wasmtime::Val::I32(x) => SnapshotVal::I32(x),
            wasmtime::Val::I64(x) => SnapshotVal::I64(x),
            wasmtime::Val::F32(x) => SnapshotVal::F32(x),
            wasmtime::Val::F64(x) => SnapshotVal::F64(x),
            wasmtime::Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => {
                panic!("wizer asked for a global of type {other:?}, which it does not snapshot")
            }
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self
            .instance
            .get_memory(&mut *self.store, name)
            .expect("wizer names a memory it exported");
        contents(memory.data(&*self.store))
    }
}
