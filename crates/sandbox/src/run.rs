//! Running one job: from a decoded [`Job`], through [`admission`], to its [`JobResult`].

use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use tracing::{debug, warn};
use wasmq_spec::{Job, JobKind, JobResult, Limits, codes};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::Sandbox;
use crate::admission::{self, Admitted, Intake, JobError, Source};
use crate::classify::{cancelled, classify, usage};
use crate::egress::Egress;
use crate::engine::{ComponentState, HasLimiter, Metering, Runtime, State};
use crate::fault::{HostError, HostFault};
use crate::files;
use crate::kinds::{self, RunEnd};
use crate::limiter::{Counts, DiskQuota, JobLimiter, Stop};
use crate::modules::{Format, Loaded, ResolveError};
use crate::pipe::CappedPipe;

/// argv\[0\] as the guest sees it.
const ARGV0: &str = "main.wasm";

/// What runs: the loaded module, the kind it runs as (the job's, or detected), and the
/// token that stops it.
#[derive(Clone, Copy)]
struct Program<'a> {
    loaded: &'a Loaded,
    kind: JobKind,
    cancel: &'a CancellationToken,
}

impl Sandbox {
    /// Runs `job` and returns its result; never fails: every problem is a status, a host
    /// fault `internal_error` (a worker requeues those instead: see
    /// [`Sandbox::run_cancellable`]).
    ///
    /// The job has no tenant: with tenancy on it gets the default policy (or is rejected).
    pub async fn run(&self, job: &Job) -> JobResult {
        self.run_as(job, None).await
    }

    /// Runs `job`, published by `tenant` (a broker user the broker verified), under that
    /// tenant's policy; see [`crate::Tenancy`]. Without tenancy, `tenant` is ignored. A
    /// host fault is an `internal_error` result.
    pub async fn run_as(&self, job: &Job, tenant: Option<&str>) -> JobResult {
        self.run_cancellable(job, tenant, &CancellationToken::new())
            .await
            .unwrap_or_else(HostFault::into_result)
    }

    /// Runs `job` until `cancel` is cancelled: its result, whatever the job did, or the
    /// [`HostFault`] that kept the host from running it (not the job's doing: try again).
    ///
    /// A job cancelled before it starts ends `cancelled` without running, and a running
    /// one is stopped within about a millisecond (the epoch callback sees the token, and
    /// a guest blocked in a host call is dropped) and ends `cancelled` with its output so
    /// far.
    pub async fn run_cancellable(
        &self,
        job: &Job,
        tenant: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<JobResult, HostFault> {
        let started = Instant::now();
        let mut result = JobResult::new(job.id(), job.batch.clone());
        result.tenant = self.result_tenant(tenant);
        let intake = Intake {
            tenant,
            now: SystemTime::now(),
            cancelled: cancel.is_cancelled(),
        };
        let store = admission::ModuleAccess {
            cache: self.inner.modules.cache(),
            remote: self.inner.modules.remote().has_store(),
        };
        let admitted = admission::admit(&self.inner.config, store, job, intake);
        let outcome = match admitted {
            Ok(admitted) => self.run_into(admitted, cancel, &mut result).await,
            Err(refused) => {
                result.module = refused.module.map(|d| d.to_hex());
                Err(refused.error)
            }
        };
        let fault = outcome.or_else(|e| e.record(&mut result)).err();
        result.timings.total_us = started.elapsed().as_micros() as u64;
        debug!(job = job.id(), status = %result.status, us = result.timings.total_us, fault = fault.is_some(), "job finished");
        match fault {
            None => Ok(result),
            Some(e) => Err(HostFault::new(e, result)),
        }
    }

    /// The `tenant` a result names: the verified publisher when tenancy is on, else none.
    pub fn result_tenant(&self, tenant: Option<&str>) -> Option<String> {
        self.inner
            .config
            .tenancy
            .as_ref()
            .and(tenant)
            .map(str::to_owned)
    }

    /// Runs an admitted job to its end, filling in `result`.
    async fn run_into(
        &self,
        mut admitted: Admitted<'_>,
        cancel: &CancellationToken,
        result: &mut JobResult,
    ) -> Result<(), JobError> {
        let inner = &self.inner;
        let job = admitted.job;
        let metering = if admitted.limits.fuel.is_some() {
            Metering::Fuel
        } else {
            Metering::Plain
        };
        let digest = match (admitted.digest, &admitted.source) {
            (Some(d), _) => d,
            (None, Source::Reference(reference)) => {
                let resolved = inner.modules.remote().resolve(reference).await?;
                admitted.source = Source::Pinned(resolved.pinned);
                resolved.module
            }
            (None, _) => unreachable!("only a reference is admitted without a digest"),
        };
        result.module = Some(digest.to_hex());
        tracing::Span::current().record("module", result.module.as_deref());
        let rt = inner.engines.get(metering).map_err(|e| {
            HostError::caused_by(format!("could not create the fuel engine: {e:#}"), e)
        })?;
        result.engine = Some(rt.fingerprint.clone());
        // Kept to store in the tenant's namespace once it has resolved.
        let keep = match (&admitted.source, admitted.keep_for) {
            (Source::Bytes(b), Some(tenant)) => Some((tenant, b.clone())),
            _ => None,
        };
        let source = std::mem::replace(&mut admitted.source, Source::Store);
        result.kind = job.kind;
        let format = match job.kind {
            Some(k) => Format::of_kind(k),
            None => inner.modules.format_of(digest, &source).await?,
        };
        let t = Instant::now();
        let unknown = job.unknown_imports.unwrap_or(inner.config.unknown_imports);
        let resolved = inner
            .modules
            .resolve(rt, (metering, unknown), format, digest, source)
            .await;
        result.timings.resolve_us = t.elapsed().as_micros() as u64;
        let resolved = resolved?;
        result.cache = Some(resolved.outcome);
        result.timings.compile_us = resolved.compile_us;
        let job_kind = match job.kind {
            Some(k) => k,
            None => {
                let exports = match &*resolved.loaded {
                    Loaded::Core(pre) => kinds::core_exports(pre.module(), job),
                    Loaded::Component(_, exports) => *exports,
                };
                let k = JobKind::detect(exports, job.wants_function()).ok_or_else(|| {
                    match &*resolved.loaded {
                        // Why the entry point it names will not do.
                        Loaded::Core(pre) if job.invoke.is_some() => {
                            kinds::check_core_exports(pre.module(), job, JobKind::Command)
                                .err()
                                .unwrap_or_else(|| kinds::no_entry_point(false))
                        }
                        _ => kinds::no_entry_point(exports.component),
                    }
                })?;
                job.check_fields_for(k)?;
                result.kind = Some(k);
                k
            }
        };
        if let Some((tenant, bytes)) = keep {
            self.store_tenant_module(tenant, bytes).await;
        }

        let _slot = inner
            .slots
            .acquire()
            .await
            .expect("the slot semaphore is never closed");
        let mut dir = self.job_dir(&admitted).map_err(|e| {
            HostError::caused_by(format!("could not prepare the job directory: {e}"), e)
        })?;
        let handle = dir.lend_handle();
        let program = Program {
            loaded: &resolved.loaded,
            kind: job_kind,
            cancel,
        };
        let (ran, handle) = self
            .execute(rt, program, &admitted, dir.path(), handle, result)
            .await;
        dir.return_handle(handle);
        if ran? {
            dir.mark_empty();
        }
        files::collect(
            dir.path(),
            &job.collect,
            admitted.limits.output_bytes,
            admitted.limits.files,
            result,
        )
        .map_err(|e| HostError::caused_by(format!("could not collect output files: {e}"), e).into())
    }

    /// Keeps inline bytes that resolved in `tenant`'s namespace, so its later jobs may
    /// refer to them by sha256. A failed write only costs that, never this job.
    async fn store_tenant_module(&self, tenant: &str, bytes: Vec<u8>) {
        let cache = self.inner.modules.cache_arc();
        let t = tenant.to_owned();
        let stored = tokio::task::spawn_blocking(move || cache.put_tenant_module(&t, &bytes)).await;
        match stored {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                warn!(tenant, error = %e, "could not keep an inline module in the tenant's namespace")
            }
            Err(e) => {
                warn!(tenant, error = %e, "keeping an inline module in the tenant's namespace panicked")
            }
        }
    }

    /// An empty directory for the job, with its input files written.
    pub(crate) fn job_dir(&self, admitted: &Admitted<'_>) -> std::io::Result<files::WorkDir<'_>> {
        let dir = self.inner.work_dirs.take()?;
        files::write_inputs(dir.path(), &admitted.inputs)?;
        Ok(dir)
    }

    /// Instantiates and runs the guest as its kind says, filling in status, output and
    /// usage: true when the job's directory was seen empty at the end, or the error that
    /// kept the guest from running. The directory's handle comes back either way.
    async fn execute(
        &self,
        rt: &Runtime,
        Program {
            loaded,
            kind,
            cancel,
        }: Program<'_>,
        p: &Admitted<'_>,
        dir: &std::path::Path,
        handle: Option<rustix::fs::Dir>,
        result: &mut JobResult,
    ) -> (Result<bool, JobError>, Option<rustix::fs::Dir>) {
        let limits = &p.limits;
        let stdout = CappedPipe::new(usize::try_from(limits.stdout_bytes).unwrap_or(usize::MAX));
        let stderr = CappedPipe::new(usize::try_from(limits.stderr_bytes).unwrap_or(usize::MAX));
        let mut wasi = match self.wasi_builder(p, dir, &stdout, &stderr) {
            Ok(w) => w,
            Err(m) => return (Err(HostError::new(m).into()), handle),
        };
        if let Some(r) = kinds::over_counts(loaded, limits) {
            return (Err(r.into()), handle);
        }
        let quota = DiskQuota::new(dir.to_owned(), limits.disk_bytes, limits.files, handle);
        let limiter = JobLimiter::new(
            limits.memory_bytes,
            self.inner.config.max_table_elements,
            Counts::of(limits),
            quota,
        );
        let timeout = std::time::Duration::from_millis(limits.timeout_ms);
        let t = Instant::now();
        let mut instantiate_us = 0;
        let mut http = None;
        let (outcome, usage) = match (loaded, kind) {
            (Loaded::Core(pre), JobKind::Command | JobKind::Function) => {
                if let Err(r) = kinds::check_core_exports(pre.module(), p.job, kind) {
                    return (Err(r.into()), None);
                }
                let state = State {
                    wasi: wasi.build_p1(),
                    limiter,
                };
                let mut store = match new_store(&rt.engine, state, limits, cancel) {
                    Ok(s) => s,
                    Err(m) => return (Err(HostError::new(m).into()), None),
                };
                let run = kinds::run_core(
                    &mut store,
                    pre,
                    p.job,
                    kind,
                    &p.input,
                    limits,
                    &mut instantiate_us,
                    t,
                );
                // The epoch stops a guest that computes; this stops one blocked in a host
                // call (a long sleep, say).
                let outcome = until_cancelled(cancel, tokio::time::timeout(timeout, run)).await;
                (outcome, usage(&mut store, limits))
            }
            (Loaded::Component(pre, _), JobKind::Component | JobKind::Handler) => {
                let egress = Egress::new(self.inner.outbound.clone(), p.outbound.clone(), limits);
                let counters = egress.counters();
                let state = ComponentState {
                    ctx: wasi.build(),
                    table: ResourceTable::new(),
                    limiter,
                    http: WasiHttpCtx::new(),
                    egress,
                };
                let mut store = match new_store(&rt.engine, state, limits, cancel) {
                    Ok(s) => s,
                    Err(m) => return (Err(HostError::new(m).into()), None),
                };
                let run = kinds::run_component(
                    &mut store,
                    pre,
                    p.job,
                    kind,
                    &p.input,
                    &mut instantiate_us,
                    t,
                );
                let outcome = until_cancelled(cancel, tokio::time::timeout(timeout, run)).await;
                let usage = usage(&mut store, limits);
                // Dropping the store drops the requests still in flight.
                drop(store);
                http = counters.usage();
                (outcome, usage)
            }
            (_, kind) => {
                let m = format!(
                    "internal mismatch: a {} job was resolved to the other artifact kind",
                    kind.as_str()
                );
                return (Err(HostError::new(m).into()), None);
            }
        };
        result.timings.instantiate_us = instantiate_us;
        result.timings.run_us = (t.elapsed().as_micros() as u64).saturating_sub(instantiate_us);
        let (out, out_cut) = stdout.take();
        let (err, err_cut) = stderr.take();
        result.set_stdout(&out, out_cut);
        result.set_stderr(&err, err_cut);
        result.fuel_consumed = usage.fuel_consumed;
        result.memory_peak_bytes = usage.peak_memory;
        result.http = http;
        match outcome {
            // The pool ran out of slots at this moment: the host's fault, tried again later.
            Some(Ok(Ok(RunEnd::NotInstantiated(e))))
                if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
            {
                let why = format!("the instance pool had no free slot for the job: {e:#}");
                return (Err(HostError::caused_by(why, e).into()), usage.handle);
            }
            // Dropped while it waited in a host call: only a cancel does that.
            None => cancelled(result),
            Some(outcome) => classify(outcome, &usage, limits, kind, result),
        }
        (Ok(usage.disk_empty), usage.handle)
    }

    /// The job's WASI context: args, env, stdio, the job's directory and volumes, nothing
    /// else.
    ///
    /// The job's directory is preopened at its `work_dir`, and (unless that is `/`) once
    /// more as `.`, after the volumes: wasi-libc (and so Rust's std) resolves a relative
    /// path against its current directory `/`, then looks for the longest preopen prefix,
    /// where `.` (like `/`) is the empty prefix; so `fopen("input.txt")` finds the job's
    /// file whatever `work_dir` is. Earlier preopens keep their descriptors (3, 4, ...).
    pub(crate) fn wasi_builder(
        &self,
        p: &Admitted<'_>,
        dir: &std::path::Path,
        stdout: &CappedPipe,
        stderr: &CappedPipe,
    ) -> Result<WasiCtxBuilder, String> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(ARGV0)
            .args(&p.job.args)
            .envs(&p.job.env.iter().collect::<Vec<_>>())
            .stdin(MemoryInputPipe::new(p.stdin.clone()))
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        wasi.preopened_dir(dir, p.work_dir, FsPerms::ReadWrite)
            .map_err(|e| format!("could not open the job directory: {e:#}"))?;
        for m in &p.mounts {
            let perms = if m.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&m.host, &m.guest, perms).map_err(|e| {
                format!(
                    "could not open the volume at {} (host {}): {e:#}",
                    m.guest,
                    m.host.display()
                )
            })?;
        }
        if p.work_dir != "/" {
            wasi.preopened_dir(dir, ".", FsPerms::ReadWrite)
                .map_err(|e| format!("could not open the job directory: {e:#}"))?;
        }
        Ok(wasi)
    }
}

impl From<ResolveError> for JobError {
    fn from(e: ResolveError) -> Self {
        match e {
            // A module whose declared memory or table is above every limit here is what
            // `memory_exceeded` means, though it never ran.
            ResolveError::Rejected(r) if r.code == codes::MEMORY_LIMIT => JobError::OverMemory(r),
            ResolveError::Rejected(r) => JobError::Rejected(r),
            ResolveError::Host(e) => JobError::Host(e),
        }
    }
}

/// `run`'s output, or `None` once `cancel` is cancelled first (`run` is then dropped).
async fn until_cancelled<F: std::future::Future>(
    cancel: &CancellationToken,
    run: F,
) -> Option<F::Output> {
    tokio::select! {
        out = run => Some(out),
        () = cancel.cancelled() => None,
    }
}

/// A fresh store with the job's limiter, fuel, wall-clock deadline and cancel token.
pub(crate) fn new_store<T: HasLimiter>(
    engine: &wasmtime::Engine,
    data: T,
    limits: &Limits,
    cancel: &CancellationToken,
) -> Result<Store<T>, String> {
    let mut store = Store::new(engine, data);
    store.limiter(|s| s.limiter() as &mut dyn wasmtime::ResourceLimiter);
    if let Some(fuel) = limits.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| format!("could not set fuel: {e:#}"))?;
    }
    let deadline = Instant::now() + std::time::Duration::from_millis(limits.timeout_ms);
    // Every tick: cancelled, past the deadline or over the disk quota, stop the guest;
    // otherwise let other tasks run.
    let cancel = cancel.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut cx| {
        let limiter = cx.data_mut().limiter();
        let stop = if cancel.is_cancelled() {
            Stop::Cancelled
        } else if Instant::now() >= deadline {
            Stop::Deadline
        } else if limiter.disk.tick() {
            Stop::DiskQuota
        } else {
            return Ok(UpdateDeadline::Yield(1));
        };
        limiter.stopped.get_or_insert(stop);
        Ok(UpdateDeadline::Interrupt)
    });
    Ok(store)
}
