//! The errors of the store, and the helpers that name the file an i/o error happened on.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A failure of the cache's disk: always the host's fault, never the job's.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file or directory operation failed.
    #[error("cache i/o failed on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Artifacts are disabled ([`Cache::artifacts_disabled`](crate::Cache::artifacts_disabled)),
    /// so they cannot be checked.
    #[error("the artifact cache is disabled")]
    ArtifactsDisabled(#[source] Arc<ArtifactsUnusable>),
    /// A tenant name that cannot name a directory ([`valid_tenant_name`](crate::valid_tenant_name)).
    #[error("{0:?} is not a valid tenant name")]
    InvalidTenant(String),
}

/// Why the artifact half of a cache cannot work, found when it is opened.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactsUnusable {
    /// A directory of the cache cannot be created.
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The artifact MAC key can be neither read nor created.
    #[error("cannot read or create the artifact key {}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Wraps an i/o error on `path` into a [`CacheError`].
pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What `result` holds, `None` when the file it touched is not there, and any other failure
/// as a [`CacheError`] on `path`.
pub(super) fn unless_missing<T>(
    result: io::Result<T>,
    path: &Path,
) -> Result<Option<T>, CacheError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Shows an error followed by its sources, `: `-separated, for logs and reports.
pub struct ErrorChain<'a>(pub &'a dyn Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
