//! The host-wide lock of one compile: `locks/<engine>/<sha256>.<kind>.lock`.

use std::fs::{self, File};

use tracing::debug;

use super::Cache;
use super::artifacts::ArtifactKey;

/// The host-wide lock of one compile ([`Cache::lock_compile`]); dropping it releases it.
#[derive(Debug)]
pub struct CompileLock {
    _file: File,
}

impl Cache {
    /// Takes the host-wide lock of compiling `key`, waiting while another process (or
    /// task) holds it: processes that share this cache directory compile a module once
    /// between them. The lock is released when the returned guard is dropped (or the
    /// process dies). `None` when the lock file cannot be created (a read-only cache):
    /// then nobody writes artifacts here and there is nothing to serialise.
    pub fn lock_compile(&self, key: &ArtifactKey) -> Option<CompileLock> {
        let dir = self.root.join("locks").join(&key.engine);
        let path = dir.join(format!("{}.{}.lock", key.module.to_hex(), key.extension));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::key;

    #[test]
    fn the_compile_lock_is_exclusive_across_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), None).unwrap();
        let k = key(b"locked");
        let held = cache.lock_compile(&k).expect("a lock file");
        let path = dir.path().join("locks").join(&k.engine).join(format!(
            "{}.{}.lock",
            k.module.to_hex(),
            k.extension
        ));
        let second = File::options().write(true).open(&path).unwrap();
        assert!(second.try_lock().is_err(), "held by the first");
        drop(held);
        assert!(second.try_lock().is_ok(), "released with its guard");
    }
}
