//! Fair share on a real RabbitMQ: one tenant's backlog does not hold up another's jobs,
//! weights divide a worker between tenants, and `max_in_flight` caps a tenant's jobs
//! running at once. Tenants are broker users made by `deploy/rabbitmq/add-tenant.sh`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fleet::{Fleet, http_get, sample, wait_until};
use crate::isolation::Tenant;
use crate::support::{Run, fixture, job};
use crate::tenants::write_config;

/// `wasmq submit` of `jobs` as the tenant `t`, as the batch `batch`.
pub(crate) fn submit_as(f: &Fleet, t: &Tenant, batch: &str, jobs: &[Value]) {
    let file = f.dir.jobs_file(&format!("{batch}.jsonl"), jobs);
    let out = f
        .wasmq()
        .args(["submit", "--batch", batch, "--amqp-url", &t.url()])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn results_as(f: &Fleet, t: &Tenant, batch: &str) -> Run {
    let out = f
        .wasmq()
        .args(["results", "--batch", batch, "--wait", "--timeout", "300"])
        .args(["--amqp-url", &t.url()])
        .output()
        .unwrap();
    crate::support::parse(out)
}

fn noops(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| job(&format!("{prefix}{i}"), &fixture("noop.wat")))
        .collect()
}

#[test]
fn a_backlog_of_one_tenant_does_not_hold_up_another() {
    let mut f = Fleet::new("fair");
    let (a, b) = (Tenant::create(&f, "a"), Tenant::create(&f, "b"));
    let cfg = write_config(
        &f,
        "",
        &format!("[tenants.{}]\n\n[tenants.{}]\n", a.name, b.name),
    );
    f.start_worker(2, &["--config", &cfg]);
    let backlog = 20_000;
    submit_as(&f, &a, "backlog", &noops("a", backlog));
    let a_queue = format!(
        "jobs.t.{}",
        wasmq_broker::amqp::Topology::user_word(&a.name)
    );
    let started = Instant::now();
    submit_as(&f, &b, "quick", &noops("b", 100));
    let r = results_as(&f, &b, "quick");
    let took = started.elapsed();
    assert_eq!(r.results.len(), 100, "{}", r.stderr);
    // B's jobs went ahead of most of A's: A still had thousands waiting when B's last
    // result was read (a generous bound; benches/load.rs measures the latency).
    let left = f.ready(&a_queue);
    assert!(
        left > 5_000,
        "B waited behind A's backlog: only {left} of A's {backlog} jobs were left after B's 100 ({took:?})"
    );
    assert!(took < Duration::from_secs(20), "B's 100 jobs took {took:?}");

    // A's batch completes, nothing lost.
    let r = results_as(&f, &a, "backlog");
    assert_eq!(r.results.len(), backlog, "{}", r.stderr);
    assert!(
        r.results
            .iter()
            .all(|x| x.status == wasmq_spec::Status::Succeeded)
    );
    assert_eq!(f.ready(&a_queue), 0);
    assert_eq!(f.ready("jobs.dead"), 0);
}

#[test]
fn max_in_flight_caps_a_tenants_running_jobs_and_others_use_the_rest() {
    let mut f = Fleet::new("fair-cap");
    let (a, b) = (Tenant::create(&f, "a"), Tenant::create(&f, "b"));
    let cfg = write_config(
        &f,
        "",
        &format!(
            "[tenants.{}]\nmax_in_flight = 1\n\n[tenants.{}]\nweight = 3\n",
            a.name, b.name
        ),
    );
    f.start_worker(3, &["--config", &cfg, "--metrics-addr", "127.0.0.1:0"]);
    let addr = f.workers[0].metrics_addr(Duration::from_secs(10));
    // A's long jobs could fill all three slots; its cap leaves two for B. Each runs for
    // LONG: B's jobs, had they waited behind one, would take at least that long, so a
    // loaded machine's slowness has all of LONG as its margin.
    const LONG: Duration = Duration::from_secs(6);
    let sleepers: Vec<Value> = (0..3)
        .map(|i| {
            let mut j = job(&format!("long{i}"), &fixture("sleep.wat"));
            j["limits"] = serde_json::json!({"timeout_ms": LONG.as_millis() as u64});
            j
        })
        .collect();
    let a_started = Instant::now();
    submit_as(&f, &a, "long", &sleepers);
    wait_until(
        "A's first long job running",
        Duration::from_secs(30),
        || sample(&http_get(&addr, "/metrics").1, "wasmq_jobs_in_flight").as_deref() == Some("1"),
    );
    let started = Instant::now();
    submit_as(&f, &b, "short", &noops("s", 50));
    let r = results_as(&f, &b, "short");
    assert_eq!(r.results.len(), 50, "{}", r.stderr);
    assert!(
        started.elapsed() < LONG,
        "B's jobs did not run beside A's one running job, but after it: {:?}",
        started.elapsed()
    );
    let r = results_as(&f, &a, "long");
    assert_eq!(r.results.len(), 3, "{}", r.stderr);
    assert!(
        r.results
            .iter()
            .all(|x| x.status == wasmq_spec::Status::TimedOut)
    );
    // One at a time, though three slots were free: three time limits one after another.
    assert!(
        a_started.elapsed() >= 3 * LONG,
        "A's three jobs ran at once: {:?}",
        a_started.elapsed()
    );
}

#[test]
fn a_tenants_job_whose_result_nobody_can_receive_is_dead_lettered_from_its_own_queue() {
    let mut f = Fleet::new("fair-poison");
    f.broker_flags = vec!["--delivery-limit".into(), "2".into()];
    let a = Tenant::create(&f, "a");
    let cfg = write_config(&f, "", &format!("[tenants.{}]\n", a.name));
    f.start_worker(2, &["--config", &cfg]);
    let noop = fixture("noop.wat");
    let file = f.dir.jobs_file("fine.jsonl", &[job("fine", &noop)]);
    let out = f
        .wasmq()
        .args(["submit", "--batch", "fine", "--delivery-limit", "2"])
        .args(["--amqp-url", &a.url()])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A job of a's own queue whose batch has no result queue: its result cannot be
    // routed, so every attempt is a host fault, until the delivery limit.
    let hex = wasmq_cache::Digest::of(&wat::parse_file(&noop).unwrap()).to_hex();
    let body = serde_json::json!({"id": "orphan", "batch": "nobody", "module": {"sha256": hex}});
    let word = wasmq_broker::amqp::Topology::user_word(&a.name);
    f.with_broker(async |_| {
        let conn = lapin::Connection::connect(&a.url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        ch.basic_publish(
            format!("{}.submit", f.prefix).as_str().into(),
            word.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            lapin::BasicProperties::default().with_user_id(a.name.as_str().into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        let _ = conn.close(200, "done".into()).await;
    });
    wait_until(
        "the orphan job in the dead-letter queue",
        Duration::from_secs(60),
        || f.ready("jobs.dead") == 1,
    );
    let r = results_as(&f, &a, "fine");
    assert_eq!(r.results.len(), 1, "{}", r.stderr);
    assert_eq!(r.by_id("fine").status, wasmq_spec::Status::Succeeded);
    let a_queue = format!("jobs.t.{word}");
    assert_eq!(f.ready(&a_queue), 0);
    // It was a's, from a's queue: the dead-letter listing names the tenant.
    let out = f
        .wasmq()
        .args(["dead", "list", "--json", "--delivery-limit", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("orphan") && text.contains(&a.name), "{text}");
    let log = f.workers[0].log.lock().unwrap().clone();
    assert!(log.contains("could not publish the result"), "{log}");
}

#[test]
fn a_worker_whose_tenant_queue_is_deleted_declares_it_again_and_goes_on() {
    let mut f = Fleet::new("fair-gone");
    let a = Tenant::create(&f, "a");
    let cfg = write_config(&f, "", &format!("[tenants.{}]\n", a.name));
    f.start_worker(2, &["--config", &cfg]);
    let queue = format!(
        "{}.jobs.t.{}",
        f.prefix,
        wasmq_broker::amqp::Topology::user_word(&a.name)
    );
    f.with_broker(async |c| {
        let ch = c.create_channel().await.unwrap();
        ch.queue_delete(queue.as_str().into(), Default::default())
            .await
            .unwrap();
    });
    // The broker cancels the worker's consumer of it: one of several, which the worker
    // notices, and reconnects (declaring the queue again).
    f.workers[0].wait_for_log(
        "the broker cancelled a jobs consumer",
        Duration::from_secs(30),
    );
    wait_until("the queue declared again", Duration::from_secs(30), || {
        f.workers[0]
            .log
            .lock()
            .unwrap()
            .matches("worker consuming")
            .count()
            >= 2
    });
    submit_as(&f, &a, "again", &noops("g", 3));
    let r = results_as(&f, &a, "again");
    assert_eq!(r.results.len(), 3, "{}", r.stderr);
}
