//! Messages on the control exchange: fleet-wide requests to every worker, and replies.

use serde::{Deserialize, Serialize};

/// Asks every worker to compile modules from its module store into its cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrewarmRequest {
    /// sha256 of each module (already in the module store the workers share).
    pub modules: Vec<String>,
}

/// One worker's answer to a [`PrewarmRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrewarmReply {
    /// The worker that answers.
    pub worker: String,
    /// Its engine fingerprint.
    pub engine: String,
    /// One entry per requested module, in request order.
    pub modules: Vec<PrewarmOutcome>,
}

/// What a worker did with one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrewarmOutcome {
    /// The module's sha256.
    pub sha256: String,
    /// `compiled`, `cached`, or `failed`.
    pub outcome: String,
    /// Compile time in microseconds (0 unless compiled).
    pub compile_us: u64,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sent by `wasmq submit` into a batch's own result queue once every job is published:
/// how many results a reader should wait for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchManifest {
    /// The batch.
    pub batch: String,
    /// Jobs published for it.
    pub jobs: u64,
}

/// A message in a batch result queue: a result, or the batch's manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ResultMessage {
    /// `{"manifest": {...}}`
    Manifest {
        /// The manifest.
        manifest: BatchManifest,
    },
    /// A job result.
    Result(Box<crate::JobResult>),
}

/// Cancels jobs on every worker (`wasmq cancel`), sent on the control exchange. It
/// applies only to jobs published by the same broker user as this message (both without
/// one, or both with the same verified `user_id`): a tenant cancels its own jobs alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// What to cancel.
    pub cancel: CancelTarget,
    /// When it was sent, in milliseconds since the Unix epoch: workers keep it for a
    /// bounded time from then, so a job delivered later still ends `cancelled`.
    pub sent_at_ms: u64,
}

/// The jobs a [`CancelRequest`] names: every job of a batch, or jobs by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelTarget {
    /// Every job of this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// These jobs, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

/// One worker's answer to a [`CancelRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelReply {
    /// The worker that answers.
    pub worker: String,
    /// Ids of the running jobs it stopped.
    pub stopped: Vec<String>,
}

/// A message on the control exchange, as a worker reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ControlRequest {
    /// `{"modules": [...]}`
    Prewarm(PrewarmRequest),
    /// `{"cancel": {...}, "sent_at_ms": ...}`
    Cancel(CancelRequest),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_requests_are_told_apart() {
        let p: ControlRequest = serde_json::from_str(r#"{"modules":["ab"]}"#).unwrap();
        assert!(matches!(p, ControlRequest::Prewarm(r) if r.modules == ["ab"]));
        let c: ControlRequest =
            serde_json::from_str(r#"{"cancel":{"batch":"b"},"sent_at_ms":5}"#).unwrap();
        let ControlRequest::Cancel(c) = c else {
            panic!("not a cancel")
        };
        assert_eq!(c.cancel.batch.as_deref(), Some("b"));
        assert!(c.cancel.ids.is_empty());
        assert!(serde_json::from_str::<ControlRequest>(r#"{"cancel":{"batch":"b"}}"#).is_err());
        assert!(serde_json::from_str::<ControlRequest>(r#"{"modules":[],"x":1}"#).is_err());
    }
}
