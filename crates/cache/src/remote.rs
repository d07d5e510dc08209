//! Stores beyond this host's cache directory: where modules and compiled artifacts come
//! from in a fleet, and the lease that lets one worker of the fleet compile a module
//! while the others wait for its artifact.
//!
//! This crate only names the interfaces; `wasmq-registry` implements the stores on an OCI
//! registry and `wasmq-broker` the lease on RabbitMQ. The sandbox calls them through these
//! traits, so it never sees a network client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::digest::Digest;
use crate::store::ArtifactKey;

/// A boxed future that can be sent between threads: what a trait object's async method
/// returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a remote store could not hand out what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The repository, tag, digest or blob does not exist: the job's fault
    /// (`module_not_found`), never retried.
    #[error("{0}")]
    NotFound(String),
    /// The bytes the store sent do not match their digest: the job is `rejected` with
    /// `module_digest_mismatch` and nothing is cached.
    #[error("{0}")]
    DigestMismatch(String),
    /// What the reference names is not a WebAssembly module (a container image, several
    /// layers): the job's fault (`invalid_module`).
    #[error("{0}")]
    NotWasm(String),
    /// The store cannot be reached, answered 5xx, or refused the credentials: the host's
    /// fault, so the job is requeued (and dead-lettered past the delivery limit).
    #[error("{0}")]
    Unavailable(String),
}

/// What an OCI reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedReference {
    /// The reference pinned to its manifest: `HOST[:PORT]/REPO@sha256:<manifest>`.
    pub pinned: String,
    /// The sha256 of the module's bytes (its one layer).
    pub module: Digest,
}

/// Where modules are kept besides this host's cache directory (an OCI registry).
pub trait ModuleSource: Send + Sync + fmt::Debug {
    /// Whether this is the module store itself (a job's `sha256` not on this host is
    /// pulled from it), or only a way to resolve and pull `oci` references.
    fn is_store(&self) -> bool;

    /// The bytes of module `digest`, checked against it. `from` is the pinned reference a
    /// job named (`HOST/REPO@sha256:...`) to pull from that repository, or `None` for the
    /// module store itself.
    fn module<'a>(
        &'a self,
        from: Option<&'a str>,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>>;

    /// What `reference` (`HOST[:PORT]/REPO:TAG` or `...@sha256:<hex>`) names: the module
    /// of its manifest's one WebAssembly layer.
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<ResolvedReference, RemoteError>>;
}

/// An artifact as it travels between hosts: its bytes and the MAC its compiler made
/// with the fleet's artifact key ([`crate::MacKey`]).
#[derive(Debug, Clone)]
pub struct SharedArtifact {
    pub bytes: Vec<u8>,
    pub mac: String,
}

/// A store of compiled artifacts shared by the workers of a fleet.
pub trait ArtifactSource: Send + Sync + fmt::Debug {
    /// The artifact for `key`, if some worker pushed it.
    fn get<'a>(
        &'a self,
        key: &'a ArtifactKey,
    ) -> BoxFuture<'a, Result<Option<SharedArtifact>, RemoteError>>;

    /// Pushes the artifact for `key`.
    fn put<'a>(
        &'a self,
        key: &'a ArtifactKey,
        artifact: SharedArtifact,
    ) -> BoxFuture<'a, Result<(), RemoteError>>;
}

/// Held while one worker of the fleet compiles a module; dropping it releases the lease.
pub trait LeaseGuard: Send + Sync {}

/// Leases by name, exclusive across the fleet, released when their holder drops them or
/// dies.
pub trait Leases: Send + Sync + fmt::Debug {
    /// Takes the lease `name` if nobody holds it: `Ok(None)` when another holder has it.
    fn try_take<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Box<dyn LeaseGuard>>, RemoteError>>;
}

/// Everything a worker of a fleet shares with the others beyond the broker: a module
/// store, an artifact store and compile leases, each optional.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    /// Where modules come from when this host has no copy.
    pub modules: Option<Arc<dyn ModuleSource>>,
    /// Where compiled artifacts are shared.
    pub artifacts: Option<Arc<dyn ArtifactSource>>,
    /// Who compiles a module that nobody has compiled yet.
    pub leases: Option<Arc<dyn Leases>>,
    /// How long a worker waits for another's compile before compiling itself.
    pub compile_wait: Duration,
    /// How long a worker retries a store it cannot reach before it gives the job back to
    /// the broker.
    pub retry_for: Duration,
}
