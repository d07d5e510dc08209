//! The content-addressed store of wasmq: uploaded modules and compiled artifacts on disk.
//!
//! Everything here is addressed by the sha256 of its content, written atomically (a temp
//! file in the same directory, fsync, rename) and checked against its digest every time it
//! is read, so a reader never sees half a file and never trusts altered bytes. Several
//! processes may share one root: writers of one key write identical bytes, and a rename
//! either lands whole or not at all.
//!
//! This crate knows nothing about WebAssembly; the sandbox crate decides what an artifact
//! is and which engine fingerprint it belongs to.
//!
//! # Layout
//! - [`digest`]: [`Digest`], a sha256 value.
//! - [`store`]: [`Cache`]: modules, artifacts, quarantine, stats, gc and verify.
//! - [`atomic`]: the write-temp-fsync-rename helper.
//!
//! # On disk
//! ```text
//! <root>/modules/<aa>/<sha256>.wasm                       uploaded modules
//! <root>/artifacts/<engine>/<aa>/<sha256>.<kind>          compiled code (kind: cwasm, ...)
//! <root>/artifacts/<engine>/<aa>/<sha256>.<kind>.meta     its digest and provenance (JSON)
//! <root>/quarantine/                                      files that failed their check
//! ```

mod atomic;
pub mod digest;
pub mod store;

pub use digest::Digest;
pub use store::{
    ArtifactKey, Cache, CacheError, DiskStats, GcReport, VerifiedArtifact, VerifyReport,
};
