//! The host's faults: what kept a job from running that is not the job's doing.
//!
//! A job's own outcome, however bad, is a [`JobResult`]; a fault of the host (a disk, an
//! engine, a registry out of reach, a panic) is a [`HostFault`], a different type, so the
//! worker requeues on the type and never by reading a status back.

use std::error::Error;

use wasmq_spec::{Job, JobResult, Status, codes};

/// A source error of any library (io, wasmtime, the cache, a registry).
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why the host failed: a message for people, and the library error behind it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HostError {
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl HostError {
    /// A fault with no library error behind it.
    pub fn new(message: impl Into<String>) -> Self {
        HostError {
            message: message.into(),
            source: None,
        }
    }

    /// A fault caused by `source`; `message` says what failed (it may quote `source`).
    pub fn caused_by(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        HostError {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The message, as the result's `message` carries it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A job the host could not run, with what is known of its result so far (its module,
/// engine, timings): published as `internal_error` only when the transport will not
/// deliver the job again.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct HostFault {
    #[source]
    error: HostError,
    result: Box<JobResult>,
}

impl HostFault {
    pub(crate) fn new(error: HostError, result: JobResult) -> Self {
        HostFault {
            error,
            result: Box::new(result),
        }
    }

    /// The runner of `job` panicked with `message`.
    pub fn panicked(job: &Job, message: &str) -> Self {
        HostFault::new(
            HostError::new(format!("the runner failed: it panicked: {message}")),
            JobResult::new(job.id(), job.batch.clone()),
        )
    }

    /// Why the host failed.
    pub fn error(&self) -> &HostError {
        &self.error
    }

    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.result.id
    }

    /// The job's result as `internal_error` (code `internal`), for when it will not be
    /// tried again.
    pub fn into_result(self) -> JobResult {
        let mut result = *self.result;
        result.set_outcome(Status::InternalError, codes::INTERNAL, self.error.message);
        result
    }
}
