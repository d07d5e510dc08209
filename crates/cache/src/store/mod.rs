//! [`Cache`]: the module store and the artifact store under one root directory.
//!
//! This module holds [`Cache`] itself, how it is opened ([`CacheOptions`]) and its
//! counters; its other files are listed in the crate's `# Layout`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::warn;

use crate::mac::MacKey;

mod artifacts;
mod error;
mod locks;
mod maintenance;
mod modules;
mod quarantine;
mod tenants;
mod walk;

pub use artifacts::{ArtifactKey, VerifiedArtifact};
pub use error::{ArtifactsUnusable, CacheError, ErrorChain};
pub use locks::CompileLock;
pub use maintenance::{DiskStats, GcReport, VerifyReport};
pub use tenants::{MAX_TENANT_NAME, valid_tenant_name};

use error::io_err;

/// Counters of this process's use of the cache.
#[derive(Debug, Default)]
struct Counters {
    disk_hits: AtomicU64,
    disk_misses: AtomicU64,
    artifact_writes: AtomicU64,
    quarantined: AtomicU64,
}

/// How to open a [`Cache`].
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// Cap on artifact bytes; exceeding it triggers an LRU collection.
    pub max_bytes: Option<u64>,
    /// The artifact MAC key file (created when missing); [`default_key_file`] when `None`.
    pub key_file: Option<PathBuf>,
    /// The directory whose `modules/` is the module store, when it is not the cache root
    /// (a shared volume).
    pub module_root: Option<PathBuf>,
    /// The modules here are copies of a remote store: they count toward `max_bytes` and
    /// are evicted, least recently used first, like artifacts.
    pub modules_evictable: bool,
}

/// Where the artifact key lives unless configured: beside the cache directory, never in
/// it (`./cache` -> `./cache.key`).
pub fn default_key_file(root: &Path) -> PathBuf {
    let mut name = root
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_else(|| "cache".into());
    name.push(".key");
    root.with_file_name(name)
}

/// Why artifacts are disabled, and how that reads ([`Cache::artifacts_disabled`]).
#[derive(Debug)]
struct Disabled {
    why: Arc<ArtifactsUnusable>,
    text: String,
}

impl Disabled {
    fn new(why: ArtifactsUnusable) -> Disabled {
        let text = ErrorChain(&why).to_string();
        Disabled {
            why: Arc::new(why),
            text,
        }
    }
}

/// The module store and artifact store under one root.
///
/// When the artifact half cannot work (the directory cannot be created or written, the
/// key cannot be read or created), the cache says why once, at open, and runs without it:
/// every module is compiled in memory and nothing is read from or written to `artifacts/`.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    /// Where `modules/` is: the root, or a module store directory of its own.
    module_root: PathBuf,
    /// Whether modules are copies that eviction may remove.
    modules_evictable: bool,
    /// The artifact MAC key; `Err` says why artifacts are disabled.
    mac: Result<MacKey, Disabled>,
    /// Cap on artifact bytes; exceeding it triggers an LRU collection.
    max_bytes: Option<u64>,
    /// Artifact bytes on disk as this process believes (scanned at open, then tracked).
    approx_artifact_bytes: AtomicU64,
    counters: Counters,
}

impl Cache {
    /// Opens (creating if needed) the cache at `root`, capped at `max_bytes` of artifacts,
    /// with the key at [`default_key_file`].
    pub fn open(root: impl Into<PathBuf>, max_bytes: Option<u64>) -> Result<Cache, CacheError> {
        Cache::open_with(
            root,
            CacheOptions {
                max_bytes,
                ..CacheOptions::default()
            },
        )
    }

    /// Opens (creating if needed) the cache at `root`.
    ///
    /// A directory or key that cannot be created (read-only or full disk) disables the
    /// artifact cache with a warning; a key file that exists but is not a key is an error,
    /// since compiling everything forever would hide the mistake.
    pub fn open_with(root: impl Into<PathBuf>, options: CacheOptions) -> Result<Cache, CacheError> {
        let root = root.into();
        let mut problem = None;
        for sub in ["modules", "artifacts", "quarantine"] {
            let dir = root.join(sub);
            if let Err(source) = fs::create_dir_all(&dir)
                && problem.is_none()
            {
                problem = Some(ArtifactsUnusable::CreateDir { path: dir, source });
            }
        }
        let key_file = options
            .key_file
            .clone()
            .unwrap_or_else(|| default_key_file(&root));
        let mac = match problem {
            Some(p) => Err(Disabled::new(p)),
            None => match MacKey::load_or_create(&key_file) {
                Ok(k) => Ok(k),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(io_err(&key_file)(e));
                }
                Err(source) => Err(Disabled::new(ArtifactsUnusable::Key {
                    path: key_file,
                    source,
                })),
            },
        };
        if let Err(disabled) = &mac {
            warn!(root = %root.display(), why = %disabled.text, "artifact cache disabled: every module is compiled in memory");
        }
        let module_root = options.module_root.clone().unwrap_or_else(|| root.clone());
        if options.module_root.is_some() {
            let dir = module_root.join("modules");
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let cache = Cache {
            root,
            module_root,
            modules_evictable: options.modules_evictable,
            mac,
            max_bytes: options.max_bytes,
            approx_artifact_bytes: AtomicU64::new(0),
            counters: Counters::default(),
        };
        if options.max_bytes.is_some() && cache.mac.is_ok() {
            let bytes = cache.artifact_entries()?.iter().map(|e| e.bytes).sum();
            cache.approx_artifact_bytes.store(bytes, Ordering::Relaxed);
        }
        Ok(cache)
    }

    /// Why compiled artifacts are neither read nor written, when they are not.
    pub fn artifacts_disabled(&self) -> Option<&str> {
        self.mac.as_ref().err().map(|d| d.text.as_str())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Artifact loads from disk by this process that passed their check.
    pub fn disk_hits(&self) -> u64 {
        self.counters.disk_hits.load(Ordering::Relaxed)
    }

    /// Artifacts written by this process.
    pub fn artifact_writes(&self) -> u64 {
        self.counters.artifact_writes.load(Ordering::Relaxed)
    }

    /// Files this process quarantined.
    pub fn quarantined(&self) -> u64 {
        self.counters.quarantined.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    /// The key of the `cwasm` artifact of `module` for engine `e1`.
    pub(in crate::store) fn key(module: &[u8]) -> ArtifactKey {
        ArtifactKey {
            engine: "e1".into(),
            module: Digest::of(module),
            extension: "cwasm",
        }
    }

    #[test]
    fn without_a_usable_key_artifacts_are_neither_read_nor_written() {
        let dir = tempfile::tempdir().unwrap();
        let options = CacheOptions {
            key_file: Some(PathBuf::from("/dev/null/key")),
            ..CacheOptions::default()
        };
        let cache = Cache::open_with(dir.path(), options).unwrap();
        assert!(
            cache
                .artifacts_disabled()
                .unwrap()
                .contains("/dev/null/key")
        );
        assert_eq!(cache.put_artifact(&key(b"m"), b"x").unwrap(), None);
        assert!(cache.open_artifact(&key(b"m")).unwrap().is_none());
        assert!(matches!(
            cache.verify(),
            Err(CacheError::ArtifactsDisabled(_))
        ));
        // The module store still works.
        let d = cache.put_module(b"\0asm").unwrap();
        assert!(cache.get_module(&d).unwrap().is_some());
    }

    #[test]
    fn why_artifacts_are_disabled_keeps_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("artifacts"), b"not a directory").unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let why = cache.artifacts_disabled().unwrap();
        let artifacts = dir.path().join("artifacts");
        assert!(
            why.starts_with(&format!("cannot create {}: ", artifacts.display())),
            "{why}"
        );
        let Err(CacheError::ArtifactsDisabled(unusable)) = cache.verify() else {
            panic!("verify must refuse");
        };
        let ArtifactsUnusable::CreateDir { path, source } = &*unusable else {
            panic!("{unusable:?}");
        };
        assert_eq!(path, &artifacts);
        assert_eq!(why, format!("cannot create {}: {source}", path.display()));
    }

    #[test]
    fn the_default_key_file_sits_beside_the_cache_directory() {
        assert_eq!(
            default_key_file(Path::new("/var/cache/wasmq")),
            Path::new("/var/cache/wasmq.key")
        );
        assert_eq!(default_key_file(Path::new("cache")), Path::new("cache.key"));
    }
}
