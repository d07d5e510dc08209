//! Keeping the store in bounds and in order: eviction past the cap, [`Cache::gc`],
//! [`Cache::verify`] and [`Cache::disk_stats`].

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::{debug, info, warn};

use super::Cache;
use super::artifacts::{is_meta, meta_path};
use super::error::{CacheError, io_err};
use super::walk::files_below;
use crate::atomic::is_temp;
use crate::digest::Digest;

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

/// Temp files older than this are leftovers of a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// A file that eviction may remove: an artifact, or a module copy when modules are
/// evictable.
pub(super) struct ArtifactEntry {
    path: PathBuf,
    /// Its size, with the artifact's metadata.
    pub(super) bytes: u64,
    last_used: SystemTime,
}

impl ArtifactEntry {
    /// The entry of `path` with `extra` bytes beside it, `None` when it cannot be read.
    fn of(path: PathBuf, extra: u64) -> Option<ArtifactEntry> {
        let md = fs::metadata(&path).ok()?;
        Some(ArtifactEntry {
            last_used: md.modified().unwrap_or(UNIX_EPOCH),
            bytes: md.len() + extra,
            path,
        })
    }
}

/// True when the file at `path` was last written longer than [`STALE_TEMP`] ago.
fn is_stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() > STALE_TEMP)
}

/// The size of the file at `path`, 0 when it cannot be read.
fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl Cache {
    /// Every artifact with its size (bytes + metadata) and last use, and every module when
    /// modules are copies of a remote store.
    pub(super) fn artifact_entries(&self) -> Result<Vec<ArtifactEntry>, CacheError> {
        let mut out = Vec::new();
        if self.modules_evictable {
            for file in files_below(&self.module_root.join("modules"), 2)? {
                if !is_temp(&file) {
                    out.extend(ArtifactEntry::of(file, 0));
                }
            }
        }
        for file in files_below(&self.root.join("artifacts"), 3)? {
            if is_temp(&file) || is_meta(&file) {
                continue;
            }
            let meta_len = file_len(&meta_path(&file));
            out.extend(ArtifactEntry::of(file, meta_len));
        }
        Ok(out)
    }

    /// Adds `added` bytes to the evictable total, collecting if it passes the cap.
    pub(super) fn grew(&self, added: u64) {
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

    /// Removes least recently used artifacts until at most `max_bytes` remain, and temp
    /// files left by interrupted writers.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, CacheError> {
        let mut report = GcReport::default();
        for (dir, depth) in [("modules", 2), ("artifacts", 3), ("tenants", 4)] {
            for file in files_below(&self.root.join(dir), depth)? {
                if is_temp(&file) && is_stale(&file) && fs::remove_file(&file).is_ok() {
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
                let _ = fs::remove_file(meta_path(&e.path));
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
        if let Err(disabled) = &self.mac {
            return Err(CacheError::ArtifactsDisabled(disabled.why.clone()));
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
            if !self.artifact_verifies(&entry.path) {
                warn!(path = %entry.path.display(), "artifact failed its integrity check; quarantined");
                self.quarantine_artifact(&entry.path);
                report.quarantined.push(entry.path);
            }
        }
        Ok(report)
    }

    /// What is on disk now.
    pub fn disk_stats(&self) -> Result<DiskStats, CacheError> {
        let mut s = DiskStats {
            max_bytes: self.max_bytes,
            artifacts_disabled: self.artifacts_disabled().map(str::to_owned),
            ..Default::default()
        };
        (s.modules, s.module_bytes) =
            count_wasm(files_below(&self.module_root.join("modules"), 2)?);
        (s.tenant_modules, s.tenant_module_bytes) = count_wasm(self.tenant_module_files()?);
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
}

/// How many of `files` are modules (`.wasm`), and their total size.
fn count_wasm(files: Vec<PathBuf>) -> (u64, u64) {
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "wasm"))
        .fold((0, 0), |(n, bytes), f| (n + 1, bytes + file_len(f)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CacheOptions;
    use crate::store::tests::key;

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
}
