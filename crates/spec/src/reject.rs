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
    /// The job was cancelled (status `cancelled`).
    pub const CANCELLED: &str = "cancelled";
    /// The job was not started by its `expires_at` (status `expired`).
    pub const EXPIRED: &str = "expired";
    /// The bytes a registry sent for a module do not match its digest (never cached).
    pub const MODULE_DIGEST_MISMATCH: &str = "module_digest_mismatch";
    /// A `module.oci` reference to a registry or repository the job's tenant policy does
    /// not allow.
    pub const REGISTRY_NOT_ALLOWED: &str = "registry_not_allowed";
    /// The module needs more core instances, tables or memories than the job's
    /// `limits.instances`, `limits.tables` or `limits.memories` allow (status `rejected`;
    /// nothing of the guest ran).
    pub const LIMIT_TOO_LOW: &str = "limit_too_low";
    /// The module needs more of the instance pool than this worker holds per job: a core
    /// instance's state above `max_core_instance_bytes`, or more memories or tables in one
    /// module than `limits.maximum.memories` or `limits.maximum.tables`; the message names
    /// the setting to raise. Its compiled artifact is kept.
    pub const POOL_LIMIT: &str = "pool_limit";
    /// The worker itself failed (disk, runtime); the job was not at fault.
    pub const INTERNAL: &str = "internal";

    /// A host call failed fatally (not an exit): status `trapped`.
    pub const TRAP_HOST: &str = "trap_host";
    /// The guest called an import the sandbox does not provide, linked as a trap by
    /// `unknown_imports: "trap"`: status `trapped`; the message names the import.
    pub const TRAP_UNKNOWN_IMPORT: &str = "trap_unknown_import";
    /// A trap that [`TRAP_CODES`] does not name (a kind of trap added by a later runtime):
    /// status `trapped`, with the runtime's own description in the message.
    pub const TRAP_OTHER: &str = "trap_other";

    /// Every code a trap of the guest's own can have (status `trapped`), with its meaning:
    /// the public table, fixed here rather than derived from the runtime's names, so a
    /// runtime upgrade cannot change a code. docs/job-format.md lists the same table (a
    /// test holds the two together). Besides these: [`TRAP_HOST`] and [`TRAP_OTHER`].
    pub const TRAP_CODES: &[(&str, &str)] = &[
        (
            "trap_stack_overflow",
            "the call stack was exhausted (deep or endless recursion)",
        ),
        (
            "trap_memory_out_of_bounds",
            "a load or store outside the linear memory",
        ),
        (
            "trap_heap_misaligned",
            "an atomic access at an address not naturally aligned",
        ),
        ("trap_table_out_of_bounds", "a table access out of bounds"),
        (
            "trap_indirect_call_to_null",
            "an indirect call to an uninitialised table entry",
        ),
        (
            "trap_bad_signature",
            "an indirect call whose signature does not match the callee",
        ),
        (
            "trap_integer_overflow",
            "integer overflow (e.g. `i32.div_s` of INT_MIN by -1)",
        ),
        (
            "trap_integer_division_by_zero",
            "integer division or remainder by zero",
        ),
        (
            "trap_bad_conversion_to_integer",
            "a float-to-int conversion of NaN or out of range",
        ),
        (
            "trap_unreachable_code_reached",
            "an `unreachable` instruction (Rust's panic=abort, C's abort)",
        ),
        (
            "trap_atomic_wait_non_shared_memory",
            "an atomic wait on a memory that is not shared",
        ),
        (
            "trap_null_reference",
            "a call or access through a null reference",
        ),
        (
            "trap_array_out_of_bounds",
            "a GC array access out of bounds",
        ),
        (
            "trap_allocation_too_large",
            "a GC allocation too large to succeed",
        ),
        (
            "trap_cast_failure",
            "a reference cast to a type it is not an instance of",
        ),
        (
            "trap_unhandled_tag",
            "an exception or suspension with no handler",
        ),
        (
            "trap_continuation_already_consumed",
            "a continuation resumed twice",
        ),
        (
            "trap_cannot_enter_component",
            "a component re-entered against the component model's rules",
        ),
        (
            "trap_cannot_leave_component",
            "a component called out where the component model forbids it",
        ),
        (
            "trap_invalid_char",
            "a component passed a `char` with an invalid bit pattern",
        ),
        (
            "trap_string_out_of_bounds",
            "a component's string lies outside its memory",
        ),
        (
            "trap_list_out_of_bounds",
            "a component's list lies outside its memory",
        ),
        (
            "trap_invalid_discriminant",
            "a component passed a variant with an invalid discriminant",
        ),
        (
            "trap_unaligned_pointer",
            "a component passed an unaligned pointer",
        ),
    ];
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
