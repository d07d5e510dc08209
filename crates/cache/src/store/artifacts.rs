//! Compiled artifacts, `artifacts/<engine>/<aa>/<sha256>.<kind>`: their keys, the metadata
//! stored beside each (`.meta`: MAC and provenance), the checks made before one is loaded,
//! and artifacts shared by other hosts.

use std::fs::{self, File};
use std::io::{self, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::Cache;
use super::error::{CacheError, ErrorChain, io_err, unless_missing};
use crate::atomic::write_atomic;
use crate::digest::Digest;
use crate::mac::{MacKey, tags_equal};

/// Names one compiled artifact: the module it came from, the engine that built it, and
/// what kind of artifact it is (`cwasm` for a core module).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtifactKey {
    /// Fingerprint of the engine (version, settings, target, CPU features).
    pub engine: String,
    /// sha256 of the WebAssembly bytes.
    pub module: Digest,
    /// The file extension, which says the module's format (`cwasm` for a core module,
    /// `component.cwasm` for a component).
    pub extension: &'static str,
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

/// Why an artifact failed its check before being loaded.
#[derive(Debug, thiserror::Error)]
enum IntegrityFailure {
    #[error("unreadable metadata")]
    UnreadableMeta(#[source] serde_json::Error),
    #[error("size {actual} differs from the recorded {recorded}")]
    Size { actual: u64, recorded: u64 },
    #[error("metadata names another module or engine")]
    Misnamed,
    #[error("MAC does not match: altered, or made with another key")]
    Mac,
}

/// How the name of an artifact's metadata file ends: `<artifact>.meta`.
const META_SUFFIX: &str = ".meta";

/// Where the metadata of the artifact at `artifact` is.
pub(super) fn meta_path(artifact: &Path) -> PathBuf {
    let mut p = artifact.as_os_str().to_owned();
    p.push(META_SUFFIX);
    PathBuf::from(p)
}

/// True when `path` is the metadata of an artifact, not an artifact.
pub(super) fn is_meta(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(META_SUFFIX))
}

impl Cache {
    /// Where the artifact for `key` lives.
    pub fn artifact_path(&self, key: &ArtifactKey) -> PathBuf {
        self.root
            .join("artifacts")
            .join(&key.engine)
            .join(key.module.prefix())
            .join(format!("{}.{}", key.module.to_hex(), key.extension))
    }

    /// Opens the artifact for `key` if it is present and its bytes match the MAC recorded
    /// when it was written. A missing artifact is `None`; a corrupt, truncated, forged or
    /// foreign one is quarantined, logged, and also `None`, so the caller recompiles.
    pub fn open_artifact(&self, key: &ArtifactKey) -> Result<Option<VerifiedArtifact>, CacheError> {
        let Ok(mac) = &self.mac else {
            return Ok(self.miss());
        };
        let path = self.artifact_path(key);
        let meta_path = meta_path(&path);
        let Some(meta_text) = unless_missing(fs::read(&meta_path), &meta_path)? else {
            return Ok(self.miss());
        };
        let Some(mut file) = unless_missing(File::open(&path), &path)? else {
            return Ok(self.miss());
        };
        if let Some(failure) =
            integrity_failure(mac, key, &file, &meta_text).map_err(io_err(&path))?
        {
            warn!(path = %path.display(), problem = %ErrorChain(&failure), "cached artifact failed its integrity check; quarantined, recompiling");
            self.quarantine_artifact(&path);
            return Ok(self.miss());
        }
        file.rewind().map_err(io_err(&path))?;
        // Last use drives LRU eviction; failing to record it only makes eviction less exact.
        let _ = file.set_modified(SystemTime::now());
        let len = file.metadata().map_err(io_err(&path))?.len();
        self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
        Ok(Some(VerifiedArtifact { file, path, len }))
    }

    /// Counts an artifact not loaded from disk; the `None` that says so.
    fn miss(&self) -> Option<VerifiedArtifact> {
        self.counters.disk_misses.fetch_add(1, Ordering::Relaxed);
        None
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
            kind: key.extension.to_owned(),
        };
        let meta_path = meta_path(&path);
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
            let dest =
                self.quarantine_path(&format!("remote-{}.{}", key.module.to_hex(), key.extension));
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

    /// True when the artifact at `path` has readable metadata, is where that metadata says
    /// it belongs, and its bytes carry the recorded MAC.
    pub(super) fn artifact_verifies(&self, path: &Path) -> bool {
        fs::read(meta_path(path))
            .ok()
            .and_then(|t| serde_json::from_slice::<ArtifactMeta>(&t).ok())
            .is_some_and(|meta| self.artifact_matches(path, &meta))
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
            extension: "",
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

    /// Quarantines the artifact at `path` and its metadata.
    pub(super) fn quarantine_artifact(&self, path: &Path) {
        self.quarantine(path);
        self.quarantine(&meta_path(path));
    }
}

/// What is wrong with the open artifact `file` stored as `key`, given its metadata
/// `meta_text`: `None` when it may be loaded.
fn integrity_failure(
    mac: &MacKey,
    key: &ArtifactKey,
    file: &File,
    meta_text: &[u8],
) -> io::Result<Option<IntegrityFailure>> {
    let meta = match serde_json::from_slice::<ArtifactMeta>(meta_text) {
        Ok(meta) => meta,
        Err(e) => return Ok(Some(IntegrityFailure::UnreadableMeta(e))),
    };
    let len = file.metadata()?.len();
    if meta.size != len {
        return Ok(Some(IntegrityFailure::Size {
            actual: len,
            recorded: meta.size,
        }));
    }
    if meta.module != key.module.to_hex() || meta.engine != key.engine {
        return Ok(Some(IntegrityFailure::Misnamed));
    }
    let actual = mac.tag_file(key, file, len)?;
    Ok((!tags_equal(&actual, &meta.blake3_mac)).then_some(IntegrityFailure::Mac))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::store::tests::key;

    fn read_all(mut file: &File) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(buf)
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
    fn an_artifact_under_another_name_or_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c"), None).unwrap();
        let (a, b) = (key(b"a"), key(b"b"));
        let pa = cache.put_artifact(&a, b"code of a").unwrap().unwrap();
        let pb = cache.artifact_path(&b);
        fs::create_dir_all(pb.parent().unwrap()).unwrap();
        fs::copy(&pa, &pb).unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(meta_path(&pa)).unwrap()).unwrap();
        let mut forged = meta.clone();
        forged["module"] = serde_json::json!(b.module.to_hex());
        fs::write(meta_path(&pb), forged.to_string()).unwrap();
        assert!(
            cache.open_artifact(&b).unwrap().is_none(),
            "renamed artifact"
        );
        assert!(cache.open_artifact(&a).unwrap().is_some());

        // Another cache root with its own key does not accept this one's artifacts.
        let other = Cache::open(dir.path().join("d"), None).unwrap();
        let po = other.put_artifact(&a, b"code of a").unwrap().unwrap();
        fs::copy(&pa, &po).unwrap();
        fs::copy(meta_path(&pa), meta_path(&po)).unwrap();
        assert!(other.open_artifact(&a).unwrap().is_none(), "another key");
    }
}
