//! [`Cache`]: the module store and the artifact store under one root directory.

use std::fs::{self, File};
use std::io::{self, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::atomic::write_atomic;
use crate::digest::Digest;
use crate::mac::{MacKey, tags_equal};

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
    /// Artifacts are disabled ([`Cache::artifacts_disabled`]), so they cannot be checked.
    #[error("the artifact cache is disabled: {0}")]
    ArtifactsDisabled(String),
    /// A tenant name that cannot name a directory ([`valid_tenant_name`]).
    #[error("{0:?} is not a valid tenant name")]
    InvalidTenant(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Names one compiled artifact: the module it came from, the engine that built it, and
/// what kind of artifact it is (`cwasm` for a core module).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtifactKey {
    /// Fingerprint of the engine (version, settings, target, CPU features).
    pub engine: String,
    /// sha256 of the WebAssembly bytes.
    pub module: Digest,
    /// The artifact kind, used as the file extension.
    pub kind: &'static str,
}

/// What is stored beside each artifact: enough to check it and to know where it came from.
/// Metadata of another format (an older version) fails to parse, and its artifact is
/// quarantined and recompiled.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactMeta {
    /// Keyed BLAKE3 of the artifact's name, length and bytes ([`MacKey`]).
    blake3_mac: String,
    size: u64,
    module: String,
    engine: String,
    kind: String,
}

/// An artifact whose bytes matched their recorded MAC, opened and rewound.
///
/// The same open file was hashed, so a rename over the path after the check cannot swap
/// what is loaded.
#[derive(Debug)]
pub struct VerifiedArtifact {
    /// The open file, positioned at its start.
    pub file: File,
    /// Where it is.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
}

/// What is on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiskStats {
    /// Uploaded modules.
    pub modules: u64,
    /// Their total size.
    pub module_bytes: u64,
    /// Modules in tenants' own namespaces (sent inline by a tenant), all tenants.
    pub tenant_modules: u64,
    /// Their total size.
    pub tenant_module_bytes: u64,
    /// Compiled artifacts, all engines.
    pub artifacts: u64,
    /// Their total size, with their metadata.
    pub artifact_bytes: u64,
    /// Engine fingerprints that have artifacts.
    pub engines: Vec<String>,
    /// Files set aside after failing a check.
    pub quarantined: u64,
    /// The artifact size cap, if any.
    pub max_bytes: Option<u64>,
    /// Why compiled artifacts are neither read nor written, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts_disabled: Option<String>,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Artifacts removed, least recently used first.
    pub removed: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Artifact bytes left.
    pub remaining_bytes: u64,
    /// Leftover temp files of interrupted writes removed.
    pub stale_temp_files: u64,
}

/// What a full verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Modules checked.
    pub modules: u64,
    /// Artifacts checked.
    pub artifacts: u64,
    /// Files that failed their check and were quarantined.
    pub quarantined: Vec<PathBuf>,
}

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

/// Longest tenant name, in bytes.
pub const MAX_TENANT_NAME: usize = 128;

/// Whether `name` may name a tenant's module namespace (`<root>/tenants/<name>/`): 1 to
/// [`MAX_TENANT_NAME`] bytes of `A-Z a-z 0-9 . _ - @`, not starting with `.`. Such a name
/// is always one plain directory name: never `.`, `..`, empty, or a path.
pub fn valid_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TENANT_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
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
    mac: Result<MacKey, String>,
    /// Cap on artifact bytes; exceeding it triggers an LRU collection.
    max_bytes: Option<u64>,
    /// Artifact bytes on disk as this process believes (scanned at open, then tracked).
    approx_artifact_bytes: AtomicU64,
    counters: Counters,
}

const META_EXT: &str = "meta";
/// Temp files older than this are leftovers of a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(3600);

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
            if let Err(e) = fs::create_dir_all(&dir) {
                problem.get_or_insert(format!("cannot create {}: {e}", dir.display()));
            }
        }
        let key_file = options
            .key_file
            .clone()
            .unwrap_or_else(|| default_key_file(&root));
        let mac = match problem {
            Some(p) => Err(p),
            None => match MacKey::load_or_create(&key_file) {
                Ok(k) => Ok(k),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(io_err(&key_file)(e));
                }
                Err(e) => Err(format!(
                    "cannot read or create the artifact key {}: {e}",
                    key_file.display()
                )),
            },
        };
        if let Err(why) = &mac {
            warn!(root = %root.display(), %why, "artifact cache disabled: every module is compiled in memory");
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
        self.mac.as_ref().err().map(|s| s.as_str())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    // ----- modules -------------------------------------------------------------------

    fn module_path(&self, digest: &Digest) -> PathBuf {
        module_file(&self.module_root.join("modules"), digest)
    }

    /// Where tenant `tenant` keeps module `digest`: `tenants/<tenant>/modules/<aa>/<sha>.wasm`.
    fn tenant_module_path(&self, tenant: &str, digest: &Digest) -> Result<PathBuf, CacheError> {
        if !valid_tenant_name(tenant) {
            return Err(CacheError::InvalidTenant(tenant.to_owned()));
        }
        let dir = self.root.join("tenants").join(tenant).join("modules");
        Ok(module_file(&dir, digest))
    }

    /// Stores `bytes` as a module and returns its digest; a module already stored is not
    /// written again.
    pub fn put_module(&self, bytes: &[u8]) -> Result<Digest, CacheError> {
        let digest = Digest::of(bytes);
        put_module_at(&self.module_path(&digest), bytes)?;
        Ok(digest)
    }

    /// Keeps what module `digest` was made from (a snapshot's provenance, JSON) beside it
    /// in the store: `modules/<aa>/<sha>.provenance.json`.
    pub fn put_provenance(&self, digest: &Digest, json: &[u8]) -> Result<PathBuf, CacheError> {
        let path = self.module_path(digest).with_extension("provenance.json");
        write_atomic(&path, json).map_err(io_err(&path))?;
        Ok(path)
    }

    /// The provenance kept for module `digest`, if any.
    pub fn provenance(&self, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.module_path(digest).with_extension("provenance.json");
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// True when the store holds a file for `digest` (its bytes are checked on read).
    pub fn has_module(&self, digest: &Digest) -> bool {
        self.module_path(digest).is_file()
    }

    /// The module with this digest, checked: `None` when absent, or when the stored bytes
    /// no longer match (they are quarantined and a warning is logged).
    pub fn get_module(&self, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        self.get_module_at(&self.module_path(digest), digest)
    }

    /// Stores `bytes` as a module of tenant `tenant` only (not in the shared store), and
    /// returns its digest.
    pub fn put_tenant_module(&self, tenant: &str, bytes: &[u8]) -> Result<Digest, CacheError> {
        let digest = Digest::of(bytes);
        put_module_at(&self.tenant_module_path(tenant, &digest)?, bytes)?;
        Ok(digest)
    }

    /// True when tenant `tenant`'s namespace holds a file for `digest` (false for a name
    /// that is not a valid tenant name).
    pub fn has_tenant_module(&self, tenant: &str, digest: &Digest) -> bool {
        self.tenant_module_path(tenant, digest)
            .is_ok_and(|p| p.is_file())
    }

    /// Module `digest` from tenant `tenant`'s namespace, checked like
    /// [`Cache::get_module`].
    pub fn get_tenant_module(
        &self,
        tenant: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        self.get_module_at(&self.tenant_module_path(tenant, digest)?, digest)
    }

    /// The first 8 bytes of module `digest` (from tenant `tenant`'s namespace when given),
    /// unchecked: the header that tells a core module from a component, read before the
    /// whole module is (and is checked against its digest). `None` when absent or shorter.
    pub fn module_header(
        &self,
        tenant: Option<&str>,
        digest: &Digest,
    ) -> Result<Option<[u8; 8]>, CacheError> {
        use std::io::Read as _;
        let path = match tenant {
            Some(t) => self.tenant_module_path(t, digest)?,
            None => self.module_path(digest),
        };
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut head = [0u8; 8];
        match file.read_exact(&mut head) {
            Ok(()) => Ok(Some(head)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn get_module_at(&self, path: &Path, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path)(e)),
        };
        if Digest::of(&bytes) != *digest {
            warn!(path = %path.display(), "stored module does not match its digest; quarantined");
            self.quarantine(path);
            return Ok(None);
        }
        if self.modules_evictable {
            // Last use drives eviction of copies; failing to record it only makes it less exact.
            let _ = fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(SystemTime::now()));
        }
        Ok(Some(bytes))
    }

    // ----- artifacts -----------------------------------------------------------------

    /// Where the artifact for `key` lives.
    pub fn artifact_path(&self, key: &ArtifactKey) -> PathBuf {
        self.root
            .join("artifacts")
            .join(&key.engine)
            .join(key.module.prefix())
            .join(format!("{}.{}", key.module.to_hex(), key.kind))
    }

    fn meta_path(artifact: &Path) -> PathBuf {
        let mut p = artifact.as_os_str().to_owned();
        p.push(".");
        p.push(META_EXT);
        PathBuf::from(p)
    }

    /// Opens the artifact for `key` if it is present and its bytes match the MAC recorded
    /// when it was written. A missing artifact is `None`; a corrupt, truncated, forged or
    /// foreign one is quarantined, logged, and also `None`, so the caller recompiles.
    pub fn open_artifact(&self, key: &ArtifactKey) -> Result<Option<VerifiedArtifact>, CacheError> {
        let Ok(mac) = &self.mac else {
            self.counters.disk_misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        let path = self.artifact_path(key);
        let meta_path = Self::meta_path(&path);
        let meta_text = match fs::read(&meta_path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.counters.disk_misses.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            Err(e) => return Err(io_err(&meta_path)(e)),
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.counters.disk_misses.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let problem = match serde_json::from_slice::<ArtifactMeta>(&meta_text) {
            Err(e) => Some(format!("unreadable metadata: {e}")),
            Ok(meta) => {
                let len = file.metadata().map_err(io_err(&path))?.len();
                if meta.size != len {
                    Some(format!(
                        "size {len} differs from the recorded {}",
                        meta.size
                    ))
                } else if meta.module != key.module.to_hex() || meta.engine != key.engine {
                    Some("metadata names another module or engine".to_owned())
                } else {
                    let actual = mac.tag_file(key, &file, len).map_err(io_err(&path))?;
                    (!tags_equal(&actual, &meta.blake3_mac))
                        .then(|| "MAC does not match: altered, or made with another key".to_owned())
                }
            }
        };
        if let Some(problem) = problem {
            warn!(path = %path.display(), %problem, "cached artifact failed its integrity check; quarantined, recompiling");
            self.quarantine(&path);
            self.quarantine(&meta_path);
            self.counters.disk_misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let mut file = file;
        file.rewind().map_err(io_err(&path))?;
        // Last use drives LRU eviction; failing to record it only makes eviction less exact.
        let _ = file.set_modified(SystemTime::now());
        let len = file.metadata().map_err(io_err(&path))?.len();
        self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
        Ok(Some(VerifiedArtifact { file, path, len }))
    }

    /// Stores an artifact: its metadata first, then its bytes, each atomically, so a reader
    /// that finds the bytes always finds the MAC to check them against. `None` when
    /// artifacts are disabled ([`Cache::artifacts_disabled`]).
    pub fn put_artifact(
        &self,
        key: &ArtifactKey,
        bytes: &[u8],
    ) -> Result<Option<PathBuf>, CacheError> {
        let Ok(mac) = &self.mac else {
            return Ok(None);
        };
        let path = self.artifact_path(key);
        let meta = ArtifactMeta {
            blake3_mac: mac.tag(key, bytes),
            size: bytes.len() as u64,
            module: key.module.to_hex(),
            engine: key.engine.clone(),
            kind: key.kind.to_owned(),
        };
        let meta_path = Self::meta_path(&path);
        let meta_json = serde_json::to_vec(&meta).expect("metadata serializes");
        write_atomic(&meta_path, &meta_json).map_err(io_err(&meta_path))?;
        write_atomic(&path, bytes).map_err(io_err(&path))?;
        self.counters
            .artifact_writes
            .fetch_add(1, Ordering::Relaxed);
        self.grew((bytes.len() + meta_json.len()) as u64);
        Ok(Some(path))
    }

    /// The MAC this host's key gives the artifact `bytes` for `key`: what travels with an
    /// artifact shared with other hosts. `None` when artifacts are disabled.
    pub fn artifact_mac(&self, key: &ArtifactKey, bytes: &[u8]) -> Option<String> {
        self.mac.as_ref().ok().map(|mac| mac.tag(key, bytes))
    }

    /// Stores an artifact that came from another host, if its MAC verifies with this
    /// host's key: `Ok(true)` when stored. An artifact whose MAC does not verify (forged,
    /// altered, or made with another key) is never stored where it could be loaded: it is
    /// written to `quarantine/`, logged, and `Ok(false)` says to compile instead.
    pub fn import_artifact(
        &self,
        key: &ArtifactKey,
        bytes: &[u8],
        mac: &str,
    ) -> Result<bool, CacheError> {
        let Some(expected) = self.artifact_mac(key, bytes) else {
            return Ok(false);
        };
        if !tags_equal(&expected, mac) {
            let name = format!(
                "{}-remote-{}.{}",
                unique_stamp(),
                key.module.to_hex(),
                key.kind
            );
            let dest = self.root.join("quarantine").join(name);
            warn!(module = %key.module, engine = %key.engine, path = %dest.display(), "a shared artifact failed its MAC check; quarantined, compiling instead");
            if let Err(e) = write_atomic(&dest, bytes) {
                warn!(error = %e, "could not keep the quarantined artifact");
            }
            self.counters.quarantined.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        self.put_artifact(key, bytes)?;
        Ok(true)
    }

    /// Stores `bytes` as a copy of module `expected` pulled from a remote store, only if
    /// they are that module: `Ok(false)` (and nothing written) when they are not. Copies
    /// count toward the cap when modules are evictable.
    pub fn put_module_copy(&self, expected: &Digest, bytes: &[u8]) -> Result<bool, CacheError> {
        if Digest::of(bytes) != *expected {
            return Ok(false);
        }
        let path = self.module_path(expected);
        put_module_at(&path, bytes)?;
        if self.modules_evictable {
            self.grew(bytes.len() as u64);
        }
        Ok(true)
    }

    /// Takes the host-wide lock of compiling `key`, waiting while another process (or
    /// task) holds it: processes that share this cache directory compile a module once
    /// between them. The lock is released when the returned guard is dropped (or the
    /// process dies). `None` when the lock file cannot be created (a read-only cache):
    /// then nobody writes artifacts here and there is nothing to serialise.
    pub fn lock_compile(&self, key: &ArtifactKey) -> Option<CompileLock> {
        let dir = self.root.join("locks").join(&key.engine);
        let path = dir.join(format!("{}.{}.lock", key.module.to_hex(), key.kind));
        let file = fs::create_dir_all(&dir)
            .and_then(|_| {
                fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
            })
            .and_then(|f| f.lock().map(|_| f));
        match file {
            Ok(file) => Some(CompileLock { _file: file }),
            Err(e) => {
                debug!(path = %path.display(), error = %e, "no compile lock; compiling without one");
                None
            }
        }
    }

    /// Adds `added` bytes to the evictable total, collecting if it passes the cap.
    fn grew(&self, added: u64) {
        let total = self
            .approx_artifact_bytes
            .fetch_add(added, Ordering::Relaxed)
            + added;
        if let Some(max) = self.max_bytes
            && total > max
        {
            match self.gc(max - max / 10) {
                Ok(r) => info!(
                    removed = r.removed,
                    freed_bytes = r.freed_bytes,
                    "cache over its cap; evicted least recently used"
                ),
                Err(e) => warn!(error = %e, "cache eviction failed"),
            }
        }
    }

    // ----- maintenance ---------------------------------------------------------------

    /// Moves a file that failed its check out of the way (deleting it if that fails).
    fn quarantine(&self, path: &Path) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = self
            .root
            .join("quarantine")
            .join(format!("{}-{name}", unique_stamp()));
        if fs::rename(path, &dest).is_err() {
            let _ = fs::remove_file(path);
        }
        self.counters.quarantined.fetch_add(1, Ordering::Relaxed);
    }

    /// Every file under `tenants/<tenant>/modules/<aa>/`.
    fn tenant_module_files(&self) -> Result<Vec<PathBuf>, CacheError> {
        Ok(files_below(&self.root.join("tenants"), 4)?
            .into_iter()
            .filter(|f| {
                f.parent()
                    .and_then(Path::parent)
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "modules")
            })
            .collect())
    }

    /// Every artifact with its size (bytes + metadata) and last use, and every module when
    /// modules are copies of a remote store.
    fn artifact_entries(&self) -> Result<Vec<ArtifactEntry>, CacheError> {
        let mut out = Vec::new();
        if self.modules_evictable {
            for file in files_below(&self.module_root.join("modules"), 2)? {
                let temp = file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"));
                if let (false, Ok(md)) = (temp, fs::metadata(&file)) {
                    out.push(ArtifactEntry {
                        last_used: md.modified().unwrap_or(UNIX_EPOCH),
                        bytes: md.len(),
                        path: file,
                    });
                }
            }
        }
        for file in files_below(&self.root.join("artifacts"), 3)? {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with(".tmp-") || name.ends_with(".meta") {
                continue;
            }
            let Ok(md) = fs::metadata(&file) else {
                continue;
            };
            let meta_len = fs::metadata(Self::meta_path(&file))
                .map(|m| m.len())
                .unwrap_or(0);
            out.push(ArtifactEntry {
                last_used: md.modified().unwrap_or(UNIX_EPOCH),
                bytes: md.len() + meta_len,
                path: file,
            });
        }
        Ok(out)
    }

    /// Removes least recently used artifacts until at most `max_bytes` remain, and temp
    /// files left by interrupted writers.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, CacheError> {
        let mut report = GcReport::default();
        for (dir, depth) in [("modules", 2), ("artifacts", 3), ("tenants", 4)] {
            for file in files_below(&self.root.join(dir), depth)? {
                let is_temp = file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"));
                let old = fs::metadata(&file)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() > STALE_TEMP);
                if is_temp && old && fs::remove_file(&file).is_ok() {
                    report.stale_temp_files += 1;
                }
            }
        }
        let mut entries = self.artifact_entries()?;
        entries.sort_by_key(|e| e.last_used);
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        for e in entries {
            if total <= max_bytes {
                break;
            }
            // Bytes first, then metadata: a reader never finds bytes without their digest.
            if fs::remove_file(&e.path).is_ok() {
                let _ = fs::remove_file(Self::meta_path(&e.path));
                total -= e.bytes;
                report.removed += 1;
                report.freed_bytes += e.bytes;
                debug!(path = %e.path.display(), "evicted artifact");
            }
        }
        report.remaining_bytes = total;
        self.approx_artifact_bytes.store(total, Ordering::Relaxed);
        Ok(report)
    }

    /// Checks every module against its digest and every artifact against its MAC,
    /// quarantining failures.
    pub fn verify(&self) -> Result<VerifyReport, CacheError> {
        if let Err(why) = &self.mac {
            return Err(CacheError::ArtifactsDisabled(why.clone()));
        }
        let mut report = VerifyReport::default();
        let mut modules = files_below(&self.module_root.join("modules"), 2)?;
        modules.extend(self.tenant_module_files()?);
        for file in modules {
            let Some(expected) = file
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<Digest>().ok())
            else {
                continue;
            };
            report.modules += 1;
            let actual = File::open(&file)
                .and_then(Digest::of_reader)
                .map_err(io_err(&file))?;
            if actual != expected {
                warn!(path = %file.display(), "module does not match its digest; quarantined");
                self.quarantine(&file);
                report.quarantined.push(file);
            }
        }
        for entry in self.artifact_entries()? {
            report.artifacts += 1;
            let meta_path = Self::meta_path(&entry.path);
            let ok = fs::read(&meta_path)
                .ok()
                .and_then(|t| serde_json::from_slice::<ArtifactMeta>(&t).ok())
                .is_some_and(|meta| self.artifact_matches(&entry.path, &meta));
            if !ok {
                warn!(path = %entry.path.display(), "artifact failed its integrity check; quarantined");
                self.quarantine(&entry.path);
                self.quarantine(&meta_path);
                report.quarantined.push(entry.path);
            }
        }
        Ok(report)
    }

    /// True when the artifact at `path` is where its metadata says it belongs and its bytes
    /// carry the recorded MAC.
    fn artifact_matches(&self, path: &Path, meta: &ArtifactMeta) -> bool {
        let (Ok(mac), Ok(module)) = (&self.mac, meta.module.parse::<Digest>()) else {
            return false;
        };
        let key = ArtifactKey {
            engine: meta.engine.clone(),
            module,
            kind: "",
        };
        let mut expected = self.artifact_path(&key).into_os_string();
        expected.push(&meta.kind);
        if expected != path.as_os_str() {
            return false;
        }
        File::open(path)
            .and_then(|f| {
                let len = f.metadata()?.len();
                mac.tag_file_named(&meta.engine, &meta.kind, &module, &f, len)
            })
            .is_ok_and(|t| tags_equal(&t, &meta.blake3_mac))
    }

    /// What is on disk now.
    pub fn disk_stats(&self) -> Result<DiskStats, CacheError> {
        let mut s = DiskStats {
            max_bytes: self.max_bytes,
            artifacts_disabled: self.artifacts_disabled().map(str::to_owned),
            ..Default::default()
        };
        for file in files_below(&self.module_root.join("modules"), 2)? {
            if file.extension().is_some_and(|e| e == "wasm") {
                s.modules += 1;
                s.module_bytes += fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            }
        }
        for file in self.tenant_module_files()? {
            if file.extension().is_some_and(|e| e == "wasm") {
                s.tenant_modules += 1;
                s.tenant_module_bytes += fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            }
        }
        for e in self.artifact_entries()? {
            s.artifacts += 1;
            s.artifact_bytes += e.bytes;
        }
        if let Ok(rd) = fs::read_dir(self.root.join("artifacts")) {
            s.engines = rd
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            s.engines.sort();
        }
        s.quarantined = fs::read_dir(self.root.join("quarantine"))
            .map(|rd| rd.count() as u64)
            .unwrap_or(0);
        Ok(s)
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

/// `<dir>/<aa>/<sha256>.wasm`.
/// Nanoseconds since the epoch: a prefix that keeps quarantined names apart.
fn unique_stamp() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The host-wide lock of one compile ([`Cache::lock_compile`]); dropping it releases it.
#[derive(Debug)]
pub struct CompileLock {
    _file: File,
}

fn module_file(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join(digest.prefix())
        .join(format!("{}.wasm", digest.to_hex()))
}

/// Writes a module file unless one of the same length is there (its bytes are checked
/// whenever it is read).
fn put_module_at(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    match fs::metadata(path) {
        Ok(m) if m.len() == bytes.len() as u64 => Ok(()),
        _ => write_atomic(path, bytes).map_err(io_err(path)),
    }
}

struct ArtifactEntry {
    path: PathBuf,
    bytes: u64,
    last_used: SystemTime,
}

/// Regular files exactly `depth` directory levels below `dir` (missing dirs are empty).
fn files_below(dir: &Path, depth: usize) -> Result<Vec<PathBuf>, CacheError> {
    let mut level = vec![dir.to_owned()];
    for level_no in 0..depth {
        let next_is_last = level_no + 1 == depth;
        let mut next = Vec::new();
        for d in level {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&d)(e)),
            };
            for entry in rd.flatten() {
                let p = entry.path();
                // Only directories lead further down; stray files above the last level
                // are not part of the layout.
                if next_is_last || fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    next.push(p);
                }
            }
        }
        level = next;
    }
    Ok(level
        .into_iter()
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut file: &File) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn key(module: &[u8]) -> ArtifactKey {
        ArtifactKey {
            engine: "e1".into(),
            module: Digest::of(module),
            kind: "cwasm",
        }
    }

    #[test]
    fn module_round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let d = cache.put_module(b"\0asm module").unwrap();
        assert_eq!(
            cache.get_module(&d).unwrap().as_deref(),
            Some(&b"\0asm module"[..])
        );
        fs::write(cache.module_path(&d), b"\0asm modulX").unwrap();
        assert_eq!(cache.get_module(&d).unwrap(), None);
        assert_eq!(cache.quarantined(), 1);
        assert!(!cache.has_module(&d));
    }

    #[test]
    fn tenant_modules_are_apart_from_the_shared_store_and_from_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let d = cache.put_tenant_module("alice", b"\0asm alice").unwrap();
        assert!(cache.has_tenant_module("alice", &d));
        assert!(!cache.has_tenant_module("bob", &d));
        assert!(!cache.has_module(&d), "not shared");
        assert_eq!(cache.get_module(&d).unwrap(), None);
        assert_eq!(cache.get_tenant_module("bob", &d).unwrap(), None);
        assert_eq!(
            cache.get_tenant_module("alice", &d).unwrap().as_deref(),
            Some(&b"\0asm alice"[..])
        );
        assert!(
            dir.path()
                .join("tenants/alice/modules")
                .join(d.prefix())
                .join(format!("{}.wasm", d.to_hex()))
                .is_file()
        );
        let s = cache.disk_stats().unwrap();
        assert_eq!((s.modules, s.tenant_modules), (0, 1));
        fs::write(
            cache.tenant_module_path("alice", &d).unwrap(),
            b"\0asm alicX",
        )
        .unwrap();
        let r = cache.verify().unwrap();
        assert_eq!((r.modules, r.quarantined.len()), (1, 1));
    }

    #[test]
    fn a_tenant_name_never_becomes_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c"), None).unwrap();
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a\\b", "a b", "é"] {
            assert!(!valid_tenant_name(bad), "{bad:?}");
            assert!(matches!(
                cache.put_tenant_module(bad, b"x"),
                Err(CacheError::InvalidTenant(_))
            ));
            assert!(!cache.has_tenant_module(bad, &Digest::of(b"x")));
        }
        assert!(!valid_tenant_name(&"a".repeat(MAX_TENANT_NAME + 1)));
        for good in ["alice", "team-1", "svc.batch_2", "a@example.com", "a..b"] {
            assert!(valid_tenant_name(good), "{good:?}");
        }
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn artifact_hit_corrupt_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let k = key(b"m");
        assert!(cache.open_artifact(&k).unwrap().is_none());
        let path = cache.put_artifact(&k, b"compiled code").unwrap().unwrap();
        let hit = cache.open_artifact(&k).unwrap().unwrap();
        assert_eq!(read_all(&hit.file).unwrap(), b"compiled code");

        // Same length, one byte changed.
        fs::write(&path, b"compiled codX").unwrap();
        assert!(cache.open_artifact(&k).unwrap().is_none());
        assert!(!path.exists(), "corrupt artifact must be moved away");

        cache.put_artifact(&k, b"compiled code").unwrap();
        fs::write(&path, b"compiled").unwrap();
        assert!(cache.open_artifact(&k).unwrap().is_none());
        assert_eq!(cache.quarantined(), 4, "bytes and metadata, twice");
    }

    #[test]
    fn artifact_without_metadata_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let k = key(b"m");
        let path = cache.artifact_path(&k);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"unverified").unwrap();
        assert!(cache.open_artifact(&k).unwrap().is_none());
    }

    #[test]
    fn gc_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let (a, b) = (key(b"a"), key(b"b"));
        cache.put_artifact(&a, &[1u8; 1000]).unwrap();
        cache.put_artifact(&b, &[2u8; 1000]).unwrap();
        let old = SystemTime::now() - Duration::from_secs(100);
        File::options()
            .write(true)
            .open(cache.artifact_path(&a))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let report = cache.gc(1500).unwrap();
        assert_eq!(report.removed, 1);
        assert!(cache.open_artifact(&a).unwrap().is_none());
        assert!(cache.open_artifact(&b).unwrap().is_some());
    }

    #[test]
    fn cap_triggers_eviction_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(2500)).unwrap();
        for i in 0..5u8 {
            cache.put_artifact(&key(&[i]), &[i; 1000]).unwrap();
        }
        let s = cache.disk_stats().unwrap();
        assert!(s.artifact_bytes <= 2500, "{s:?}");
        assert!(
            cache.open_artifact(&key(&[4])).unwrap().is_some(),
            "newest stays"
        );
    }

    #[test]
    fn pulled_module_copies_are_checked_counted_and_evicted_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let options = CacheOptions {
            max_bytes: Some(2500),
            modules_evictable: true,
            ..CacheOptions::default()
        };
        let cache = Cache::open_with(dir.path(), options).unwrap();
        let wrong = Digest::of(b"something else");
        assert!(!cache.put_module_copy(&wrong, &[9u8; 1000]).unwrap());
        assert!(
            !cache.has_module(&wrong),
            "bytes of another digest are never kept"
        );
        let mods: Vec<Vec<u8>> = (0..2u8).map(|i| vec![i; 1000]).collect();
        let digests: Vec<Digest> = mods.iter().map(|m| Digest::of(m)).collect();
        for (m, d) in mods.iter().zip(&digests) {
            assert!(cache.put_module_copy(d, m).unwrap());
        }
        // The first is used again, so the second is the least recently used.
        let old = SystemTime::now() - Duration::from_secs(100);
        for d in &digests {
            File::options()
                .write(true)
                .open(cache.module_path(d))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        assert!(cache.get_module(&digests[0]).unwrap().is_some());
        // A third copy and an artifact pass the cap: the least recently used module goes.
        let third = vec![7u8; 1000];
        assert!(cache.put_module_copy(&Digest::of(&third), &third).unwrap());
        cache.put_artifact(&key(b"x"), &[1u8; 100]).unwrap();
        assert!(
            !cache.has_module(&digests[1]),
            "the least recently used copy is evicted"
        );
        assert!(cache.has_module(&digests[0]));
        assert!(cache.has_module(&Digest::of(&third)));
    }

    #[test]
    fn shared_artifacts_are_stored_only_when_their_mac_verifies() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let here = Cache::open(a.path().join("c"), None).unwrap();
        let other = Cache::open(b.path().join("c"), None).unwrap();
        let k = key(b"shared");
        let bytes = b"compiled code".to_vec();
        let ours = here.artifact_mac(&k, &bytes).unwrap();
        let theirs = other.artifact_mac(&k, &bytes).unwrap();
        assert_ne!(ours, theirs, "each cache made its own key");
        assert!(!here.import_artifact(&k, &bytes, &theirs).unwrap());
        assert!(
            here.open_artifact(&k).unwrap().is_none(),
            "never stored where it loads"
        );
        assert_eq!(
            fs::read_dir(a.path().join("c/quarantine")).unwrap().count(),
            1
        );
        assert!(here.import_artifact(&k, &bytes, &ours).unwrap());
        assert!(here.open_artifact(&k).unwrap().is_some());
    }

    #[test]
    fn the_compile_lock_is_exclusive_across_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let k = key(b"locked");
        let held = cache.lock_compile(&k).expect("a lock file");
        let path = dir.path().join("locks").join(&k.engine).join(format!(
            "{}.{}.lock",
            k.module.to_hex(),
            k.kind
        ));
        let second = File::options().write(true).open(&path).unwrap();
        assert!(second.try_lock().is_err(), "held by the first");
        drop(held);
        assert!(second.try_lock().is_ok(), "released with its guard");
    }

    #[test]
    fn verify_quarantines_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let d = cache.put_module(b"good").unwrap();
        let k = key(b"good");
        let p = cache.put_artifact(&k, b"art").unwrap().unwrap();
        assert!(cache.verify().unwrap().quarantined.is_empty());
        fs::write(&p, b"bad").unwrap();
        fs::write(cache.module_path(&d), b"evil").unwrap();
        let r = cache.verify().unwrap();
        assert_eq!((r.modules, r.artifacts, r.quarantined.len()), (1, 1, 2));
    }

    #[test]
    fn an_artifact_under_another_name_or_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c"), None).unwrap();
        let (a, b) = (key(b"a"), key(b"b"));
        let pa = cache.put_artifact(&a, b"code of a").unwrap().unwrap();
        let pb = cache.artifact_path(&b);
        fs::create_dir_all(pb.parent().unwrap()).unwrap();
        fs::copy(&pa, &pb).unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(Cache::meta_path(&pa)).unwrap()).unwrap();
        let mut forged = meta.clone();
        forged["module"] = serde_json::json!(b.module.to_hex());
        fs::write(Cache::meta_path(&pb), forged.to_string()).unwrap();
        assert!(
            cache.open_artifact(&b).unwrap().is_none(),
            "renamed artifact"
        );
        assert!(cache.open_artifact(&a).unwrap().is_some());

        // Another cache root with its own key does not accept this one's artifacts.
        let other = Cache::open(dir.path().join("d"), None).unwrap();
        let po = other.put_artifact(&a, b"code of a").unwrap().unwrap();
        fs::copy(&pa, &po).unwrap();
        fs::copy(Cache::meta_path(&pa), Cache::meta_path(&po)).unwrap();
        assert!(other.open_artifact(&a).unwrap().is_none(), "another key");
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
    fn the_default_key_file_sits_beside_the_cache_directory() {
        assert_eq!(
            default_key_file(Path::new("/var/cache/wasmq")),
            Path::new("/var/cache/wasmq.key")
        );
        assert_eq!(default_key_file(Path::new("cache")), Path::new("cache.key"));
    }
}
