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
