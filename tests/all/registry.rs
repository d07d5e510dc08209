//! A fleet whose modules live in an OCI registry: the CNCF distribution registry (Debian's
//! `docker-registry`), started by each test on a free port with its own storage.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use wasmq_spec::{CacheOutcome, Status};

use crate::fleet::{Fleet, wait_until};
use crate::support::{Run, guest, job, with};

#[path = "../support/registry.rs"]
mod server;
pub use server::TestRegistry;

impl TestRegistry {
    /// Pushes a manifest of one layer by plain HTTP, as the distribution spec says (the
    /// way any other client would): returns the manifest's digest.
    pub fn push_raw(
        &self,
        repo: &str,
        tag: &str,
        config: (&str, &[u8]),
        layer: (&str, &[u8]),
    ) -> String {
        for (_, bytes) in [config, layer] {
            let (code, head, _) = http(
                &self.addr,
                "POST",
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                &[],
            );
            assert_eq!(code, 202, "starting an upload: {head}");
            let location = header(&head, "location").expect("an upload location");
            let path = location
                .split_once("://")
                .map(|(_, rest)| &rest[rest.find('/').unwrap()..])
                .unwrap_or(location.as_str())
                .to_owned();
            let sep = if path.contains('?') { '&' } else { '?' };
            let (code, head, _) = http(
                &self.addr,
                "PUT",
                &format!("{path}{sep}digest=sha256:{}", sha256_hex(bytes)),
                &[("Content-Type", "application/octet-stream")],
                bytes,
            );
            assert_eq!(code, 201, "uploading a blob: {head}");
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config.0, "digest": format!("sha256:{}", sha256_hex(config.1)), "size": config.1.len()},
            "layers": [{"mediaType": layer.0, "digest": format!("sha256:{}", sha256_hex(layer.1)), "size": layer.1.len()}],
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        let (code, head, _) = http(
            &self.addr,
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            &body,
        );
        assert_eq!(code, 201, "pushing a manifest: {head}");
        format!("sha256:{}", sha256_hex(&body))
    }

    /// The status of `GET /v2/{path}` (with a manifest Accept header).
    pub fn get(&self, path: &str) -> u16 {
        http(
            &self.addr,
            "GET",
            &format!("/v2/{path}"),
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
            &[],
        )
        .0
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One HTTP/1.1 request: (status, head, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head, out[split + 4..].to_vec())
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A fleet whose module store is `store` on `registry`, reached over plain HTTP.
fn fleet_on(name: &str, registry: &TestRegistry) -> Fleet {
    let mut f = Fleet::new(name);
    f.broker_flags = vec![
        "--module-store".into(),
        registry.url("wasmq/modules"),
        "--insecure-registry".into(),
        registry.addr.clone(),
    ];
    f
}

/// Flags giving worker `n` a cache directory of its own (with the fleet's one key file).
fn own_cache(f: &Fleet, n: usize) -> Vec<String> {
    vec![
        "--cache-dir".into(),
        f.dir
            .path()
            .join(format!("cache-{n}"))
            .display()
            .to_string(),
        "--artifact-key-file".into(),
        f.dir.path().join("fleet.key").display().to_string(),
    ]
}

/// `wasmq results --batch B --wait --expect N`: for batches that got jobs besides those
/// `submit` counted in its manifest.
fn results_expect(f: &Fleet, batch: &str, n: usize) -> Run {
    let out = f
        .wasmq()
        .args(["results", "--batch", batch, "--wait", "--timeout", "60"])
        .args(["--expect", &n.to_string()])
        .args(&f.broker_flags)
        .output()
        .unwrap();
    crate::support::parse(out)
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn hello(id: &str) -> Value {
    json!({"id": id, "module": {"path": guest("hello").display().to_string()}, "stdin": "x"})
}

fn wasm_files(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_all(run: &Run, n: usize, status: Status) {
    assert_eq!(run.results.len(), n, "{}", run.stderr);
    for r in &run.results {
        assert_eq!(r.status, status, "{} {}: {}", r.id, r.code, r.message);
    }
}

#[test]
fn submit_pushes_modules_and_workers_with_their_own_caches_pull_them() {
    let registry = TestRegistry::start();
    let mut f = fleet_on("reg-pull", &registry);
    let wordcount = guest("wordcount");
    let mut jobs: Vec<Value> = (0..20).map(|i| hello(&format!("h{i}"))).collect();
    jobs.extend((0..20).map(|i| {
        json!({"id": format!("w{i}"), "module": {"path": wordcount.display().to_string()}, "files": {"input.txt": "a b a"}})
    }));
    // Registries are reached over HTTPS unless the operator lists them: this one speaks
    // plain HTTP, so without --insecure-registry the push fails and says so.
    let file = f.dir.jobs_file("tls.jsonl", &[hello("tls")]);
    let out = f
        .wasmq()
        .args(["submit", "--module-store", &registry.url("wasmq/modules")])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("https://{}", registry.addr)), "{err}");
    assert!(err.contains("insecure_registries"), "{err}");
    for n in 0..2 {
        let mut flags = own_cache(&f, n);
        flags.extend(["--prefetch".into(), "2".into()]);
        f.start_worker(2, &args(&flags));
    }
    let batch = f.submit(&jobs);
    // Pushed as the CNCF wasm layout, tagged by digest.
    let hello_hex = sha256_hex(&std::fs::read(guest("hello")).unwrap());
    assert_eq!(
        registry.get(&format!("wasmq/modules/manifests/module-{hello_hex}")),
        200
    );
    assert!(registry.blob_file(&hello_hex).is_file());
    assert_eq!(
        wasm_files(&f.dir.cache_dir()),
        0,
        "submit keeps nothing on its own disk"
    );
    // prewarm pushes too (and compiles here).
    let out = f
        .wasmq()
        .arg("prewarm")
        .args(&f.broker_flags)
        .arg(guest("upper"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let upper_hex = sha256_hex(&std::fs::read(guest("upper")).unwrap());
    assert_eq!(
        registry.get(&format!("wasmq/modules/manifests/module-{upper_hex}")),
        200
    );
    let run = f.results(&batch, 60);
    assert_all(&run, 40, Status::Succeeded);
    assert_eq!(run.by_id("h3").module.as_deref(), Some(hello_hex.as_str()));
    assert!(
        run.by_id("h3").stdout.ends_with("\nx"),
        "{}",
        run.by_id("h3").stdout
    );
    let pulled: Vec<usize> = (0..2)
        .map(|n| wasm_files(&f.dir.path().join(format!("cache-{n}"))))
        .collect();
    let ran: Vec<usize> = (0..2)
        .map(|n| {
            run.results
                .iter()
                .filter(|r| r.worker.as_deref() == Some(f.workers[n].id.as_str()))
                .count()
        })
        .collect();
    for n in 0..2 {
        assert!(ran[n] > 0, "worker {n} ran no job: {ran:?}");
        assert!(
            (1..=2).contains(&pulled[n]),
            "worker {n} keeps a copy of each module it pulled: {pulled:?}"
        );
        // One pull per module however many jobs needed it at once.
        let log = f.workers[n].log.lock().unwrap().clone();
        assert_eq!(
            log.matches("module pulled").count(),
            pulled[n],
            "worker {n}:\n{log}"
        );
    }
}

#[test]
fn a_module_pushed_by_another_client_runs_by_tag_and_submit_pins_the_tag() {
    let registry = TestRegistry::start();
    let mut f = fleet_on("reg-tag", &registry);
    let hello_bytes = std::fs::read(guest("hello")).unwrap();
    let upper_bytes = std::fs::read(guest("upper")).unwrap();
    let wasm_config = br#"{"architecture":"wasm","os":"wasip1","layerDigests":[]}"#;
    let cncf = registry.push_raw(
        "others/tools",
        "v1",
        ("application/vnd.wasm.config.v0+json", wasm_config),
        ("application/wasm", &hello_bytes),
    );
    // A plain single-layer artifact, of the kind other tools push.
    registry.push_raw(
        "others/tools",
        "plain",
        ("application/vnd.oci.empty.v1+json", b"{}"),
        ("application/octet-stream", &upper_bytes),
    );
    // A component, as wkg would push it (os wasip2).
    let component = std::fs::read(guest("hello-p2")).unwrap();
    registry.push_raw(
        "others/tools",
        "p2",
        (
            "application/vnd.wasm.config.v0+json",
            br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#,
        ),
        ("application/wasm", &component),
    );
    let by_ref = |id: &str, r: &str| json!({"id": id, "module": {"oci": format!("{}/others/tools{r}", registry.addr)}, "stdin": "abc"});
    let batch = f.submit(&[
        by_ref("tagged", ":v1"),
        by_ref("plain", ":plain"),
        by_ref("digest", &format!("@{cncf}")),
        by_ref("component", ":p2"),
    ]);
    // The tag moves before any worker runs the batch: the jobs run what it named at submit.
    registry.push_raw(
        "others/tools",
        "v1",
        ("application/vnd.wasm.config.v0+json", wasm_config),
        ("application/wasm", &upper_bytes),
    );
    f.start_worker(2, &[]);
    let run = f.results(&batch, 60);
    assert_all(&run, 4, Status::Succeeded);
    let c = run.by_id("component");
    assert_eq!(c.kind, Some(wasmq_spec::JobKind::Component));
    assert_eq!(c.module.as_deref(), Some(sha256_hex(&component).as_str()));
    let hello_hex = sha256_hex(&hello_bytes);
    let upper_hex = sha256_hex(&upper_bytes);
    assert_eq!(
        run.by_id("tagged").module.as_deref(),
        Some(hello_hex.as_str())
    );
    let out = &run.by_id("tagged").stdout;
    assert!(
        out.starts_with("hello, ") && out.ends_with("\nabc"),
        "{out}"
    );
    assert_eq!(
        run.by_id("digest").module.as_deref(),
        Some(hello_hex.as_str())
    );
    assert_eq!(
        run.by_id("plain").module.as_deref(),
        Some(upper_hex.as_str())
    );
    // A job that reaches a worker with a tag (not through submit) runs what the tag
    // names then, and its result says which module that was.
    let body = serde_json::to_vec(&json!({"id": "raw", "batch": batch, "module": {"oci": format!("{}/others/tools:v1", registry.addr)}, "stdin": "abc"})).unwrap();
    f.publish_raw(&body, lapin::BasicProperties::default());
    // The batch's stream holds the four results read above, then this one.
    let raw = results_expect(&f, &batch, 5);
    let r = raw.by_id("raw");
    assert_eq!(r.status, Status::Succeeded, "{}", r.message);
    assert_eq!(r.module.as_deref(), Some(upper_hex.as_str()));
}

#[test]
fn unknown_references_and_wrong_bytes_are_rejected_and_nothing_is_cached() {
    let registry = TestRegistry::start();
    let mut f = fleet_on("reg-bad", &registry);
    let hello_bytes = std::fs::read(guest("hello")).unwrap();
    let hello_hex = sha256_hex(&hello_bytes);
    let batch = f.submit(&[hello("pushed")]);
    // The registry's copy of the module is altered (same length): it now serves bytes
    // that do not match the digest they are stored under.
    let blob = registry.blob_file(&hello_hex);
    let mut altered = std::fs::read(&blob).unwrap();
    let last = altered.len() - 1;
    altered[last] ^= 0xff;
    std::fs::write(&blob, &altered).unwrap();
    let a = f.dir.path().join("cache-a");
    f.start_worker(1, &args(&own_cache(&f, 0)));
    let body = |id: &str, module: Value| {
        serde_json::to_vec(&json!({"id": id, "batch": batch, "module": module})).unwrap()
    };
    for (id, module) in [
        (
            "no-tag",
            json!({"oci": format!("{}/wasmq/modules:nope", registry.addr)}),
        ),
        (
            "no-repo",
            json!({"oci": format!("{}/nobody/here:v1", registry.addr)}),
        ),
        ("no-digest", json!({"sha256": sha256_hex(b"never pushed")})),
    ] {
        f.publish_raw(&body(id, module), lapin::BasicProperties::default());
    }
    let run = results_expect(&f, &batch, 4);
    assert_eq!(run.results.len(), 4, "{}", run.stderr);
    let bad = run.by_id("pushed");
    assert_eq!(
        (bad.status, bad.code.as_str()),
        (Status::Rejected, "module_digest_mismatch"),
        "{}",
        bad.message
    );
    assert_eq!(bad.module.as_deref(), Some(hello_hex.as_str()));
    for id in ["no-tag", "no-repo", "no-digest"] {
        let r = run.by_id(id);
        assert_eq!(
            (r.status, r.code.as_str()),
            (Status::Rejected, "module_not_found"),
            "{id}: {}",
            r.message
        );
    }
    assert_eq!(
        wasm_files(&f.dir.path().join("cache-0")),
        0,
        "bytes that fail their digest are never cached"
    );
    drop(a);
}

#[test]
fn jobs_wait_while_the_registry_is_down_and_complete_when_it_is_back() {
    let mut registry = TestRegistry::start();
    let mut f = fleet_on("reg-down", &registry);
    f.broker_flags
        .extend(["--delivery-limit".into(), "2".into()]);
    let jobs: Vec<Value> = (0..30).map(|i| hello(&format!("j{i}"))).collect();
    let batch = f.submit(&jobs);
    registry.stop();
    f.start_worker(2, &args(&own_cache(&f, 0)));
    // The worker takes jobs and finds the registry down: it retries, holding them.
    let started = Instant::now();
    wait_until(
        "the worker to try the registry",
        Duration::from_secs(20),
        || {
            f.workers[0]
                .log
                .lock()
                .unwrap()
                .contains("registry unavailable; retrying")
                || started.elapsed() > Duration::from_secs(3)
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    registry.resume();
    let run = f.results(&batch, 60);
    assert_all(&run, 30, Status::Succeeded);
    assert_eq!(f.ready("jobs.dead"), 0, "nothing was dead-lettered");
}

#[test]
fn a_registry_that_stays_down_dead_letters_the_job_past_the_delivery_limit() {
    let mut registry = TestRegistry::start();
    let mut f = fleet_on("reg-gone", &registry);
    f.broker_flags
        .extend(["--delivery-limit".into(), "1".into()]);
    let batch = f.submit(&[hello("gone")]);
    registry.stop();
    let mut flags = own_cache(&f, 0);
    flags.extend(["--registry-retry-secs".into(), "1".into()]);
    f.start_worker(1, &args(&flags));
    wait_until(
        "the job to be dead-lettered",
        Duration::from_secs(30),
        || f.ready("jobs.dead") == 1,
    );
    let log = f.workers[0].log.lock().unwrap().clone();
    assert!(
        log.contains("the registry was unavailable for 1 s"),
        "{log}"
    );
    // It never became a result: the job was not at fault.
    let out = f
        .wasmq()
        .args(["results", "--batch", &batch])
        .args(&f.broker_flags)
        .output()
        .unwrap();
    let run = crate::support::parse(out);
    assert!(run.results.is_empty(), "{:?}", run.results);
}

#[test]
fn a_held_lease_delays_a_compile_by_the_wait_at_most() {
    let registry = TestRegistry::start();
    let mut f = fleet_on("reg-lease", &registry);
    f.broker_flags
        .extend(["--artifact-store".into(), registry.url("wasmq/artifacts")]);
    let mut flags = own_cache(&f, 0);
    flags.extend(["--compile-wait-secs".into(), "2".into()]);
    f.start_worker(1, &args(&flags));
    // The engine fingerprint names the lease: learn it from a first job.
    let first = f.submit(&[json!({"id": "probe", "module": {"path": guest("upper").display().to_string()}, "kind": "function", "input": "x"})]);
    let probe = f.results(&first, 60);
    let engine = probe.by_id("probe").engine.clone().expect("an engine");
    // A worker that took the lease of hello and died without ever releasing it, as far as
    // the others can tell: the test's own connection holds it.
    let hello_hex = sha256_hex(&std::fs::read(guest("hello")).unwrap());
    let lease = format!("{}.lease.{engine}.{hello_hex}.cwasm", f.prefix);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let holder = rt.block_on(async {
        let conn = lapin::Connection::connect(
            &crate::fleet::amqp_url(),
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            lease.as_str().into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
        conn
    });
    let started = Instant::now();
    let batch = f.submit(&[hello("waited")]);
    let run = f.results(&batch, 60);
    let took = started.elapsed();
    let r = run.by_id("waited");
    assert_eq!(r.status, Status::Succeeded, "{}", r.message);
    assert_eq!(r.cache, Some(CacheOutcome::Compiled));
    assert!(
        took >= Duration::from_secs(2),
        "it waited for the holder first: {took:?}"
    );
    f.workers[0].wait_for_log(
        "holds the compile lease past the wait",
        Duration::from_secs(1),
    );
    rt.block_on(async {
        let _ = holder.close(200, "done".into()).await;
    });
}

#[test]
fn a_registry_with_basic_auth_takes_the_configured_credentials() {
    let registry = TestRegistry::start_with(Some(("ci", "s3cret")));
    let mut f = fleet_on("reg-auth", &registry);
    // Without credentials the push is refused, and submit says so.
    let file = f.dir.jobs_file("one.jsonl", &[hello("a")]);
    let out = f
        .wasmq()
        .arg("submit")
        .args(&f.broker_flags)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not push the module"), "{err}");
    // With them (from the environment, as a worker's Secret would give them), it works.
    let creds = [
        ("WASMQ_REGISTRY_USERNAME", "ci"),
        ("WASMQ_REGISTRY_PASSWORD", "s3cret"),
    ];
    let mut submit = f.wasmq();
    submit
        .envs(creds)
        .arg("submit")
        .args(&f.broker_flags)
        .arg(&file);
    let out = submit.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let batch = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut worker = f.wasmq();
    worker
        .envs(creds)
        .args(["worker", "--worker-id", "auth-w", "--concurrency", "1"]);
    worker.args(&f.broker_flags).args(own_cache(&f, 0));
    f.workers.push(crate::fleet::WorkerProc::spawn(
        worker,
        "auth-w".into(),
        Duration::from_secs(30),
    ));
    let run = f.results(&batch, 60);
    assert_all(&run, 1, Status::Succeeded);
}

#[test]
fn three_cold_workers_compile_each_module_once_with_a_shared_artifact_store() {
    let registry = TestRegistry::start();
    let mut f = fleet_on("reg-once", &registry);
    f.broker_flags
        .extend(["--artifact-store".into(), registry.url("wasmq/artifacts")]);
    // Modules of several sizes, so that compiles overlap: a worker asks for one lease
    // while it holds another.
    let modules = [
        "hello",
        "wordcount",
        "upper",
        "jsonx",
        "hashbench",
        "fsprobe",
    ];
    let jobs: Vec<Value> = (0..60)
        .map(|i| {
            json!({"id": format!("j{i}"), "module": {"path": guest(modules[i % 6]).display().to_string()}, "files": {"input.txt": "a b"}, "stdin": "[]"})
        })
        .collect();
    for n in 0..3 {
        let mut flags = own_cache(&f, n);
        flags.extend(["--prefetch".into(), "2".into()]);
        f.start_worker(2, &args(&flags));
    }
    let batch = f.submit(&jobs);
    let run = f.results(&batch, 120);
    assert_eq!(run.results.len(), 60, "{}", run.stderr);
    assert_eq!(
        run.count_cache(CacheOutcome::Compiled),
        modules.len(),
        "one compile per module in the whole fleet: {:?}",
        run.results
            .iter()
            .map(|r| (r.worker.clone(), r.module.clone(), r.cache))
            .collect::<Vec<_>>()
    );
    let workers_used = (0..3)
        .filter(|n| {
            run.results
                .iter()
                .any(|r| r.worker.as_deref() == Some(f.workers[*n].id.as_str()))
        })
        .count();
    assert!(workers_used >= 2, "the jobs were spread over the workers");
    assert!(run.count_cache(CacheOutcome::HitRemote) >= 1);
    // A worker with another key never loads what the fleet shared: its MAC fails, the
    // artifact is quarantined and the module compiled here.
    let stranger = vec![
        "--cache-dir".to_owned(),
        f.dir.path().join("cache-x").display().to_string(),
        "--artifact-key-file".to_owned(),
        f.dir.path().join("other.key").display().to_string(),
    ];
    for w in &mut f.workers {
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    f.start_worker(1, &args(&stranger));
    let again = f.submit(&[hello("stranger")]);
    let run = f.results(&again, 60);
    let r = run.by_id("stranger");
    assert_eq!(r.status, Status::Succeeded, "{}", r.message);
    assert_eq!(r.cache, Some(CacheOutcome::Compiled));
    assert_eq!(
        walk(&f.dir.path().join("cache-x/quarantine")).len(),
        1,
        "the forged-looking artifact is kept in quarantine"
    );
}

#[test]
fn workers_sharing_one_cache_directory_compile_once() {
    let mut f = Fleet::new("reg-lock");
    let jobs: Vec<Value> = (0..8)
        .map(|i| {
            with(
                job(&format!("j{i}"), &guest("jsonx")),
                json!({"stdin": "[]"}),
            )
        })
        .collect();
    for _ in 0..2 {
        f.start_worker(2, &["--prefetch", "2"]);
    }
    let batch = f.submit(&jobs);
    let run = f.results(&batch, 120);
    assert_all(&run, 8, Status::Succeeded);
    assert_eq!(
        run.count_cache(CacheOutcome::Compiled),
        1,
        "{:?}",
        run.results
            .iter()
            .map(|r| (r.worker.clone(), r.cache))
            .collect::<Vec<_>>()
    );
}

/// Polls `try_take(name)` on `leases` until it is granted (within 10 s).
async fn take_within(
    leases: &wasmq_broker::lease::AmqpLeases,
    name: &str,
) -> Box<dyn wasmq_cache::remote::LeaseGuard> {
    use wasmq_cache::remote::Leases as _;
    let started = Instant::now();
    loop {
        if let Some(g) = leases.try_take(name).await.unwrap() {
            return g;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "lease {name} was never released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn compile_leases_are_exclusive_survive_a_refusal_and_die_with_their_holder() {
    use wasmq_broker::lease::AmqpLeases;
    use wasmq_cache::remote::Leases as _;
    crate::fleet::require_broker();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let prefix = format!("test.lease.{}", std::process::id());
        let start = |name: &str, token: &tokio_util::sync::CancellationToken| {
            AmqpLeases::start(
                vec![crate::fleet::amqp_url()],
                format!("{prefix} {name}"),
                prefix.clone(),
                token.clone(),
            )
        };
        let (ta, tb, tc) = Default::default();
        let (a, b, c) = (start("a", &ta), start("b", &tb), start("c", &tc));
        let held_one = a.try_take("one").await.unwrap().expect("a free lease");
        let _held_two = b.try_take("two").await.unwrap().expect("a free lease");
        assert!(b.try_take("one").await.unwrap().is_none(), "a holds it");
        // A refusal closes a channel of a's lease connection, not the connection: the
        // lease a holds stays held.
        assert!(a.try_take("two").await.unwrap().is_none(), "b holds it");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            c.try_take("one").await.unwrap().is_none(),
            "a still holds its lease after being refused another"
        );
        drop(held_one);
        drop(take_within(&c, "one").await);
        // A holder whose connection goes (a worker that dies) releases what it held.
        b.close().await;
        drop(take_within(&c, "two").await);
        tb.cancel();
        ta.cancel();
        tc.cancel();
    });
}
