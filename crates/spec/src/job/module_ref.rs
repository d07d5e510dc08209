//! Where a job's module comes from ([`ModuleRef`]): a sha256 in the module store, inline
//! base64 bytes, an OCI reference ([`parse_oci_reference`]) or a local path.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::Shown;

/// Where a job's module comes from: an object with exactly one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModuleRef {
    /// The sha256 (64 lowercase hex digits) of a module in the module store.
    Sha256(String),
    /// The module's bytes, base64-encoded.
    Base64(String),
    /// An OCI reference, `HOST[:PORT]/REPOSITORY:TAG` or `HOST[:PORT]/REPOSITORY@sha256:<hex>`,
    /// to a WebAssembly artifact (one `application/wasm` layer, or any single layer whose
    /// bytes are WebAssembly). `wasmq submit` pins a tag to its manifest digest.
    Oci(String),
    /// A local file; accepted only by the local tools, which turn it into a `sha256`
    /// (so the job message's schema leaves it out).
    #[schemars(skip)]
    Path(PathBuf),
}

/// Says that `module` takes exactly one key, where serde_json would only say "expected
/// value" for a second key or a value that is not an object.
impl<'de> Deserialize<'de> for ModuleRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KEYS: &[&str] = &["sha256", "base64", "oci", "path"];
        const EXPECTED: &str = "an object with one key: sha256, base64, oci or path";

        struct Module;

        impl<'de> Visitor<'de> for Module {
            type Value = ModuleRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModuleRef, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::invalid_length(0, &EXPECTED));
                };
                let module = match key.as_str() {
                    "sha256" => ModuleRef::Sha256(map.next_value()?),
                    "base64" => ModuleRef::Base64(map.next_value()?),
                    "oci" => ModuleRef::Oci(map.next_value()?),
                    "path" => ModuleRef::Path(map.next_value()?),
                    other => return Err(de::Error::unknown_field(other, KEYS)),
                };
                if let Some(second) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format_args!(
                        "a second key {}; expected {EXPECTED}",
                        Shown(&second)
                    )));
                }
                Ok(module)
            }
        }

        d.deserialize_map(Module)
    }
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Longest accepted `module.oci` reference, in bytes.
pub const MAX_OCI_REFERENCE_LEN: usize = 1024;

/// An OCI reference taken apart: `REGISTRY/REPOSITORY[:TAG][@sha256:<hex>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference<'a> {
    /// `HOST[:PORT]`: always explicit (there is no default registry).
    pub registry: &'a str,
    /// The repository path (lowercase components separated by `/`).
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    /// The manifest digest's 64 hex digits.
    pub digest: Option<&'a str>,
}

impl OciReference<'_> {
    /// `REGISTRY/REPOSITORY`.
    pub fn repository_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// Why a `module.oci` reference does not parse; its text completes a sentence that names
/// the reference (`module.oci "x" must be HOST[:PORT]/...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciReferenceError {
    /// Longer than [`MAX_OCI_REFERENCE_LEN`].
    #[error("is longer than {MAX_OCI_REFERENCE_LEN} bytes")]
    TooLong,
    /// A digest after `@` that is not `sha256:` and 64 lowercase hex digits.
    #[error("has a digest that is not sha256:<64 lowercase hex digits>")]
    BadDigest,
    /// No `/` between a registry and a repository.
    #[error("must be HOST[:PORT]/REPOSITORY:TAG or HOST[:PORT]/REPOSITORY@sha256:<hex>")]
    NoRepository,
    /// What stands before the first `/` is not a registry host.
    #[error(
        "must start with a registry host (HOST[:PORT], with a dot, a port or localhost), not {0:?}"
    )]
    BadRegistry(String),
    /// A repository path component that is not lowercase letters, digits and `. _ -`.
    #[error(
        "has a repository {0:?} that is not lowercase letters, digits and . _ - between slashes"
    )]
    BadRepository(String),
    /// A tag that is not 1 to 128 of `A-Z a-z 0-9 . _ -`.
    #[error("has a tag {0:?} that is not 1 to 128 of A-Z a-z 0-9 . _ -")]
    BadTag(String),
    /// Neither `:TAG` nor `@sha256:<hex>`.
    #[error("names neither a tag (:TAG) nor a digest (@sha256:<hex>)")]
    NoTagOrDigest,
}

/// Takes `reference` apart, or says what is wrong with it.
pub fn parse_oci_reference(reference: &str) -> Result<OciReference<'_>, OciReferenceError> {
    if reference.len() > MAX_OCI_REFERENCE_LEN {
        return Err(OciReferenceError::TooLong);
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, d)) => {
            let hex = d
                .strip_prefix("sha256:")
                .filter(|h| is_sha256_hex(h))
                .ok_or(OciReferenceError::BadDigest)?;
            (rest, Some(hex))
        }
        None => (reference, None),
    };
    let Some((registry, path)) = rest.split_once('/') else {
        return Err(OciReferenceError::NoRepository);
    };
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if !host_ok || !port_ok || !(host.contains('.') || port.is_some() || host == "localhost") {
        return Err(OciReferenceError::BadRegistry(registry.to_owned()));
    }
    // The tag follows the last ':' after the last '/'.
    let (repository, tag) = match path.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (path, None),
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    };
    if !repository.split('/').all(component_ok) {
        return Err(OciReferenceError::BadRepository(repository.to_owned()));
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(OciReferenceError::BadTag(t.to_owned()));
        }
    }
    if tag.is_none() && digest.is_none() {
        return Err(OciReferenceError::NoTagOrDigest);
    }
    Ok(OciReference {
        registry,
        repository,
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::decode_job;

    #[test]
    fn oci_references_are_taken_apart_or_refused_with_a_reason() {
        let hex = "a".repeat(64);
        let r = parse_oci_reference("127.0.0.1:5000/team/tool:v1.2").unwrap();
        assert_eq!(
            (r.registry, r.repository, r.tag, r.digest),
            ("127.0.0.1:5000", "team/tool", Some("v1.2"), None)
        );
        assert_eq!(r.repository_path(), "127.0.0.1:5000/team/tool");
        let pinned = format!("registry.example/tool@sha256:{hex}");
        let r = parse_oci_reference(&pinned).unwrap();
        assert_eq!((r.tag, r.digest), (None, Some(hex.as_str())));
        assert!(parse_oci_reference(&format!("localhost/t:1@sha256:{hex}")).is_ok());
        for (bad, why) in [
            ("tool:v1", "must be HOST"),
            ("docker/tool:v1", "registry host"),
            ("registry.example/Tool:v1", "repository"),
            ("registry.example/tool", "neither a tag"),
            ("registry.example/tool:", "tag"),
            ("registry.example/tool@sha256:abc", "digest"),
            ("registry.example:port/tool:1", "registry host"),
            ("registry.example//tool:1", "repository"),
        ] {
            let e = parse_oci_reference(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let job = decode_job(br#"{"module":{"oci":"tool:v1"}}"#)
            .map(|_| ())
            .unwrap_err();
        assert!(job.0.message.contains("module.oci"), "{}", job.0.message);
    }
}
