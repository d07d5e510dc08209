//! Why a job was refused or failed, for a machine (`code`) and for a person (`message`).

use std::fmt;

/// The machine-readable `code` values a result may carry.
///
/// A code names the cause; the status says which class of outcome it belongs to.
pub mod codes {
    /// The guest exited with status 0.
    pub const OK: &str = "ok";
    /// The guest exited with a non-zero status.
    pub const EXIT_NONZERO: &str = "exit_nonzero";
    /// The message is not a valid job (JSON syntax, types, unknown fields).
    pub const INVALID_JOB: &str = "invalid_job";
    /// A field is well-typed but not acceptable (a path escaping `/work`, an empty id, ...).
    pub const INVALID_FIELD: &str = "invalid_field";
    /// Base64 text in the job does not decode.
    pub const INVALID_BASE64: &str = "invalid_base64";
    /// A `sha256` module reference that the module store does not hold.
    pub const MODULE_NOT_FOUND: &str = "module_not_found";
    /// A `path` module reference where only `sha256` or `base64` are accepted.
    pub const MODULE_PATH_NOT_ALLOWED: &str = "module_path_not_allowed";
    /// A module larger than this worker accepts.
    pub const MODULE_TOO_LARGE: &str = "module_too_large";
    /// Bytes that do not validate or compile as a WebAssembly module.
    pub const INVALID_MODULE: &str = "invalid_module";
    /// A function nests deeper or declares more locals than the compiler is allowed to take.
    pub const MODULE_TOO_COMPLEX: &str = "module_too_complex";
    /// The module imports something the sandbox does not provide.
    pub const UNKNOWN_IMPORT: &str = "unknown_import";
    /// The module has no `_start` export to run as a command.
    pub const NO_ENTRY_POINT: &str = "no_entry_point";
    /// The module is a component where the job's kind needs a core module, or the
    /// reverse.
    pub const WRONG_KIND: &str = "wrong_kind";
    /// The module does not follow the plugin ABI or the handler world.
    pub const ABI_MISMATCH: &str = "abi_mismatch";
    /// The guest reported an error itself (a handler's `err`, a function's error flag).
    pub const GUEST_ERROR: &str = "guest_error";
    /// A volume name the operator did not declare.
    pub const UNKNOWN_VOLUME: &str = "unknown_volume";
    /// A limit above this worker's maximum, or above the maximum of the job's tenant.
    pub const LIMIT_ABOVE_MAXIMUM: &str = "limit_above_maximum";
    /// A declared volume the job's tenant policy does not allow it to mount.
    pub const VOLUME_NOT_ALLOWED: &str = "volume_not_allowed";
    /// An inline (`base64`) module where the job's tenant policy allows only stored ones.
    pub const INLINE_MODULE_NOT_ALLOWED: &str = "inline_module_not_allowed";
    /// The job has no verified tenant with a policy, and this worker rejects such jobs.
    pub const TENANT_NOT_ALLOWED: &str = "tenant_not_allowed";
    /// The guest ran past its wall-clock limit.
    pub const TIMEOUT: &str = "timeout";
    /// The guest used all of its fuel.
    pub const OUT_OF_FUEL: &str = "out_of_fuel";
    /// A memory or table growth was refused by the limit and the guest then failed.
    pub const MEMORY_LIMIT: &str = "memory_limit";
    /// The job's files in `/work` went past `limits.disk_bytes` or `limits.files`.
    pub const DISK_LIMIT: &str = "disk_limit";
    /// The worker itself failed (disk, runtime); the job was not at fault.
    pub const INTERNAL: &str = "internal";
}

/// The reason a job is not run: a stable machine `code` plus a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// One of [`codes`].
    pub code: &'static str,
    /// What is wrong, on which input, and what to do; lowercase, no final period.
    pub message: String,
}

impl Rejection {
    /// A rejection with the given code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Rejection {}
