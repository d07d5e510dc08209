//! The config file: its TOML schema. Every key is optional; unknown keys are an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use wasmq_spec::{LimitsRequest, UnknownImports};

use super::args::LogFormat;

/// The config file. Every key is optional; unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub cache_dir: Option<PathBuf>,
    pub cache_max_bytes: Option<u64>,
    pub artifact_key_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub concurrency: Option<usize>,
    pub hot_set_size: Option<usize>,
    pub max_module_bytes: Option<usize>,
    pub max_core_instance_bytes: Option<usize>,
    pub unknown_imports: Option<UnknownImports>,
    pub work_root: Option<PathBuf>,
    pub default_work_dir: Option<String>,
    pub pooling: Option<bool>,
    pub amqp_url: Option<String>,
    pub queue_prefix: Option<String>,
    pub delivery_limit: Option<u32>,
    pub drain_timeout_secs: Option<u64>,
    pub heartbeat_interval_secs: Option<u64>,
    pub max_message_bytes: Option<usize>,
    pub worker_id: Option<String>,
    pub prefetch: Option<u16>,
    pub consumer_timeout_ms: Option<u64>,
    pub metrics_addr: Option<String>,
    pub results_queue_ttl_secs: Option<u32>,
    pub results_queue_max_length: Option<u32>,
    pub batch_results_max_age_secs: Option<u64>,
    pub batch_results_max_bytes: Option<u64>,
    pub management_url: Option<String>,
    pub dashboard_addr: Option<String>,
    pub module_store: Option<String>,
    pub artifact_store: Option<String>,
    pub insecure_registries: Option<Vec<String>>,
    pub compile_wait_secs: Option<u64>,
    pub registry_retry_secs: Option<u64>,
    pub allowed_outbound_hosts: Option<Vec<String>>,
    pub outbound_private_networks: Option<Vec<String>>,
    pub outbound_ca_file: Option<PathBuf>,
    /// Credentials by registry (`HOST[:PORT]`).
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryAuthConfig>,
    #[serde(default)]
    pub volumes: BTreeMap<String, VolumeConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Tenant policies, by broker user (`wasmq worker`; see docs/configuration.md).
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// The policy of jobs without a verified tenant that has a policy.
    pub default_tenant: Option<TenantConfig>,
    /// Whether such jobs run under `default_tenant` or are rejected.
    pub unverified_jobs: Option<UnverifiedJobsConfig>,
}

impl FileConfig {
    /// Reads the config file at `path`; no file (`None`) sets nothing.
    pub fn read(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// `[registries."HOST:PORT"]`: a username and password, or a bearer token.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuthConfig {
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// `[tenants.NAME]` and `[default_tenant]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Names of `[volumes]` its jobs may mount.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Whether its jobs may carry their module inline.
    #[serde(default)]
    pub inline_modules: bool,
    #[serde(default)]
    pub limits: TenantLimitsConfig,
    /// Registries or repository prefixes its jobs may name in `module.oci`.
    #[serde(default)]
    pub registries: Vec<String>,
    /// Its share of a worker against other tenants' (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
    /// The most of its jobs running at once on one worker.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// The outbound hosts its jobs may reach; the worker's `allowed_outbound_hosts` when
    /// absent.
    #[serde(default)]
    pub allowed_outbound_hosts: Option<Vec<String>>,
}

/// `[tenants.NAME.limits.maximum]`: a tenant has the worker's defaults (lowered to its
/// maximum) and a maximum of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitsConfig {
    #[serde(default)]
    pub maximum: LimitsRequest,
}

/// `unverified_jobs = "default" | "reject"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnverifiedJobsConfig {
    Default,
    Reject,
}

/// A volume in the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub writable: bool,
}

/// `[limits.default]` and `[limits.maximum]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default)]
    pub default: LimitsRequest,
    #[serde(default)]
    pub maximum: LimitsRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_rejects_unknown_keys() {
        let err = toml::from_str::<FileConfig>("cache_dirr = 'x'").unwrap_err();
        assert!(err.to_string().contains("cache_dirr"), "{err}");
        let ok: FileConfig = toml::from_str(
            "concurrency = 4\n[limits.maximum]\nmemory_bytes = 1048576\n[volumes.data]\npath = '/tmp'\n",
        )
        .unwrap();
        assert_eq!(ok.limits.maximum.memory_bytes, Some(1048576));
    }
}
