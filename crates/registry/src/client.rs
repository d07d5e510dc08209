//! [`Registry`]: push and pull modules, resolve references.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use tracing::debug;
use wasmq_cache::Digest;
use wasmq_cache::remote::{BoxFuture, ModuleSource, RemoteError, ResolvedReference};

use crate::config::{Credentials, RegistryConfig, StoreUrl};
use crate::error::classify;
use crate::{WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};

/// Digest-pinned references resolved so far: a manifest digest names its layers forever.
const PINNED_CACHE: usize = 4096;

/// The manifest media types a reference may resolve to (an index is refused with a
/// message of its own).
const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// The registry client of a process, with the module store it pushes to and pulls from
/// (when the module store is a registry).
pub struct Registry {
    client: Client,
    config: RegistryConfig,
    /// The module store, when it is `oci://...`.
    store: Option<StoreUrl>,
    pinned: Mutex<LruCache<String, ResolvedReference>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A client with `config`; `store` is the module store's repository, if it is one.
    pub fn new(config: RegistryConfig, store: Option<StoreUrl>) -> Registry {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.insecure.clone()),
            // One request per blob: the distribution registry takes it, and a module
            // is small enough to send whole.
            use_monolithic_push: true,
            platform_resolver: None,
            connect_timeout: Some(config.connect_timeout),
            read_timeout: Some(config.read_timeout),
            user_agent: concat!("wasmq/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        });
        Registry {
            client,
            config,
            store,
            pinned: Mutex::new(LruCache::new(
                NonZeroUsize::new(PINNED_CACHE).expect("non-zero"),
            )),
        }
    }

    /// The module store, when it is a registry.
    pub fn store(&self) -> Option<&StoreUrl> {
        self.store.as_ref()
    }

    /// The credentials for `registry`, as the client takes them.
    pub(crate) fn auth(&self, registry: &str) -> RegistryAuth {
        match self.config.credentials_for(registry) {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::Bearer(t) => RegistryAuth::Bearer(t.clone()),
        }
    }

    /// Stores the client's credentials for `reference`'s registry (blob requests use
    /// what an earlier manifest request stored).
    pub(crate) async fn authorize(&self, reference: &Reference) {
        let auth = self.auth(reference.registry());
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &auth)
            .await;
    }

    /// Pushes a blob unless the repository has it already.
    pub(crate) async fn push_blob_once(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        digest: &str,
    ) -> Result<(), RemoteError> {
        self.authorize(reference).await;
        let what = || format!("pushing blob {digest} to {}", reference.whole());
        let exists = self
            .client
            .blob_exists(reference, digest)
            .await
            .map_err(|e| classify(&what(), e))?;
        if !exists {
            self.client
                .push_blob(reference, bytes, digest)
                .await
                .map_err(|e| classify(&what(), e))?;
        }
        Ok(())
    }

    /// Pushes `bytes` as a wasm artifact (the CNCF layout) to `repo`, tagged `tag`, and
    /// returns the module's digest and the manifest's.
    pub async fn push_wasm(
        &self,
        repo: &StoreUrl,
        tag: &str,
        bytes: &[u8],
    ) -> Result<(Digest, String), RemoteError> {
        let module = Digest::of(bytes);
        let reference = repo.tagged(tag);
        let layer_digest = format!("sha256:{}", module.to_hex());
        let component = bytes.len() >= 8 && bytes[6..8] == [1, 0];
        // A fixed creation time: pushing the same module again makes the same manifest.
        let config = serde_json::json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": "wasm",
            "os": if component { "wasip2" } else { "wasip1" },
            "layerDigests": [layer_digest],
        });
        let config = serde_json::to_vec(&config).expect("config serializes");
        let config_digest = sha256(&config);
        self.push_blob_once(&reference, bytes.to_vec(), &layer_digest)
            .await?;
        self.push_blob_once(&reference, config.clone(), &config_digest)
            .await?;
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
            config: descriptor(WASM_CONFIG_MEDIA_TYPE, &config_digest, config.len()),
            layers: vec![descriptor(
                WASM_LAYER_MEDIA_TYPE,
                &layer_digest,
                bytes.len(),
            )],
            ..OciImageManifest::default()
        };
        let manifest_digest = self.push_manifest(&reference, manifest).await?;
        Ok((module, manifest_digest))
    }

    /// Pushes `manifest` under `reference` and returns its digest.
    pub(crate) async fn push_manifest(
        &self,
        reference: &Reference,
        manifest: OciImageManifest,
    ) -> Result<String, RemoteError> {
        self.authorize(reference).await;
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| OCI_IMAGE_MEDIA_TYPE.to_owned());
        let body = serde_json::to_vec(&manifest).expect("manifest serializes");
        let digest = sha256(&body);
        let content_type = media_type.parse().map_err(|e| {
            RemoteError::Unavailable(format!("manifest media type {media_type:?}: {e}"))
        })?;
        self.client
            .push_manifest_raw(reference, body, content_type)
            .await
            .map_err(|e| classify(&format!("pushing manifest {}", reference.whole()), e))?;
        Ok(digest)
    }

    /// Pushes module `bytes` to the module store (a no-op for a module it has), returning
    /// its digest.
    pub async fn push_module(&self, bytes: &[u8]) -> Result<Digest, RemoteError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| RemoteError::Unavailable("the module store is not a registry".into()))?;
        let digest = Digest::of(bytes);
        let tag = format!("module-{}", digest.to_hex());
        self.push_wasm(store, &tag, bytes).await?;
        Ok(digest)
    }

    /// The bytes of blob `digest` of `reference`'s repository, checked against it.
    pub(crate) async fn pull_blob(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<Vec<u8>, RemoteError> {
        self.authorize(reference).await;
        let mut bytes = Vec::new();
        self.client
            .pull_blob(reference, digest, &mut bytes)
            .await
            .map_err(|e| {
                classify(
                    &format!(
                        "pulling blob {digest} from {}/{}",
                        reference.registry(),
                        reference.repository()
                    ),
                    e,
                )
            })?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(RemoteError::DigestMismatch(format!(
                "the registry sent {} bytes for blob {digest} of {}/{} whose digest is {actual}",
                bytes.len(),
                reference.registry(),
                reference.repository()
            )));
        }
        Ok(bytes)
    }

    /// The raw manifest `reference` names, with its digest (checked against the
    /// reference's digest when it has one).
    pub(crate) async fn pull_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<u8>, String), RemoteError> {
        let auth = self.auth(reference.registry());
        let (body, digest) = self
            .client
            .pull_manifest_raw(reference, &auth, MANIFEST_TYPES)
            .await
            .map_err(|e| classify(&format!("reading manifest {}", reference.whole()), e))?;
        let actual = sha256(&body);
        if let Some(pinned) = reference.digest()
            && actual != pinned
        {
            return Err(RemoteError::DigestMismatch(format!(
                "the registry sent a manifest for {} whose digest is {actual}",
                reference.whole()
            )));
        }
        debug!(reference = %reference.whole(), %digest, "manifest read");
        Ok((body.to_vec(), actual))
    }

    /// What `reference` names: its manifest pinned by digest, and the digest of its one
    /// WebAssembly layer.
    pub async fn resolve_reference(
        &self,
        reference: &str,
    ) -> Result<ResolvedReference, RemoteError> {
        let parsed = wasmq_spec::parse_oci_reference(reference)
            .map_err(|why| RemoteError::NotFound(format!("module.oci {reference:?} {why}")))?;
        let pinned_key = parsed.digest.map(|_| reference.to_owned());
        if let Some(key) = &pinned_key
            && let Some(hit) = self.pinned.lock().expect("pinned lock").get(key)
        {
            return Ok(hit.clone());
        }
        let oci = to_reference(&parsed);
        let (body, manifest_digest) = self.pull_manifest(&oci).await?;
        let manifest: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            RemoteError::NotWasm(format!("{reference} has a manifest that is not JSON: {e}"))
        })?;
        if manifest.get("manifests").is_some() {
            return Err(RemoteError::NotWasm(format!(
                "{reference} is an image index (several manifests); name the manifest of one wasm layer by its digest"
            )));
        }
        let manifest: OciImageManifest = serde_json::from_value(manifest).map_err(|e| {
            RemoteError::NotWasm(format!("{reference} has a manifest wasmq cannot read: {e}"))
        })?;
        let [layer] = manifest.layers.as_slice() else {
            return Err(RemoteError::NotWasm(format!(
                "{reference} has {} layers; a wasm artifact has exactly one (the module)",
                manifest.layers.len()
            )));
        };
        let module = layer
            .digest
            .strip_prefix("sha256:")
            .and_then(|h| h.parse::<Digest>().ok())
            .ok_or_else(|| {
                RemoteError::NotWasm(format!(
                    "{reference} has a layer digest {:?} that is not sha256",
                    layer.digest
                ))
            })?;
        let resolved = ResolvedReference {
            pinned: format!(
                "{}/{}@{manifest_digest}",
                parsed.registry, parsed.repository
            ),
            module,
        };
        self.pinned
            .lock()
            .expect("pinned lock")
            .put(resolved.pinned.clone(), resolved.clone());
        Ok(resolved)
    }

    /// Module `digest` from `from`'s repository (a pinned reference), or from the module
    /// store.
    pub async fn pull_module(
        &self,
        from: Option<&str>,
        digest: &Digest,
    ) -> Result<Vec<u8>, RemoteError> {
        let reference = match from {
            Some(r) => {
                let parsed = wasmq_spec::parse_oci_reference(r)
                    .map_err(|why| RemoteError::NotFound(format!("module.oci {r:?} {why}")))?;
                to_reference(&parsed)
            }
            None => match &self.store {
                Some(s) => s.tagged(&format!("module-{}", digest.to_hex())),
                None => {
                    return Err(RemoteError::NotFound(format!(
                        "module sha256:{digest} is not in the module store"
                    )));
                }
            },
        };
        // The manifest (or store tag) is not read: the layer is addressed by its digest.
        self.pull_blob(&reference, &format!("sha256:{}", digest.to_hex()))
            .await
            .map_err(|e| match e {
                RemoteError::NotFound(m) => RemoteError::NotFound(format!(
                    "module sha256:{digest} is not in {}/{}: {m}",
                    reference.registry(),
                    reference.repository()
                )),
                other => other,
            })
    }
}

impl ModuleSource for Registry {
    fn is_store(&self) -> bool {
        self.store.is_some()
    }
    fn module<'a>(
        &'a self,
        from: Option<&'a str>,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        Box::pin(self.pull_module(from, digest))
    }

    fn resolve<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<ResolvedReference, RemoteError>> {
        Box::pin(self.resolve_reference(reference))
    }
}

/// The client's reference for a parsed job reference (the digest wins over a tag).
fn to_reference(r: &wasmq_spec::OciReference<'_>) -> Reference {
    match (r.tag, r.digest) {
        (_, Some(d)) => Reference::with_digest(
            r.registry.to_owned(),
            r.repository.to_owned(),
            format!("sha256:{d}"),
        ),
        (Some(t), None) => {
            Reference::with_tag(r.registry.to_owned(), r.repository.to_owned(), t.to_owned())
        }
        (None, None) => unreachable!("parse_oci_reference requires a tag or a digest"),
    }
}

pub(crate) fn descriptor(media_type: &str, digest: &str, size: usize) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size: size as i64,
        ..OciDescriptor::default()
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
