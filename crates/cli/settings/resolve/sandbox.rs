//! The settings of the commands that run jobs: the sandbox (concurrency, limits, volumes,
//! tenant policies) and what it takes from registries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use wasmq_cache::Cache;
use wasmq_cache::remote::{ArtifactSource, Fleet, ModuleSource};
use wasmq_registry::ArtifactStore;
use wasmq_sandbox::{Sandbox, SandboxConfig, Tenancy, TenantPolicy, UnverifiedJobs, Volume};
use wasmq_spec::outbound::parse_outbound_hosts;
use wasmq_spec::{LimitPolicy, Limits, LimitsRequest, OutboundHost};

use super::common::CommonSettings;
use crate::settings::args::{SandboxArgs, parse_volume};
use crate::settings::defaults;
use crate::settings::file::{FileConfig, LimitsConfig, TenantConfig, UnverifiedJobsConfig};
use crate::settings::sources::{Entries, Layers, Source, Value};

/// The settings of [`SandboxArgs`] and the sandbox's file-only keys, checked.
pub struct SandboxSettings {
    /// Jobs run at once.
    pub concurrency: usize,
    /// The sandbox, tenant policies included.
    pub config: SandboxConfig,
    /// How long to wait for another worker's compile of the same module.
    compile_wait: Duration,
    /// How long to retry a registry that cannot be reached.
    retry_for: Duration,
    /// Every setting above, with its source.
    pub entries: Entries,
}

impl SandboxSettings {
    /// The concurrency alone, for settings that depend on it.
    pub fn concurrency(layers: &Layers, args: &SandboxArgs) -> Value<usize> {
        layers.merge(
            "concurrency",
            args.concurrency,
            layers.file.concurrency,
            defaults::concurrency,
        )
    }

    /// Resolves and checks the sandbox's settings.
    pub fn resolve(layers: &Layers, args: &SandboxArgs) -> anyhow::Result<SandboxSettings> {
        let file = &layers.file;
        let mut entries = Entries::default();
        let mut c = defaults::sandbox();
        c.max_concurrency = entries.add(
            "concurrency",
            SandboxSettings::concurrency(layers, args),
            usize::to_string,
        );
        c.unknown_imports = entries.add(
            "unknown_imports",
            layers.merge(
                "unknown_imports",
                args.unknown_imports,
                file.unknown_imports,
                defaults::unknown_imports,
            ),
            |u| u.as_str().to_owned(),
        );
        c.default_work_dir = entries.add(
            "default_work_dir",
            layers.merge(
                "default_work_dir",
                args.default_work_dir.clone(),
                file.default_work_dir.clone(),
                || defaults::DEFAULT_WORK_DIR.to_owned(),
            ),
            String::clone,
        );
        let source = from_file(&mut c.hot_set_size, file.hot_set_size);
        entries.push("hot_set_size", c.hot_set_size.to_string(), source);
        let source = from_file(&mut c.max_module_bytes, file.max_module_bytes);
        entries.push("max_module_bytes", c.max_module_bytes.to_string(), source);
        let source = from_file(&mut c.max_core_instance_bytes, file.max_core_instance_bytes);
        entries.push(
            "max_core_instance_bytes",
            c.max_core_instance_bytes.to_string(),
            source,
        );
        if file.work_root.is_some() {
            c.work_root = file.work_root.clone();
        }
        entries.push(
            "work_root",
            c.work_root
                .as_ref()
                .map_or("the system temp dir".into(), |p| p.display().to_string()),
            Source::file_or_default(file.work_root.is_some()),
        );
        let source = from_file(&mut c.pooling, file.pooling);
        entries.push("pooling", c.pooling.to_string(), source);
        c.limits = limit_policy(&file.limits, args)?;
        limit_entries(&mut entries, layers, &c.limits, args);
        for (name, v) in &file.volumes {
            c.volumes.insert(
                name.clone(),
                Volume {
                    host: v.path.clone(),
                    writable: v.writable,
                },
            );
        }
        for spec in &args.volumes {
            let (name, volume) = parse_volume(spec)?;
            c.volumes.insert(name, volume);
        }
        entries.push(
            "volumes",
            if c.volumes.is_empty() {
                "none".into()
            } else {
                c.volumes
                    .iter()
                    .map(|(n, v)| {
                        format!(
                            "{n}={}{}",
                            v.host.display(),
                            if v.writable { ":rw" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            },
            layers.source(
                "volumes",
                !args.volumes.is_empty(),
                !file.volumes.is_empty(),
            ),
        );
        outbound(&mut c, &mut entries, layers, args)?;
        c.tenancy = tenancy(file, &c.limits, &c.allowed_outbound_hosts)?;
        entries.push(
            "tenants",
            match &c.tenancy {
                None => "off".into(),
                Some(t) => format!(
                    "{} tenant(s){}, unverified jobs: {:?}",
                    t.tenants.len(),
                    if t.tenants.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({})",
                            t.tenants.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                    t.unverified
                ),
            },
            Source::file_or_default(c.tenancy.is_some()),
        );
        c.check().map_err(anyhow::Error::msg)?;
        let seconds = |id: &str, arg: Option<u64>, file: Option<u64>, default: Duration| {
            layers
                .merge(id, arg, file, || default.as_secs())
                .map(Duration::from_secs)
        };
        let compile_wait = entries.add(
            "compile_wait_secs",
            seconds(
                "compile_wait_secs",
                args.compile_wait_secs,
                file.compile_wait_secs,
                defaults::COMPILE_WAIT,
            ),
            |d| d.as_secs().to_string(),
        );
        let retry_for = entries.add(
            "registry_retry_secs",
            seconds(
                "registry_retry_secs",
                args.registry_retry_secs,
                file.registry_retry_secs,
                defaults::REGISTRY_RETRY,
            ),
            |d| d.as_secs().to_string(),
        );
        Ok(SandboxSettings {
            concurrency: c.max_concurrency,
            config: c,
            compile_wait,
            retry_for,
            entries,
        })
    }

    /// What a process that runs jobs takes from registries: modules (from the module
    /// store when it is one, and for `module.oci` references) and, with an artifact
    /// store, shared artifacts. Leases are the worker's to add.
    pub fn fleet(&self, common: &CommonSettings) -> Fleet {
        let registry = common.registry();
        Fleet {
            modules: Some(registry.clone() as Arc<dyn ModuleSource>),
            artifacts: common.artifact_store().map(|url| {
                Arc::new(ArtifactStore::new(registry.clone(), url.clone()))
                    as Arc<dyn ArtifactSource>
            }),
            leases: None,
            compile_wait: self.compile_wait,
            retry_for: self.retry_for,
        }
    }

    /// Opens the cache and builds the sandbox, in `fleet` ([`SandboxSettings::fleet`],
    /// plus whatever the command adds).
    pub fn build(
        self,
        common: &CommonSettings,
        fleet: Fleet,
    ) -> anyhow::Result<(Arc<Cache>, Sandbox)> {
        let cache = common.open_cache()?;
        if fleet.artifacts.is_some()
            && let Some(why) = cache.artifacts_disabled()
        {
            bail!("artifact_store needs the artifact cache, which is disabled: {why}");
        }
        let sandbox = Sandbox::in_fleet(self.config, cache.clone(), fleet)?;
        Ok((cache, sandbox))
    }

    /// Opens the cache and builds the sandbox in its [`SandboxSettings::fleet`].
    pub fn open(self, common: &CommonSettings) -> anyhow::Result<(Arc<Cache>, Sandbox)> {
        let fleet = self.fleet(common);
        self.build(common, fleet)
    }

    /// As [`SandboxSettings::open`], for the operator's own jobs (`wasmq run`, `wasmq
    /// snapshot`): tenant policies are checked but not applied, since those jobs come from
    /// local files, not from a broker user.
    pub fn open_local(mut self, common: &CommonSettings) -> anyhow::Result<(Arc<Cache>, Sandbox)> {
        self.config.tenancy = None;
        self.open(common)
    }
}

/// The outbound HTTP settings: the allowed hosts, the private networks they may resolve
/// to, and the CA file.
fn outbound(
    c: &mut SandboxConfig,
    entries: &mut Entries,
    layers: &Layers,
    args: &SandboxArgs,
) -> anyhow::Result<()> {
    let file = &layers.file;
    let list = |v: &Vec<String>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(",")
        }
    };
    let arg = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let hosts = entries.add(
        "allowed_outbound_hosts",
        layers.merge(
            "allowed_outbound_hosts",
            arg(&args.allowed_outbound_hosts),
            file.allowed_outbound_hosts.clone(),
            Vec::new,
        ),
        list,
    );
    c.allowed_outbound_hosts = parse_outbound_hosts(&hosts).context("allowed_outbound_hosts")?;
    let networks = entries.add(
        "outbound_private_networks",
        layers.merge(
            "outbound_private_networks",
            arg(&args.outbound_private_networks),
            file.outbound_private_networks.clone(),
            Vec::new,
        ),
        list,
    );
    c.outbound_private_networks = networks
        .iter()
        .map(|n| {
            n.trim().parse::<ipnet::IpNet>().with_context(|| {
                format!("outbound_private_networks: {n:?} is not a CIDR network (e.g. 10.0.0.0/8, 127.0.0.1/32)")
            })
        })
        .collect::<anyhow::Result<_>>()?;
    c.outbound_ca_file = entries.add(
        "outbound_ca_file",
        layers.merge(
            "outbound_ca_file",
            args.outbound_ca_file.clone().map(Some),
            file.outbound_ca_file.clone().map(Some),
            || None,
        ),
        |p| {
            p.as_ref()
                .map_or("none".into(), |p| p.display().to_string())
        },
    );
    Ok(())
}

/// Sets `value` to the file's, when the file sets it; gives the source of the result.
fn from_file<T>(value: &mut T, file: Option<T>) -> Source {
    let in_file = file.is_some();
    if let Some(v) = file {
        *value = v;
    }
    Source::file_or_default(in_file)
}

/// Overlays the config file's and the flags' limits on the built-in ones.
fn limit_policy(file: &LimitsConfig, args: &SandboxArgs) -> anyhow::Result<LimitPolicy> {
    let mut p = defaults::limits();
    overlay(&mut p.maximum, &file.maximum);
    overlay(&mut p.default, &file.default);
    if let Some(t) = args.timeout_ms {
        p.default.timeout_ms = t;
    }
    if let Some(m) = args.memory_bytes {
        p.default.memory_bytes = m;
    }
    p.check().context("invalid limits")?;
    Ok(p)
}

/// Sets every limit `r` gives.
fn overlay(l: &mut Limits, r: &LimitsRequest) {
    l.timeout_ms = r.timeout_ms.unwrap_or(l.timeout_ms);
    l.fuel = r.fuel.or(l.fuel);
    l.memory_bytes = r.memory_bytes.unwrap_or(l.memory_bytes);
    l.stdout_bytes = r.stdout_bytes.unwrap_or(l.stdout_bytes);
    l.stderr_bytes = r.stderr_bytes.unwrap_or(l.stderr_bytes);
    l.output_bytes = r.output_bytes.unwrap_or(l.output_bytes);
    l.disk_bytes = r.disk_bytes.unwrap_or(l.disk_bytes);
    l.files = r.files.unwrap_or(l.files);
    l.instances = r.instances.unwrap_or(l.instances);
    l.tables = r.tables.unwrap_or(l.tables);
    l.memories = r.memories.unwrap_or(l.memories);
    l.http_requests = r.http_requests.unwrap_or(l.http_requests);
    l.http_response_bytes = r.http_response_bytes.unwrap_or(l.http_response_bytes);
    l.http_connect_timeout_ms = r
        .http_connect_timeout_ms
        .unwrap_or(l.http_connect_timeout_ms);
    l.http_first_byte_timeout_ms = r
        .http_first_byte_timeout_ms
        .unwrap_or(l.http_first_byte_timeout_ms);
}

/// Adds every default and maximum limit: `limits.default.timeout_ms`, ...
fn limit_entries(entries: &mut Entries, layers: &Layers, p: &LimitPolicy, args: &SandboxArgs) {
    let f = &layers.file.limits;
    for (which, limits, req) in [
        ("default", &p.default, &f.default),
        ("maximum", &p.maximum, &f.maximum),
    ] {
        let fields: [(&str, String, bool); 15] = [
            (
                "timeout_ms",
                limits.timeout_ms.to_string(),
                req.timeout_ms.is_some(),
            ),
            (
                "fuel",
                limits.fuel.map_or("unmetered".into(), |n| n.to_string()),
                req.fuel.is_some(),
            ),
            (
                "memory_bytes",
                limits.memory_bytes.to_string(),
                req.memory_bytes.is_some(),
            ),
            (
                "stdout_bytes",
                limits.stdout_bytes.to_string(),
                req.stdout_bytes.is_some(),
            ),
            (
                "stderr_bytes",
                limits.stderr_bytes.to_string(),
                req.stderr_bytes.is_some(),
            ),
            (
                "output_bytes",
                limits.output_bytes.to_string(),
                req.output_bytes.is_some(),
            ),
            (
                "disk_bytes",
                limits.disk_bytes.to_string(),
                req.disk_bytes.is_some(),
            ),
            ("files", limits.files.to_string(), req.files.is_some()),
            (
                "instances",
                limits.instances.to_string(),
                req.instances.is_some(),
            ),
            ("tables", limits.tables.to_string(), req.tables.is_some()),
            (
                "memories",
                limits.memories.to_string(),
                req.memories.is_some(),
            ),
            (
                "http_requests",
                limits.http_requests.to_string(),
                req.http_requests.is_some(),
            ),
            (
                "http_response_bytes",
                limits.http_response_bytes.to_string(),
                req.http_response_bytes.is_some(),
            ),
            (
                "http_connect_timeout_ms",
                limits.http_connect_timeout_ms.to_string(),
                req.http_connect_timeout_ms.is_some(),
            ),
            (
                "http_first_byte_timeout_ms",
                limits.http_first_byte_timeout_ms.to_string(),
                req.http_first_byte_timeout_ms.is_some(),
            ),
        ];
        for (name, value, in_file) in fields {
            // The flags set the default limits of time and memory.
            let in_args = match (which, name) {
                ("default", "timeout_ms") => Some(args.timeout_ms.is_some()),
                ("default", "memory_bytes") => Some(args.memory_bytes.is_some()),
                _ => None,
            };
            let source = match in_args {
                Some(set) => layers.source(name, set, in_file),
                None => Source::file_or_default(in_file),
            };
            entries.push(&format!("limits.{which}.{name}"), value, source);
        }
    }
}

/// The tenant policies of the config file; `None` (tenancy off) when it has none of
/// `[tenants]`, `[default_tenant]` and `unverified_jobs`. A policy without
/// `allowed_outbound_hosts` has the worker's (`hosts`).
fn tenancy(
    f: &FileConfig,
    limits: &LimitPolicy,
    hosts: &[OutboundHost],
) -> anyhow::Result<Option<Tenancy>> {
    if f.tenants.is_empty() && f.default_tenant.is_none() && f.unverified_jobs.is_none() {
        return Ok(None);
    }
    let mut base = defaults::tenant_policy(limits);
    base.allowed_outbound_hosts = hosts.to_vec();
    let policy = |name: &str, t: &TenantConfig| -> anyhow::Result<TenantPolicy> {
        let mut maximum = base.maximum;
        overlay(&mut maximum, &t.limits.maximum);
        let allowed_outbound_hosts = match &t.allowed_outbound_hosts {
            None => base.allowed_outbound_hosts.clone(),
            Some(list) => parse_outbound_hosts(list)
                .with_context(|| format!("{name}.allowed_outbound_hosts"))?,
        };
        Ok(TenantPolicy {
            volumes: t.volumes.iter().cloned().collect(),
            inline_modules: t.inline_modules,
            registries: t.registries.clone(),
            allowed_outbound_hosts,
            maximum,
            weight: t.weight.unwrap_or(base.weight),
            max_in_flight: t.max_in_flight,
        })
    };
    let mut tenants = std::collections::BTreeMap::new();
    for (name, t) in &f.tenants {
        tenants.insert(name.clone(), policy(&format!("tenants.{name}"), t)?);
    }
    Ok(Some(Tenancy {
        tenants,
        default: match &f.default_tenant {
            Some(t) => policy("default_tenant", t)?,
            None => base.clone(),
        },
        unverified: match f.unverified_jobs {
            Some(UnverifiedJobsConfig::Reject) => UnverifiedJobs::Reject,
            Some(UnverifiedJobsConfig::Default) => UnverifiedJobs::Default,
            None => UnverifiedJobs::default(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ArgMatches;

    /// The settings of a config file and no command line.
    struct Fixture(Layers);

    impl Fixture {
        fn sandbox_config(&self, args: &SandboxArgs) -> anyhow::Result<SandboxConfig> {
            SandboxSettings::resolve(&self.0, args).map(|s| s.config)
        }
    }

    fn settings(toml_text: &str) -> Fixture {
        Fixture(Layers::new(
            &ArgMatches::default(),
            toml::from_str(toml_text).unwrap(),
        ))
    }

    fn no_flags() -> SandboxArgs {
        SandboxArgs {
            concurrency: Some(1),
            volumes: Vec::new(),
            timeout_ms: None,
            memory_bytes: None,
            default_work_dir: None,
            unknown_imports: None,
            compile_wait_secs: None,
            registry_retry_secs: None,
            allowed_outbound_hosts: Vec::new(),
            outbound_private_networks: Vec::new(),
            outbound_ca_file: None,
        }
    }

    #[test]
    fn the_default_work_dir_comes_from_the_file_then_the_flag_and_is_checked() {
        assert_eq!(
            settings("")
                .sandbox_config(&no_flags())
                .unwrap()
                .default_work_dir,
            "/work"
        );
        let s = settings("default_work_dir = '/'\n");
        assert_eq!(s.sandbox_config(&no_flags()).unwrap().default_work_dir, "/");
        let flag = SandboxArgs {
            default_work_dir: Some("/home/user".into()),
            ..no_flags()
        };
        assert_eq!(
            s.sandbox_config(&flag).unwrap().default_work_dir,
            "/home/user"
        );
        let err = settings("default_work_dir = 'work'\n")
            .sandbox_config(&no_flags())
            .unwrap_err();
        assert!(format!("{err:#}").contains("default_work_dir"), "{err:#}");
    }

    #[test]
    fn tenants_are_off_unless_configured() {
        let s = settings("concurrency = 1\n");
        assert!(s.sandbox_config(&no_flags()).unwrap().tenancy.is_none());
        let s = settings("unverified_jobs = 'reject'\n");
        let t = s.sandbox_config(&no_flags()).unwrap().tenancy.unwrap();
        assert!(t.tenants.is_empty());
        assert_eq!(t.unverified, UnverifiedJobs::Reject);
        assert_eq!(t.default.maximum, LimitPolicy::default().maximum);
        assert!(!t.default.inline_modules && t.default.volumes.is_empty());
    }

    #[test]
    fn tenant_policies_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let base = format!(
            "[volumes.ref]\npath = '{d}'\n[limits.maximum]\nmemory_bytes = 1073741824\ndisk_bytes = 134217728\n"
        );
        let s = settings(&format!(
            "{base}[tenants.alice]\nvolumes = ['ref']\ninline_modules = true\nweight = 3\nmax_in_flight = 2\nregistries = ['registry.example:5000/alice']\n[tenants.alice.limits.maximum]\nmemory_bytes = 536870912\n[default_tenant.limits.maximum]\ntimeout_ms = 100\n"
        ));
        let c = s.sandbox_config(&no_flags()).unwrap();
        assert_eq!(
            c.limits.maximum.disk_bytes, 134217728,
            "[limits.maximum] disk_bytes applies"
        );
        let t = c.tenancy.unwrap();
        let alice = &t.tenants["alice"];
        assert!(alice.inline_modules && alice.volumes.contains("ref"));
        assert_eq!(
            (alice.maximum.memory_bytes, alice.maximum.disk_bytes),
            (536870912, 134217728)
        );
        assert_eq!(t.default.maximum.timeout_ms, 100);
        assert_eq!((alice.weight, alice.max_in_flight), (3, Some(2)));
        assert_eq!(alice.registries, ["registry.example:5000/alice"]);
        assert!(t.default.registries.is_empty(), "no registry unless listed");
        assert_eq!((t.default.weight, t.default.max_in_flight), (1, None));
        assert_eq!(t.unverified, UnverifiedJobs::Default);

        let err = |extra: &str| {
            format!(
                "{:#}",
                settings(&format!("{base}{extra}"))
                    .sandbox_config(&no_flags())
                    .expect_err("refused")
            )
        };
        let e = err("[tenants.bob]\nregistries = ['oci://registry.example/x']\n");
        assert!(
            e.contains(
                "tenants.bob: registries entry \"oci://registry.example/x\" is not HOST[:PORT]"
            ),
            "{e}"
        );
        let e = err("[tenants.bob]\nvolumes = ['nope']\n");
        assert!(
            e.contains("tenants.bob: volume \"nope\" is not declared (declared volumes: [ref])"),
            "{e}"
        );
        let e = err("[tenants.bob.limits.maximum]\nmemory_bytes = 2147483648\n");
        assert!(
            e.contains("tenants.bob: limits.maximum.memory_bytes = 2147483648 is above the worker's maximum of 1073741824"),
            "{e}"
        );
        let e = err("[default_tenant.limits.maximum]\nfiles = 2000000\n");
        assert!(e.contains("default_tenant: limits.maximum.files"), "{e}");
        let e = err("[tenants.'../x']\n");
        assert!(e.contains("tenant name \"../x\" must be"), "{e}");
        let bad = toml::from_str::<FileConfig>("[tenants.a]\ninline_module = true\n").unwrap_err();
        assert!(bad.to_string().contains("inline_module"), "{bad}");
        let bad = toml::from_str::<FileConfig>("unverified_jobs = 'allow'\n").unwrap_err();
        assert!(
            bad.to_string().contains("unverified_jobs") || bad.to_string().contains("allow"),
            "{bad}"
        );
    }

    #[test]
    fn outbound_settings_are_read_checked_and_inherited_by_tenants() {
        let s = settings(
            "allowed_outbound_hosts = ['https://api.example.com', 'http://*.internal.example:8080']\noutbound_private_networks = ['10.1.0.0/16']\n[tenants.alice]\nallowed_outbound_hosts = ['https://hooks.alice.example']\n[tenants.bob]\n[tenants.carol]\nallowed_outbound_hosts = []\n",
        );
        let c = s.sandbox_config(&no_flags()).unwrap();
        let shown = |l: &[OutboundHost]| l.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            shown(&c.allowed_outbound_hosts),
            ["https://api.example.com", "http://*.internal.example:8080"]
        );
        assert_eq!(
            c.outbound_private_networks,
            ["10.1.0.0/16".parse().unwrap()]
        );
        let t = c.tenancy.unwrap();
        assert_eq!(
            shown(&t.tenants["alice"].allowed_outbound_hosts),
            ["https://hooks.alice.example"]
        );
        // A policy without a list has the worker's; an empty one has none.
        assert_eq!(
            t.tenants["bob"].allowed_outbound_hosts,
            c.allowed_outbound_hosts
        );
        assert_eq!(t.default.allowed_outbound_hosts, c.allowed_outbound_hosts);
        assert!(t.tenants["carol"].allowed_outbound_hosts.is_empty());

        // Flags replace the file's list.
        let mut flags = no_flags();
        flags.allowed_outbound_hosts = vec!["http://127.0.0.1:9000".into()];
        flags.outbound_private_networks = vec!["127.0.0.1/32".into()];
        let c = s.sandbox_config(&flags).unwrap();
        assert_eq!(shown(&c.allowed_outbound_hosts), ["http://127.0.0.1:9000"]);

        let err = |text: &str| {
            format!(
                "{:#}",
                settings(text)
                    .sandbox_config(&no_flags())
                    .expect_err("refused")
            )
        };
        let e = err("allowed_outbound_hosts = ['api.example.com']\n");
        assert!(
            e.contains("allowed_outbound_hosts: outbound host \"api.example.com\" has no scheme"),
            "{e}"
        );
        let e = err("[tenants.bob]\nallowed_outbound_hosts = ['https://a.*.example']\n");
        assert!(e.contains("tenants.bob.allowed_outbound_hosts"), "{e}");
        let e = err("outbound_private_networks = ['10.0.0.0']\n");
        assert!(
            e.contains("outbound_private_networks: \"10.0.0.0\" is not a CIDR network"),
            "{e}"
        );
        let e = err("outbound_ca_file = '/no/such/ca.pem'\n");
        assert!(e.contains("/no/such/ca.pem"), "{e}");
    }
}
