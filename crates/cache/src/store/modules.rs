//! Modules by digest in the shared store, `modules/<aa>/<sha256>.wasm`: uploaded ones,
//! copies pulled from a remote store, and the provenance kept beside a module.

use std::fs::{self, File};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::warn;

use super::Cache;
use super::error::{CacheError, io_err, unless_missing};
use crate::atomic::write_atomic;
use crate::digest::Digest;

impl Cache {
    /// Where the shared store keeps module `digest`.
    pub(super) fn module_path(&self, digest: &Digest) -> PathBuf {
        module_file(&self.module_root.join("modules"), digest)
    }

    fn provenance_path(&self, digest: &Digest) -> PathBuf {
        self.module_path(digest).with_extension("provenance.json")
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
        let path = self.provenance_path(digest);
        write_atomic(&path, json).map_err(io_err(&path))?;
        Ok(path)
    }

    /// The provenance kept for module `digest`, if any.
    pub fn provenance(&self, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.provenance_path(digest);
        unless_missing(fs::read(&path), &path)
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

    /// The first 8 bytes of module `digest` (from tenant `tenant`'s namespace when given),
    /// unchecked: the header that tells a core module from a component, read before the
    /// whole module is (and is checked against its digest). `None` when absent or shorter.
    pub fn module_header(
        &self,
        tenant: Option<&str>,
        digest: &Digest,
    ) -> Result<Option<[u8; 8]>, CacheError> {
        let path = match tenant {
            Some(t) => self.tenant_module_path(t, digest)?,
            None => self.module_path(digest),
        };
        let Some(mut file) = unless_missing(File::open(&path), &path)? else {
            return Ok(None);
        };
        let mut head = [0u8; 8];
        match file.read_exact(&mut head) {
            Ok(()) => Ok(Some(head)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The module file at `path`, checked against `digest`: `None` when absent or when
    /// its bytes no longer match (then it is quarantined).
    pub(super) fn get_module_at(
        &self,
        path: &Path,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        let Some(bytes) = unless_missing(fs::read(path), path)? else {
            return Ok(None);
        };
        if Digest::of(&bytes) != *digest {
            warn!(path = %path.display(), "stored module does not match its digest; quarantined");
            self.quarantine(path);
            return Ok(None);
        }
        if self.modules_evictable {
            // Last use drives eviction of copies; failing to record it only makes it less exact.
            let _ = File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(SystemTime::now()));
        }
        Ok(Some(bytes))
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
}

/// `<dir>/<aa>/<sha256>.wasm`.
pub(super) fn module_file(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join(digest.prefix())
        .join(format!("{}.wasm", digest.to_hex()))
}

/// Writes a module file unless one of the same length is there (its bytes are checked
/// whenever it is read).
pub(super) fn put_module_at(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    match fs::metadata(path) {
        Ok(m) if m.len() == bytes.len() as u64 => Ok(()),
        _ => write_atomic(path, bytes).map_err(io_err(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
