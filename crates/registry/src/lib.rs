//! OCI registries for wasmq: the module store of a fleet, the references jobs name
//! (`"module": {"oci": "HOST/REPO:TAG"}`), and the shared store of compiled artifacts.
//!
//! Everything goes through [`oci_client`]; this crate adds what wasmq needs on top of it:
//! which registries are reached over plain HTTP, whose credentials go where, the wasm
//! artifact layout, the artifact store's layout, and the sorting of every failure into the
//! job's fault (unknown module, wrong bytes) or the host's (registry down).
//!
//! # Layout
//! - [`config`]: [`RegistryConfig`], [`Credentials`] and [`StoreUrl`] (`oci://HOST/REPO`).
//! - [`client`]: [`Registry`], the one client of a process: push and pull of modules,
//!   reference resolution, and the [`wasmq_cache::remote::ModuleSource`] a worker uses.
//! - [`artifacts`]: [`ArtifactStore`], compiled artifacts shared through a repository
//!   ([`wasmq_cache::remote::ArtifactSource`]).
//! - [`error`]: the mapping of registry errors to [`wasmq_cache::remote::RemoteError`].
//!
//! # In a registry
//! A module pushed by wasmq is the CNCF wasm artifact: a manifest whose config has media
//! type `application/vnd.wasm.config.v0+json` and whose one layer (`application/wasm`) is
//! the module, tagged `module-<sha256>` in the module store's repository. Workers pull the
//! layer by its digest. A compiled artifact is a manifest of its own media types, tagged
//! `<kind>-<engine>-<sha256>`, whose config records the MAC.

pub mod artifacts;
pub mod client;
pub mod config;
pub mod error;

pub use artifacts::ArtifactStore;
pub use client::Registry;
pub use config::{Credentials, RegistryConfig, StoreUrl};

/// The media type of the config of a wasm artifact (CNCF "Wasm OCI Artifact layout").
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
