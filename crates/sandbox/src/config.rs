//! Sandbox settings, fixed when the process starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use wasmq_spec::{LimitPolicy, Limits, OutboundHost, UnknownImports};

/// An operator-declared host directory that jobs may mount by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host directory.
    pub host: PathBuf,
    /// Whether jobs may write to it (read-only otherwise).
    pub writable: bool,
}

/// What the jobs of one tenant (or the jobs without one) may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    /// The operator volumes (by name) its jobs may mount; each must be declared.
    pub volumes: BTreeSet<String>,
    /// Whether its jobs may carry their module inline (`base64`).
    pub inline_modules: bool,
    /// Registries (`HOST[:PORT]`) or repository prefixes (`HOST[:PORT]/team`) its jobs may
    /// name in `module.oci`; none when empty.
    pub registries: Vec<String>,
    /// The most its jobs may ask for; each limit within the worker's maximum.
    pub maximum: Limits,
    /// The outbound hosts its jobs' components may send HTTP requests to; none when
    /// empty. A job may narrow the list with its own `allowed_outbound_hosts`.
    pub allowed_outbound_hosts: Vec<OutboundHost>,
    /// Its share of a worker's slots against other tenants' while they all have jobs
    /// waiting (1 to [`MAX_WEIGHT`]).
    pub weight: u32,
    /// The most of its jobs running at once on one worker; `None`: the worker's
    /// concurrency.
    pub max_in_flight: Option<u32>,
}

/// The largest tenant `weight`.
pub const MAX_WEIGHT: u32 = 1000;

impl TenantPolicy {
    /// No volumes, no inline modules, no registries, no network, the worker's maximums.
    pub fn restrictive(limits: &LimitPolicy) -> TenantPolicy {
        TenantPolicy {
            volumes: BTreeSet::new(),
            inline_modules: false,
            registries: Vec::new(),
            allowed_outbound_hosts: Vec::new(),
            maximum: limits.maximum,
            weight: 1,
            max_in_flight: None,
        }
    }
}

/// What happens to jobs without a verified tenant that has a policy: no `user_id`, or a
/// `user_id` with no entry in [`Tenancy::tenants`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnverifiedJobs {
    /// They run under [`Tenancy::default`].
    #[default]
    Default,
    /// They are rejected (`tenant_not_allowed`).
    Reject,
}

/// Tenant policies: who may do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenancy {
    /// Policies by tenant name (the broker user that publishes the tenant's jobs).
    pub tenants: BTreeMap<String, TenantPolicy>,
    /// The policy of jobs without a verified tenant that has a policy.
    pub default: TenantPolicy,
    /// Whether such jobs run (under `default`) or are rejected.
    pub unverified: UnverifiedJobs,
}

/// The default largest module: 128 MiB, room for an interpreter with its libraries
/// compiled in (CPython with numpy and pandas is 104 MB).
pub const DEFAULT_MAX_MODULE_BYTES: usize = 128 * 1024 * 1024;

/// The default largest core instance state in the pool: 16 MiB (wasmtime's own default,
/// 1 MiB, is below what CPython needs).
pub const DEFAULT_MAX_CORE_INSTANCE_BYTES: usize = 16 * 1024 * 1024;

/// The most core instances, tables or memories a worker may allow one job.
pub const MAX_PER_JOB_COUNT: u64 = 10_000;

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
    /// Largest state of one core instance the instance pool holds, in bytes (it grows with
    /// a module's functions, globals, tables and memories: CPython's is about 1.5 MB).
    pub max_core_instance_bytes: usize,
    /// What imports the sandbox does not provide do in jobs that do not say.
    pub unknown_imports: UnknownImports,
    /// Where per-job directories are created (the system temp dir when `None`).
    pub work_root: Option<PathBuf>,
    /// The guest path of the job's directory for jobs that give no `work_dir`.
    pub default_work_dir: String,
    /// How often the epoch advances; timeouts are checked at this granularity.
    pub epoch_tick: Duration,
    /// Use the pooling instance allocator (the fast default).
    pub pooling: bool,
    /// Bytes of each reused memory/table slot reset in place rather than returned to the
    /// kernel.
    pub keep_resident_bytes: usize,
    /// Tenant policies; `None` turns tenancy off (every job is treated alike, as the
    /// operator's).
    pub tenancy: Option<Tenancy>,
    /// The outbound hosts components may send HTTP requests to when tenancy is off (with
    /// tenancy, each policy has its own list); none when empty: no network.
    pub allowed_outbound_hosts: Vec<OutboundHost>,
    /// Networks (CIDRs) of private, loopback, link-local and other special addresses that
    /// allowed hosts may resolve to; without one, such an address is refused.
    pub outbound_private_networks: Vec<ipnet::IpNet>,
    /// A PEM file of CA certificates trusted for outbound HTTPS besides the system's.
    pub outbound_ca_file: Option<PathBuf>,
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
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            max_table_elements: 100_000,
            max_core_instance_bytes: DEFAULT_MAX_CORE_INSTANCE_BYTES,
            unknown_imports: UnknownImports::Reject,
            work_root: None,
            default_work_dir: wasmq_spec::WORK_DIR.to_owned(),
            epoch_tick: Duration::from_millis(1),
            pooling: true,
            keep_resident_bytes: 4 * 1024 * 1024,
            tenancy: None,
            allowed_outbound_hosts: Vec::new(),
            outbound_private_networks: Vec::new(),
            outbound_ca_file: None,
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
        for (name, n) in [
            ("instances", self.limits.maximum.instances),
            ("tables", self.limits.maximum.tables),
            ("memories", self.limits.maximum.memories),
        ] {
            if n > MAX_PER_JOB_COUNT {
                return Err(format!(
                    "limits.maximum.{name} = {n} is above {MAX_PER_JOB_COUNT}, the most the instance pool is sized for"
                ));
            }
        }
        if self.max_core_instance_bytes < 4096 {
            return Err(format!(
                "max_core_instance_bytes = {} is below 4096 bytes, which no module fits in",
                self.max_core_instance_bytes
            ));
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
        if let Some(path) = &self.outbound_ca_file {
            crate::egress::read_ca_file(path)?;
        }
        if let Err(why) = wasmq_spec::job::check_work_dir(&self.default_work_dir) {
            return Err(format!(
                "default_work_dir {:?} {why}",
                self.default_work_dir
            ));
        }
        if let Some(t) = &self.tenancy {
            for (name, policy) in &t.tenants {
                if !wasmq_cache::valid_tenant_name(name) {
                    return Err(format!(
                        "tenant name {name:?} must be 1 to {} characters of A-Z, a-z, 0-9, '.', '_', '-' or '@', not starting with '.' (it names the tenant's module directory)",
                        wasmq_cache::MAX_TENANT_NAME
                    ));
                }
                self.check_policy(&format!("tenants.{name}"), policy)?;
            }
            self.check_policy("default_tenant", &t.default)?;
        }
        Ok(())
    }

    /// A tenant policy mounts only declared volumes and stays within the worker's maximums.
    fn check_policy(&self, key: &str, p: &TenantPolicy) -> Result<(), String> {
        for v in &p.volumes {
            if !self.volumes.contains_key(v) {
                let declared: Vec<&str> = self.volumes.keys().map(String::as_str).collect();
                return Err(format!(
                    "{key}: volume {v:?} is not declared (declared volumes: [{}])",
                    declared.join(", ")
                ));
            }
        }
        if let Some((limit, value, max)) = p.maximum.first_above(&self.limits.maximum) {
            return Err(format!(
                "{key}: limits.maximum.{limit} = {value} is above the worker's maximum of {max} ([limits.maximum] {limit})"
            ));
        }
        if !(1..=MAX_WEIGHT).contains(&p.weight) {
            return Err(format!(
                "{key}: weight = {} must be 1 to {MAX_WEIGHT}",
                p.weight
            ));
        }
        if p.max_in_flight == Some(0) {
            return Err(format!(
                "{key}: max_in_flight must be at least 1 (leave it out for no cap)"
            ));
        }
        if p.maximum.timeout_ms == 0 {
            return Err(format!(
                "{key}: limits.maximum.timeout_ms must be at least 1"
            ));
        }
        for r in &p.registries {
            // A registry alone, or a repository prefix: either reads as a reference once a
            // repository and a tag are added.
            let probe = if r.contains('/') {
                format!("{r}:probe")
            } else {
                format!("{r}/probe:probe")
            };
            if let Err(why) = wasmq_spec::parse_oci_reference(&probe) {
                return Err(format!(
                    "{key}: registries entry {r:?} is not HOST[:PORT] or HOST[:PORT]/REPOSITORY-PREFIX ({why})"
                ));
            }
        }
        Ok(())
    }

    /// What one job may hold of the instance pool: the maximum limits.
    pub(crate) fn pool_size(&self) -> crate::engine::PoolSize {
        // Checked against MAX_PER_JOB_COUNT at start.
        let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let max = &self.limits.maximum;
        crate::engine::PoolSize {
            max_memory_bytes: max.memory_bytes,
            max_table_elements: self.max_table_elements,
            max_instances: count(max.instances),
            max_tables: count(max.tables),
            max_memories: count(max.memories),
            max_core_instance_bytes: self.max_core_instance_bytes,
        }
    }

    /// Instance slots in the pool: the concurrency plus headroom.
    pub(crate) fn instance_slots(&self) -> u32 {
        u32::try_from(self.max_concurrency)
            .unwrap_or(u32::MAX / 2)
            .saturating_mul(2)
            .max(8)
    }
}
