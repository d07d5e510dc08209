//! Cancellation and expiry on a real RabbitMQ: `wasmq cancel` stops running jobs (a guest
//! computing and one blocked in a host call) and cancels jobs not yet started, on workers
//! that run now and on workers that start later; a tenant cancels its own jobs alone; a
//! job past its `expires_at` never runs.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use wasmq_spec::{JobResult, Status};

use crate::fleet::{Fleet, http_get, sample, wait_until};
use crate::support::{fixture, job};
use crate::tenants::{results_as, submit_as, two_tenants, two_users, write_config};

/// `wasmq cancel ARGS... --wait 3`, which must succeed: its stdout and stderr.
pub(crate) fn cancel(f: &Fleet, args: &[&str]) -> (String, String) {
    let out = f
        .wasmq()
        .arg("cancel")
        .args(args)
        .args(["--wait", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "cancel {args:?}: {err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

fn assert_cancelled(r: &JobResult, how: &str) {
    assert_eq!(
        (r.status, r.code.as_str()),
        (Status::Cancelled, "cancelled"),
        "{}: {}",
        r.id,
        r.message
    );
    assert!(r.message.contains(how), "{}: {}", r.id, r.message);
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t).format(&Rfc3339).unwrap()
}

#[test]
fn cancel_stops_running_jobs_and_jobs_not_yet_started() {
    let mut f = Fleet::new("cancel");
    f.start_worker(2, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = f.workers[0].metrics_addr(Duration::from_secs(10));
    let long = json!({"timeout_ms": 120_000});
    let mut spin = job("spin", &fixture("print-then-spin.wat"));
    spin["limits"] = long.clone();
    let mut sleep = job("sleep", &fixture("sleep.wat"));
    sleep["limits"] = long;
    let mut jobs = vec![spin, sleep];
    jobs.extend((0..3).map(|i| job(&format!("queued{i}"), &fixture("noop.wat"))));
    let batch = f.submit(&jobs);
    // Both slots taken by the two long jobs; the three others wait behind them.
    wait_until("two jobs in flight", Duration::from_secs(30), || {
        sample(&http_get(&addr, "/metrics").1, "wasmq_jobs_in_flight").as_deref() == Some("2")
    });
    std::thread::sleep(Duration::from_millis(300));
    let (out, err) = cancel(&f, &["--batch", &batch]);
    assert!(out.contains("stopped spin on"), "{out}\n{err}");
    assert!(out.contains("stopped sleep on"), "{out}\n{err}");
    assert!(
        err.contains("1 worker(s) answered") && err.contains("2 running job(s) stopped"),
        "{err}"
    );

    let r = f.results(&batch, 60);
    assert_eq!(
        r.results.len(),
        5,
        "cancelled jobs count as done: {}",
        r.stderr
    );
    for id in ["spin", "sleep"] {
        let x = r.by_id(id);
        assert_cancelled(x, "while it ran");
        assert!(x.timings.run_us >= 300_000, "{id} ran: {:?}", x.timings);
        assert!(
            x.timings.run_us < 60_000_000,
            "{id} was stopped: {:?}",
            x.timings
        );
    }
    assert_eq!(
        r.by_id("spin").stdout,
        "started\n",
        "the output so far is kept"
    );
    for i in 0..3 {
        let x = r.by_id(&format!("queued{i}"));
        assert_cancelled(x, "before it started");
        assert_eq!(x.timings.run_us, 0);
    }
    // Cancelled jobs are final: acked, never requeued.
    assert_eq!(f.ready("jobs"), 0);
    let metrics = http_get(&addr, "/metrics").1;
    assert!(
        metrics.contains("wasmq_jobs_total{status=\"cancelled\""),
        "{metrics}"
    );
}

#[test]
fn a_cancel_holds_for_jobs_delivered_later_to_a_worker_started_after_it() {
    let mut f = Fleet::new("cancellater");
    let noop = fixture("noop.wat");
    let doomed = f.submit(&[job("d1", &noop), job("d2", &noop)]);
    let mixed = f.submit(&[job("m1", &noop), job("m2", &noop)]);
    // No worker runs: the cancels wait in the control log.
    let (_, err) = cancel(&f, &["--batch", &doomed]);
    assert!(err.contains("0 worker(s) answered"), "{err}");
    cancel(&f, &["m2"]);

    f.start_worker(2, &[]);
    let r = f.results(&doomed, 60);
    assert_eq!(r.results.len(), 2, "{}", r.stderr);
    assert_cancelled(r.by_id("d1"), "before it started");
    assert_cancelled(r.by_id("d2"), "before it started");
    let r = f.results(&mixed, 60);
    assert_eq!(r.by_id("m1").status, Status::Succeeded);
    assert_cancelled(r.by_id("m2"), "before it started");

    // A batch of that name submitted again, to a worker restarted since: still cancelled.
    f.signal(0, "KILL");
    let again = f.submit(&[job("d3", &noop)]);
    assert_ne!(again, doomed);
    let r = {
        let file = f.dir.jobs_file("again.jsonl", &[job("d4", &noop)]);
        let out = f
            .wasmq()
            .args(["submit", "--batch", &doomed])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success());
        f.start_worker(1, &[]);
        f.results(&doomed, 60)
    };
    assert_cancelled(r.by_id("d4"), "before it started");
    assert_eq!(f.results(&again, 60).by_id("d3").status, Status::Succeeded);
}

#[test]
fn a_tenant_cancels_its_own_jobs_only() {
    let mut f = Fleet::new("cancelown");
    let (a, b) = two_users();
    let cfg = write_config(&f, "", &two_tenants(&a, &b));
    let noop = fixture("noop.wat");
    let same_ids = [job("j1", &noop), job("j2", &noop)];
    let batch_a = submit_as(&f, &a, "owna", &same_ids, false);
    let batch_b = submit_as(&f, &b, "ownb", &same_ids, false);
    // B names A's batch, and job ids A's batch has too.
    for args in [vec!["--batch", batch_a.as_str()], vec!["j1"]] {
        let out = f
            .wasmq()
            .arg("cancel")
            .args(&args)
            .args(["--amqp-url", &b.url(), "--wait", "0.5"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    f.start_worker(2, &["--config", &cfg]);
    let ra = results_as(&f, &a, &batch_a, 60);
    assert_eq!(ra.results.len(), 2, "{}", ra.stderr);
    assert!(
        ra.results.iter().all(|r| r.status == Status::Succeeded),
        "A's jobs ran: {:?}",
        ra.results
    );
    let rb = results_as(&f, &b, &batch_b, 60);
    assert_cancelled(rb.by_id("j1"), "before it started");
    assert_eq!(rb.by_id("j1").tenant.as_deref(), Some(b.name.as_str()));
    assert_eq!(rb.by_id("j2").status, Status::Succeeded);
}

#[test]
fn a_job_not_started_by_its_expires_at_ends_expired_without_running() {
    let mut f = Fleet::new("expiry");
    let now = SystemTime::now();
    let mut stale = job("stale", &fixture("hello.wat"));
    stale["expires_at"] = Value::from(rfc3339(now - Duration::from_secs(60)));
    let mut fresh = job("fresh", &fixture("hello.wat"));
    fresh["expires_at"] = Value::from(rfc3339(now + Duration::from_secs(3600)));
    let mut bad = job("bad", &fixture("hello.wat"));
    bad["expires_at"] = Value::from("next tuesday");
    f.start_worker(1, &[]);
    let batch = f.submit(&[stale, fresh]);
    let r = f.results(&batch, 60);
    let stale = r.by_id("stale");
    assert_eq!(
        (stale.status, stale.code.as_str()),
        (Status::Expired, "expired")
    );
    assert!(
        stale.message.contains("was not started by its expires_at"),
        "{}",
        stale.message
    );
    assert_eq!(stale.stdout, "");
    assert_eq!(r.by_id("fresh").status, Status::Succeeded);

    // `wasmq run` keeps the same rule; a malformed time is rejected, naming the field.
    let file = f.dir.jobs_file("local.jsonl", &[bad]);
    let out = f.dir.wasmq().arg("run").arg(&file).output().unwrap();
    let r = crate::support::parse(out);
    let bad = r.by_id("bad");
    assert_eq!(bad.status, Status::Rejected);
    assert!(bad.message.contains("expires_at"), "{}", bad.message);
}
