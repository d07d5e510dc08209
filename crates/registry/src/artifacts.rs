//! [`ArtifactStore`]: compiled artifacts shared by the workers of a fleet through one
//! repository of a registry.
//!
//! An artifact is a manifest tagged `<kind>-<engine>-<module sha256>` (the artifact key)
//! whose config (`application/vnd.wasmq.artifact.config.v1+json`) names the key and
//! carries the MAC made with the fleet's artifact key, and whose one layer
//! (`application/vnd.wasmq.artifact.v1`) is the compiled code. Whoever can push to the
//! repository can push bytes; only a holder of the key can make a MAC that verifies, and
//! nothing is loaded before it does (the sandbox checks it through the cache).

use std::sync::Arc;

use oci_client::manifest::OciImageManifest;
use serde::{Deserialize, Serialize};
use wasmq_cache::ArtifactKey;
use wasmq_cache::remote::{ArtifactSource, BoxFuture, RemoteError, SharedArtifact};

use crate::client::{Registry, descriptor, sha256};
use crate::config::StoreUrl;

/// The media type of an artifact's config.
pub const ARTIFACT_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasmq.artifact.config.v1+json";
/// The media type of its one layer, the compiled code.
pub const ARTIFACT_LAYER_MEDIA_TYPE: &str = "application/vnd.wasmq.artifact.v1";

/// What an artifact's config records.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct ArtifactConfig {
    module: String,
    engine: String,
    kind: String,
    size: u64,
    blake3_mac: String,
}

/// The shared artifact store: one repository of a registry.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    registry: Arc<Registry>,
    repo: StoreUrl,
}

impl ArtifactStore {
    pub fn new(registry: Arc<Registry>, repo: StoreUrl) -> ArtifactStore {
        ArtifactStore { registry, repo }
    }

    /// The tag of `key`: `<kind>-<engine>-<module>`, within a tag's 128 characters.
    pub fn tag(key: &ArtifactKey) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect()
        };
        let mut tag = format!(
            "{}-{}-{}",
            clean(key.extension),
            clean(&key.engine),
            key.module.to_hex()
        );
        tag.truncate(128);
        tag
    }

    async fn fetch(&self, key: &ArtifactKey) -> Result<Option<SharedArtifact>, RemoteError> {
        let reference = self.repo.tagged(&Self::tag(key));
        let body = match self.registry.pull_manifest(&reference).await {
            Ok((body, _)) => body,
            Err(RemoteError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |why: String| {
            RemoteError::NotWasm(format!(
                "shared artifact {} is not one wasmq wrote: {why}",
                reference.whole()
            ))
        };
        let manifest: OciImageManifest =
            serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
        let [layer] = manifest.layers.as_slice() else {
            return Err(bad(format!("{} layers", manifest.layers.len())));
        };
        if manifest.config.media_type != ARTIFACT_CONFIG_MEDIA_TYPE {
            return Err(bad(format!("config type {}", manifest.config.media_type)));
        }
        let config = self
            .registry
            .pull_blob(&reference, &manifest.config.digest)
            .await?;
        let config: ArtifactConfig =
            serde_json::from_slice(&config).map_err(|e| bad(e.to_string()))?;
        if config.module != key.module.to_hex()
            || config.engine != key.engine
            || config.kind != key.extension
            || i64::try_from(config.size).ok() != Some(layer.size)
        {
            return Err(bad("its config names another artifact".into()));
        }
        let bytes = self.registry.pull_blob(&reference, &layer.digest).await?;
        Ok(Some(SharedArtifact {
            bytes,
            mac: config.blake3_mac,
        }))
    }

    async fn push(&self, key: &ArtifactKey, artifact: SharedArtifact) -> Result<(), RemoteError> {
        let reference = self.repo.tagged(&Self::tag(key));
        let config = ArtifactConfig {
            module: key.module.to_hex(),
            engine: key.engine.clone(),
            kind: key.extension.to_owned(),
            size: artifact.bytes.len() as u64,
            blake3_mac: artifact.mac,
        };
        let config = serde_json::to_vec(&config).expect("config serializes");
        let config_digest = sha256(&config);
        let layer_digest = sha256(&artifact.bytes);
        let layer_len = artifact.bytes.len();
        self.registry
            .push_blob_once(&reference, artifact.bytes, &layer_digest)
            .await?;
        self.registry
            .push_blob_once(&reference, config.clone(), &config_digest)
            .await?;
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_owned()),
            config: descriptor(ARTIFACT_CONFIG_MEDIA_TYPE, &config_digest, config.len()),
            layers: vec![descriptor(
                ARTIFACT_LAYER_MEDIA_TYPE,
                &layer_digest,
                layer_len,
            )],
            ..OciImageManifest::default()
        };
        self.registry.push_manifest(&reference, manifest).await?;
        Ok(())
    }
}

impl ArtifactSource for ArtifactStore {
    fn get<'a>(
        &'a self,
        key: &'a ArtifactKey,
    ) -> BoxFuture<'a, Result<Option<SharedArtifact>, RemoteError>> {
        Box::pin(self.fetch(key))
    }

    fn put<'a>(
        &'a self,
        key: &'a ArtifactKey,
        artifact: SharedArtifact,
    ) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(self.push(key, artifact))
    }
}
