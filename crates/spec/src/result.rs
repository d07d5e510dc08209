//! The result of one job, published as one JSON object (one line of JSONL).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::job::{FileContent, JobKind};
use crate::reject::{Rejection, codes};

/// How a job ended.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The guest exited with status 0.
    Succeeded,
    /// The guest exited with a non-zero status.
    Failed,
    /// The guest trapped (unreachable, out-of-bounds access, stack overflow, ...).
    Trapped,
    /// The guest ran past its wall-clock limit.
    TimedOut,
    /// The guest used all of its fuel.
    FuelExhausted,
    /// The memory limit refused a growth and the guest then failed.
    MemoryExceeded,
    /// The job's files in its directory went past its disk limit (bytes or number of files).
    DiskExceeded,
    /// The job was cancelled (`wasmq cancel`): before it started, so it never ran, or
    /// while it ran, which stopped it (its output so far is kept).
    Cancelled,
    /// The job was not started by its `expires_at`, so it never ran.
    Expired,
    /// The job was not run: malformed, bad module, limits above maximum, ...
    Rejected,
    /// The worker failed; the job was not at fault.
    InternalError,
}

impl Status {
    /// Every status, in a stable order.
    pub const ALL: [Status; 11] = [
        Status::Succeeded,
        Status::Failed,
        Status::Trapped,
        Status::TimedOut,
        Status::FuelExhausted,
        Status::MemoryExceeded,
        Status::DiskExceeded,
        Status::Cancelled,
        Status::Expired,
        Status::Rejected,
        Status::InternalError,
    ];

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Trapped => "trapped",
            Status::TimedOut => "timed_out",
            Status::FuelExhausted => "fuel_exhausted",
            Status::MemoryExceeded => "memory_exceeded",
            Status::DiskExceeded => "disk_exceeded",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::InternalError => "internal_error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the compiled module came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    /// Already loaded in this worker's memory.
    HitMemory,
    /// Loaded from a verified artifact on disk.
    HitDisk,
    /// Pulled from the fleet's shared artifact store (compiled by another worker), its
    /// MAC verified with the fleet's key.
    HitRemote,
    /// Compiled for this job.
    Compiled,
}

/// Microseconds spent in each phase of a job.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Timings {
    /// Finding the module (memory, store, inline bytes) and loading or compiling it.
    pub resolve_us: u64,
    /// Of `resolve_us`, the time spent compiling (0 on a cache hit).
    pub compile_us: u64,
    /// Preparing the sandbox and instantiating the module.
    pub instantiate_us: u64,
    /// Running the guest.
    pub run_us: u64,
    /// From the job reaching the runner to its result being ready.
    pub total_us: u64,
}

/// What a job did on the network (`wasi:http/outgoing-handler`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct HttpUsage {
    /// Requests the guest sent, refused ones included.
    pub requests: u64,
    /// Requests the server answered (with any HTTP status).
    #[serde(default)]
    pub ok: u64,
    /// Requests refused before a connection was opened: a host, scheme, port or address
    /// the job may not reach, a forbidden header, or past `limits.http_requests`.
    pub denied: u64,
    /// Requests that failed after they were allowed (DNS, connection, TLS, protocol).
    #[serde(default)]
    pub errors: u64,
    /// Requests that timed out connecting or waiting for the response's head.
    #[serde(default)]
    pub timeouts: u64,
    /// Bytes of request bodies sent.
    pub bytes_sent: u64,
    /// Bytes of response bodies received (at most `limits.http_response_bytes`).
    pub bytes_received: u64,
}

/// The result of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobResult {
    /// The job's id.
    pub id: String,
    /// The job's batch.
    #[serde(default)]
    pub batch: Option<String>,
    /// Delivery attempt this result came from (1 for the first).
    #[serde(default = "one")]
    pub attempt: u32,
    /// How the job ended.
    pub status: Status,
    /// Machine-readable reason (see `codes`).
    pub code: String,
    /// The reason, for a person.
    pub message: String,
    /// The guest's exit status; `null` when it did not exit.
    pub exit_code: Option<i32>,
    /// Standard output (UTF-8, invalid sequences replaced).
    pub stdout: String,
    /// Standard output as base64, present only when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    /// Standard error (UTF-8, invalid sequences replaced).
    pub stderr: String,
    /// Standard error as base64, present only when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
    /// The guest wrote more stdout than the limit; the head was kept.
    pub stdout_truncated: bool,
    /// The guest wrote more stderr than the limit; the head was kept.
    pub stderr_truncated: bool,
    /// Collected files, by path relative to the job's directory.
    pub files: BTreeMap<String, FileContent>,
    /// Files that matched `collect` but did not fit in `limits.output_bytes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_omitted: Vec<String>,
    /// The function's output bytes (kinds `function` and `handler`) as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The output as base64, present only when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_base64: Option<String>,
    /// The output was longer than `limits.output_bytes`; the head was kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_truncated: bool,
    /// Fuel used, when the job ran with fuel.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory the guest reached, in bytes.
    pub memory_peak_bytes: u64,
    /// sha256 of the module, when it was resolved.
    pub module: Option<String>,
    /// The kind the job ran as: the job's `kind`, or the one its module's exports
    /// decided; absent when it never got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// Fingerprint of the engine that compiled and ran it.
    pub engine: Option<String>,
    /// Where the compiled module came from.
    pub cache: Option<CacheOutcome>,
    /// Time spent in each phase.
    pub timings: Timings,
    /// What the job did on the network; present once it sent an outbound HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpUsage>,
    /// The worker that produced this result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The job's verified tenant (the broker user that published it), when the worker
    /// enforces tenant policies and the message carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

fn one() -> u32 {
    1
}

impl JobResult {
    /// An empty result for a job, to be filled in as it runs.
    pub fn new(id: impl Into<String>, batch: Option<String>) -> Self {
        JobResult {
            id: id.into(),
            batch,
            attempt: 1,
            status: Status::InternalError,
            code: codes::INTERNAL.into(),
            message: String::new(),
            exit_code: None,
            stdout: String::new(),
            stdout_base64: None,
            stderr: String::new(),
            stderr_base64: None,
            stdout_truncated: false,
            stderr_truncated: false,
            files: BTreeMap::new(),
            files_omitted: Vec::new(),
            output: None,
            output_base64: None,
            output_truncated: false,
            fuel_consumed: None,
            memory_peak_bytes: 0,
            module: None,
            kind: None,
            engine: None,
            cache: None,
            timings: Timings::default(),
            http: None,
            worker: None,
            tenant: None,
        }
    }

    /// A `rejected` result.
    pub fn rejected(id: impl Into<String>, batch: Option<String>, why: &Rejection) -> Self {
        let mut r = JobResult::new(id, batch);
        r.set_outcome(Status::Rejected, why.code, why.message.clone());
        r
    }

    /// An `internal_error` result.
    pub fn internal(id: impl Into<String>, batch: Option<String>, message: String) -> Self {
        let mut r = JobResult::new(id, batch);
        r.set_outcome(Status::InternalError, codes::INTERNAL, message);
        r
    }

    /// Sets status, code and message together.
    pub fn set_outcome(&mut self, status: Status, code: &str, message: String) {
        self.status = status;
        self.code = code.to_owned();
        self.message = message;
    }

    /// Stores captured stdout: text, plus base64 when it is not valid UTF-8.
    pub fn set_stdout(&mut self, bytes: &[u8], truncated: bool) {
        (self.stdout, self.stdout_base64) = text_and_base64(bytes);
        self.stdout_truncated = truncated;
    }

    /// Stores captured stderr: text, plus base64 when it is not valid UTF-8.
    pub fn set_stderr(&mut self, bytes: &[u8], truncated: bool) {
        (self.stderr, self.stderr_base64) = text_and_base64(bytes);
        self.stderr_truncated = truncated;
    }

    /// Stores a function's output: text, plus base64 when it is not valid UTF-8.
    pub fn set_output(&mut self, bytes: &[u8], truncated: bool) {
        let (text, b64) = text_and_base64(bytes);
        self.output = Some(text);
        self.output_base64 = b64;
        self.output_truncated = truncated;
    }

    /// Standard output as bytes, decoding the base64 variant when present.
    pub fn stdout_bytes(&self) -> Vec<u8> {
        match &self.stdout_base64 {
            Some(b) => BASE64.decode(b).unwrap_or_default(),
            None => self.stdout.as_bytes().to_vec(),
        }
    }
}

fn text_and_base64(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(BASE64.encode(bytes)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_match_the_wire() {
        for s in Status::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }

    #[test]
    fn invalid_utf8_stdout_keeps_exact_bytes() {
        let mut r = JobResult::new("a", None);
        r.set_stdout(&[b'o', b'k', 0xff], false);
        assert!(r.stdout.starts_with("ok"));
        assert_eq!(r.stdout_bytes(), vec![b'o', b'k', 0xff]);
        r.set_stdout(b"plain", true);
        assert_eq!(r.stdout_base64, None);
        assert!(r.stdout_truncated);
    }

    #[test]
    fn result_round_trips_through_json() {
        let mut r = JobResult::rejected(
            "j",
            Some("b".into()),
            &Rejection::new(codes::INVALID_JOB, "bad"),
        );
        r.cache = Some(CacheOutcome::HitDisk);
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"cache\":\"hit-disk\""), "{line}");
        let back: JobResult = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
    }
}
