//! Sandbox settings, fixed when the process starts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use wasmq_spec::LimitPolicy;

/// An operator-declared host directory that jobs may mount by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host directory.
    pub host: PathBuf,
    /// Whether jobs may write to it (read-only otherwise).
    pub writable: bool,
}

/// How the sandbox runs jobs.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Default and maximum limits for jobs.
    pub limits: LimitPolicy,
    /// Volumes jobs may mount, by name.
    pub volumes: BTreeMap<String, Volume>,
    /// The most jobs this process runs at once (sizes the instance pool).
    pub max_concurrency: usize,
    /// Loaded modules kept in memory.
    pub hot_set_size: usize,
    /// Largest module accepted, in bytes (inline or from the store).
    pub max_module_bytes: usize,
    /// Largest table a guest may grow to, in elements.
    pub max_table_elements: usize,
    /// Where per-job directories are created (the system temp dir when `None`).
    pub work_root: Option<PathBuf>,
    /// How often the epoch advances; timeouts are checked at this granularity.
    pub epoch_tick: Duration,
    /// Use the pooling instance allocator (the fast default).
    pub pooling: bool,
    /// Bytes of each reused memory/table slot reset in place rather than returned to the
    /// kernel.
    pub keep_resident_bytes: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: LimitPolicy::default(),
            volumes: BTreeMap::new(),
            max_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            hot_set_size: 256,
            max_module_bytes: 64 * 1024 * 1024,
            max_table_elements: 100_000,
            work_root: None,
            epoch_tick: Duration::from_millis(1),
            pooling: true,
            keep_resident_bytes: 4 * 1024 * 1024,
        }
    }
}

impl SandboxConfig {
    /// Checks the settings; run once at start.
    pub fn check(&self) -> Result<(), String> {
        self.limits.check()?;
        if self.max_concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        for (name, v) in &self.volumes {
            if name.is_empty() || name.contains(['=', ':', '/']) {
                return Err(format!(
                    "volume name {name:?} must be non-empty, without '=', ':' or '/'"
                ));
            }
            if !v.host.is_dir() {
                return Err(format!(
                    "volume {name:?}: host directory {} does not exist or is not a directory",
                    v.host.display()
                ));
            }
        }
        if let Some(root) = &self.work_root
            && !root.is_dir()
        {
            return Err(format!("work root {} is not a directory", root.display()));
        }
        Ok(())
    }

    /// Instance slots in the pool: the concurrency plus headroom.
    pub(crate) fn instance_slots(&self) -> u32 {
        u32::try_from(self.max_concurrency)
            .unwrap_or(u32::MAX / 2)
            .saturating_mul(2)
            .max(8)
    }
}
