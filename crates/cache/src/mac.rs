//! The artifact MAC: a keyed BLAKE3 over an artifact, its name and its length.
//!
//! A compiled artifact is native code that is mapped and run, so it is only loaded when it
//! carries a tag that only a holder of the key could have made. The key lives outside the
//! cache directory: whoever can write the cache (another tenant's worker on a shared
//! volume, a restored backup, a bit flip) cannot forge a tag without also reading the key.
//!
//! The file is mapped, not read, to hash it: a 3 MB artifact is checked in a fraction of a
//! millisecond, on several cores when it is large, which keeps a disk hit far cheaper than
//! a compile.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::{ArtifactKey, Digest};

/// Above this size the hash is spread over the rayon pool.
const PARALLEL_ABOVE: usize = 256 * 1024;

/// A key file whose content is not a key: the operator's mistake, refused rather than
/// replaced. It travels as the [`io::ErrorKind::InvalidData`] error of
/// [`MacKey::load_or_create`].
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is not an artifact key (64 hex digits); delete it to generate a new one",
    path.display()
)]
struct NotAKey {
    path: PathBuf,
    #[source]
    source: hex::FromHexError,
}

/// The secret that tags artifacts.
#[derive(Clone)]
pub struct MacKey([u8; 32]);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// A fresh random key.
    pub fn generate() -> io::Result<MacKey> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(io::Error::other)?;
        Ok(MacKey(k))
    }

    /// Reads the key at `path`, creating it (0600, random) when there is none. Two
    /// processes starting at once agree on one key: the file is created exclusively, and
    /// the loser reads the winner's.
    pub fn load_or_create(path: &Path) -> io::Result<MacKey> {
        match Self::read(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let key = Self::generate()?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-key-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(dir)?;
        writeln!(tmp, "{}", hex::encode(key.0))?;
        tmp.as_file().sync_all()?;
        match tmp.persist_noclobber(path) {
            Ok(_) => Ok(key),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Self::read(path),
            Err(e) => Err(e.error),
        }
    }

    fn read(path: &Path) -> io::Result<MacKey> {
        let mut text = String::new();
        File::open(path)?.read_to_string(&mut text)?;
        let mut k = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut k).map_err(|source| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                NotAKey {
                    path: path.to_owned(),
                    source,
                },
            )
        })?;
        Ok(MacKey(k))
    }

    fn hasher(&self, engine: &str, kind: &str, module: &Digest, len: u64) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        // The name is bound into the tag: a valid artifact copied under another module's
        // or engine's name does not verify.
        for part in [engine.as_bytes(), kind.as_bytes()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(module.as_bytes());
        h.update(&len.to_le_bytes());
        h
    }

    /// The tag of `bytes` stored as `key`.
    pub fn tag(&self, key: &ArtifactKey, bytes: &[u8]) -> String {
        let mut h = self.hasher(&key.engine, key.extension, &key.module, bytes.len() as u64);
        update(&mut h, bytes);
        h.finalize().to_hex().to_string()
    }

    /// The tag of the open `file` (its first `len` bytes) stored as `key`.
    pub fn tag_file(&self, key: &ArtifactKey, file: &File, len: u64) -> io::Result<String> {
        self.tag_file_named(&key.engine, key.extension, &key.module, file, len)
    }

    /// [`MacKey::tag_file`] for an artifact named by its parts.
    pub(crate) fn tag_file_named(
        &self,
        engine: &str,
        kind: &str,
        module: &Digest,
        file: &File,
        len: u64,
    ) -> io::Result<String> {
        let mut h = self.hasher(engine, kind, module, len);
        if len > 0 {
            let len = usize::try_from(len).map_err(io::Error::other)?;
            // SAFETY: a read-only private mapping that is only read while `map` lives.
            // Cache writers never modify a file in place (they write a temp file and
            // rename it), so the pages do not change under the hash; a third party that
            // truncates the file in place could make the read fault, which is the same
            // exposure wasmtime's own mapping of the artifact has.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
            update(&mut h, &map);
        }
        Ok(h.finalize().to_hex().to_string())
    }
}

fn update(h: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() > PARALLEL_ABOVE {
        h.update_rayon(bytes);
    } else {
        h.update(bytes);
    }
}

/// True when `a` and `b` are equal, in time independent of where they differ.
pub(crate) fn tags_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(engine: &str) -> ArtifactKey {
        ArtifactKey {
            engine: engine.into(),
            module: Digest::of(b"m"),
            extension: "cwasm",
        }
    }

    #[test]
    fn tag_binds_key_name_and_bytes() {
        let k = MacKey::generate().unwrap();
        let other = MacKey::generate().unwrap();
        let t = k.tag(&key("e1"), b"code");
        assert_eq!(t, k.tag(&key("e1"), b"code"));
        assert_ne!(t, other.tag(&key("e1"), b"code"), "another key");
        assert_ne!(t, k.tag(&key("e2"), b"code"), "another engine");
        assert_ne!(t, k.tag(&key("e1"), b"codf"), "other bytes");
        let big = vec![7u8; 3 << 20];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, &big).unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(
            k.tag_file(&key("e1"), &f, big.len() as u64).unwrap(),
            k.tag(&key("e1"), &big),
            "the parallel file path and the in-memory path agree"
        );
    }

    #[test]
    fn key_file_is_created_once_private_and_reread() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/artifact.key");
        let a = MacKey::load_or_create(&p).unwrap();
        let b = MacKey::load_or_create(&p).unwrap();
        assert_eq!(a.0, b.0);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&p, "not a key").unwrap();
        let e = MacKey::load_or_create(&p).unwrap_err();
        assert!(e.to_string().contains("not an artifact key"), "{e}");
    }

    #[test]
    fn constant_time_compare() {
        assert!(tags_equal("abc", "abc"));
        assert!(!tags_equal("abc", "abd"));
        assert!(!tags_equal("abc", "ab"));
    }
}
