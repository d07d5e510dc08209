//! Running one job: from a decoded [`Job`], through [`admission`], to its [`JobResult`].

use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use tracing::{debug, warn};
use wasmq_spec::{Job, JobKind, JobResult, Limits, Status, codes};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::Sandbox;
use crate::admission::{self, Admitted, Intake, JobError, Source};
use crate::engine::{ComponentState, EngineKind, HasLimiter, Runtime, State};
use crate::files;
use crate::kinds::{self, RunEnd};
use crate::limiter::{Counts, DiskQuota, JobLimiter};
use crate::modules::{Artifact, Loaded, ResolveError};
use crate::pipe::CappedPipe;

/// argv\[0\] as the guest sees it.
const ARGV0: &str = "main.wasm";
/// Longest result message kept (trap backtraces can be long).
const MAX_MESSAGE: usize = 4096;

/// What runs: the loaded module, the kind it runs as (the job's, or detected), and the
/// token that stops it.
#[derive(Clone, Copy)]
struct Program<'a> {
    loaded: &'a Loaded,
    kind: JobKind,
    cancel: &'a CancellationToken,
}

impl Sandbox {
    /// Runs `job` and returns its result; never fails: every problem is a status.
    ///
    /// The job has no tenant: with tenancy on it gets the default policy (or is rejected).
    pub async fn run(&self, job: &Job) -> JobResult {
        self.run_as(job, None).await
    }

    /// Runs `job`, published by `tenant` (a broker user the broker verified), under that
    /// tenant's policy; see [`crate::Tenancy`]. Without tenancy, `tenant` is ignored.
    pub async fn run_as(&self, job: &Job, tenant: Option<&str>) -> JobResult {
        self.run_cancellable(job, tenant, &CancellationToken::new())
            .await
    }

    /// Runs `job` as [`Sandbox::run_as`] does, until `cancel` is cancelled: a job
    /// cancelled before it starts ends `cancelled` without running, and a running one is
    /// stopped within about a millisecond (the epoch callback sees the token, and a guest
    /// blocked in a host call is dropped) and ends `cancelled` with its output so far.
    pub async fn run_cancellable(
        &self,
        job: &Job,
        tenant: Option<&str>,
        cancel: &CancellationToken,
    ) -> JobResult {
        let started = Instant::now();
        let mut result = JobResult::new(job.id(), job.batch.clone());
        let tenancy = self.inner.config.tenancy.as_ref();
        if tenancy.is_some() {
            result.tenant = tenant.map(str::to_owned);
        }
        let intake = Intake {
            tenant,
            now: SystemTime::now(),
            cancelled: cancel.is_cancelled(),
        };
        let store = admission::Store {
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
        if let Err(e) = outcome {
            e.record(&mut result);
        }
        result.timings.total_us = started.elapsed().as_micros() as u64;
        debug!(job = job.id(), status = %result.status, us = result.timings.total_us, "job finished");
        result
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
        let kind = if admitted.limits.fuel.is_some() {
            EngineKind::Fuel
        } else {
            EngineKind::Plain
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
        let rt = inner
            .engines
            .get(kind)
            .map_err(|e| JobError::Internal(format!("could not create the fuel engine: {e:#}")))?;
        result.engine = Some(rt.fingerprint.clone());
        // Kept to store in the tenant's namespace once it has resolved.
        let keep = match (&admitted.source, admitted.keep_for) {
            (Source::Bytes(b), Some(tenant)) => Some((tenant, b.clone())),
            _ => None,
        };
        let source = std::mem::replace(&mut admitted.source, Source::Store);
        result.kind = job.kind;
        let artifact = match job.kind {
            Some(k) if k.is_component() => Artifact::Component,
            Some(_) => Artifact::Core,
            None => inner.modules.artifact_of(digest, &source).await?,
        };
        let t = Instant::now();
        let unknown = job.unknown_imports.unwrap_or(inner.config.unknown_imports);
        let resolved = inner
            .modules
            .resolve(rt, (kind, unknown), artifact, digest, source)
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
        let mut dir = self
            .job_dir(&admitted)
            .map_err(|e| JobError::Internal(format!("could not prepare the job directory: {e}")))?;
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
        .map_err(|e| JobError::Internal(format!("could not collect output files: {e}")))
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
            Err(m) => return (Err(JobError::Internal(m)), handle),
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
                    Err(m) => return (Err(JobError::Internal(m)), None),
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
                let state = ComponentState {
                    ctx: wasi.build(),
                    table: ResourceTable::new(),
                    limiter,
                };
                let mut store = match new_store(&rt.engine, state, limits, cancel) {
                    Ok(s) => s,
                    Err(m) => return (Err(JobError::Internal(m)), None),
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
                (outcome, usage(&mut store, limits))
            }
            (_, kind) => {
                let m = format!(
                    "internal mismatch: a {} job was resolved to the other artifact kind",
                    kind.as_str()
                );
                return (Err(JobError::Internal(m)), None);
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
        match outcome {
            // Stopped by the cancel (an interrupt is the epoch callback seeing it), or
            // dropped while it waited in a host call.
            Some(Ok(Err(e)))
                if cancel.is_cancelled() && e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) =>
            {
                cancelled(result)
            }
            None => cancelled(result),
            Some(outcome) => {
                classify(outcome, usage.refused.as_deref(), limits, kind, result);
                // Over its disk quota, during the run or at its end: that is what the job
                // did, whatever it did next (stopping it for that looks like an interrupt).
                if let Some(why) = usage.disk_exceeded {
                    result.set_outcome(Status::DiskExceeded, codes::DISK_LIMIT, why);
                }
            }
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
            ResolveError::Internal(m) => JobError::Internal(m),
        }
    }
}

/// What a job used, read from its store after the run.
struct Usage {
    fuel_consumed: Option<u64>,
    peak_memory: u64,
    refused: Option<String>,
    disk_exceeded: Option<String>,
    disk_empty: bool,
    handle: Option<rustix::fs::Dir>,
}

fn usage<T: HasLimiter>(store: &mut Store<T>, limits: &Limits) -> Usage {
    let fuel_consumed = limits
        .fuel
        .map(|fuel| fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
    let limiter = store.data_mut().limiter();
    // The last measure of /work: a job that wrote past its quota and exited at once is
    // caught here.
    let disk = limiter.disk.check_final();
    Usage {
        fuel_consumed,
        peak_memory: limiter.peak_memory as u64,
        refused: limiter.refused.take(),
        disk_exceeded: limiter.disk.exceeded.take(),
        disk_empty: disk.is_some_and(|d| d.entries == 0),
        handle: limiter.disk.handle.take(),
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

fn cancelled(result: &mut JobResult) {
    let ms = result.timings.run_us / 1000;
    result.set_outcome(
        Status::Cancelled,
        codes::CANCELLED,
        format!("the job was cancelled while it ran (after {ms} ms)"),
    );
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
        if cancel.is_cancelled()
            || Instant::now() >= deadline
            || cx.data_mut().limiter().disk.tick()
        {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    Ok(store)
}

/// Turns how the guest ended into a status, code and message.
fn classify(
    outcome: Result<wasmtime::Result<RunEnd>, tokio::time::error::Elapsed>,
    refused: Option<&str>,
    limits: &Limits,
    kind: JobKind,
    result: &mut JobResult,
) {
    let timed_out = || {
        (
            Status::TimedOut,
            codes::TIMEOUT.to_owned(),
            format!(
                "the job ran past its time limit of {} ms",
                limits.timeout_ms
            ),
        )
    };
    let exited = |code: i32, result: &mut JobResult| {
        result.exit_code = Some(code);
        if code == 0 {
            (
                Status::Succeeded,
                codes::OK.to_owned(),
                "the guest exited with status 0".to_owned(),
            )
        } else {
            (
                Status::Failed,
                codes::EXIT_NONZERO.to_owned(),
                format!("the guest exited with status {code}"),
            )
        }
    };
    let (status, code, message) = match outcome {
        Err(_elapsed) => timed_out(),
        Ok(Ok(RunEnd::Exited(code))) => exited(code, result),
        Ok(Ok(RunEnd::Output(bytes, len))) => {
            let cap = usize::try_from(limits.output_bytes).unwrap_or(usize::MAX);
            result.set_output(&bytes[..bytes.len().min(cap)], len > cap);
            let what = if kind == JobKind::Handler {
                "handler"
            } else {
                "function"
            };
            (
                Status::Succeeded,
                codes::OK.to_owned(),
                format!("the {what} returned {len} bytes"),
            )
        }
        Ok(Ok(RunEnd::Rejected(r))) => (Status::Rejected, r.code.to_owned(), r.message),
        Ok(Ok(RunEnd::GuestError(why))) => (
            Status::Failed,
            codes::GUEST_ERROR.to_owned(),
            format!("the guest returned an error: {why}"),
        ),
        Ok(Ok(RunEnd::AbiViolation(why))) => (Status::Failed, codes::ABI_MISMATCH.to_owned(), why),
        // The pool ran out of slots at this moment: the host's fault, tried again later.
        Ok(Ok(RunEnd::NotInstantiated(e)))
            if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some() =>
        {
            (
                Status::InternalError,
                codes::INTERNAL.to_owned(),
                format!("the instance pool had no free slot for the job: {e:#}"),
            )
        }
        // A growth the limiter refused explains it (below); otherwise what is left is the
        // store's count of instances, tables and memories.
        Ok(Ok(RunEnd::NotInstantiated(e))) if refused.is_some() => (
            Status::Trapped,
            codes::TRAP_HOST.to_owned(),
            format!("the module could not be instantiated: {e:#}"),
        ),
        Ok(Ok(RunEnd::NotInstantiated(e))) => (
            Status::Rejected,
            codes::LIMIT_TOO_LOW.to_owned(),
            format!(
                "the module could not be instantiated within the job's limits.instances = {}, limits.tables = {}, limits.memories = {}: {e:#}; ask for more (up to the worker's maximum)",
                limits.instances, limits.tables, limits.memories
            ),
        ),
        Ok(Err(e)) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                exited(exit.0, result)
            } else if e.downcast_ref::<wasmtime::ThrownException>().is_some() {
                // An exception (the exception-handling proposal) no handler caught.
                (
                    Status::Trapped,
                    trap_code(Trap::UnhandledTag).to_owned(),
                    "the guest threw an exception that nothing caught".to_owned(),
                )
            } else if let Some(import) = e.downcast_ref::<wasmtime::UnknownImportError>() {
                (
                    Status::Trapped,
                    codes::TRAP_UNKNOWN_IMPORT.to_owned(),
                    format!(
                        "the guest called `{}::{}`, an import this sandbox does not provide (linked as a trap by unknown_imports \"trap\")",
                        import.module(),
                        import.name()
                    ),
                )
            } else if let Some(trap) = e.downcast_ref::<Trap>() {
                match trap {
                    Trap::Interrupt => timed_out(),
                    Trap::OutOfFuel => (
                        Status::FuelExhausted,
                        codes::OUT_OF_FUEL.to_owned(),
                        format!(
                            "the guest used all of its fuel ({})",
                            limits.fuel.unwrap_or(0)
                        ),
                    ),
                    other => (
                        Status::Trapped,
                        trap_code(*other).to_owned(),
                        format!("the guest trapped: {e:#}"),
                    ),
                }
            } else {
                (
                    Status::Trapped,
                    codes::TRAP_HOST.to_owned(),
                    format!("the guest failed in a host call: {e:#}"),
                )
            }
        }
    };
    // A refused growth explains a later failure better than the failure itself.
    let (status, code, message) = match (status, refused) {
        (Status::Failed | Status::Trapped, Some(why)) => (
            Status::MemoryExceeded,
            codes::MEMORY_LIMIT.to_owned(),
            format!("{why}; then {message}"),
        ),
        other => (other.0, code, message),
    };
    let mut message = message;
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" ...");
    }
    result.set_outcome(status, &code, message);
}

/// The public code of a trap: one of [`codes::TRAP_CODES`], spelt out here so that a
/// wasmtime upgrade that renames or adds traps cannot change a code; a trap this table
/// does not know is [`codes::TRAP_OTHER`].
fn trap_code(trap: Trap) -> &'static str {
    match trap {
        Trap::StackOverflow => "trap_stack_overflow",
        Trap::MemoryOutOfBounds => "trap_memory_out_of_bounds",
        Trap::HeapMisaligned => "trap_heap_misaligned",
        Trap::TableOutOfBounds => "trap_table_out_of_bounds",
        Trap::IndirectCallToNull => "trap_indirect_call_to_null",
        Trap::BadSignature => "trap_bad_signature",
        Trap::IntegerOverflow => "trap_integer_overflow",
        Trap::IntegerDivisionByZero => "trap_integer_division_by_zero",
        Trap::BadConversionToInteger => "trap_bad_conversion_to_integer",
        Trap::UnreachableCodeReached => "trap_unreachable_code_reached",
        Trap::AtomicWaitNonSharedMemory => "trap_atomic_wait_non_shared_memory",
        Trap::NullReference => "trap_null_reference",
        Trap::ArrayOutOfBounds => "trap_array_out_of_bounds",
        Trap::AllocationTooLarge => "trap_allocation_too_large",
        Trap::CastFailure => "trap_cast_failure",
        Trap::UnhandledTag => "trap_unhandled_tag",
        Trap::ContinuationAlreadyConsumed => "trap_continuation_already_consumed",
        Trap::CannotEnterComponent => "trap_cannot_enter_component",
        Trap::CannotLeaveComponent => "trap_cannot_leave_component",
        Trap::InvalidChar => "trap_invalid_char",
        Trap::StringOutOfBounds => "trap_string_out_of_bounds",
        Trap::ListOutOfBounds => "trap_list_out_of_bounds",
        Trap::InvalidDiscriminant => "trap_invalid_discriminant",
        Trap::UnalignedPointer => "trap_unaligned_pointer",
        _ => codes::TRAP_OTHER,
    }
}

#[cfg(test)]
mod tests {
    use wasmq_spec::codes;
    use wasmtime::Trap;

    #[test]
    fn every_trap_code_is_in_the_public_table() {
        let table: Vec<&str> = codes::TRAP_CODES.iter().map(|(c, _)| *c).collect();
        // Every trap wasmtime can encode maps to a code of the table or to the fallback.
        let mut seen = Vec::new();
        for byte in 0..=u8::MAX {
            if let Some(trap) = Trap::from_u8(byte) {
                let code = super::trap_code(trap);
                assert!(
                    table.contains(&code) || code == codes::TRAP_OTHER,
                    "{trap:?} maps to {code}, which the table does not list"
                );
                seen.push(code);
            }
        }
        // And every code of the table is reachable.
        for code in table {
            assert!(
                seen.contains(&code),
                "{code} is listed but no trap gives it"
            );
        }
        assert_eq!(
            super::trap_code(Trap::UnreachableCodeReached),
            "trap_unreachable_code_reached"
        );
    }
}
