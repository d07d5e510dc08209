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

/// What a worker is doing, as its heartbeat says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Taking and running jobs.
    Running,
    /// Finishing its jobs in flight after a stop signal; takes no new ones.
    Draining,
    /// Stopped cleanly (its last heartbeat).
    Stopped,
}

/// A worker's heartbeat: who it is and what it has done, published every `interval_ms` to
/// the heartbeats stream, and once more when it stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The worker's id (`--worker-id`).
    pub worker: String,
    /// The wasmq version it runs.
    pub version: String,
    /// The wasmtime version it runs on.
    pub wasmtime: String,
    /// Jobs it runs at once.
    pub concurrency: u32,
    /// Jobs taken and not yet acked or requeued.
    pub in_flight: u64,
    /// Jobs whose result it published since it started.
    pub done: u64,
    /// Of those, the ones whose status is not `succeeded`.
    pub failed: u64,
    /// When it started, in ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When this heartbeat was sent, in ms since the Unix epoch.
    pub at_ms: u64,
    /// How often it sends one, in ms: a worker silent for several intervals is gone.
    pub interval_ms: u64,
    /// What it is doing.
    pub state: WorkerState,
}

/// A message of the heartbeats stream: a worker's heartbeat, or the marker a reader
/// writes to know where the stream ended when it began to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeartbeatMessage {
    /// `{"heartbeat": {...}}`
    Heartbeat {
        /// The heartbeat.
        heartbeat: Heartbeat,
    },
    /// `{"marker": "..."}`
    Marker {
        /// A token of the reader's own.
        marker: String,
    },
}

/// How many of its intervals a worker may stay silent before it is shown as gone.
pub const HEARTBEATS_MISSED: u64 = 3;

impl Heartbeat {
    /// Whether the worker has gone quiet at `now_ms`: not stopped cleanly, and silent for
    /// [`HEARTBEATS_MISSED`] intervals.
    pub fn gone_at(&self, now_ms: u64) -> bool {
        self.state != WorkerState::Stopped
            && now_ms.saturating_sub(self.at_ms) > HEARTBEATS_MISSED * self.interval_ms.max(1)
    }
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

    #[test]
    fn heartbeats_and_markers_are_told_apart_and_a_silent_worker_is_gone() {
        let h = Heartbeat {
            worker: "w0".into(),
            version: "0.1.0".into(),
            wasmtime: "48.0.8".into(),
            concurrency: 2,
            in_flight: 1,
            done: 10,
            failed: 2,
            started_at_ms: 1_000,
            at_ms: 10_000,
            interval_ms: 1_000,
            state: WorkerState::Running,
        };
        let text = serde_json::to_string(&HeartbeatMessage::Heartbeat {
            heartbeat: h.clone(),
        })
        .unwrap();
        assert!(text.starts_with(r#"{"heartbeat":{"worker":"w0""#), "{text}");
        let back: HeartbeatMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            HeartbeatMessage::Heartbeat {
                heartbeat: h.clone()
            }
        );
        let m: HeartbeatMessage = serde_json::from_str(r#"{"marker":"x"}"#).unwrap();
        assert_eq!(m, HeartbeatMessage::Marker { marker: "x".into() });
        assert!(!h.gone_at(13_000));
        assert!(h.gone_at(13_001));
        let stopped = Heartbeat {
            state: WorkerState::Stopped,
            ..h
        };
        assert!(!stopped.gone_at(1_000_000));
    }
}
