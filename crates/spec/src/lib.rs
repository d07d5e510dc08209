//! Wire types of wasmq: what a job says, what a result says, and the checks that make a
//! job safe to hand to a sandbox.
//!
//! This crate is the public contract between submitters, workers and result readers.
//! It depends on serde alone (plus the codecs the format names, and serde_path_to_error so
//! that a rejection names the field at fault), so any tool can speak it without pulling in
//! a runtime.
//!
//! # Layout
//! - [`job`]: [`Job`] (`job/mod.rs`), in one file per concern: its module reference
//!   ([`ModuleRef`], OCI references: `job/module_ref.rs`), its kind and the detection of
//!   one ([`JobKind`], [`Exports`]: `job/kind.rs`), file contents ([`FileContent`]:
//!   `job/files.rs`), decoding a message ([`decode_job`]: `job/decode.rs`) and structural
//!   validation, paths included (`job/validate.rs`).
//! - [`limits`]: what a job may ask for ([`LimitsRequest`]), what a worker allows
//!   ([`LimitPolicy`]) and what a run gets ([`Limits`]).
//! - [`outbound`]: the entries of an `allowed_outbound_hosts` list ([`OutboundHost`]),
//!   what a request must match and when one list is within another.
//! - [`result`]: [`JobResult`], [`Status`], [`Timings`], [`CacheOutcome`].
//! - [`code`]: the machine-readable result codes ([`Code`], [`TrapCode`]) in one table,
//!   and their wire names as string constants ([`codes`]).
//! - [`reject`]: [`Rejection`], the reason a job is refused: a code and a message.
//! - [`control`]: fleet-wide prewarm requests and replies, and batch manifests.
//! - [`schema`]: the JSON Schemas of a job message and a result, from these types.

pub mod code;
pub mod control;
pub mod job;
pub mod limits;
pub mod outbound;
pub mod reject;
pub mod result;
pub mod schema;

pub use code::{Code, TrapCode, UnknownCode};
pub use job::{
    Exports, FileContent, Job, JobKind, ModuleRef, OciReference, OciReferenceError, PathError,
    UnknownImports, UnknownImportsError, decode_job, parse_oci_reference,
};
pub use limits::{LimitPolicy, LimitPolicyError, Limits, LimitsRequest};
pub use outbound::{OutboundHost, OutboundHostError};
pub use reject::{Rejection, codes};
pub use result::{CacheOutcome, HttpUsage, JobResult, Status, Timings};

/// The guest path at which a job sees its own read-write directory unless its `work_dir`
/// or the worker's default says otherwise.
pub const WORK_DIR: &str = "/work";
