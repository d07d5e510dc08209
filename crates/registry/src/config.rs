//! Which registries, reached how, with whose credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Credentials for one registry. They come from the operator's config or environment,
/// never from a job.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials (and the registry's anonymous token flow when it asks for one).
    #[default]
    Anonymous,
    /// HTTP basic, or a username and password exchanged for a bearer token when the
    /// registry asks for one.
    Basic { username: String, password: String },
    /// A bearer token given as it is.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("anonymous"),
            Credentials::Basic { username, .. } => write!(f, "basic ({username}, password ***)"),
            Credentials::Bearer(_) => f.write_str("bearer token ***"),
        }
    }
}

/// How this process talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `HOST:PORT`s reached over plain HTTP; every other registry over HTTPS.
    pub insecure: Vec<String>,
    /// Credentials by `HOST[:PORT]`.
    pub credentials: BTreeMap<String, Credentials>,
    /// Credentials for registries not in `credentials`.
    pub default_credentials: Credentials,
    /// Bound on connecting to a registry.
    pub connect_timeout: Duration,
    /// Bound on waiting for a registry's next bytes.
    pub read_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            credentials: BTreeMap::new(),
            default_credentials: Credentials::Anonymous,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl RegistryConfig {
    /// The credentials for `registry` (`HOST[:PORT]`).
    pub fn credentials_for(&self, registry: &str) -> &Credentials {
        self.credentials
            .get(registry)
            .unwrap_or(&self.default_credentials)
    }

    /// Whether `registry` is reached over plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|h| h == registry)
    }
}

/// A store in a registry: `oci://HOST[:PORT]/REPOSITORY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// The repository, e.g. `wasmq/modules`.
    pub repository: String,
}

impl StoreUrl {
    /// Parses `oci://HOST[:PORT]/REPOSITORY`; `None` when `text` is not an `oci://` URL
    /// (a directory path), an error when it is one but malformed.
    pub fn parse(text: &str) -> Option<Result<StoreUrl, String>> {
        let rest = text.strip_prefix("oci://")?.trim_end_matches('/');
        let bad = |why: &str| {
            Err(format!(
                "{text:?} is not oci://HOST[:PORT]/REPOSITORY: it {why}"
            ))
        };
        if !rest.contains('/') {
            return Some(bad("names no repository"));
        }
        if rest.contains('@') {
            return Some(bad("names a digest; a store is a whole repository"));
        }
        // Checked as a reference to a tag of the repository, by the job format's rules.
        Some(
            match wasmq_spec::parse_oci_reference(&format!("{rest}:probe")) {
                Ok(r) => Ok(StoreUrl {
                    registry: r.registry.to_owned(),
                    repository: r.repository.to_owned(),
                }),
                Err(why) => bad(&why.to_string()),
            },
        )
    }

    /// A reference to `tag` in this repository.
    pub fn tagged(&self, tag: &str) -> oci_client::Reference {
        oci_client::Reference::with_tag(self.registry.clone(), self.repository.clone(), tag.into())
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_and_paths_are_not_urls() {
        let s = StoreUrl::parse("oci://127.0.0.1:5000/wasmq/modules")
            .unwrap()
            .unwrap();
        assert_eq!(s.registry, "127.0.0.1:5000");
        assert_eq!(s.repository, "wasmq/modules");
        assert_eq!(s.to_string(), "oci://127.0.0.1:5000/wasmq/modules");
        assert!(StoreUrl::parse("./cache").is_none());
        let no_repo = StoreUrl::parse("oci://modules").unwrap().unwrap_err();
        assert!(no_repo.contains("names no repository"), "{no_repo}");
        assert!(
            StoreUrl::parse("oci://registry.example/Upper")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn credentials_never_print_secrets() {
        let c = Credentials::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("xyzzy".into())).contains("xyzzy"));
    }
}
