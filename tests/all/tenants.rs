//! Tenants on a real RabbitMQ: two broker users of their own per test, a worker with
//! tenant policies, jobs submitted as each user. A job's tenant is its `user_id`, which
//! the broker verifies against the publishing connection's user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use serde_json::{Value, json};
use wasmq_spec::{JobResult, Status};

use crate::fleet::{Fleet, amqp_url};
use crate::support::{Dir, Run, fixture, guest, job, with};

fn rabbitmqctl(args: &[&str]) -> std::process::Output {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl is needed to create the tests' broker users")
}

/// A RabbitMQ user of this test run (unique name), with every permission on `/`; deleted
/// on drop.
pub(crate) struct BrokerUser {
    pub(crate) name: String,
    password: String,
}

impl BrokerUser {
    pub(crate) fn create(tag: &str) -> BrokerUser {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let user = BrokerUser {
            name: format!("wasmq-test-{tag}-{}-{nanos}", std::process::id()),
            password: format!("pw{nanos}{tag}"),
        };
        for args in [
            vec!["add_user", &user.name, &user.password],
            vec!["set_permissions", "-p", "/", &user.name, ".*", ".*", ".*"],
        ] {
            let out = rabbitmqctl(&args);
            assert!(
                out.status.success(),
                "rabbitmqctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        user
    }

    /// The test broker's URL, logged in as this user.
    pub(crate) fn url(&self) -> String {
        let base = amqp_url();
        let rest = match base.rsplit_once('@') {
            Some((_, rest)) => rest.to_owned(),
            None => base.split_once("://").unwrap().1.to_owned(),
        };
        format!("amqp://{}:{}@{rest}", self.name, self.password)
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_user", &self.name]);
    }
}

/// Two users per test: `a` has a tenant policy in every config below, `b` in some.
pub(crate) fn two_users() -> (BrokerUser, BrokerUser) {
    (BrokerUser::create("a"), BrokerUser::create("b"))
}

/// A volume `shared` with one file, and a worker config: `top` (top-level keys), the
/// volume, then `tenants` (tables).
pub(crate) fn write_config(f: &Fleet, top: &str, tenants: &str) -> String {
    let vol = f.dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("data.txt"), "shared data\n").unwrap();
    let path = f.dir.path().join("worker.toml");
    let text = format!(
        "{top}\n[volumes.shared]\npath = {:?}\n\n[limits.maximum]\nmemory_bytes = 1073741824\n\n{tenants}",
        vol.display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The policies most tests use: `a` may mount `shared` and send modules inline; `b` may
/// do neither, and may ask for at most 16 MiB of memory.
pub(crate) fn two_tenants(a: &BrokerUser, b: &BrokerUser) -> String {
    format!(
        "[tenants.{a}]\nvolumes = [\"shared\"]\ninline_modules = true\n\n[tenants.{b}]\n\n[tenants.{b}.limits.maximum]\nmemory_bytes = 16777216\n",
        a = a.name,
        b = b.name
    )
}

/// `wasmq submit` as `user` (with `--inline` when asked); returns the batch id.
pub(crate) fn submit_as(
    f: &Fleet,
    user: &BrokerUser,
    name: &str,
    jobs: &[Value],
    inline: bool,
) -> String {
    let file = f.dir.jobs_file(&format!("{name}.jsonl"), jobs);
    let mut c = f.wasmq();
    c.args(["submit", "--amqp-url", &user.url(), "--batch", name]);
    if inline {
        c.arg("--inline");
    }
    let out = c.arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "submit as {} failed: {}",
        user.name,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `wasmq results --batch B --wait` as `user`: a user's results are its own to read.
pub(crate) fn results_as(f: &Fleet, user: &BrokerUser, batch: &str, timeout_s: u64) -> Run {
    let out = f
        .wasmq()
        .args([
            "results",
            "--amqp-url",
            &user.url(),
            "--batch",
            batch,
            "--wait",
        ])
        .args(["--timeout", &timeout_s.to_string()])
        .output()
        .unwrap();
    crate::support::parse(out)
}

/// Submits as `user` and waits for every result of the batch.
fn run_as(f: &Fleet, user: &BrokerUser, name: &str, jobs: &[Value], inline: bool) -> Run {
    let batch = submit_as(f, user, name, jobs, inline);
    let r = results_as(f, user, &batch, 90);
    assert_eq!(r.results.len(), jobs.len(), "{}", r.stderr);
    r
}

fn tenant(r: &JobResult) -> Option<&str> {
    r.tenant.as_deref()
}

fn assert_rejected(r: &JobResult, code: &str, needle: &str) {
    assert_eq!(
        (r.status, r.code.as_str()),
        (Status::Rejected, code),
        "{}: {}",
        r.id,
        r.message
    );
    assert!(r.message.contains(needle), "{}: {}", r.id, r.message);
}

/// A command module (WAT) that prints `text`, unique to its caller: no other test or job
/// has its bytes. Returns its file and its sha256.
fn unique_module(dir: &Path, text: &str) -> (PathBuf, String) {
    let wat = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{text}\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = text.len() + 1
    );
    let path = dir.join(format!("{text}.wat").replace(' ', "-"));
    std::fs::write(&path, &wat).unwrap();
    let hex = wasmq_cache::Digest::of(&wat::parse_str(&wat).unwrap()).to_hex();
    (path, hex)
}

fn reads_the_volume(id: &str) -> Value {
    with(
        job(id, &guest("fsprobe")),
        json!({"volumes": {"/data": "shared"}, "args": ["read:/data/data.txt"]}),
    )
}

#[test]
fn each_verified_tenant_gets_its_own_policy() {
    let (a, b) = two_users();
    let mut f = Fleet::new("tenants-policy");
    let cfg = write_config(&f, "", &two_tenants(&a, &b));
    f.start_worker(2, &["--config", &cfg]);
    let big = json!({"limits": {"memory_bytes": 33554432}});
    let jobs = |who: &str| {
        vec![
            reads_the_volume(&format!("{who}-vol")),
            with(
                job(&format!("{who}-undeclared"), &fixture("noop.wat")),
                json!({"volumes": {"/x": "no-such-volume"}}),
            ),
            with(
                job(&format!("{who}-big"), &fixture("hello.wat")),
                big.clone(),
            ),
            job(&format!("{who}-plain"), &fixture("hello.wat")),
        ]
    };

    let ra = run_as(&f, &a, "policy-a", &jobs("a"), false);
    let rb = run_as(&f, &b, "policy-b", &jobs("b"), false);
    for r in &ra.results {
        assert_eq!(tenant(r), Some(a.name.as_str()), "{}", r.id);
    }
    for r in &rb.results {
        assert_eq!(tenant(r), Some(b.name.as_str()), "{}", r.id);
    }

    // Volumes: a mounts its volume; b may not, and learns of no other volume.
    let vol = ra.by_id("a-vol");
    assert_eq!(vol.status, Status::Succeeded, "{}", vol.message);
    assert_eq!(vol.stdout, "read /data/data.txt ok 12 bytes: shared data\n");
    assert_rejected(
        rb.by_id("b-vol"),
        "volume_not_allowed",
        &format!(
            "tenant {:?} may not mount volume \"shared\" (at /data); volumes it may mount: []",
            b.name
        ),
    );
    assert_rejected(
        ra.by_id("a-undeclared"),
        "volume_not_allowed",
        "volumes it may mount: [shared]",
    );
    assert_rejected(
        rb.by_id("b-undeclared"),
        "volume_not_allowed",
        "may not mount volume \"no-such-volume\"",
    );

    // Limits: b's maximum applies to b alone.
    assert_eq!(ra.by_id("a-big").status, Status::Succeeded);
    assert_rejected(
        rb.by_id("b-big"),
        "limit_above_maximum",
        &format!(
            "limits.memory_bytes = 33554432 is above tenant {:?}'s maximum of 16777216",
            b.name
        ),
    );
    assert_eq!(ra.by_id("a-plain").stdout, "hello from wasm\n");
    assert_eq!(rb.by_id("b-plain").stdout, "hello from wasm\n");

    // Inline modules: allowed for a, refused for b.
    let inline = |id: &str| vec![job(id, &fixture("hello.wat"))];
    let ra = run_as(&f, &a, "inline-a", &inline("a-inline"), true);
    let ok = ra.by_id("a-inline");
    assert_eq!(
        (ok.status, ok.stdout.as_str()),
        (Status::Succeeded, "hello from wasm\n"),
        "{}",
        ok.message
    );
    let rb = run_as(&f, &b, "inline-b", &inline("b-inline"), true);
    assert_rejected(
        rb.by_id("b-inline"),
        "inline_module_not_allowed",
        &format!("tenant {:?} may not send modules inline", b.name),
    );
    assert_eq!(tenant(rb.by_id("b-inline")), Some(b.name.as_str()));
}

#[test]
fn an_inline_module_belongs_to_its_tenant_alone() {
    let (a, b) = two_users();
    let mut f = Fleet::new("tenants-ns");
    let cfg = write_config(&f, "", &two_tenants(&a, &b));
    f.start_worker(2, &["--config", &cfg]);
    let (module, hex) = unique_module(f.dir.path(), &format!("module of {}", a.name));
    let by_sha = |id: &str, sha: &str| json!({"id": id, "module": {"sha256": sha}});

    // a sends it inline, then runs it by sha256 alone.
    let r = run_as(&f, &a, "ns-upload", &[job("upload", &module)], true);
    let up = r.by_id("upload");
    assert_eq!(up.status, Status::Succeeded, "{}", up.message);
    assert_eq!(up.module.as_deref(), Some(hex.as_str()));
    let cache = f.dir.cache_dir();
    assert!(
        cache
            .join("tenants")
            .join(&a.name)
            .join("modules")
            .join(&hex[..2])
            .join(format!("{hex}.wasm"))
            .is_file(),
        "kept in a's namespace"
    );
    assert!(
        !cache
            .join("modules")
            .join(&hex[..2])
            .join(format!("{hex}.wasm"))
            .exists(),
        "not in the shared store"
    );
    let r = run_as(&f, &a, "ns-again", &[by_sha("again", &hex)], false);
    let again = r.by_id("again");
    assert_eq!(again.status, Status::Succeeded, "{}", again.message);
    assert_eq!(again.stdout, format!("module of {}\n", a.name));

    // b cannot run it, nor tell it apart from a module that does not exist.
    let random = "ab".repeat(32);
    let r = run_as(
        &f,
        &b,
        "ns-probe",
        &[by_sha("probe", &hex), by_sha("random", &random)],
        false,
    );
    let (probe, missing) = (r.by_id("probe"), r.by_id("random"));
    assert_rejected(probe, "module_not_found", "is not in the module store");
    let shape = |x: &JobResult, sha: &str| {
        let mut v = serde_json::to_value(x).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("id");
        o.remove("timings");
        let msg = o["message"].as_str().unwrap().replace(sha, "<sha>");
        o.insert("message".into(), msg.into());
        o.insert("module".into(), json!("<sha>"));
        v
    };
    assert_eq!(
        shape(probe, &hex),
        shape(missing, &random),
        "another tenant's module reads exactly as a missing one"
    );
    assert_eq!(probe.module.as_deref(), Some(hex.as_str()));
    assert_eq!(missing.module.as_deref(), Some(random.as_str()));
    assert_eq!(tenant(probe), Some(b.name.as_str()));

    // Nor can a job without a tenant (no user_id), although the module is loaded. Its
    // result has no batch: it goes to the shared results queue, where the tenants'
    // results above never went.
    f.publish_raw(
        by_sha("anonymous", &hex).to_string().as_bytes(),
        BasicProperties::default(),
    );
    let out = f
        .wasmq()
        .args(["results", "--wait", "--expect", "1", "--timeout", "60"])
        .output()
        .unwrap();
    let r = crate::support::parse(out);
    assert_eq!(r.results.len(), 1, "{}", r.stderr);
    let anon = r.by_id("anonymous");
    assert_rejected(anon, "module_not_found", "is not in the module store");
    assert_eq!(tenant(anon), None);

    // A module in the shared store (uploaded by the operator's submit) is everyone's.
    let r = run_as(
        &f,
        &b,
        "ns-shared",
        &[job("shared", &fixture("hello.wat"))],
        false,
    );
    let hello_hex = r.by_id("shared").module.clone().unwrap();
    assert_eq!(r.by_id("shared").status, Status::Succeeded);
    let r = run_as(
        &f,
        &a,
        "ns-shared-a",
        &[by_sha("shared-a", &hello_hex)],
        false,
    );
    assert_eq!(r.by_id("shared-a").status, Status::Succeeded);
}

/// Publishes `body` to `queue` as `url`'s user with `user_id`, waiting for the confirm.
fn publish_with_user_id(url: &str, queue: &str, body: &[u8], user_id: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
        ch.confirm_select(Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_user_id(user_id.into());
        let publish = async {
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await?
            .await
        };
        let outcome = tokio::time::timeout(Duration::from_secs(20), publish)
            .await
            .map_err(|_| "no answer from the broker".to_owned())?;
        let _ = conn.close(200, "done".into()).await;
        match outcome {
            Ok(Confirmation::Ack(_)) => Ok(()),
            Ok(other) => Err(format!("not confirmed: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    })
}

#[test]
fn the_broker_refuses_a_forged_user_id() {
    let (a, b) = two_users();
    let mut f = Fleet::new("tenants-forge");
    let cfg = write_config(&f, "", &two_tenants(&a, &b));
    f.start_worker(1, &["--config", &cfg]);
    let queue = format!("{}.jobs", f.prefix);
    let body = |id: &str| {
        json!({"id": id, "module": {"sha256": "ab".repeat(32)}})
            .to_string()
            .into_bytes()
    };

    // Connected as a, claiming to be b: the broker closes the channel.
    let forged = publish_with_user_id(&a.url(), &queue, &body("forged"), &b.name);
    let why = forged.expect_err("the broker accepted a message whose user_id is another user");
    assert!(
        why.contains(&format!(
            "user_id property set to '{}' but authenticated user was '{}'",
            b.name, a.name
        )),
        "refused, for its user_id: {why}"
    );
    // The same publish with a's own name goes through.
    publish_with_user_id(&a.url(), &queue, &body("honest"), &a.name)
        .expect("a publish with the connection's own user as user_id is accepted");

    let out = f
        .wasmq()
        .args(["results", "--wait", "--expect", "1", "--timeout", "60"])
        .output()
        .unwrap();
    let r = crate::support::parse(out);
    assert_eq!(r.results.len(), 1, "{}", r.stderr);
    let honest = r.by_id("honest");
    assert_eq!(tenant(honest), Some(a.name.as_str()));
    assert_eq!(honest.code, "module_not_found");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(f.ready("jobs"), 0);
    assert_eq!(f.ready("results"), 0, "no result of the forged message");
}

#[test]
fn jobs_without_a_tenant_policy_get_the_default_policy() {
    let (a, b) = two_users();
    let mut f = Fleet::new("tenants-default");
    // b has no policy here: its verified jobs are treated as jobs without a user_id.
    let cfg = write_config(
        &f,
        "unverified_jobs = \"default\"",
        &format!(
            "[tenants.{}]\nvolumes = [\"shared\"]\n\n[default_tenant]\ninline_modules = true\n\n[default_tenant.limits.maximum]\nmemory_bytes = 16777216\n",
            a.name
        ),
    );
    f.start_worker(2, &["--config", &cfg]);
    let hello = base64_module(&fixture("hello.wat"));
    let raw = |id: &str, extra: Value| {
        with(json!({"id": id, "module": {"base64": hello}}), extra)
            .to_string()
            .into_bytes()
    };
    // Published by guest without a user_id.
    let props = BasicProperties::default().with_content_type("application/json".into());
    f.publish_raw(&raw("anon-inline", json!({})), props.clone());
    f.publish_raw(
        &raw("anon-big", json!({"limits": {"memory_bytes": 33554432}})),
        props.clone(),
    );
    f.publish_raw(
        &raw("anon-vol", json!({"volumes": {"/data": "shared"}})),
        props.clone(),
    );
    let out = f
        .wasmq()
        .args(["results", "--wait", "--expect", "3", "--timeout", "60"])
        .output()
        .unwrap();
    let r = crate::support::parse(out);
    assert_eq!(r.results.len(), 3, "{}", r.stderr);
    for x in &r.results {
        assert_eq!(tenant(x), None, "{}: no user_id, no tenant", x.id);
    }
    let ok = r.by_id("anon-inline");
    assert_eq!(
        (ok.status, ok.stdout.as_str()),
        (Status::Succeeded, "hello from wasm\n"),
        "the default policy allows inline modules here: {}",
        ok.message
    );
    assert_rejected(
        r.by_id("anon-big"),
        "limit_above_maximum",
        "is above the default tenant policy's maximum of 16777216",
    );
    assert_rejected(
        r.by_id("anon-vol"),
        "volume_not_allowed",
        "a job without a tenant policy may not mount volume \"shared\"",
    );

    // A verified user with no policy of its own: the default policy, under its name.
    let r = run_as(
        &f,
        &b,
        "default-b",
        &[
            job("b-inline", &fixture("hello.wat")),
            reads_the_volume("b-vol"),
        ],
        true,
    );
    assert_eq!(r.by_id("b-inline").status, Status::Succeeded);
    assert_eq!(tenant(r.by_id("b-inline")), Some(b.name.as_str()));
    assert_rejected(
        r.by_id("b-vol"),
        "volume_not_allowed",
        "a job without a tenant policy",
    );
    // ... while a has its own.
    let r = run_as(&f, &a, "default-a", &[reads_the_volume("a-vol")], false);
    assert_eq!(r.by_id("a-vol").status, Status::Succeeded);
}

#[test]
fn jobs_without_a_tenant_policy_can_be_rejected() {
    let (a, b) = two_users();
    let mut f = Fleet::new("tenants-reject");
    let cfg = write_config(
        &f,
        "unverified_jobs = \"reject\"",
        &format!("[tenants.{}]\n", a.name),
    );
    f.start_worker(2, &["--config", &cfg]);
    let noop = base64_module(&fixture("noop.wat"));
    f.publish_raw(
        json!({"id": "anon", "module": {"base64": noop}})
            .to_string()
            .as_bytes(),
        BasicProperties::default(),
    );
    let out = f
        .wasmq()
        .args(["results", "--wait", "--expect", "1", "--timeout", "60"])
        .output()
        .unwrap();
    let r = crate::support::parse(out);
    assert_rejected(
        r.by_id("anon"),
        "tenant_not_allowed",
        "the job message has no user_id",
    );
    assert_eq!(tenant(r.by_id("anon")), None);

    let r = run_as(&f, &b, "reject-b", &[job("b", &fixture("noop.wat"))], false);
    assert_rejected(
        r.by_id("b"),
        "tenant_not_allowed",
        &format!(
            "broker user {:?} has no tenant policy on this worker",
            b.name
        ),
    );
    assert_eq!(tenant(r.by_id("b")), Some(b.name.as_str()));

    let r = run_as(&f, &a, "reject-a", &[job("a", &fixture("noop.wat"))], false);
    assert_eq!(
        r.by_id("a").status,
        Status::Succeeded,
        "{}",
        r.by_id("a").message
    );
    assert_eq!(tenant(r.by_id("a")), Some(a.name.as_str()));
}

fn base64_module(path: &Path) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(wat::parse_file(path).unwrap())
}

#[test]
fn a_bad_tenant_policy_stops_the_worker_at_start() {
    let d = Dir::new();
    let vol = d.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    let cases = [
        (
            "[tenants.alice]\nvolumes = [\"secret\"]\n",
            "tenants.alice: volume \"secret\" is not declared (declared volumes: [shared])",
        ),
        (
            "[tenants.alice.limits.maximum]\ntimeout_ms = 300001\n",
            "tenants.alice: limits.maximum.timeout_ms = 300001 is above the worker's maximum of 300000",
        ),
        (
            "[default_tenant.limits.maximum]\nmemory_bytes = 8589934592\n",
            "default_tenant: limits.maximum.memory_bytes = 8589934592 is above the worker's maximum",
        ),
        ("[tenants.'../x']\n", "tenant name \"../x\" must be"),
        ("unverified_jobs = \"maybe\"\n", "unverified_jobs"),
        ("[tenants.alice]\ninline = true\n", "unknown field `inline`"),
        (
            "[tenants.alice]\nweight = 0\n",
            "tenants.alice: weight = 0 must be 1 to 1000",
        ),
        (
            "[default_tenant]\nmax_in_flight = 0\n",
            "default_tenant: max_in_flight must be at least 1",
        ),
    ];
    for (i, (tenants, expected)) in cases.iter().enumerate() {
        let cfg = d.path().join(format!("bad{i}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[volumes.shared]\npath = {:?}\n\n{tenants}",
                vol.display().to_string()
            ),
        )
        .unwrap();
        let out = d
            .wasmq()
            .arg("worker")
            .arg("--config")
            .arg(&cfg)
            // Nothing listens there: the worker must stop before it connects.
            .args(["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tenants}: {stderr}");
        assert!(stderr.contains(expected), "{tenants}: {stderr}");
        assert!(!stderr.contains("could not connect"), "{stderr}");
    }
}

#[test]
fn wasmq_run_runs_the_operators_own_jobs_without_tenant_policies() {
    let d = Dir::new();
    let cfg = d.path().join("reject.toml");
    std::fs::write(&cfg, "unverified_jobs = \"reject\"\n[tenants.alice]\n").unwrap();
    let cfg = cfg.display().to_string();
    let r = d.run_jobs(&[job("local", &fixture("hello.wat"))], &["--config", &cfg]);
    let local = r.by_id("local");
    assert_eq!(local.status, Status::Succeeded, "{}", local.message);
    assert_eq!(local.tenant, None);
}
