//! Admission: whether a job may run on this worker, and the plan it runs by.
//!
//! Every rule about what a job may ask for is applied here, before any wasmtime call: the
//! tenant's policy, limits against their maximum, volumes, outbound hosts, inputs that must
//! decode, and the module's namespace. [`admit`] returns an [`Admitted`] plan or the [`Rejection`] that says
//! why not. Nothing here touches wasmtime, so the rules are tested without an engine (the
//! tests at the end of this file).
//!
//! [`JobError`] is the one error of a run: every way a job ends without running to its own
//! end (a rejection, a module too large for any limit, a host fault) is one of its variants,
//! and [`JobError::record`] is the one place it becomes the result's status.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use wasmq_cache::{Cache, Digest};
use wasmq_spec::outbound::{first_outside, parse_outbound_hosts};
use wasmq_spec::{Job, JobResult, Limits, ModuleRef, OutboundHost, Rejection, Status, codes};

use crate::config::{SandboxConfig, Tenancy, TenantPolicy, UnverifiedJobs};
use crate::fault::HostError;
use crate::files;

/// The rules a job runs under.
#[derive(Clone, Copy)]
pub(crate) enum Policy<'a> {
    /// Tenancy is off: the worker's limits, every declared volume, any module.
    Operator,
    /// A tenant policy: the named tenant's, or the default policy (`name: None`).
    Tenant {
        name: Option<&'a str>,
        policy: &'a TenantPolicy,
    },
}

impl Policy<'_> {
    /// Who the policy is about, for messages.
    fn who(&self) -> String {
        match self {
            Policy::Operator => "this worker".into(),
            Policy::Tenant { name: Some(n), .. } => format!("tenant {n:?}"),
            Policy::Tenant { name: None, .. } => "a job without a tenant policy".into(),
        }
    }

    /// Whose maximum limits are, for messages.
    fn whose(&self) -> String {
        match self {
            Policy::Operator => "this worker's".into(),
            Policy::Tenant { name: Some(n), .. } => format!("tenant {n:?}'s"),
            Policy::Tenant { name: None, .. } => "the default tenant policy's".into(),
        }
    }
}

/// Where a module's bytes come from when they are needed.
pub(crate) enum Source {
    /// The (shared) module store, by digest.
    Store,
    /// One tenant's own module store, by digest.
    Tenant(String),
    /// Bytes the job carried.
    Bytes(Vec<u8>),
    /// An OCI reference the job named, not yet resolved to a digest.
    Reference(String),
    /// The repository of an OCI reference, pinned to its manifest: where the module of a
    /// resolved reference is pulled from.
    Pinned(String),
}

/// A directory mounted into the guest.
pub(crate) struct Mount {
    pub(crate) guest: String,
    pub(crate) host: std::path::PathBuf,
    pub(crate) writable: bool,
}

/// The module store a job's `sha256` is looked up in: this host's cache directory, and
/// whether a remote store (a registry) stands behind it.
#[derive(Clone, Copy)]
pub(crate) struct ModuleAccess<'a> {
    pub(crate) cache: &'a Cache,
    pub(crate) remote: bool,
}

/// An admitted job: what it may have, decoded and checked, and which module it runs.
pub(crate) struct Admitted<'a> {
    pub(crate) job: &'a Job,
    /// The limits it runs under: its own, within its policy's maximum.
    pub(crate) limits: Limits,
    pub(crate) stdin: Vec<u8>,
    /// The input bytes of a function or handler job.
    pub(crate) input: Vec<u8>,
    pub(crate) inputs: Vec<(&'a str, Vec<u8>)>,
    pub(crate) mounts: Vec<Mount>,
    /// The guest path of the job's directory: the job's `work_dir` or the worker's default.
    pub(crate) work_dir: &'a str,
    /// The module's digest (`None` for a reference not resolved yet), and where its bytes
    /// are.
    pub(crate) digest: Option<Digest>,
    pub(crate) source: Source,
    /// The tenant whose namespace keeps the job's inline module once it has resolved.
    pub(crate) keep_for: Option<&'a str>,
    /// The outbound hosts its components may send HTTP requests to.
    pub(crate) outbound: Vec<OutboundHost>,
}

/// Admits `job`, published by broker user `tenant` (verified by the broker; `None` when
/// the message had no `user_id`), on a worker with `config` whose module store is `cache`.
/// The checks cost a few `stat` calls at most (the module namespace).
pub(crate) fn admit<'a>(
    config: &'a SandboxConfig,
    store: ModuleAccess<'_>,
    job: &'a Job,
    intake: Intake<'_>,
) -> Result<Admitted<'a>, NotAdmitted> {
    let policy = policy(config.tenancy.as_ref(), intake.tenant)?;
    // Decoding validated it already, but this library may be handed any `Job`, and
    // `files` keys become host paths: the check stays here, at the boundary (< 1 µs).
    job.validate()?;
    if intake.cancelled {
        return Err(JobError::Cancelled("the job was cancelled before it started".into()).into());
    }
    if let Some(at) = job.expiry()
        && intake.now >= at
    {
        let late = intake.now.duration_since(at).unwrap_or_default();
        return Err(JobError::Expired(format!(
            "the job was not started by its expires_at {} ({} ms ago)",
            job.expires_at.as_deref().unwrap_or(""),
            late.as_millis()
        ))
        .into());
    }
    let limits = match policy {
        Policy::Operator => config.limits.resolve(&job.limits)?,
        Policy::Tenant { policy: p, .. } => config
            .limits
            .narrowed(p.maximum)
            .resolve_with(&job.limits, &policy.whose())?,
    };
    let work_dir = job
        .work_dir
        .as_deref()
        .unwrap_or(config.default_work_dir.as_str());
    if job.work_dir.is_none() && work_dir != wasmq_spec::WORK_DIR {
        // Decoding checked the mount points against /work; the job's directory is at
        // the worker's other default.
        job.check_mounts(work_dir)?;
    }
    let mounts = mounts(config, job, policy)?;
    let outbound = outbound(config, job, policy)?;
    let stdin = text_or_base64("stdin_base64", &job.stdin, &job.stdin_base64)?;
    let inputs = files::decode_inputs(&job.files)?;
    let input = text_or_base64("input_base64", &job.input, &job.input_base64)?;
    let (digest, source) = module_source(config, &job.module, policy)?;
    let (source, keep_for) = match digest {
        Some(d) => namespace(store, policy, d, source).map_err(|r| NotAdmitted::of(r, d))?,
        None => (source, None),
    };
    Ok(Admitted {
        job,
        limits,
        stdin,
        input,
        inputs,
        mounts,
        work_dir,
        digest,
        source,
        keep_for,
        outbound,
    })
}

/// The job's outbound hosts: its own narrowing of its policy's list, or the whole list.
fn outbound(
    config: &SandboxConfig,
    job: &Job,
    policy: Policy<'_>,
) -> Result<Vec<OutboundHost>, Rejection> {
    let allowed = match policy {
        Policy::Operator => &config.allowed_outbound_hosts,
        Policy::Tenant { policy: p, .. } => &p.allowed_outbound_hosts,
    };
    let Some(asked) = &job.allowed_outbound_hosts else {
        return Ok(allowed.clone());
    };
    let asked = parse_outbound_hosts(asked).map_err(|e| {
        Rejection::new(codes::INVALID_FIELD, format!("allowed_outbound_hosts: {e}"))
    })?;
    if let Some(wider) = first_outside(&asked, allowed) {
        let list = if allowed.is_empty() {
            "none".to_owned()
        } else {
            allowed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Rejection::new(
            codes::OUTBOUND_HOST_NOT_ALLOWED,
            format!(
                "allowed_outbound_hosts entry {wider} is outside what {} allows ({list}); a job may narrow the list, never widen it",
                policy.who()
            ),
        ));
    }
    Ok(asked)
}

/// Why a job was not admitted, and the digest of its module when that was known by then
/// (a result names the module it was about, as for a module that is not in the store).
#[derive(Debug)]
pub(crate) struct NotAdmitted {
    pub(crate) error: JobError,
    pub(crate) module: Option<Digest>,
}

impl NotAdmitted {
    fn of(rejection: Rejection, module: Digest) -> Self {
        NotAdmitted {
            error: JobError::Rejected(rejection),
            module: Some(module),
        }
    }
}

impl From<Rejection> for NotAdmitted {
    fn from(rejection: Rejection) -> Self {
        JobError::Rejected(rejection).into()
    }
}

impl From<JobError> for NotAdmitted {
    fn from(error: JobError) -> Self {
        NotAdmitted {
            error,
            module: None,
        }
    }
}

/// What admission knows of a job besides the job itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intake<'a> {
    /// The broker user that published it, as the broker verified it.
    pub(crate) tenant: Option<&'a str>,
    /// Now, against the job's `expires_at`.
    pub(crate) now: std::time::SystemTime,
    /// The job was cancelled before it reached the runner.
    pub(crate) cancelled: bool,
}

/// The policy for a job published by broker user `tenant` (verified by the broker), or
/// why the job may not run at all.
fn policy<'a>(tenancy: Option<&'a Tenancy>, tenant: Option<&str>) -> Result<Policy<'a>, Rejection> {
    let Some(t) = tenancy else {
        return Ok(Policy::Operator);
    };
    // Only names from the configuration (checked to be plain directory names) are ever
    // used further, never the user id itself.
    if let Some((name, policy)) = tenant.and_then(|n| t.tenants.get_key_value(n)) {
        return Ok(Policy::Tenant {
            name: Some(name.as_str()),
            policy,
        });
    }
    match (t.unverified, tenant) {
        (UnverifiedJobs::Default, _) => Ok(Policy::Tenant {
            name: None,
            policy: &t.default,
        }),
        (UnverifiedJobs::Reject, None) => Err(Rejection::new(
            codes::TENANT_NOT_ALLOWED,
            "the job message has no user_id, and this worker runs only jobs of the tenants it has a policy for; publish it with `wasmq submit`, which sets user_id to the user of its broker connection",
        )),
        (UnverifiedJobs::Reject, Some(user)) => Err(Rejection::new(
            codes::TENANT_NOT_ALLOWED,
            format!(
                "broker user {user:?} has no tenant policy on this worker, which runs only jobs of the tenants it has a policy for"
            ),
        )),
    }
}

/// The job's volumes: declared by the operator, and (for a tenant) in its policy.
fn mounts(config: &SandboxConfig, job: &Job, policy: Policy<'_>) -> Result<Vec<Mount>, Rejection> {
    let mut mounts = Vec::with_capacity(job.volumes.len());
    for (guest, name) in &job.volumes {
        // A tenant learns only of its own volumes: any other name, declared or not, is
        // refused the same way.
        if let Policy::Tenant { policy: p, .. } = policy
            && !p.volumes.contains(name)
        {
            let allowed: Vec<&str> = p.volumes.iter().map(String::as_str).collect();
            return Err(Rejection::new(
                codes::VOLUME_NOT_ALLOWED,
                format!(
                    "{} may not mount volume {name:?} (at {guest}); volumes it may mount: [{}]",
                    policy.who(),
                    allowed.join(", ")
                ),
            ));
        }
        let Some(v) = config.volumes.get(name) else {
            let declared: Vec<&str> = config.volumes.keys().map(String::as_str).collect();
            return Err(Rejection::new(
                codes::UNKNOWN_VOLUME,
                format!(
                    "volume {name:?} (mounted at {guest}) is not declared by this worker; declared volumes: [{}]",
                    declared.join(", ")
                ),
            ));
        };
        mounts.push(Mount {
            guest: guest.clone(),
            host: v.host.clone(),
            writable: v.writable,
        });
    }
    Ok(mounts)
}

/// The digest of the job's module (not known yet for a reference) and where its bytes are.
fn module_source(
    config: &SandboxConfig,
    module: &ModuleRef,
    policy: Policy<'_>,
) -> Result<(Option<Digest>, Source), Rejection> {
    let max = config.max_module_bytes;
    if let (ModuleRef::Base64(_), Policy::Tenant { policy: p, .. }) = (module, policy)
        && !p.inline_modules
    {
        return Err(Rejection::new(
            codes::INLINE_MODULE_NOT_ALLOWED,
            format!(
                "{} may not send modules inline (module.base64); refer by sha256 to a module in the module store",
                policy.who()
            ),
        ));
    }
    match module {
        ModuleRef::Sha256(hex) => {
            let d = hex
                .parse::<Digest>()
                .map_err(|e| Rejection::new(codes::INVALID_FIELD, format!("module.sha256: {e}")))?;
            Ok((Some(d), Source::Store))
        }
        ModuleRef::Base64(text) => {
            if text.len() / 4 * 3 > max {
                return Err(Rejection::new(
                    codes::MODULE_TOO_LARGE,
                    format!(
                        "the inline module is larger than this worker's maximum of {max} bytes (max_module_bytes)"
                    ),
                ));
            }
            let bytes = BASE64.decode(text).map_err(|e| {
                Rejection::new(
                    codes::INVALID_BASE64,
                    format!("module.base64 does not decode: {e}"),
                )
            })?;
            Ok((Some(Digest::of(&bytes)), Source::Bytes(bytes)))
        }
        ModuleRef::Oci(reference) => {
            if let Policy::Tenant { policy: p, .. } = policy
                && !registry_allowed(&p.registries, reference)
            {
                return Err(Rejection::new(
                    codes::REGISTRY_NOT_ALLOWED,
                    format!(
                        "{} may not run modules from {reference} (module.oci); its policy allows {}",
                        policy.who(),
                        if p.registries.is_empty() {
                            "no registry".to_owned()
                        } else {
                            p.registries.join(", ")
                        }
                    ),
                ));
            }
            // Not known until the reference is resolved (by the run, not here).
            Ok((None, Source::Reference(reference.clone())))
        }
        ModuleRef::Path(p) => Err(Rejection::new(
            codes::MODULE_PATH_NOT_ALLOWED,
            format!(
                "module.path {} names a file on the submitter's machine; submit it with `wasmq submit` (which uploads it) or refer to it by sha256",
                p.display()
            ),
        )),
    }
}

/// Applies the module namespace of `policy` before anything is looked up: a tenant's job
/// may refer by sha256 to a module of the shared store or of its own namespace; any other
/// digest is `module_not_found`, exactly as for a module that does not exist (the hot set
/// and the artifacts are shared and would otherwise answer). Also returns the tenant whose
/// namespace should keep inline bytes that are in neither.
fn namespace<'p>(
    store: ModuleAccess<'_>,
    policy: Policy<'p>,
    digest: Digest,
    source: Source,
) -> Result<(Source, Option<&'p str>), Rejection> {
    let Policy::Tenant { name, .. } = policy else {
        return Ok((source, None));
    };
    let cache = store.cache;
    match source {
        // The shared store is the registry's repository: what is not here yet is pulled.
        Source::Store if store.remote || cache.has_module(&digest) => Ok((Source::Store, None)),
        Source::Store => match name {
            Some(t) if cache.has_tenant_module(t, &digest) => {
                Ok((Source::Tenant(t.to_owned()), None))
            }
            _ => Err(not_found(&digest)),
        },
        Source::Bytes(bytes) => {
            let keep =
                name.filter(|t| !cache.has_module(&digest) && !cache.has_tenant_module(t, &digest));
            Ok((Source::Bytes(bytes), keep))
        }
        Source::Tenant(_) => Err(not_found(&digest)),
        other @ (Source::Reference(_) | Source::Pinned(_)) => Ok((other, None)),
    }
}

/// Whether `reference` is in one of `allowed`: a registry (`HOST[:PORT]`) or a repository
/// path prefix (`HOST[:PORT]/team`), matched at a `/`.
pub(crate) fn registry_allowed(allowed: &[String], reference: &str) -> bool {
    let Ok(r) = wasmq_spec::parse_oci_reference(reference) else {
        return false;
    };
    let path = r.repository_path();
    allowed.iter().any(|a| {
        let a = a.trim_end_matches('/');
        path == a || path.starts_with(&format!("{a}/"))
    })
}

/// The rejection of a `sha256` reference the job may not have: absent from the store, or
/// (to a tenant) in another tenant's namespace. One function, so both read the same.
pub(crate) fn not_found(digest: &Digest) -> Rejection {
    Rejection::new(
        codes::MODULE_NOT_FOUND,
        format!(
            "module sha256:{digest} is not in the module store; upload it with `wasmq submit` or `wasmq prewarm`"
        ),
    )
}

/// The bytes of a field given as text or as base64 (`field` names the latter); none when
/// neither is set.
fn text_or_base64(
    field: &str,
    text: &Option<String>,
    base64: &Option<String>,
) -> Result<Vec<u8>, Rejection> {
    match (text, base64) {
        (Some(s), _) => Ok(s.as_bytes().to_vec()),
        (None, Some(b)) => BASE64.decode(b).map_err(|e| {
            Rejection::new(
                codes::INVALID_BASE64,
                format!("{field} does not decode: {e}"),
            )
        }),
        (None, None) => Ok(Vec::new()),
    }
}

/// How a run ended without the guest running to its own end.
#[derive(Debug)]
pub(crate) enum JobError {
    /// The job may not or cannot run as asked: `rejected`, acked, not retried.
    Rejected(Rejection),
    /// The module declares more memory or table than any limit here allows:
    /// `memory_exceeded`, though it never ran.
    OverMemory(Rejection),
    /// The host failed (a disk, an engine, a registry): a [`crate::HostFault`], which the
    /// worker requeues.
    Host(HostError),
    /// The job was cancelled before it started: `cancelled`, never run.
    Cancelled(String),
    /// The job was not started by its `expires_at`: `expired`, never run.
    Expired(String),
}

impl From<HostError> for JobError {
    fn from(e: HostError) -> Self {
        JobError::Host(e)
    }
}

impl From<Rejection> for JobError {
    fn from(r: Rejection) -> Self {
        JobError::Rejected(r)
    }
}

impl JobError {
    /// Writes this outcome into `result`: the one place a job error becomes a status. A
    /// host fault is not the job's outcome: it comes back.
    pub(crate) fn record(self, result: &mut JobResult) -> Result<(), HostError> {
        match self {
            JobError::Rejected(r) => result.set_outcome(Status::Rejected, r.code, r.message),
            JobError::OverMemory(r) => {
                result.set_outcome(Status::MemoryExceeded, r.code, r.message)
            }
            JobError::Host(e) => return Err(e),
            JobError::Cancelled(m) => result.set_outcome(Status::Cancelled, codes::CANCELLED, m),
            JobError::Expired(m) => result.set_outcome(Status::Expired, codes::EXPIRED, m),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use wasmq_spec::decode_job;

    use super::*;
    use crate::config::Volume;

    /// A worker with volumes `ref` (read-only) and `scratch` (writable), and, with
    /// `tenancy`, a tenant `alice` who may mount `ref` and send inline modules, jobs of
    /// anyone else rejected.
    fn config(tenancy: bool) -> SandboxConfig {
        let mut c = SandboxConfig::default();
        for (name, writable) in [("ref", false), ("scratch", true)] {
            c.volumes.insert(
                name.into(),
                Volume {
                    host: format!("/srv/{name}").into(),
                    writable,
                },
            );
        }
        if tenancy {
            let alice = TenantPolicy {
                volumes: BTreeSet::from(["ref".to_owned()]),
                inline_modules: true,
                registries: vec!["registry.example:5000/alice".to_owned()],
                allowed_outbound_hosts: parse_outbound_hosts(&[
                    "https://*.alice.example",
                    "http://127.0.0.1:8080",
                ])
                .unwrap(),
                ..TenantPolicy::restrictive(&c.limits)
            };
            c.tenancy = Some(Tenancy {
                tenants: BTreeMap::from([("alice".to_owned(), alice)]),
                default: TenantPolicy::restrictive(&c.limits),
                unverified: UnverifiedJobs::Reject,
            });
        }
        c
    }

    fn job(json: &str) -> Job {
        decode_job(json.as_bytes())
            .map_err(|(r, _, _)| r)
            .expect("a valid job")
    }

    fn local(cache: &Cache) -> ModuleAccess<'_> {
        ModuleAccess {
            cache,
            remote: false,
        }
    }

    fn who(tenant: Option<&str>) -> Intake<'_> {
        Intake {
            tenant,
            now: std::time::SystemTime::now(),
            cancelled: false,
        }
    }

    const NOOP: &[u8] = b"\0asm\x01\0\0\0";

    fn inline() -> String {
        BASE64.encode(NOOP)
    }

    fn code<T>(r: Result<T, NotAdmitted>) -> &'static str {
        match r {
            Ok(_) => "admitted",
            Err(NotAdmitted {
                error: JobError::Rejected(r) | JobError::OverMemory(r),
                ..
            }) => r.code,
            Err(n) => panic!("not a rejection: {:?}", n.error),
        }
    }

    #[test]
    fn an_operators_job_gets_its_limits_volumes_and_module() {
        let (c, dir) = (config(false), tempfile::tempdir().unwrap());
        let cache = Cache::open(dir.path(), None).unwrap();
        let j = job(&format!(
            r#"{{"id":"a","module":{{"base64":"{}"}},"volumes":{{"/data":"scratch"}},"stdin":"hi","limits":{{"timeout_ms":1500}}}}"#,
            inline()
        ));
        let a = admit(&c, local(&cache), &j, who(None)).unwrap();
        assert_eq!(a.limits.timeout_ms, 1500);
        assert_eq!(a.stdin, b"hi");
        assert_eq!(a.work_dir, "/work");
        assert_eq!(a.mounts.len(), 1);
        assert!(a.mounts[0].writable);
        assert_eq!(a.mounts[0].host, std::path::PathBuf::from("/srv/scratch"));
        assert_eq!(a.digest, Some(Digest::of(NOOP)));
        assert!(matches!(&a.source, Source::Bytes(b) if b == NOOP));
        assert_eq!(
            a.keep_for, None,
            "without tenancy nothing is kept per tenant"
        );
    }

    #[test]
    fn what_an_operators_job_may_not_ask_for() {
        let (c, dir) = (config(false), tempfile::tempdir().unwrap());
        let cache = Cache::open(dir.path(), None).unwrap();
        let admit_json = |json: &str| code(admit(&c, local(&cache), &job(json), who(None)));
        let sha = "0".repeat(64);
        assert_eq!(
            admit_json(&format!(
                r#"{{"module":{{"sha256":"{sha}"}},"volumes":{{"/x":"nope"}}}}"#
            )),
            codes::UNKNOWN_VOLUME
        );
        assert_eq!(
            admit_json(&format!(
                r#"{{"module":{{"sha256":"{sha}"}},"limits":{{"timeout_ms":999999999}}}}"#
            )),
            codes::LIMIT_ABOVE_MAXIMUM
        );
        assert_eq!(
            admit_json(r#"{"module":{"path":"/home/me/m.wasm"}}"#),
            codes::MODULE_PATH_NOT_ALLOWED
        );
        // The operator's own jobs may name any digest: whether it exists is for the
        // resolver to say.
        assert_eq!(
            admit_json(&format!(r#"{{"module":{{"sha256":"{sha}"}}}}"#)),
            "admitted"
        );
    }

    #[test]
    fn a_tenant_gets_its_own_policy_and_nothing_else() {
        let (c, dir) = (config(true), tempfile::tempdir().unwrap());
        let cache = Cache::open(dir.path(), None).unwrap();
        let inline_job = job(&format!(
            r#"{{"module":{{"base64":"{}"}},"volumes":{{"/ref":"ref"}}}}"#,
            inline()
        ));
        // Unverified jobs, and users without a policy, are refused on this worker.
        assert_eq!(
            code(admit(&c, local(&cache), &inline_job, who(None))),
            codes::TENANT_NOT_ALLOWED
        );
        assert_eq!(
            code(admit(&c, local(&cache), &inline_job, who(Some("mallory")))),
            codes::TENANT_NOT_ALLOWED
        );
        // Alice may mount `ref` and send her module inline; it is kept in her namespace.
        let a = admit(&c, local(&cache), &inline_job, who(Some("alice"))).unwrap();
        assert!(!a.mounts[0].writable);
        assert_eq!(a.keep_for, Some("alice"));
        // `scratch` is declared, but not hers: refused as if it did not exist.
        let scratch = job(&format!(
            r#"{{"module":{{"base64":"{}"}},"volumes":{{"/s":"scratch"}}}}"#,
            inline()
        ));
        assert_eq!(
            code(admit(&c, local(&cache), &scratch, who(Some("alice")))),
            codes::VOLUME_NOT_ALLOWED
        );
    }

    #[test]
    fn a_tenant_sees_the_shared_store_and_its_own_namespace_only() {
        let (mut c, dir) = (config(true), tempfile::tempdir().unwrap());
        c.tenancy.as_mut().unwrap().tenants.insert(
            "bob".into(),
            TenantPolicy::restrictive(&SandboxConfig::default().limits),
        );
        let cache = Cache::open(dir.path(), None).unwrap();
        let by_sha = |d: &Digest| job(&format!(r#"{{"module":{{"sha256":"{d}"}}}}"#));
        let alices = cache.put_tenant_module("alice", NOOP).unwrap();
        // In alice's namespace: hers to run, and not bob's to see.
        let hers = by_sha(&alices);
        let a = admit(&c, local(&cache), &hers, who(Some("alice"))).unwrap();
        assert!(matches!(&a.source, Source::Tenant(t) if t == "alice"));
        let refused = admit(&c, local(&cache), &by_sha(&alices), who(Some("bob")))
            .err()
            .unwrap();
        assert!(
            matches!(&refused.error, JobError::Rejected(r) if r.code == codes::MODULE_NOT_FOUND),
            "{:?}",
            refused.error
        );
        assert_eq!(refused.module, Some(alices), "the refusal names the module");
        // Once in the shared store, everyone's.
        let shared = cache.put_module(NOOP).unwrap();
        assert!(matches!(
            admit(&c, local(&cache), &by_sha(&shared), who(Some("bob")))
                .unwrap()
                .source,
            Source::Store
        ));
        // Bob may not send modules inline.
        let inline_job = job(&format!(r#"{{"module":{{"base64":"{}"}}}}"#, inline()));
        assert_eq!(
            code(admit(&c, local(&cache), &inline_job, who(Some("bob")))),
            codes::INLINE_MODULE_NOT_ALLOWED
        );
    }

    #[test]
    fn each_job_error_is_its_own_status() {
        let cases = [
            (
                JobError::Rejected(Rejection::new(codes::UNKNOWN_VOLUME, "v")),
                Status::Rejected,
                codes::UNKNOWN_VOLUME,
            ),
            (
                JobError::OverMemory(Rejection::new(codes::MEMORY_LIMIT, "m")),
                Status::MemoryExceeded,
                codes::MEMORY_LIMIT,
            ),
            (
                JobError::Cancelled("c".into()),
                Status::Cancelled,
                codes::CANCELLED,
            ),
            (
                JobError::Expired("e".into()),
                Status::Expired,
                codes::EXPIRED,
            ),
        ];
        for (e, status, code) in cases {
            let mut r = JobResult::new("j", None);
            e.record(&mut r).unwrap();
            assert_eq!((r.status, r.code.as_str()), (status, code));
        }
        // A host fault is no status of the job's: it comes back as itself.
        let mut r = JobResult::new("j", None);
        let e = JobError::Host(HostError::new("disk"))
            .record(&mut r)
            .unwrap_err();
        assert_eq!(e.message(), "disk");
        assert_eq!(r, JobResult::new("j", None));
    }

    #[test]
    fn a_job_past_its_expiry_or_cancelled_is_not_admitted() {
        let (c, dir) = (config(true), tempfile::tempdir().unwrap());
        let cache = Cache::open(dir.path(), None).unwrap();
        let j = job(&format!(
            r#"{{"module":{{"base64":"{}"}},"expires_at":"2026-12-01T16:00:00Z"}}"#,
            inline()
        ));
        let at = j.expiry().unwrap();
        let second = std::time::Duration::from_secs(1);
        let when = |now, cancelled| Intake {
            tenant: Some("alice"),
            now,
            cancelled,
        };
        assert!(admit(&c, local(&cache), &j, when(at - second, false)).is_ok());
        let Err(late) = admit(&c, local(&cache), &j, when(at + second, false)) else {
            panic!("an expired job admitted")
        };
        let mut r = JobResult::new("j", None);
        late.error.record(&mut r).unwrap();
        assert_eq!(
            (r.status, r.code.as_str()),
            (Status::Expired, codes::EXPIRED)
        );
        assert!(
            r.message.contains("2026-12-01T16:00:00Z (1000 ms ago)"),
            "{}",
            r.message
        );
        let cancelled = admit(&c, local(&cache), &j, when(at - second, true));
        assert!(matches!(
            cancelled,
            Err(NotAdmitted {
                error: JobError::Cancelled(_),
                ..
            })
        ));
        // A tenant that may not run jobs at all is told that first.
        let refused = admit(
            &c,
            local(&cache),
            &j,
            Intake {
                tenant: Some("mallory"),
                ..when(at + second, true)
            },
        );
        assert_eq!(code(refused), codes::TENANT_NOT_ALLOWED);
    }

    #[test]
    fn a_tenant_names_only_the_registries_its_policy_allows() {
        let (c, dir) = (config(true), tempfile::tempdir().unwrap());
        let cache = Cache::open(dir.path(), None).unwrap();
        let by_ref = |r: &str| job(&format!(r#"{{"module":{{"oci":"{r}"}}}}"#));
        let ok = by_ref("registry.example:5000/alice/tools:v1");
        let a = admit(&c, local(&cache), &ok, who(Some("alice"))).unwrap();
        assert_eq!(a.digest, None, "known once the reference is resolved");
        assert!(
            matches!(&a.source, Source::Reference(r) if r == "registry.example:5000/alice/tools:v1")
        );
        for other in [
            "registry.example:5000/alicebob/tools:v1",
            "registry.example:5000/bob/tools:v1",
            "registry.example/alice/tools:v1",
        ] {
            assert_eq!(
                code(admit(&c, local(&cache), &by_ref(other), who(Some("alice")))),
                codes::REGISTRY_NOT_ALLOWED,
                "{other}"
            );
        }
        // Without tenancy the operator's worker runs any reference.
        let plain = config(false);
        let any = by_ref("elsewhere.example/x:1");
        assert!(admit(&plain, local(&cache), &any, who(None)).is_ok());
        // With a registry behind the store, a tenant's sha256 not here yet is pulled.
        let sha = Digest::of(b"elsewhere").to_hex();
        let by_sha = job(&format!(r#"{{"module":{{"sha256":"{sha}"}}}}"#));
        assert_eq!(
            code(admit(&c, local(&cache), &by_sha, who(Some("alice")))),
            codes::MODULE_NOT_FOUND
        );
        let remote = ModuleAccess {
            cache: &cache,
            remote: true,
        };
        assert!(matches!(
            admit(&c, remote, &by_sha, who(Some("alice"))).map(|a| a.source),
            Ok(Source::Store)
        ));
    }

    #[test]
    fn a_job_narrows_its_policys_outbound_hosts_and_never_widens_them() {
        let (c, dir) = (config(true), tempfile::tempdir().unwrap());
        let cache = Cache::open(dir.path(), None).unwrap();
        let with = |hosts: &str| {
            job(&format!(
                r#"{{"module":{{"base64":"{}"}},"allowed_outbound_hosts":{hosts}}}"#,
                inline()
            ))
        };
        let listed = |j: &Job| {
            admit(&c, local(&cache), j, who(Some("alice")))
                .map(|a| {
                    a.outbound
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_else(|n| panic!("{:?}", n.error))
        };
        // Silent: the policy's list; narrower: its own; empty: no network.
        let silent = job(&format!(r#"{{"module":{{"base64":"{}"}}}}"#, inline()));
        assert_eq!(
            listed(&silent),
            ["https://*.alice.example", "http://127.0.0.1:8080"]
        );
        assert_eq!(
            listed(&with(r#"["https://api.alice.example"]"#)),
            ["https://api.alice.example"]
        );
        assert!(listed(&with("[]")).is_empty());
        for wider in [
            r#"["https://alice.example"]"#,
            r#"["https://*"]"#,
            r#"["http://api.alice.example"]"#,
            r#"["http://127.0.0.1:8081"]"#,
            r#"["http://127.0.0.1:*"]"#,
        ] {
            assert_eq!(
                code(admit(&c, local(&cache), &with(wider), who(Some("alice")))),
                codes::OUTBOUND_HOST_NOT_ALLOWED,
                "{wider}"
            );
        }
        // The default policy allows nothing: any entry is wider.
        let plain = config(false);
        assert_eq!(
            code(admit(
                &plain,
                local(&cache),
                &with(r#"["https://a.example"]"#),
                who(None)
            )),
            codes::OUTBOUND_HOST_NOT_ALLOWED
        );
        // An entry that does not parse is refused when the job is decoded.
        let bad = format!(
            r#"{{"module":{{"base64":"{}"}},"allowed_outbound_hosts":["a.example"]}}"#,
            inline()
        );
        let (r, _, _) = decode_job(bad.as_bytes()).unwrap_err();
        assert_eq!(r.code, codes::INVALID_FIELD, "{}", r.message);
    }
}
