//! The worker on a real RabbitMQ: delivery, faults, drain, dead-lettering, routing.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};
use wasmq_spec::{CacheOutcome, JobResult, Status};

use crate::fleet::{Fleet, wait_until};
use crate::support::{fixture, guest, job, with};

fn count_log(f: &Fleet, i: usize, needle: &str) -> usize {
    f.workers[i].log.lock().unwrap().matches(needle).count()
}

/// Every id in `ids` has exactly one result, and nothing else came back.
fn assert_exactly_once(results: &[JobResult], ids: &[String]) {
    let got: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    let unique: HashSet<&str> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "results reads are de-duplicated");
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let missing: Vec<_> = want.difference(&unique).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} jobs have no result, e.g. {missing:?}",
        want.len() - unique.intersection(&want).count()
    );
    assert_eq!(unique, want);
}

fn busy_jobs(n: usize, prefix: &str, args: &[&str]) -> (Vec<Value>, Vec<String>) {
    let jobs: Vec<Value> = (0..n)
        .map(|i| {
            with(
                job(&format!("{prefix}{i}"), &guest("hashbench")),
                json!({"args": args}),
            )
        })
        .collect();
    let ids = (0..n).map(|i| format!("{prefix}{i}")).collect();
    (jobs, ids)
}

#[test]
fn two_workers_share_a_batch_and_every_job_has_one_result() {
    let mut f = Fleet::new("share");
    f.start_worker(2, &[]);
    f.start_worker(2, &[]);
    let jobs: Vec<Value> = (0..2000)
        .map(|i| {
            job(
                &format!("j{i}"),
                &fixture(if i % 200 == 0 {
                    "exit7.wat"
                } else {
                    "hello.wat"
                }),
            )
        })
        .collect();
    let ids: Vec<String> = (0..2000).map(|i| format!("j{i}")).collect();
    let batch = f.submit(&jobs);
    let r = f.results(&batch, 180);
    assert_eq!(
        r.code, 1,
        "ten jobs exit 7, so not everything succeeded: {}",
        r.stderr
    );
    assert_exactly_once(&r.results, &ids);
    assert_eq!(r.count_status(Status::Failed), 10);
    assert_eq!(r.count_status(Status::Succeeded), 1990);
    assert!(
        r.results
            .iter()
            .all(|x| x.batch.as_deref() == Some(batch.as_str()))
    );
    for w in &f.workers {
        let n = r
            .results
            .iter()
            .filter(|x| x.worker.as_deref() == Some(w.id.as_str()))
            .count();
        assert!(n > 0, "worker {} took no job", w.id);
    }
}

#[test]
fn a_killed_worker_loses_no_job() {
    let mut f = Fleet::new("kill");
    f.start_worker(2, &[]);
    f.start_worker(2, &[]);
    let (jobs, ids) = busy_jobs(300, "k", &["2", "2"]);
    let batch = f.submit(&jobs);
    wait_until(
        "the first worker to finish some jobs",
        Duration::from_secs(60),
        || count_log(&f, 0, "job done") >= 10,
    );
    f.workers[0].child.kill().unwrap();
    f.workers[0].child.wait().unwrap();
    let r = f.results(&batch, 180);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_exactly_once(&r.results, &ids);
}

#[test]
fn a_worker_reconnects_when_its_connections_are_closed() {
    let mut f = Fleet::new("reconnect");
    f.start_worker(2, &[]);
    let (jobs, ids) = busy_jobs(200, "r", &["2", "1"]);
    let batch = f.submit(&jobs);
    wait_until("some jobs to finish", Duration::from_secs(60), || {
        count_log(&f, 0, "job done") >= 10
    });
    assert!(
        f.close_worker_connections(0) >= 1,
        "the worker's connections were found and closed"
    );
    let r = f.results(&batch, 180);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_exactly_once(&r.results, &ids);
    assert!(
        count_log(&f, 0, "connected to the broker") >= 1,
        "{}",
        f.workers[0].log.lock().unwrap()
    );
}

#[test]
fn sigterm_drains_in_flight_jobs_and_acks_them() {
    let mut f = Fleet::new("drain");
    f.start_worker(2, &["--drain-timeout-secs", "60"]);
    let (jobs, ids) = busy_jobs(12, "d", &["24", "4"]);
    let batch = f.submit(&jobs);
    wait_until("the first job to finish", Duration::from_secs(60), || {
        count_log(&f, 0, "job done") >= 1
    });
    f.signal(0, "TERM");
    let status = f.workers[0].child.wait().unwrap();
    assert!(status.success(), "a drained worker exits 0: {status:?}");
    let log = f.workers[0].log.lock().unwrap().clone();
    assert!(log.contains("drained"), "{log}");
    let done_by_first = log.matches("job done").count();
    assert!(done_by_first < 12, "the worker stopped taking jobs");

    f.start_worker(2, &[]);
    let r = f.results(&batch, 180);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stderr.contains("duplicate"),
        "no job ran twice: {}",
        r.stderr
    );
    assert_exactly_once(&r.results, &ids);
    let first_id = &f.workers[0].id;
    let from_first = r
        .results
        .iter()
        .filter(|x| x.worker.as_deref() == Some(first_id.as_str()))
        .count();
    assert_eq!(
        from_first, done_by_first,
        "every job the first worker finished was published and acked"
    );
}

#[test]
fn a_job_that_always_faults_the_host_is_dead_lettered() {
    let mut f = Fleet::new("poison");
    f.broker_flags = vec!["--delivery-limit".into(), "2".into()];
    // The module store entry of hello.wat is unreadable: every attempt is a host fault.
    let (module, _, _) = f.poison("hello.wat");
    f.start_worker(2, &[]);
    let batch = f.submit(&[
        json!({"id": "poison", "module": module}),
        job("fine", &fixture("noop.wat")),
    ]);
    wait_until(
        "the poison message in the dead-letter queue",
        Duration::from_secs(60),
        || f.ready("jobs.dead") == 1,
    );
    let out = f
        .wasmq()
        .args([
            "results",
            "--batch",
            &batch,
            "--wait",
            "--expect",
            "1",
            "--timeout",
            "60",
            "--delivery-limit",
            "2",
        ])
        .output()
        .unwrap();
    let r = crate::support::parse(out);
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.by_id("fine").status, Status::Succeeded);
    assert!(
        count_log(&f, 0, "host fault; requeueing") >= 2,
        "{}",
        f.workers[0].log.lock().unwrap()
    );
    assert_eq!(f.ready("jobs"), 0);
}

#[test]
fn invalid_messages_become_rejected_results_and_reply_to_is_honoured() {
    let mut f = Fleet::new("route");
    f.start_worker(1, &["--max-message-bytes", "4096"]);
    let json_props = BasicProperties::default().with_content_type("application/json".into());
    let huge = json!({"id": "huge", "module": {"base64": "A".repeat(5000)}}).to_string();
    f.publish_raw(huge.as_bytes(), json_props.clone());
    f.publish_raw(b"this is not json", json_props.clone());
    f.publish_raw(
        br#"{"id":"path","module":{"path":"/etc/passwd"}}"#,
        json_props.clone(),
    );
    f.publish_raw(
        br#"{"id":"types","module":{"base64":""},"args":"not-a-list"}"#,
        json_props.clone(),
    );
    let out = f
        .wasmq()
        .args(["results", "--wait", "--expect", "4", "--timeout", "60"])
        .output()
        .unwrap();
    let r = crate::support::parse(out);
    assert_eq!(r.results.len(), 4, "{}", r.stderr);
    assert!(r.results.iter().all(|x| x.status == Status::Rejected));
    assert_eq!(r.by_id("path").code, "module_path_not_allowed");
    assert!(
        r.by_id("types").message.contains("invalid type"),
        "{}",
        r.by_id("types").message
    );
    assert!(
        r.results
            .iter()
            .any(|x| x.id.is_empty() && x.code == "invalid_job")
    );

    // reply_to: the result goes to the caller's queue, with its correlation id.
    let noop = base64::engine::general_purpose::STANDARD
        .encode(wat::parse_file(fixture("noop.wat")).unwrap());
    let body = json!({"id": "direct", "module": {"base64": noop}}).to_string();
    let jobs_queue = format!("{}.jobs", f.prefix);
    let (result, correlation) = f.with_broker(async |c| {
        let ch = c.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut consumer = ch
            .basic_consume(
                q.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let props = json_props
            .clone()
            .with_reply_to(q.name().clone())
            .with_correlation_id("corr-42".into());
        ch.basic_publish(
            "".into(),
            jobs_queue.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            props,
        )
        .await
        .unwrap();
        let d = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let r: JobResult = serde_json::from_slice(&d.data).unwrap();
        (
            r,
            d.properties
                .correlation_id()
                .as_ref()
                .map(|s| s.to_string()),
        )
    });
    assert_eq!(
        (result.id.as_str(), result.status),
        ("direct", Status::Succeeded)
    );
    assert_eq!(correlation.as_deref(), Some("corr-42"));
    assert_eq!(
        f.ready("results"),
        0,
        "a reply_to result does not also go to the shared queue"
    );
}

#[test]
fn queue_prefixes_isolate_deployments() {
    let mut a = Fleet::new("iso-a");
    let b = Fleet::new("iso-b");
    a.start_worker(2, &[]);
    let batch_b = b.submit(&[
        job("b1", &fixture("noop.wat")),
        job("b2", &fixture("noop.wat")),
    ]);
    let batch_a = a.submit(&[job("a1", &fixture("noop.wat"))]);
    let r = a.results(&batch_a, 60);
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.by_id("a1").status, Status::Succeeded);
    assert_eq!(b.ready("jobs"), 2, "the other prefix's jobs were not taken");
    assert!(!batch_b.is_empty());
}

#[test]
fn prewarm_broadcast_reaches_every_worker_and_the_next_job_hits_the_cache() {
    let mut f = Fleet::new("prewarm");
    f.start_worker(1, &[]);
    f.start_worker(1, &[]);
    let out = f
        .wasmq()
        .args(["prewarm", "--broadcast", "--timeout", "120"])
        .arg(guest("jsonx"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for w in &f.workers {
        assert!(
            stdout.contains(&format!("worker {} ready", w.id)),
            "{stdout}"
        );
    }
    let batch = f.submit(&[with(job("after", &guest("jsonx")), json!({"stdin": "[]"}))]);
    let r = f.results(&batch, 60);
    let after = r.by_id("after");
    assert_eq!(after.status, Status::Succeeded, "{}", after.message);
    assert_ne!(
        after.cache,
        Some(CacheOutcome::Compiled),
        "prewarmed: no compile at job time"
    );

    let bad = f
        .wasmq()
        .args(["prewarm", "--broadcast", "--timeout", "60"])
        .arg(fixture("unknown-import.wat"))
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(1),
        "a module that cannot run fails the prewarm"
    );
    assert!(String::from_utf8_lossy(&bad.stdout).contains("not ready"));
}

#[test]
fn the_shipped_definitions_match_the_declared_topology() {
    let f = Fleet::new("defs");
    let empty = f.dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = f
        .wasmq()
        .args(["submit", "--batch", "defs"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ctl = |args: &[&str]| -> Vec<Value> {
        let out = std::process::Command::new("rabbitmqctl")
            .args(args)
            .args(["--formatter", "json", "-q"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let defs: Value =
        serde_json::from_str(include_str!("../../deploy/rabbitmq/definitions.json")).unwrap();
    let ours = |name: &str| name.replacen("wasmq.", &format!("{}.", f.prefix), 1);
    let queues = ctl(&["list_queues", "name", "arguments"]);
    for q in defs["queues"].as_array().unwrap() {
        let name = ours(q["name"].as_str().unwrap());
        let live = queues
            .iter()
            .find(|x| x["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not declared"));
        let mut want = q["arguments"].clone();
        if let Some(dlx) = want.get_mut("x-dead-letter-exchange") {
            *dlx = Value::from(ours(dlx.as_str().unwrap()));
        }
        // rabbitmqctl lists arguments as [key, type, value] triples.
        let live_args: serde_json::Map<String, Value> = live["arguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t[0].as_str().unwrap().to_owned(), t[2].clone()))
            .collect();
        assert_eq!(Value::Object(live_args), want, "arguments of {name}");
    }
    let exchanges = ctl(&["list_exchanges", "name", "type"]);
    for e in defs["exchanges"].as_array().unwrap() {
        let name = ours(e["name"].as_str().unwrap());
        let live = exchanges
            .iter()
            .find(|x| x["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not declared"));
        assert_eq!(live["type"], e["type"], "type of {name}");
    }
    let bindings = ctl(&[
        "list_bindings",
        "source_name",
        "destination_name",
        "routing_key",
    ]);
    for b in defs["bindings"].as_array().unwrap() {
        let (src, dst) = (
            ours(b["source"].as_str().unwrap()),
            ours(b["destination"].as_str().unwrap()),
        );
        assert!(
            bindings.iter().any(|x| x["source_name"] == src.as_str()
                && x["destination_name"] == dst.as_str()
                && x["routing_key"] == b["routing_key"]),
            "binding {src} -> {dst} missing"
        );
    }
}

#[test]
fn every_job_kind_runs_through_the_worker() {
    let mut f = Fleet::new("kinds");
    f.start_worker(2, &[]);
    let jobs = vec![
        job("command", &guest("hello")),
        with(
            job("component", &guest("hello-p2")),
            json!({"kind": "component", "args": ["p2"]}),
        ),
        with(
            job("function", &guest("upper")),
            json!({"kind": "function", "input": "abc"}),
        ),
        with(
            job("handler", &guest("handler")),
            json!({"kind": "handler", "input": "abc"}),
        ),
        with(job("mismatch", &guest("hello")), json!({"kind": "handler"})),
    ];
    let batch = f.submit(&jobs);
    let r = f.results(&batch, 120);
    assert_eq!(r.results.len(), 5, "{}", r.stderr);
    assert_eq!(r.by_id("command").stdout, "hello, world\n");
    assert_eq!(r.by_id("component").stdout, "hello, p2\n");
    assert_eq!(r.by_id("function").output.as_deref(), Some("ABC"));
    assert!(
        r.by_id("handler")
            .output
            .as_deref()
            .unwrap()
            .contains("\"upper\":\"ABC\"")
    );
    assert_eq!(r.by_id("mismatch").code, "wrong_kind");

    // Inline modules travel in the message itself.
    let file = f.dir.jobs_file(
        "inline.jsonl",
        &[with(
            job("inline", &fixture("reverse.wat")),
            json!({"kind": "function", "input": "ab"}),
        )],
    );
    let out = f
        .wasmq()
        .args(["submit", "--inline", "--batch", "inline"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = f.results("inline", 60);
    assert_eq!(r.by_id("inline").output.as_deref(), Some("ba"));
}

#[test]
fn a_second_stop_signal_exits_at_once_and_the_jobs_go_back() {
    let mut f = Fleet::new("twice");
    f.start_worker(2, &["--drain-timeout-secs", "600"]);
    // Each job hashes 64 MiB 40 times: seconds, so two are running when the signals come.
    let (jobs, ids) = busy_jobs(6, "t", &["64", "40"]);
    let batch = f.submit(&jobs);
    wait_until(
        "the jobs to reach the worker",
        Duration::from_secs(30),
        || f.ready("jobs") == 0,
    );
    std::thread::sleep(Duration::from_millis(300));
    f.signal(0, "TERM");
    f.workers[0].wait_for_log("draining", Duration::from_secs(10));
    let started = Instant::now();
    f.signal(0, "TERM");
    let status = f.workers[0].child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "the second signal exits at once");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "without waiting for the running jobs"
    );
    f.start_worker(2, &[]);
    let r = f.results(&batch, 600);
    assert_exactly_once(&r.results, &ids);
    let log = f.workers[1].log.lock().unwrap().clone();
    assert!(
        log.contains("module="),
        "the per-job log line names the module: {log}"
    );
}

#[test]
fn submit_keeps_the_jobs_own_batch_and_refuses_duplicate_ids() {
    let f = Fleet::new("submit");
    let noop = fixture("noop.wat");
    let mine = |id: &str| with(job(id, &noop), json!({"batch": "mine"}));
    let file = f
        .dir
        .jobs_file("dups.jsonl", &[mine("a"), mine("b"), mine("a")]);
    let out = f.wasmq().arg("submit").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused job makes submit fail: {stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "mine",
        "the jobs' own batch is kept"
    );
    assert!(
        stderr.contains("dups.jsonl:3: id \"a\" is already used by")
            && stderr.contains("dups.jsonl:1"),
        "{stderr}"
    );
    wait_until("the two jobs in the queue", Duration::from_secs(30), || {
        f.ready("jobs") == 2
    });
}

#[test]
fn a_result_nobody_can_receive_is_not_acked_away() {
    let mut f = Fleet::new("unroutable");
    f.broker_flags = vec!["--delivery-limit".into(), "2".into()];
    f.start_worker(1, &[]);
    // Without its results queue, a result with no batch has nowhere to go.
    let results = format!("{}.results", f.prefix);
    f.with_broker(async |c| {
        let ch = c.create_channel().await.unwrap();
        ch.queue_delete(results.as_str().into(), Default::default())
            .await
            .unwrap();
    });
    let noop = base64::engine::general_purpose::STANDARD
        .encode(wat::parse_file(fixture("noop.wat")).unwrap());
    let body = json!({"id": "orphan", "module": {"base64": noop}}).to_string();
    f.publish_raw(body.as_bytes(), BasicProperties::default());
    wait_until(
        "the job in the dead-letter queue",
        Duration::from_secs(60),
        || f.ready("jobs.dead") == 1,
    );
    let log = f.workers[0].log.lock().unwrap().clone();
    assert!(
        log.contains("could not publish the result; requeueing"),
        "{log}"
    );
    assert!(log.contains("could not route"), "{log}");
}

/// `wasmq results ARGS...` on `f`'s prefix: its parsed output.
fn results_with(f: &Fleet, args: &[&str]) -> crate::support::Run {
    let out = f
        .wasmq()
        .arg("results")
        .args(args)
        .args(&f.broker_flags)
        .output()
        .unwrap();
    crate::support::parse(out)
}

#[test]
fn a_batchs_results_are_read_again_by_any_number_of_readers_and_only_retention_removes_them() {
    let mut f = Fleet::new("reread");
    // Batches are kept 3 s here, so the test sees a worker delete one; the worker that
    // runs the jobs keeps them the default week, so the reads below are not raced by it.
    let keep = ["--batch-results-max-age-secs", "3"];
    f.start_worker(2, &[]);
    let noop = fixture("noop.wat");
    let jobs = vec![
        job("a", &noop),
        job("b", &noop),
        job("x", &fixture("exit7.wat")),
    ];
    let file = f.dir.jobs_file("reread.jsonl", &jobs);
    let out = f
        .wasmq()
        .args(["submit", "--batch", "reread"])
        .args(keep)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = f.results("reread", 60);
    assert_eq!(first.results.len(), 3, "{}", first.stderr);
    // Read again, and by three readers at once: the same results each time.
    let ids = |r: &crate::support::Run| {
        let mut v: Vec<String> = r.results.iter().map(|r| r.id.clone()).collect();
        v.sort();
        v
    };
    let again = results_with(&f, &["--batch", "reread"]);
    assert_eq!(ids(&again), ["a", "b", "x"], "{}", again.stderr);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            f.wasmq()
                .args(["results", "--batch", "reread", "--wait", "--timeout", "30"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for reader in readers {
        let r = crate::support::parse(reader.wait_with_output().unwrap());
        assert_eq!(ids(&r), ["a", "b", "x"], "{}", r.stderr);
    }
    // --status filters; `result ID` prints one job's result.
    let failed = results_with(&f, &["--batch", "reread", "--status", "failed"]);
    assert_eq!(ids(&failed), ["x"], "{}", failed.stderr);
    let out = f
        .wasmq()
        .args(["result", "x", "--batch", "reread"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "x failed, so does `result x`");
    let one = crate::support::parse(out);
    assert_eq!((one.results.len(), one.results[0].exit_code), (1, Some(7)));
    let out = f
        .wasmq()
        .args(["result", "nosuch", "--batch", "reread"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no result for job \"nosuch\""));

    // Past its retention a worker deletes the batch's stream: reading it then fails.
    f.start_worker(1, &keep);
    wait_until(
        "the workers to delete the batch's stream",
        Duration::from_secs(60),
        || {
            let out = f
                .wasmq()
                .args(["results", "--batch", "reread"])
                .output()
                .unwrap();
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("does not exist")
        },
    );
}

#[test]
fn results_follow_shows_new_results_as_they_come() {
    let mut f = Fleet::new("follow");
    let noop = fixture("noop.wat");
    let batch = f.submit(&[job("early", &noop)]);
    f.start_worker(1, &[]);
    assert_eq!(f.results(&batch, 60).results.len(), 1);
    let follower = f
        .wasmq()
        .args(["results", "--batch", &batch, "--follow", "--timeout", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A second submit to the same batch, while the follower reads.
    let file = f.dir.jobs_file("late.jsonl", &[job("late", &noop)]);
    let out = f
        .wasmq()
        .args(["submit", "--batch", &batch])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = crate::support::parse(follower.wait_with_output().unwrap());
    let mut ids: Vec<&str> = r.results.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["early", "late"], "{}", r.stderr);
}

#[test]
fn a_batch_queue_of_an_older_submit_is_read_as_a_queue_and_taken() {
    let mut f = Fleet::new("older");
    // The worker declares the topology (the results exchange the older queue is bound to).
    f.start_worker(2, &[]);
    let batch = "b0123456789abcdef0123";
    let queue = format!("{}.batch.{batch}", f.prefix);
    let exchange = format!("{}.results", f.prefix);
    // The queue an older `submit` declared for its batch, and the manifest it sent.
    f.with_broker(async |c| {
        use lapin::options::ConfirmSelectOptions;
        use lapin::types::AMQPValue;
        let ch = c.create_channel().await.unwrap();
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongLongInt(86_400_000));
        crate::fleet::declare_bound_quorum(&ch, &queue, &exchange, &format!("{batch}.#"), args)
            .await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let manifest = json!({"manifest": {"batch": batch, "jobs": 3}}).to_string();
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            manifest.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    });
    let wasm = wat::parse_file(fixture("noop.wat")).unwrap();
    let module = base64::engine::general_purpose::STANDARD.encode(&wasm);
    for id in ["o1", "o2", "o3"] {
        let body = json!({"id": id, "batch": batch, "module": {"base64": module}});
        f.publish_raw(
            body.to_string().as_bytes(),
            BasicProperties::default().with_content_type("application/json".into()),
        );
    }
    // This version's workers publish to it, and `results --wait` reads it as a queue.
    let run = f.results(batch, 60);
    assert_eq!(run.results.len(), 3, "{}", run.stderr);
    for r in &run.results {
        assert_eq!(r.status, Status::Succeeded, "{r:?}");
    }
    // A queue is taken as it is read, one ack per result: nothing is left in it.
    wait_until("the older queue emptied", Duration::from_secs(10), || {
        f.ready(&format!("batch.{batch}")) == 0
    });
}
