//! What a worker asks of the rest of its fleet: modules it has no copy of, references to
//! resolve, artifacts another worker compiled, and the lease to compile one itself.
//!
//! Every remote call that fails because the store cannot be reached is retried with
//! backoff for [`Fleet::retry_for`], then reported as the host's fault (the job goes back
//! to the broker). What the store says about the job's module (not found, wrong bytes, not
//! WebAssembly) is the job's fault at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use tracing::{debug, info, warn};
use wasmq_cache::remote::{Fleet, LeaseGuard, RemoteError, ResolvedReference, SharedArtifact};
use wasmq_cache::{ArtifactKey, Cache, Digest};
use wasmq_spec::{Rejection, codes};

use crate::modules::ResolveError;

/// First wait between attempts on a store that cannot be reached; doubled up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a worker waiting for another's compile looks for the artifact.
const POLL: Duration = Duration::from_millis(100);

/// The fleet as the sandbox uses it.
pub(crate) struct Remote {
    fleet: Fleet,
    /// One pull per module at a time: later callers wait, then find the local copy, or
    /// the host fault that just ended the pull they waited for.
    pulls: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<Option<Failed>>>>>,
}

/// A pull that ended in a host fault, and when: the jobs that waited for it share it
/// instead of each waiting out the registry in turn.
struct Failed {
    at: Instant,
    why: String,
}

/// How recent a failed pull must be for a waiting job to share its outcome.
const SHARE_FAILURE: Duration = Duration::from_secs(1);

/// What a worker found or took before compiling a module itself.
pub(crate) enum Shared {
    /// The artifact is in the local cache now, imported from the shared store.
    Imported,
    /// Nobody had it: compile, and push the result while holding this (if anything).
    Compile(Option<Box<dyn LeaseGuard>>),
}

impl Remote {
    pub(crate) fn new(fleet: Fleet) -> Remote {
        Remote {
            fleet,
            pulls: Mutex::new(HashMap::new()),
        }
    }

    /// Whether modules not on this host can be pulled from a store.
    pub(crate) fn has_store(&self) -> bool {
        self.fleet.modules.as_ref().is_some_and(|m| m.is_store())
    }

    /// Whether compiled artifacts are shared.
    pub(crate) fn shares_artifacts(&self) -> bool {
        self.fleet.artifacts.is_some()
    }

    /// The module an OCI reference names.
    pub(crate) async fn resolve(&self, reference: &str) -> Result<ResolvedReference, ResolveError> {
        let Some(store) = &self.fleet.modules else {
            return Err(ResolveError::host(format!(
                "module.oci {reference}: this worker has no registry configured"
            )));
        };
        self.retrying(&format!("resolving {reference}"), || {
            store.resolve(reference)
        })
        .await
    }

    /// Module `digest`: this host's copy, else pulled (from `from`'s repository, or the
    /// module store) and kept. `None` when there is no copy and no store to pull from.
    pub(crate) async fn module(
        &self,
        cache: &Arc<Cache>,
        from: Option<&str>,
        digest: Digest,
    ) -> Result<Option<Vec<u8>>, ResolveError> {
        if let Some(bytes) = local(cache, digest).await? {
            return Ok(Some(bytes));
        }
        let Some(store) = &self.fleet.modules else {
            return Ok(None);
        };
        if from.is_none() && !store.is_store() {
            return Ok(None);
        }
        let gate = self
            .pulls
            .lock()
            .expect("pulls lock")
            .entry(digest)
            .or_default()
            .clone();
        let mut last = gate.lock().await;
        if let Some(failed) = &*last
            && failed.at.elapsed() < SHARE_FAILURE
        {
            return Err(ResolveError::host(failed.why.clone()));
        }
        // Another task may have pulled it while this one waited.
        let result = match local(cache, digest).await? {
            Some(bytes) => Ok(Some(bytes)),
            None => {
                let started = Instant::now();
                let pulled = self
                    .retrying(&format!("pulling module sha256:{digest}"), || {
                        store.module(from, &digest)
                    })
                    .await;
                match pulled {
                    Ok(bytes) => {
                        info!(module = %digest, bytes = bytes.len(), ms = started.elapsed().as_millis() as u64, "module pulled");
                        let cache = cache.clone();
                        let kept = bytes.clone();
                        let stored = tokio::task::spawn_blocking(move || {
                            cache.put_module_copy(&digest, &kept)
                        })
                        .await;
                        match stored {
                            Ok(Ok(true)) => Ok(Some(bytes)),
                            Ok(Ok(false)) => Err(mismatch(format!(
                                "the bytes pulled for module sha256:{digest} have another digest"
                            ))),
                            // A cache that cannot be written costs a pull later, not this job.
                            Ok(Err(e)) => {
                                warn!(error = %e, "could not keep the pulled module");
                                Ok(Some(bytes))
                            }
                            Err(e) => Err(ResolveError::host_caused(
                                format!("keeping a pulled module panicked: {e}"),
                                e,
                            )),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        };
        *last = match &result {
            Err(ResolveError::Host(e)) => Some(Failed {
                at: Instant::now(),
                why: e.message().to_owned(),
            }),
            _ => None,
        };
        self.pulls.lock().expect("pulls lock").remove(&digest);
        result
    }

    /// Looks for `key` in the shared artifact store, and waits (up to
    /// [`Fleet::compile_wait`]) while another worker holds the lease to compile it. An
    /// artifact found is imported into `cache` only if its MAC verifies; one that does not
    /// is quarantined and this worker compiles.
    pub(crate) async fn shared_artifact(&self, cache: &Arc<Cache>, key: &ArtifactKey) -> Shared {
        let Some(store) = &self.fleet.artifacts else {
            return Shared::Compile(None);
        };
        let lease_name = format!("{}.{}.{}", key.engine, key.module.to_hex(), key.extension);
        let deadline = Instant::now() + self.fleet.compile_wait;
        let mut waited = false;
        loop {
            match store.get(key).await {
                Ok(Some(shared)) => {
                    return match import(cache, key, shared).await {
                        true => Shared::Imported,
                        // Forged or made with another key: never loaded; compile here.
                        false => Shared::Compile(None),
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(module = %key.module, error = %e, "the shared artifact store failed; compiling here");
                    return Shared::Compile(None);
                }
            }
            let Some(leases) = &self.fleet.leases else {
                return Shared::Compile(None);
            };
            match leases.try_take(&lease_name).await {
                Ok(Some(guard)) => {
                    // Another worker may have pushed and released between the look and
                    // the lease: one more look.
                    if let Ok(Some(shared)) = store.get(key).await
                        && import(cache, key, shared).await
                    {
                        return Shared::Imported;
                    }
                    return Shared::Compile(Some(guard));
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(module = %key.module, error = %e, "could not ask for the compile lease; compiling here");
                    return Shared::Compile(None);
                }
            }
            if Instant::now() >= deadline {
                warn!(module = %key.module, wait_ms = self.fleet.compile_wait.as_millis() as u64, "another worker holds the compile lease past the wait; compiling here");
                return Shared::Compile(None);
            }
            if !waited {
                debug!(module = %key.module, "another worker is compiling this module; waiting for its artifact");
            }
            waited = true;
            tokio::time::sleep(POLL).await;
        }
    }

    /// Shares an artifact this worker compiled. A failure costs the other workers a
    /// compile, never this job.
    pub(crate) async fn share(&self, cache: &Cache, key: &ArtifactKey, bytes: Vec<u8>) {
        let Some(store) = &self.fleet.artifacts else {
            return;
        };
        let Some(mac) = cache.artifact_mac(key, &bytes) else {
            return;
        };
        if let Err(e) = store.put(key, SharedArtifact { bytes, mac }).await {
            warn!(module = %key.module, error = %e, "could not push the artifact to the shared store");
        }
    }

    /// Runs `attempt` until it succeeds, fails for the job's sake, or the store stayed
    /// unreachable for [`Fleet::retry_for`].
    async fn retrying<'a, T, F>(
        &'a self,
        what: &str,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, ResolveError>
    where
        F: Future<Output = Result<T, RemoteError>> + 'a,
    {
        let deadline = Instant::now() + self.fleet.retry_for;
        let mut delays = ExponentialBuilder::new()
            .with_min_delay(FIRST_BACKOFF)
            .with_max_delay(MAX_BACKOFF)
            .with_factor(2.0)
            .without_max_times()
            .build();
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(RemoteError::Unavailable(why)) => {
                    let backoff = delays.next().unwrap_or(MAX_BACKOFF);
                    if Instant::now() + backoff > deadline {
                        return Err(ResolveError::host(format!(
                            "{what}: the registry was unavailable for {} s: {why}",
                            self.fleet.retry_for.as_secs()
                        )));
                    }
                    debug!(%why, "registry unavailable; retrying");
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(job_fault(e)),
            }
        }
    }
}

/// This host's copy of module `digest`, checked.
async fn local(cache: &Arc<Cache>, digest: Digest) -> Result<Option<Vec<u8>>, ResolveError> {
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || cache.get_module(&digest))
        .await
        .map_err(|e| {
            ResolveError::host_caused(format!("reading the module store panicked: {e}"), e)
        })?
        .map_err(|e| ResolveError::host_caused(e.to_string(), e))
}

/// Imports a shared artifact into the local cache if its MAC verifies.
async fn import(cache: &Arc<Cache>, key: &ArtifactKey, shared: SharedArtifact) -> bool {
    let cache = cache.clone();
    let key = key.clone();
    let imported = tokio::task::spawn_blocking(move || {
        cache.import_artifact(&key, &shared.bytes, &shared.mac)
    })
    .await;
    match imported {
        Ok(Ok(stored)) => stored,
        Ok(Err(e)) => {
            warn!(error = %e, "could not store a shared artifact; compiling here");
            false
        }
        Err(e) => {
            warn!(error = %e, "importing a shared artifact panicked; compiling here");
            false
        }
    }
}

fn mismatch(message: String) -> ResolveError {
    ResolveError::Rejected(Rejection::new(codes::MODULE_DIGEST_MISMATCH, message))
}

/// A store's answer about the job's module, as the job's result.
fn job_fault(e: RemoteError) -> ResolveError {
    match e {
        RemoteError::NotFound(m) => {
            ResolveError::Rejected(Rejection::new(codes::MODULE_NOT_FOUND, m))
        }
        RemoteError::DigestMismatch(m) => mismatch(m),
        RemoteError::NotWasm(m) => ResolveError::Rejected(Rejection::new(codes::INVALID_MODULE, m)),
        RemoteError::Unavailable(m) => ResolveError::host(m),
    }
}
