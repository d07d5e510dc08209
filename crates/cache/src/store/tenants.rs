//! Tenants' own module namespaces, `tenants/<tenant>/modules/<aa>/<sha256>.wasm`: modules a
//! tenant sent inline, which only that tenant's jobs may use.

use std::path::{Path, PathBuf};

use super::Cache;
use super::error::CacheError;
use super::modules::{module_file, put_module_at};
use super::walk::files_below;
use crate::digest::Digest;

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

impl Cache {
    /// Where tenant `tenant` keeps module `digest`: `tenants/<tenant>/modules/<aa>/<sha>.wasm`.
    pub(super) fn tenant_module_path(
        &self,
        tenant: &str,
        digest: &Digest,
    ) -> Result<PathBuf, CacheError> {
        if !valid_tenant_name(tenant) {
            return Err(CacheError::InvalidTenant(tenant.to_owned()));
        }
        let dir = self.root.join("tenants").join(tenant).join("modules");
        Ok(module_file(&dir, digest))
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

    /// Every file under `tenants/<tenant>/modules/<aa>/`.
    pub(super) fn tenant_module_files(&self) -> Result<Vec<PathBuf>, CacheError> {
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
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

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
}
