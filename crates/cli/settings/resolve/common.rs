//! The settings every command resolves: the cache, the module and artifact stores,
//! registries, and the log format.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use wasmq_cache::{Cache, CacheOptions};
use wasmq_registry::{Registry, RegistryConfig, StoreUrl};

use super::registries;
use crate::settings::args::{CommonArgs, LogFormat};
use crate::settings::defaults;
use crate::settings::sources::{Entries, Layers};

/// Where `submit` and `prewarm` put modules and workers look for them.
#[derive(Debug, Clone)]
pub enum ModuleStore {
    /// A directory holding `modules/` (the cache directory by default).
    Dir(PathBuf),
    /// A repository of an OCI registry.
    Oci(StoreUrl),
}

/// The settings of [`CommonArgs`], checked.
pub struct CommonSettings {
    cache_dir: PathBuf,
    /// The cap on the artifact cache, in bytes.
    pub cache_max_bytes: Option<u64>,
    artifact_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Where modules are stored.
    module_store: ModuleStore,
    /// Where compiled artifacts are shared, if anywhere.
    artifact_store: Option<StoreUrl>,
    /// How registries are reached.
    registry_config: RegistryConfig,
    /// The registry client, made on first use.
    registry: OnceLock<Arc<Registry>>,
    /// Every setting above, with its source.
    pub entries: Entries,
}

impl CommonSettings {
    /// Resolves and checks the common settings.
    pub fn resolve(layers: &Layers, args: &CommonArgs) -> anyhow::Result<CommonSettings> {
        let file = &layers.file;
        let cache_dir = layers.merge(
            "cache_dir",
            args.cache_dir.clone(),
            file.cache_dir.clone(),
            || PathBuf::from(defaults::CACHE_DIR),
        );
        let module_store = layers
            .optional(
                "module_store",
                args.module_store.clone(),
                file.module_store.clone(),
            )
            .try_map(|text| match text {
                None => Ok(ModuleStore::Dir(cache_dir.value.clone())),
                Some(text) => match StoreUrl::parse(&text) {
                    Some(url) => url
                        .map(ModuleStore::Oci)
                        .map_err(|why| anyhow::anyhow!("invalid module_store: {why}")),
                    None => Ok(ModuleStore::Dir(PathBuf::from(text))),
                },
            })?;
        let artifact_store = layers
            .optional(
                "artifact_store",
                args.artifact_store.clone(),
                file.artifact_store.clone(),
            )
            .try_map(|text| {
                text.map(|text| {
                    StoreUrl::parse(&text)
                        .unwrap_or_else(|| {
                            Err(format!("{text:?} is not oci://HOST[:PORT]/REPOSITORY"))
                        })
                        .map_err(|why| anyhow::anyhow!("invalid artifact_store: {why}"))
                })
                .transpose()
            })?;
        let (insecure, registry_config) = registries::config(layers, args)?;
        let cache_max_bytes = layers.optional(
            "cache_max_bytes",
            args.cache_max_bytes,
            file.cache_max_bytes,
        );
        let artifact_key_file = layers.optional(
            "artifact_key_file",
            args.artifact_key_file.clone(),
            file.artifact_key_file.clone(),
        );
        let log_format = layers.merge("log_format", args.log_format, file.log_format, || {
            LogFormat::Human
        });

        let mut entries = Entries::default();
        entries.push(
            "config",
            args.config
                .as_ref()
                .map_or("none".into(), |p| p.display().to_string()),
            layers.source("config", args.config.is_some(), false),
        );
        let cache_dir = entries.add("cache_dir", cache_dir, |d| d.display().to_string());
        let cache_max_bytes = entries.add("cache_max_bytes", cache_max_bytes, |n| {
            n.map_or("no cap".into(), |n| n.to_string())
        });
        let artifact_key_file = entries.add("artifact_key_file", artifact_key_file, |p| {
            p.as_ref().map_or_else(
                || format!("{}.key", cache_dir.display()),
                |p| p.display().to_string(),
            )
        });
        let module_store = entries.add("module_store", module_store, |s| match s {
            ModuleStore::Dir(d) => d.display().to_string(),
            ModuleStore::Oci(u) => u.to_string(),
        });
        let artifact_store = entries.add("artifact_store", artifact_store, |u| {
            u.as_ref().map_or("none".into(), |u| u.to_string())
        });
        entries.add("insecure_registries", insecure, |hosts| {
            if hosts.is_empty() {
                "none".into()
            } else {
                hosts.join(",")
            }
        });
        let registry_config = entries.add("registries", registry_config, registries::shown);
        let log_format = entries.add("log_format", log_format, |f| {
            format!("{f:?}").to_lowercase()
        });
        Ok(CommonSettings {
            cache_dir,
            cache_max_bytes,
            artifact_key_file,
            log_format,
            module_store,
            artifact_store,
            registry_config,
            registry: OnceLock::new(),
            entries,
        })
    }

    /// Opens the cache directory.
    pub fn open_cache(&self) -> anyhow::Result<Arc<Cache>> {
        let options = CacheOptions {
            max_bytes: self.cache_max_bytes,
            key_file: self.artifact_key_file.clone(),
            module_root: match &self.module_store {
                ModuleStore::Dir(d) if *d != self.cache_dir => Some(d.clone()),
                _ => None,
            },
            // With a registry as the module store, the modules here are copies.
            modules_evictable: matches!(self.module_store, ModuleStore::Oci(_)),
        };
        let cache = Cache::open_with(&self.cache_dir, options)
            .with_context(|| format!("failed to open the cache at {}", self.cache_dir.display()))?;
        Ok(Arc::new(cache))
    }

    /// The registry client of this process (made once).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .get_or_init(|| {
                let store = match &self.module_store {
                    ModuleStore::Oci(u) => Some(u.clone()),
                    ModuleStore::Dir(_) => None,
                };
                Arc::new(Registry::new(self.registry_config.clone(), store))
            })
            .clone()
    }

    /// Whether modules are pushed to a registry (the module store is one).
    pub fn pushes_to_registry(&self) -> bool {
        matches!(self.module_store, ModuleStore::Oci(_))
    }

    /// Where compiled artifacts are shared, if anywhere.
    pub fn artifact_store(&self) -> Option<&StoreUrl> {
        self.artifact_store.as_ref()
    }
}
