//! The machine-readable `code` of a result ([`Code`]), the codes of traps among them
//! ([`TrapCode`]).
//!
//! Each code is written once, in the tables below: its variant, its wire name and its
//! meaning (the variant's doc). The string constants of [`codes`] and
//! [`codes::TRAP_CODES`] are derived from them.
//!
//! A result carries its code as a string ([`JobResult::code`](crate::JobResult::code)),
//! so a reader still reads a result whose code a later worker added; [`Code::from_str`]
//! tells whether a code is one of these.

use std::fmt;
use std::str::FromStr;

/// A wire code that is not one of the codes of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a known code")]
pub struct UnknownCode(pub String);

/// Defines an enum of wire codes from one table of `/// meaning` `Variant = "wire";`
/// rows, then optionally (`and { ... }`) a last variant that wraps another such enum. It
/// gives the enum `ALL`, `as_str`, `meaning`, `FromStr`, `TryFrom<&str>`, `Display`, and
/// serde as the wire string.
macro_rules! wire_codes {
    (
        $(#[$attr:meta])*
        pub enum $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $variant:ident = $wire:literal;
            )+
        }
        $(
            and {
                $(#[doc = $nested_doc:literal])+
                $nested:ident($inner:ident);
            }
        )?
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(
                $(#[doc = $doc])+
                $variant,
            )+
            $(
                $(#[doc = $nested_doc])+
                $nested($inner),
            )?
        }

        impl $name {
            /// Every code, in the order of the table.
            pub const ALL: &'static [$name] = &{
                const OWN: &[$name] = &[$($name::$variant),+];
                const LEN: usize = OWN.len() $(+ $inner::ALL.len())?;
                let mut all = [OWN[0]; LEN];
                let mut i = 0;
                while i < OWN.len() {
                    all[i] = OWN[i];
                    i += 1;
                }
                $(
                    let mut j = 0;
                    while j < $inner::ALL.len() {
                        all[i + j] = $name::$nested($inner::ALL[j]);
                        j += 1;
                    }
                )?
                all
            };

            /// The name used on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                    $($name::$nested(inner) => inner.as_str(),)?
                }
            }

            /// What the code means, for a person.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $($name::$variant => concat!($($doc),+).trim_ascii(),)+
                    $($name::$nested(inner) => inner.meaning(),)?
                }
            }

            /// The code whose wire name is `wire`.
            fn from_wire(wire: &str) -> Option<$name> {
                match wire {
                    $($wire => Some($name::$variant),)+
                    _ => {
                        $(
                            if let Some(inner) = $inner::from_wire(wire) {
                                return Some($name::$nested(inner));
                            }
                        )?
                        None
                    }
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;

            fn from_str(wire: &str) -> Result<Self, UnknownCode> {
                $name::from_wire(wire).ok_or_else(|| UnknownCode(wire.to_owned()))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = UnknownCode;

            fn try_from(wire: &str) -> Result<Self, UnknownCode> {
                wire.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let wire = String::deserialize(d)?;
                wire.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

wire_codes! {
    /// The machine-readable `code` of a result: it names the cause; the status says which
    /// class of outcome it belongs to (docs/job-format.md, "Statuses and codes").
    pub enum Code {
        /// The guest exited with status 0.
        Ok = "ok";
        /// The guest exited with a non-zero status.
        ExitNonzero = "exit_nonzero";
        /// The message is not a valid job (JSON syntax, types, unknown fields).
        InvalidJob = "invalid_job";
        /// A field is well-typed but not acceptable (a path escaping `/work`, an empty id, ...).
        InvalidField = "invalid_field";
        /// Base64 text in the job does not decode.
        InvalidBase64 = "invalid_base64";
        /// A `sha256` module reference that the module store does not hold.
        ModuleNotFound = "module_not_found";
        /// A `path` module reference where only `sha256` or `base64` are accepted.
        ModulePathNotAllowed = "module_path_not_allowed";
        /// A module larger than this worker accepts.
        ModuleTooLarge = "module_too_large";
        /// Bytes that do not validate or compile as a WebAssembly module.
        InvalidModule = "invalid_module";
        /// A function nests deeper or declares more locals than the compiler is allowed to take.
        ModuleTooComplex = "module_too_complex";
        /// The module imports something the sandbox does not provide.
        UnknownImport = "unknown_import";
        /// The module has no `_start` export to run as a command.
        NoEntryPoint = "no_entry_point";
        /// The module is a component where the job's kind needs a core module, or the
        /// reverse.
        WrongKind = "wrong_kind";
        /// The module does not follow the plugin ABI or the handler world.
        AbiMismatch = "abi_mismatch";
        /// The guest reported an error itself (a handler's `err`, a function's error flag).
        GuestError = "guest_error";
        /// A volume name the operator did not declare.
        UnknownVolume = "unknown_volume";
        /// A limit above this worker's maximum, or above the maximum of the job's tenant.
        LimitAboveMaximum = "limit_above_maximum";
        /// A declared volume the job's tenant policy does not allow it to mount.
        VolumeNotAllowed = "volume_not_allowed";
        /// An inline (`base64`) module where the job's tenant policy allows only stored ones.
        InlineModuleNotAllowed = "inline_module_not_allowed";
        /// The job has no verified tenant with a policy, and this worker rejects such jobs.
        TenantNotAllowed = "tenant_not_allowed";
        /// The guest ran past its wall-clock limit.
        Timeout = "timeout";
        /// The guest used all of its fuel.
        OutOfFuel = "out_of_fuel";
        /// A memory or table growth was refused by the limit and the guest then failed.
        MemoryLimit = "memory_limit";
        /// The job's files in `/work` went past `limits.disk_bytes` or `limits.files`.
        DiskLimit = "disk_limit";
        /// The job was cancelled (status `cancelled`).
        Cancelled = "cancelled";
        /// The job was not started by its `expires_at` (status `expired`).
        Expired = "expired";
        /// The bytes a registry sent for a module do not match its digest (never cached).
        ModuleDigestMismatch = "module_digest_mismatch";
        /// A `module.oci` reference to a registry or repository the job's tenant policy does
        /// not allow.
        RegistryNotAllowed = "registry_not_allowed";
        /// An `allowed_outbound_hosts` entry of the job that its policy's list does not
        /// cover: a job may narrow the list, never widen it.
        OutboundHostNotAllowed = "outbound_host_not_allowed";
        /// The module needs more core instances, tables or memories than the job's
        /// `limits.instances`, `limits.tables` or `limits.memories` allow (status `rejected`;
        /// nothing of the guest ran).
        LimitTooLow = "limit_too_low";
        /// The module needs more of the instance pool than this worker holds per job: a core
        /// instance's state above `max_core_instance_bytes`, or more memories or tables in one
        /// module than `limits.maximum.memories` or `limits.maximum.tables`; the message names
        /// the setting to raise. Its compiled artifact is kept.
        PoolLimit = "pool_limit";
        /// The worker itself failed (disk, runtime); the job was not at fault.
        Internal = "internal";
    }
    and {
        /// The guest trapped (status `trapped`): one of the trap codes.
        Trap(TrapCode);
    }
}

wire_codes! {
    /// The code of a result whose guest trapped (status `trapped`): the public table,
    /// fixed here rather than derived from the runtime's names, so a runtime upgrade cannot
    /// change a code. docs/job-format.md lists the same table, in the same order (a test
    /// holds the two together). The codes of a trap of the guest's own are
    /// [`TrapCode::GUEST`]; besides these, [`TrapCode::Host`], [`TrapCode::UnknownImport`]
    /// and [`TrapCode::Other`].
    pub enum TrapCode {
        /// the call stack was exhausted (deep or endless recursion)
        StackOverflow = "trap_stack_overflow";
        /// a load or store outside the linear memory
        MemoryOutOfBounds = "trap_memory_out_of_bounds";
        /// an atomic access at an address not naturally aligned
        HeapMisaligned = "trap_heap_misaligned";
        /// a table access out of bounds
        TableOutOfBounds = "trap_table_out_of_bounds";
        /// an indirect call to an uninitialised table entry
        IndirectCallToNull = "trap_indirect_call_to_null";
        /// an indirect call whose signature does not match the callee
        BadSignature = "trap_bad_signature";
        /// integer overflow (e.g. `i32.div_s` of INT_MIN by -1)
        IntegerOverflow = "trap_integer_overflow";
        /// integer division or remainder by zero
        IntegerDivisionByZero = "trap_integer_division_by_zero";
        /// a float-to-int conversion of NaN or out of range
        BadConversionToInteger = "trap_bad_conversion_to_integer";
        /// an `unreachable` instruction (Rust's panic=abort, C's abort)
        UnreachableCodeReached = "trap_unreachable_code_reached";
        /// an atomic wait on a memory that is not shared
        AtomicWaitNonSharedMemory = "trap_atomic_wait_non_shared_memory";
        /// a call or access through a null reference
        NullReference = "trap_null_reference";
        /// a GC array access out of bounds
        ArrayOutOfBounds = "trap_array_out_of_bounds";
        /// a GC allocation too large to succeed
        AllocationTooLarge = "trap_allocation_too_large";
        /// a reference cast to a type it is not an instance of
        CastFailure = "trap_cast_failure";
        /// an exception or suspension with no handler
        UnhandledTag = "trap_unhandled_tag";
        /// a continuation resumed twice
        ContinuationAlreadyConsumed = "trap_continuation_already_consumed";
        /// a component re-entered against the component model's rules
        CannotEnterComponent = "trap_cannot_enter_component";
        /// a component called out where the component model forbids it
        CannotLeaveComponent = "trap_cannot_leave_component";
        /// a component passed a `char` with an invalid bit pattern
        InvalidChar = "trap_invalid_char";
        /// a component's string lies outside its memory
        StringOutOfBounds = "trap_string_out_of_bounds";
        /// a component's list lies outside its memory
        ListOutOfBounds = "trap_list_out_of_bounds";
        /// a component passed a variant with an invalid discriminant
        InvalidDiscriminant = "trap_invalid_discriminant";
        /// a component passed an unaligned pointer
        UnalignedPointer = "trap_unaligned_pointer";
        /// a host call failed fatally (not an exit)
        Host = "trap_host";
        /// the guest called an import the sandbox does not provide, linked as a trap by
        /// `unknown_imports: "trap"`; the message names it
        UnknownImport = "trap_unknown_import";
        /// a trap this table does not name (one a later runtime adds); the message says
        /// which
        Other = "trap_other";
    }
}

impl TrapCode {
    /// True for the codes of a trap of the guest's own: every code but [`TrapCode::Host`],
    /// [`TrapCode::UnknownImport`] and [`TrapCode::Other`].
    pub const fn is_guest(self) -> bool {
        !matches!(
            self,
            TrapCode::Host | TrapCode::UnknownImport | TrapCode::Other
        )
    }

    /// Every code a trap of the guest's own can have, in the order of the table.
    pub const GUEST: &'static [TrapCode] = &{
        let mut guest = [TrapCode::Other; GUEST_LEN];
        let (mut i, mut n) = (0, 0);
        while i < TrapCode::ALL.len() {
            if TrapCode::ALL[i].is_guest() {
                guest[n] = TrapCode::ALL[i];
                n += 1;
            }
            i += 1;
        }
        guest
    };
}

/// How many codes [`TrapCode::GUEST`] holds.
const GUEST_LEN: usize = {
    let (mut i, mut n) = (0, 0);
    while i < TrapCode::ALL.len() {
        if TrapCode::ALL[i].is_guest() {
            n += 1;
        }
        i += 1;
    }
    n
};

impl From<TrapCode> for Code {
    fn from(trap: TrapCode) -> Code {
        Code::Trap(trap)
    }
}

/// The wire names of the [`Code`]s, as string constants.
pub mod codes {
    use super::{Code, TrapCode};

    /// [`Code::Ok`].
    pub const OK: &str = Code::Ok.as_str();
    /// [`Code::ExitNonzero`].
    pub const EXIT_NONZERO: &str = Code::ExitNonzero.as_str();
    /// [`Code::InvalidJob`].
    pub const INVALID_JOB: &str = Code::InvalidJob.as_str();
    /// [`Code::InvalidField`].
    pub const INVALID_FIELD: &str = Code::InvalidField.as_str();
    /// [`Code::InvalidBase64`].
    pub const INVALID_BASE64: &str = Code::InvalidBase64.as_str();
    /// [`Code::ModuleNotFound`].
    pub const MODULE_NOT_FOUND: &str = Code::ModuleNotFound.as_str();
    /// [`Code::ModulePathNotAllowed`].
    pub const MODULE_PATH_NOT_ALLOWED: &str = Code::ModulePathNotAllowed.as_str();
    /// [`Code::ModuleTooLarge`].
    pub const MODULE_TOO_LARGE: &str = Code::ModuleTooLarge.as_str();
    /// [`Code::InvalidModule`].
    pub const INVALID_MODULE: &str = Code::InvalidModule.as_str();
    /// [`Code::ModuleTooComplex`].
    pub const MODULE_TOO_COMPLEX: &str = Code::ModuleTooComplex.as_str();
    /// [`Code::UnknownImport`].
    pub const UNKNOWN_IMPORT: &str = Code::UnknownImport.as_str();
    /// [`Code::NoEntryPoint`].
    pub const NO_ENTRY_POINT: &str = Code::NoEntryPoint.as_str();
    /// [`Code::WrongKind`].
    pub const WRONG_KIND: &str = Code::WrongKind.as_str();
    /// [`Code::AbiMismatch`].
    pub const ABI_MISMATCH: &str = Code::AbiMismatch.as_str();
    /// [`Code::GuestError`].
    pub const GUEST_ERROR: &str = Code::GuestError.as_str();
    /// [`Code::UnknownVolume`].
    pub const UNKNOWN_VOLUME: &str = Code::UnknownVolume.as_str();
    /// [`Code::LimitAboveMaximum`].
    pub const LIMIT_ABOVE_MAXIMUM: &str = Code::LimitAboveMaximum.as_str();
    /// [`Code::VolumeNotAllowed`].
    pub const VOLUME_NOT_ALLOWED: &str = Code::VolumeNotAllowed.as_str();
    /// [`Code::InlineModuleNotAllowed`].
    pub const INLINE_MODULE_NOT_ALLOWED: &str = Code::InlineModuleNotAllowed.as_str();
    /// [`Code::TenantNotAllowed`].
    pub const TENANT_NOT_ALLOWED: &str = Code::TenantNotAllowed.as_str();
    /// [`Code::Timeout`].
    pub const TIMEOUT: &str = Code::Timeout.as_str();
    /// [`Code::OutOfFuel`].
    pub const OUT_OF_FUEL: &str = Code::OutOfFuel.as_str();
    /// [`Code::MemoryLimit`].
    pub const MEMORY_LIMIT: &str = Code::MemoryLimit.as_str();
    /// [`Code::DiskLimit`].
    pub const DISK_LIMIT: &str = Code::DiskLimit.as_str();
    /// [`Code::Cancelled`].
    pub const CANCELLED: &str = Code::Cancelled.as_str();
    /// [`Code::Expired`].
    pub const EXPIRED: &str = Code::Expired.as_str();
    /// [`Code::ModuleDigestMismatch`].
    pub const MODULE_DIGEST_MISMATCH: &str = Code::ModuleDigestMismatch.as_str();
    /// [`Code::RegistryNotAllowed`].
    pub const REGISTRY_NOT_ALLOWED: &str = Code::RegistryNotAllowed.as_str();
    /// [`Code::OutboundHostNotAllowed`].
    pub const OUTBOUND_HOST_NOT_ALLOWED: &str = Code::OutboundHostNotAllowed.as_str();
    /// [`Code::LimitTooLow`].
    pub const LIMIT_TOO_LOW: &str = Code::LimitTooLow.as_str();
    /// [`Code::PoolLimit`].
    pub const POOL_LIMIT: &str = Code::PoolLimit.as_str();
    /// [`Code::Internal`].
    pub const INTERNAL: &str = Code::Internal.as_str();

    /// [`TrapCode::Host`]: a host call failed fatally (not an exit).
    pub const TRAP_HOST: &str = TrapCode::Host.as_str();
    /// [`TrapCode::UnknownImport`]: the guest called an import linked as a trap by
    /// `unknown_imports: "trap"`.
    pub const TRAP_UNKNOWN_IMPORT: &str = TrapCode::UnknownImport.as_str();
    /// [`TrapCode::Other`]: a trap that [`TRAP_CODES`] does not name.
    pub const TRAP_OTHER: &str = TrapCode::Other.as_str();

    /// Every code a trap of the guest's own can have (status `trapped`), with its meaning:
    /// [`TrapCode::GUEST`] as (wire name, meaning). Besides these: [`TRAP_HOST`],
    /// [`TRAP_UNKNOWN_IMPORT`] and [`TRAP_OTHER`].
    pub const TRAP_CODES: &[(&str, &str)] = &{
        let mut table = [("", ""); TrapCode::GUEST.len()];
        let mut i = 0;
        while i < table.len() {
            let code = TrapCode::GUEST[i];
            table[i] = (code.as_str(), code.meaning());
            i += 1;
        }
        table
    };
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_wire_name_round_trips() {
        for &code in Code::ALL {
            let wire = code.as_str();
            assert_eq!(wire.parse::<Code>(), Ok(code));
            assert_eq!(Code::try_from(wire), Ok(code));
            assert_eq!(code.to_string(), wire);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{wire}\""));
            assert_eq!(serde_json::from_str::<Code>(&json).unwrap(), code);
            assert!(!code.meaning().is_empty(), "{wire} has no meaning");
            assert_eq!(code.meaning(), code.meaning().trim(), "{wire}");
        }
        for &trap in TrapCode::ALL {
            let wire = trap.as_str();
            assert_eq!(wire.parse::<TrapCode>(), Ok(trap));
            assert_eq!(TrapCode::try_from(wire), Ok(trap));
            assert_eq!(trap.to_string(), wire);
            assert_eq!(serde_json::to_value(trap).unwrap(), wire);
            assert_eq!(Code::from(trap).as_str(), wire);
            assert_eq!(Code::from(trap).meaning(), trap.meaning());
        }
    }

    #[test]
    fn wire_names_are_unique_and_traps_are_apart() {
        let names: HashSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len(), "a wire name is listed twice");
        let traps: Vec<Code> = TrapCode::ALL.iter().map(|&t| Code::Trap(t)).collect();
        assert!(Code::ALL.ends_with(&traps), "every trap code is a code");
        for &code in Code::ALL {
            assert_eq!(
                code.as_str().starts_with("trap_"),
                matches!(code, Code::Trap(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        for wire in [
            "",
            "OK",
            "trap_",
            "trap_ok",
            "ok ",
            "a_code_of_a_later_worker",
        ] {
            assert_eq!(wire.parse::<Code>(), Err(UnknownCode(wire.to_owned())));
        }
        assert!("ok".parse::<TrapCode>().is_err());
        assert!(serde_json::from_str::<Code>("\"later\"").is_err());
        assert!(serde_json::from_str::<Code>("7").is_err());
    }

    #[test]
    fn the_constants_are_the_table() {
        assert_eq!(codes::OK, "ok");
        assert_eq!(codes::INTERNAL, "internal");
        assert_eq!(codes::TRAP_HOST, "trap_host");
        assert_eq!(codes::TRAP_UNKNOWN_IMPORT, "trap_unknown_import");
        assert_eq!(codes::TRAP_OTHER, "trap_other");
        assert_eq!(
            codes::TRAP_CODES.first(),
            Some(&(
                "trap_stack_overflow",
                "the call stack was exhausted (deep or endless recursion)"
            ))
        );
        let guest: Vec<&str> = TrapCode::GUEST.iter().map(|t| t.as_str()).collect();
        let table: Vec<&str> = codes::TRAP_CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(guest, table);
        assert_eq!(TrapCode::GUEST.len() + 3, TrapCode::ALL.len());
        for t in [TrapCode::Host, TrapCode::UnknownImport, TrapCode::Other] {
            assert!(!TrapCode::GUEST.contains(&t), "{t}");
        }
    }
}
