//! How a job ended: what it used, read from its store, and the one `match` that turns its
//! end (exit, output, trap, interrupt and why, timeout, refused growth, disk quota) into
//! a status, a code and a message.

use wasmq_spec::{JobKind, JobResult, Limits, Status, TrapCode, codes};
use wasmtime::{Store, Trap};
use wasmtime_wasi::I32Exit;

use crate::engine::HasLimiter;
use crate::kinds::RunEnd;
use crate::limiter::Stop;

/// Longest result message kept (trap backtraces can be long).
const MAX_MESSAGE: usize = 4096;

/// What a job used, read from its store after the run.
pub(crate) struct Usage {
    /// Why the epoch callback stopped the guest, if it did.
    pub(crate) stopped: Option<Stop>,
    pub(crate) fuel_consumed: Option<u64>,
    pub(crate) peak_memory: u64,
    pub(crate) refused: Option<String>,
    pub(crate) disk_exceeded: Option<String>,
    pub(crate) disk_empty: bool,
    pub(crate) handle: Option<rustix::fs::Dir>,
}

pub(crate) fn usage<T: HasLimiter>(store: &mut Store<T>, limits: &Limits) -> Usage {
    let fuel_consumed = limits
        .fuel
        .map(|fuel| fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
    let limiter = store.data_mut().limiter();
    // The last measure of /work: a job that wrote past its quota and exited at once is
    // caught here.
    let disk = limiter.disk.check_final();
    Usage {
        stopped: limiter.stopped,
        fuel_consumed,
        peak_memory: limiter.peak_memory as u64,
        refused: limiter.refused.take(),
        disk_exceeded: limiter.disk.exceeded.take(),
        disk_empty: disk.is_some_and(|d| d.entries == 0),
        handle: limiter.disk.handle.take(),
    }
}

/// Ends `result` as cancelled while it ran.
pub(crate) fn cancelled(result: &mut JobResult) {
    let ms = result.timings.run_us / 1000;
    result.set_outcome(
        Status::Cancelled,
        codes::CANCELLED,
        format!("the job was cancelled while it ran (after {ms} ms)"),
    );
}

/// Turns how the guest ended into a status, code and message.
pub(crate) fn classify(
    outcome: Result<wasmtime::Result<RunEnd>, tokio::time::error::Elapsed>,
    usage: &Usage,
    limits: &Limits,
    kind: JobKind,
    result: &mut JobResult,
) {
    let refused = usage.refused.as_deref();
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
                    trap_code(Trap::UnhandledTag).as_str().to_owned(),
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
                    // The epoch callback stopped it, and recorded why.
                    Trap::Interrupt => match usage.stopped {
                        Some(Stop::Cancelled) => return cancelled(result),
                        Some(Stop::DiskQuota) | Some(Stop::Deadline) | None => timed_out(),
                    },
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
                        trap_code(*other).as_str().to_owned(),
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
    let (status, code, message) = match (status, refused, &usage.disk_exceeded) {
        // Over its disk quota, during the run (stopping it for that is an interrupt) or
        // at its end: that is what the job did, whatever it did next.
        (_, _, Some(why)) => (
            Status::DiskExceeded,
            codes::DISK_LIMIT.to_owned(),
            why.clone(),
        ),
        // A refused growth explains a later failure better than the failure itself.
        (Status::Failed | Status::Trapped, Some(why), None) => (
            Status::MemoryExceeded,
            codes::MEMORY_LIMIT.to_owned(),
            format!("{why}; then {message}"),
        ),
        (status, _, None) => (status, code, message),
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

/// The public code of a trap: wasmtime's trap mapped onto [`TrapCode`], the table of
/// `wasmq-spec`, so that a wasmtime upgrade that renames or adds traps cannot change a
/// code; a trap the table does not know is [`TrapCode::Other`].
fn trap_code(trap: Trap) -> TrapCode {
    match trap {
        Trap::StackOverflow => TrapCode::StackOverflow,
        Trap::MemoryOutOfBounds => TrapCode::MemoryOutOfBounds,
        Trap::HeapMisaligned => TrapCode::HeapMisaligned,
        Trap::TableOutOfBounds => TrapCode::TableOutOfBounds,
        Trap::IndirectCallToNull => TrapCode::IndirectCallToNull,
        Trap::BadSignature => TrapCode::BadSignature,
        Trap::IntegerOverflow => TrapCode::IntegerOverflow,
        Trap::IntegerDivisionByZero => TrapCode::IntegerDivisionByZero,
        Trap::BadConversionToInteger => TrapCode::BadConversionToInteger,
        Trap::UnreachableCodeReached => TrapCode::UnreachableCodeReached,
        Trap::AtomicWaitNonSharedMemory => TrapCode::AtomicWaitNonSharedMemory,
        Trap::NullReference => TrapCode::NullReference,
        Trap::ArrayOutOfBounds => TrapCode::ArrayOutOfBounds,
        Trap::AllocationTooLarge => TrapCode::AllocationTooLarge,
        Trap::CastFailure => TrapCode::CastFailure,
        Trap::UnhandledTag => TrapCode::UnhandledTag,
        Trap::ContinuationAlreadyConsumed => TrapCode::ContinuationAlreadyConsumed,
        Trap::CannotEnterComponent => TrapCode::CannotEnterComponent,
        Trap::CannotLeaveComponent => TrapCode::CannotLeaveComponent,
        Trap::InvalidChar => TrapCode::InvalidChar,
        Trap::StringOutOfBounds => TrapCode::StringOutOfBounds,
        Trap::ListOutOfBounds => TrapCode::ListOutOfBounds,
        Trap::InvalidDiscriminant => TrapCode::InvalidDiscriminant,
        Trap::UnalignedPointer => TrapCode::UnalignedPointer,
        _ => TrapCode::Other,
    }
}

#[cfg(test)]
mod tests {
    use wasmq_spec::TrapCode;
    use wasmtime::Trap;

    #[test]
    fn every_trap_code_is_in_the_public_table() {
        // Every trap wasmtime can encode maps to a guest trap code of the table or to the
        // fallback.
        let mut seen = Vec::new();
        for byte in 0..=u8::MAX {
            if let Some(trap) = Trap::from_u8(byte) {
                let code = super::trap_code(trap);
                assert!(
                    code.is_guest() || code == TrapCode::Other,
                    "{trap:?} maps to {code}, which is no trap of the guest's own"
                );
                seen.push(code);
            }
        }
        // And every guest code of the table is reachable.
        for code in TrapCode::GUEST {
            assert!(seen.contains(code), "{code} is listed but no trap gives it");
        }
        assert_eq!(
            super::trap_code(Trap::UnreachableCodeReached).as_str(),
            "trap_unreachable_code_reached"
        );
    }
}
