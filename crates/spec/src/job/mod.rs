//! A job: which module to run, with what arguments, input, files and limits.
//!
//! The [`Job`] type is here; the rest of the job format is in one module per concern,
//! each re-exported here:
//! - `module_ref`: where the module comes from ([`ModuleRef`]), OCI references
//!   ([`parse_oci_reference`]).
//! - `kind`: how the module is run ([`JobKind`]) and the detection of a kind from what the
//!   module exports ([`Exports`]).
//! - `files`: the content of an input or collected file ([`FileContent`]).
//! - `decode`: a message into a job ([`decode_job`]), with a rejection that names the
//!   field at fault.
//! - `validate`: the structural checks of a decoded job ([`Job::validate`]): ids, names,
//!   exclusive fields, guest paths ([`check_work_dir`]), base64 texts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::limits::LimitsRequest;

mod decode;
mod files;
mod kind;
mod module_ref;
mod validate;

pub use decode::{MAX_REJECTION_LEN, decode_job};
pub use files::FileContent;
pub use kind::{Exports, JobKind};
pub use module_ref::{
    MAX_OCI_REFERENCE_LEN, ModuleRef, OciReference, OciReferenceError, is_sha256_hex,
    parse_oci_reference,
};
pub use validate::{MAX_WORK_DIR_LEN, PathError, check_work_dir};

/// Longest accepted job id, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted batch name, in bytes.
pub const MAX_BATCH_LEN: usize = 128;

/// One job, as submitted.
///
/// Unknown fields are refused: a misspelt field (`limit` for `limits`) would otherwise be
/// ignored silently and the job would run under limits its author did not mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Unique id; generated (a UUID) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub id: Option<String>,
    /// Batch this job belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub batch: Option<String>,
    /// The module to run.
    pub module: ModuleRef,
    /// How the module is run; when absent, the module's bytes and exports decide
    /// ([`JobKind::detect`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// The function to call, for kind `function` (default `transform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// For a core module run as a command: the export to call instead of `_start`, as
    /// `wasmtime run --invoke NAME` does (a WASI reactor's entry point, e.g. `run`). It
    /// takes no parameters and returns nothing (exit status 0) or an `i32` (the exit
    /// status); `_initialize` is called first when the module exports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub invoke: Option<String>,
    /// What an import the sandbox does not provide does: `reject` the job before anything
    /// runs (`unknown_import`), or `trap` when it is called (`trap_unknown_import`), as
    /// `wasmtime run --trap-unknown-imports` does. The worker's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_imports: Option<UnknownImports>,
    /// Input bytes as UTF-8 text, for kinds `function` and `handler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Input bytes as base64, for kinds `function` and `handler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<String>,
    /// Arguments after argv\[0\] (which the runner supplies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The guest's environment; the host's is never visible.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "decode::unique_keys"
    )]
    pub env: BTreeMap<String, String>,
    /// Standard input as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Standard input as base64 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_base64: Option<String>,
    /// The guest path at which the job's directory is preopened (absolute; `/` allowed);
    /// the worker's default (`/work` unless the operator set another) when absent.
    /// Relative paths of the guest resolve inside the job's directory whatever it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// Files written into the job's directory before it starts.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "decode::unique_keys"
    )]
    pub files: BTreeMap<String, FileContent>,
    /// Paths (globs allowed) in the job's directory returned in the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collect: Vec<String>,
    /// Guest path -> name of an operator-declared volume.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "decode::unique_keys"
    )]
    pub volumes: BTreeMap<String, String>,
    /// Resource limits asked for.
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "decode::object_only"
    )]
    pub limits: LimitsRequest,
    /// The outbound hosts (`scheme://host[:port]`, `*.` wildcards) the job's components
    /// may send HTTP requests to: a narrowing of its policy's list, never a widening (an
    /// entry outside it is `rejected` with `outbound_host_not_allowed`). Absent: the
    /// policy's whole list. Empty: no network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// The job must start by then (RFC 3339 in UTC, `2026-12-01T16:00:00Z`), or it ends
    /// `expired` without running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?[Zz]$"))]
    pub expires_at: Option<String>,
}

/// What an import the sandbox does not provide does (the job's `unknown_imports`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum UnknownImports {
    /// The job is rejected (`unknown_import`) before anything runs.
    #[default]
    Reject,
    /// The import is linked as a function that traps when called
    /// (`trap_unknown_import`); imports that are not functions are still rejected.
    Trap,
}

impl UnknownImports {
    /// The name used on the wire and in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownImports::Reject => "reject",
            UnknownImports::Trap => "trap",
        }
    }
}

impl std::str::FromStr for UnknownImports {
    type Err = UnknownImportsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reject" => Ok(UnknownImports::Reject),
            "trap" => Ok(UnknownImports::Trap),
            other => Err(UnknownImportsError(other.to_owned())),
        }
    }
}

/// A setting of `unknown_imports` that is neither `reject` nor `trap`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown_imports {0:?} is not one of reject, trap")]
pub struct UnknownImportsError(pub String);

/// The longest `invoke` export name accepted.
pub const MAX_INVOKE_LEN: usize = 256;

fn is_default(l: &LimitsRequest) -> bool {
    *l == LimitsRequest::default()
}

impl Job {
    /// The job's id; every decoded job has one.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }

    /// When the job expires (`expires_at`), if it says; `None` too when the field does not
    /// parse, which [`Job::validate`] refuses.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
            .as_deref()
            .and_then(|at| validate::parse_utc(at).ok())
    }

    /// True when the job gives a field only a function or handler takes (`input`,
    /// `input_base64`, `export`): what decides between a module's command and its
    /// function when the job gives no `kind`.
    pub fn wants_function(&self) -> bool {
        self.input.is_some() || self.input_base64.is_some() || self.export.is_some()
    }
}

/// A value quoted in a message: escaped, and cut to 64 characters followed by `...`.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(64) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}...", &self.0[..cut]),
        }
    }
}

/// [`decode_job`] with only its rejection, for the tests of every part of the format.
#[cfg(test)]
fn decode_text(text: &str) -> Result<Job, crate::Rejection> {
    decode_job(text.as_bytes()).map_err(|(r, _, _)| r)
}
