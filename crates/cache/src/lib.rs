//! The content-addressed store of wasmq: uploaded modules and compiled artifacts on disk.
//!
//! Modules are addressed by the sha256 of their content; artifacts by the module's digest,
//! the engine's fingerprint and their kind, and each carries a MAC made with a key kept
//! outside the cache directory (see [`mac`]). Everything is written atomically (a temp
//! file in the same directory, fsync, rename) and checked every time it is read, so a
//! reader never sees half a file and never trusts altered or forged bytes. Several
//! processes may share one root: writers of one key write identical bytes, and a rename
//! either lands whole or not at all.
//!
//! This crate knows nothing about WebAssembly; the sandbox crate decides what an artifact
//! is and which engine fingerprint it belongs to.
//!
//! # Layout
//! - [`digest`]: [`Digest`], a sha256 value.
//! - [`store`]: [`Cache`], opened with [`CacheOptions`]; its files, one concern each:
//!   - `store/error.rs`: [`CacheError`], and [`ArtifactsUnusable`], why artifacts are
//!     disabled;
//!   - `store/modules.rs`: modules by digest in the shared store, copies pulled from a
//!     remote store, provenance;
//!   - `store/tenants.rs`: tenants' own module namespaces ([`valid_tenant_name`]);
//!   - `store/artifacts.rs`: compiled artifacts ([`ArtifactKey`]), their metadata and
//!     MAC checks, artifacts shared by other hosts;
//!   - `store/locks.rs`: the host-wide compile lock ([`CompileLock`]);
//!   - `store/quarantine.rs`: setting aside files that failed their check;
//!   - `store/maintenance.rs`: eviction past the cap, gc, verify and disk stats;
//!   - `store/walk.rs`: listing the files at one depth of the layout.
//! - [`mac`]: [`MacKey`], the keyed BLAKE3 tag of artifacts.
//! - `atomic`: the write-temp-fsync-rename helper, and telling its temp files apart.
//! - [`remote`]: the interfaces of stores beyond this host ([`remote::ModuleSource`],
//!   [`remote::ArtifactSource`]) and of compile leases across a fleet
//!   ([`remote::Leases`]), gathered in a [`remote::Fleet`].
//!
//! # On disk
//! ```text
//! <root>/modules/<aa>/<sha256>.wasm                       uploaded modules (shared)
//! <root>/tenants/<tenant>/modules/<aa>/<sha256>.wasm      modules a tenant sent inline
//!                                                         (that tenant's jobs only)
//! <root>/artifacts/<engine>/<aa>/<sha256>.<kind>          compiled code (kind: cwasm, ...)
//! <root>/artifacts/<engine>/<aa>/<sha256>.<kind>.meta     its MAC and provenance (JSON)
//! <root>/quarantine/                                      files that failed their check
//! <root>/locks/<engine>/<sha256>.<kind>.lock              held while one process compiles
//! <root>.key (by default; anywhere outside <root>)        the artifact MAC key
//! ```

mod atomic;
pub mod digest;
pub mod mac;
pub mod remote;
pub mod store;

pub use digest::Digest;
pub use mac::MacKey;
pub use store::{
    ArtifactKey, ArtifactsUnusable, Cache, CacheError, CacheOptions, CompileLock, DiskStats,
    ErrorChain, GcReport, MAX_TENANT_NAME, VerifiedArtifact, VerifyReport, default_key_file,
    valid_tenant_name,
};
