//! Operations on the real broker: exact metrics, health and readiness, `wasmq status`,
//! dead-letter repair, and the results queue's retention.

use std::time::Duration;

use serde_json::{Value, json};
use wasmq_spec::Status;

use crate::fleet::{Fleet, http_get, sample, wait_until};
use crate::support::{fixture, job};

#[test]
fn metrics_count_every_job_exactly_and_health_follows_the_worker() {
    let mut f = Fleet::new("metrics");
    f.start_worker(2, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = f.workers[0].metrics_addr(Duration::from_secs(10));
    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".into()));
    wait_until("readiness", Duration::from_secs(10), || {
        http_get(&addr, "/readyz").0 == 200
    });
    assert_eq!(http_get(&addr, "/readyz").1, "ready\n");

    let missing = "0".repeat(64);
    let mut jobs: Vec<Value> = (0..3)
        .map(|i| job(&format!("ok{i}"), &fixture("hello.wat")))
        .collect();
    jobs.push(job("exit-a", &fixture("exit7.wat")));
    jobs.push(job("exit-b", &fixture("exit7.wat")));
    jobs.push(job("trap", &fixture("unreachable.wat")));
    jobs.push(json!({"id": "nomodule", "module": {"sha256": missing}}));
    let batch = f.submit(&jobs);
    let r = f.results(&batch, 60);
    assert_eq!(r.results.len(), 7, "{}", r.stderr);
    assert_eq!(r.count_status(Status::Succeeded), 3);
    assert_eq!(r.count_status(Status::Failed), 2);
    assert_eq!(r.count_status(Status::Trapped), 1);
    assert_eq!(r.count_status(Status::Rejected), 1);

    // A result can reach its reader just before the worker counts it: wait for the count.
    let mut text = String::new();
    wait_until("every job counted", Duration::from_secs(10), || {
        text = http_get(&addr, "/metrics").1;
        sample(&text, "wasmq_job_duration_seconds_count").as_deref() == Some("7")
    });
    let expect = [
        (
            "wasmq_jobs_total{status=\"succeeded\",kind=\"command\"}",
            "3",
        ),
        ("wasmq_jobs_total{status=\"failed\",kind=\"command\"}", "2"),
        ("wasmq_jobs_total{status=\"trapped\",kind=\"command\"}", "1"),
        ("wasmq_jobs_total{status=\"rejected\",kind=\"none\"}", "1"),
        // hello, exit7 and unreachable, once each: a second job of the same module waits
        // for the first one's compile (or finds it in memory).
        ("wasmq_compiles_total", "3"),
        ("wasmq_compile_duration_seconds_count", "3"),
        ("wasmq_module_cache_total{result=\"compiled\"}", "3"),
        ("wasmq_module_cache_total{result=\"hit-memory\"}", "3"),
        ("wasmq_jobs_in_flight", "0"),
        ("wasmq_redeliveries_total", "0"),
        ("wasmq_broker_connected", "1"),
        ("wasmq_broker_reconnects_total", "0"),
    ];
    for (name, value) in expect {
        assert_eq!(
            sample(&text, name).as_deref(),
            Some(value),
            "{name} in\n{text}"
        );
    }
    let build = format!(
        "wasmq_build_info{{version=\"{}\",wasmtime=\"48.0.8\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build).as_deref(), Some("1"), "{text}");
    assert!(
        text.contains("# TYPE wasmq_job_duration_seconds histogram")
            && text.contains("wasmq_job_duration_seconds_bucket{le=\"0.0001\"}")
            && text.contains("wasmq_job_duration_seconds_bucket{le=\"600.0\"} 7"),
        "{text}"
    );

    // Closing the worker's connection is a reconnect, counted, and readiness comes back.
    assert!(f.close_worker_connections(0) >= 1);
    wait_until("the reconnect", Duration::from_secs(30), || {
        let t = http_get(&addr, "/metrics").1;
        sample(&t, "wasmq_broker_reconnects_total").as_deref() == Some("1")
            && http_get(&addr, "/readyz").0 == 200
    });
}

#[test]
fn a_metrics_address_that_is_taken_stops_the_worker_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let f = Fleet::new("metrics-taken");
    let out = f
        .wasmq()
        .args(["worker", "--metrics-addr", &addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("could not serve metrics on {addr}")),
        "{err}"
    );
    let out = f
        .wasmq()
        .args(["worker", "--metrics-addr", "nine"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn dead_list(f: &Fleet) -> Vec<Value> {
    let out = f
        .wasmq()
        .args(["dead", "list", "--json"])
        .args(&f.broker_flags)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn dead_letters_are_listed_requeued_and_purged() {
    let mut f = Fleet::new("dead");
    f.broker_flags = vec!["--delivery-limit".into(), "2".into()];
    let (module, bytes, path) = f.poison("hello.wat");
    f.start_worker(2, &[]);
    let jobs: Vec<Value> = ["p1", "p2", "p3"]
        .iter()
        .map(|id| json!({"id": id, "module": module}))
        .collect();
    let batch = f.submit(&jobs);
    wait_until("three dead letters", Duration::from_secs(60), || {
        f.ready("jobs.dead") == 3
    });

    let mut listed = dead_list(&f);
    listed.sort_by_key(|r| r["id"].as_str().unwrap().to_owned());
    assert_eq!(listed.len(), 3, "{listed:?}");
    let log = f.workers[0].log.lock().unwrap().clone();
    for (row, id) in listed.iter().zip(["p1", "p2", "p3"]) {
        let faults = log
            .lines()
            .filter(|l| l.contains("host fault") && l.contains(&format!("job={id} ")))
            .count();
        assert_eq!(
            row["attempts"], faults as u64,
            "{row}: the worker saw {faults} attempts\n{log}"
        );
        assert_eq!(row["id"], id, "{row}");
        assert_eq!(row["batch"], batch.as_str(), "{row}");
        assert_eq!(row["tenant"], "guest", "{row}");
        assert!(
            row["reason"]
                .as_str()
                .unwrap()
                .starts_with("delivery_limit"),
            "{row}"
        );
    }
    // Listing leaves them where they are.
    assert_eq!(f.ready("jobs.dead"), 3);
    let table = f
        .wasmq()
        .args(["dead", "list"])
        .args(&f.broker_flags)
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.starts_with("ID ") && table.contains("p2") && table.contains("guest"),
        "{table}"
    );
    // Reading the dead-letter queue is not an attempt: listed again, the counts stand.
    let mut again = dead_list(&f);
    again.sort_by_key(|r| r["id"].as_str().unwrap().to_owned());
    for (before, after) in listed.iter().zip(&again) {
        assert_eq!(before["attempts"], after["attempts"], "{after}");
    }

    // Repair the store, then requeue one by id and the rest of the batch.
    std::fs::remove_dir(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let requeue = |args: &[&str]| {
        let out = f
            .wasmq()
            .args(["dead", "requeue"])
            .args(args)
            .args(&f.broker_flags)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = requeue(&["p2"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("requeued 1 job(s)") && err.contains("2 left"),
        "{err}"
    );
    let (code, err) = requeue(&["nope"]);
    assert_eq!(code, Some(1), "an id that is not there is an error: {err}");
    let (code, err) = requeue(&[]);
    assert_eq!(code, Some(2), "{err}");
    wait_until("p2 to run", Duration::from_secs(30), || {
        f.ready("jobs.dead") == 2
    });
    let (code, err) = requeue(&["--batch", &batch]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("requeued 2 job(s)"), "{err}");
    let r = f.results(&batch, 60);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut ids: Vec<&str> = r.results.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["p1", "p2", "p3"]);

    // Purge (another module: hello's is loaded in the worker's memory now).
    let (other, _, _) = f.poison("noop.wat");
    f.submit(&[json!({"id": "p4", "module": other})]);
    wait_until("a fourth dead letter", Duration::from_secs(60), || {
        f.ready("jobs.dead") == 1
    });
    let out = f
        .wasmq()
        .args(["dead", "purge"])
        .args(&f.broker_flags)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("purged 1"), "{err}");
    assert_eq!(f.ready("jobs.dead"), 0);
}

#[test]
fn a_full_results_queue_drops_the_oldest_results_and_never_requeues_a_job() {
    let mut f = Fleet::new("retention");
    f.broker_flags = vec!["--results-queue-max-length".into(), "3".into()];
    f.start_worker(2, &[]);
    let jobs: Vec<Value> = (0..5)
        .map(|i| job(&format!("j{i}"), &fixture("noop.wat")))
        .collect();
    let batch = f.submit(&jobs);
    let r = f.results(&batch, 60);
    assert_eq!(r.results.len(), 5, "{}", r.stderr);
    wait_until(
        "the shared queue at its limit",
        Duration::from_secs(10),
        || f.ready("results") == 3,
    );
    assert_eq!(f.ready("jobs"), 0);
    let log = f.workers[0].log.lock().unwrap().clone();
    assert!(!log.contains("requeueing"), "{log}");
    assert_eq!(log.matches("job done").count(), 5, "{log}");

    // A process with another retention is told what to do.
    let out = f
        .wasmq()
        .args(["status", "--results-queue-max-length", "4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("results_queue_max_length"), "{err}");
}

#[test]
fn status_shows_queue_depths_consumers_and_a_batch_by_status() {
    let mut f = Fleet::new("status");
    f.start_worker(2, &[]);
    let mut jobs: Vec<Value> = (0..3)
        .map(|i| job(&format!("s{i}"), &fixture("noop.wat")))
        .collect();
    jobs.push(job("x", &fixture("exit7.wat")));
    let batch = f.submit(&jobs);
    // Every result in, read once already: reading leaves them in the batch's stream.
    assert_eq!(f.results(&batch, 30).results.len(), 4);
    let status = || {
        let out = f
            .wasmq()
            .args(["status", "--batch", &batch])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        (String::from_utf8(out.stdout).unwrap(), err)
    };
    let row_of = |text: &str, queue: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(queue))
            .unwrap_or_else(|| panic!("no row for {queue} in\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // This machine's broker runs the management plugin (deploy/local-broker.sh), whose
    // figures lag by up to its statistics interval: wait for the unacked count to settle.
    let jobs_queue = format!("{}.jobs", f.prefix);
    let (mut text, mut err) = status();
    wait_until(
        "unacked counts from the management API",
        Duration::from_secs(30),
        || {
            (text, err) = status();
            row_of(&text, &jobs_queue)[2] == "0"
        },
    );
    let row = |queue: &str| row_of(&text, queue);
    let jobs_row = row(&format!("{}.jobs", f.prefix));
    assert_eq!(jobs_row[1], "0", "{text}");
    assert_eq!(jobs_row[3], "1", "one worker consumes: {text}");
    assert_eq!(row(&format!("{}.results", f.prefix))[1], "4", "{text}");
    assert_eq!(row(&format!("{}.jobs.dead", f.prefix))[1], "0", "{text}");
    assert_eq!(jobs_row[2], "0", "{text}\n{err}");
    assert!(
        text.contains(&format!(
            "batch {batch}: 4 jobs submitted, 4 with a result (failed 1, succeeded 3), 0 not finished"
        )),
        "{text}"
    );
    // Reading left every result for the next reader.
    let r = f.results(&batch, 30);
    assert_eq!(r.results.len(), 4, "{}", r.stderr);

    let out = f
        .wasmq()
        .args(["status", "--batch", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn status_lists_the_workers_from_their_heartbeats_and_a_killed_one_as_gone() {
    let mut f = Fleet::new("heartbeats");
    let beat = ["--heartbeat-interval-secs", "1"];
    f.start_worker(2, &beat);
    f.start_worker(1, &beat);
    let (w0, w1) = (f.workers[0].id.clone(), f.workers[1].id.clone());
    let jobs = vec![
        job("ok", &fixture("noop.wat")),
        job("exit7", &fixture("exit7.wat")),
    ];
    let batch = f.submit(&jobs);
    assert_eq!(f.results(&batch, 60).results.len(), 2);
    let status = || {
        let out = f.wasmq().arg("status").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        String::from_utf8(out.stdout).unwrap()
    };
    // WORKER STATE VERSION CONCURRENCY IN-FLIGHT DONE FAILED LAST SEEN
    let row = |text: &str, id: &str| -> Option<Vec<String>> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
    };
    let mut text = String::new();
    wait_until(
        "both workers' heartbeats after the batch",
        Duration::from_secs(30),
        || {
            text = status();
            let (Some(a), Some(b)) = (row(&text, &w0), row(&text, &w1)) else {
                return false;
            };
            let n = |r: &[String], i: usize| r[i].parse::<u64>().unwrap();
            a[1] == "running"
                && b[1] == "running"
                && n(&a, 5) + n(&b, 5) == 2
                && n(&a, 6) + n(&b, 6) == 1
        },
    );
    let a = row(&text, &w0).unwrap();
    assert_eq!(
        (a[2].as_str(), a[3].as_str(), a[4].as_str()),
        (env!("CARGO_PKG_VERSION"), "2", "0"),
        "{text}"
    );
    assert_eq!(row(&text, &w1).unwrap()[3], "1", "{text}");

    // Killed, w1 goes quiet and is shown as gone; stopped with a signal, w0 says so.
    f.workers[1].kill_with("KILL");
    f.workers[0].kill_with("TERM");
    wait_until("w1 gone and w0 stopped", Duration::from_secs(30), || {
        text = status();
        row(&text, &w1).is_some_and(|r| r[1] == "gone")
            && row(&text, &w0).is_some_and(|r| r[1] == "stopped")
    });
}

#[test]
fn config_prints_every_setting_with_its_source_and_redacts_secrets() {
    let dir = crate::support::Dir::new();
    let file = dir.path().join("worker.toml");
    std::fs::write(
        &file,
        "prefetch = 40\nqueue_prefix = 'fromfile'\n[limits.maximum]\ntimeout_ms = 60000\n",
    )
    .unwrap();
    let mut cmd = dir.wasmq();
    for (k, _) in std::env::vars() {
        if k.starts_with("WASMQ_") && k != "WASMQ_CACHE_DIR" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("WASMQ_DELIVERY_LIMIT", "7")
        .env(
            "WASMQ_AMQP_URL",
            "amqp://ops:s3cret@broker.example:5672/%2f",
        )
        .args(["config", "--json", "--concurrency", "3", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("s3cret"), "the password is redacted: {text}");
    let got: std::collections::HashMap<String, (String, String)> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["key"].as_str().unwrap().to_owned(),
                (
                    v["value"].as_str().unwrap().to_owned(),
                    v["source"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let has = |key: &str, value: &str, source: &str| {
        assert_eq!(
            got.get(key).map(|(v, s)| (v.as_str(), s.as_str())),
            Some((value, source)),
            "{key} in\n{text}"
        );
    };
    has("concurrency", "3", "flag");
    has("prefetch", "40", "file");
    has("queue_prefix", "fromfile", "file");
    has("delivery_limit", "7", "env");
    has("amqp_url", "amqp://ops:***@broker.example:5672/%2f", "env");
    has("drain_timeout_secs", "30", "default");
    has("metrics_addr", "off", "default");
    has("limits.maximum.timeout_ms", "60000", "file");
    has("limits.default.timeout_ms", "10000", "default");
    has("results_queue_max_length", "1000000", "default");
    has("default_work_dir", "/work", "default");
    has("cache_dir", dir.cache_dir().to_str().unwrap(), "env");

    // The same checks as the worker's: a prefetch below the concurrency is refused.
    let out = dir
        .wasmq()
        .args(["config", "--concurrency", "50", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--prefetch 40 is below --concurrency 50"),
        "{err}"
    );
}

/// The default a row of docs/configuration.md's table gives, when it is a value (a
/// number, `16 MiB`, or a literal in backticks) rather than a description.
fn documented_default(cell: &str) -> Option<String> {
    let cell = cell.trim();
    if let Some(rest) = cell.strip_prefix('`') {
        return rest.split('`').next().map(str::to_owned);
    }
    let digits: String = cell
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ' ')
        .filter(|c| c.is_ascii_digit())
        .collect();
    let n: u64 = digits.parse().ok()?;
    let rest = cell.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
    Some(if rest.starts_with("MiB") {
        (n << 20).to_string()
    } else if rest.starts_with("GiB") {
        (n << 30).to_string()
    } else {
        n.to_string()
    })
}

#[test]
fn the_documented_defaults_are_the_ones_config_prints() {
    let dir = crate::support::Dir::new();
    let mut cmd = dir.wasmq();
    for (k, _) in std::env::vars() {
        if k.starts_with("WASMQ_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env_remove("WASMQ_CACHE_DIR")
        .args(["config", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: std::collections::HashMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["key"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let doc = include_str!("../../docs/configuration.md");
    let mut checked = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let (Some(key), Some(default)) = (cells.get(2), cells.get(3)) else {
            continue;
        };
        let Some(key) = key.strip_prefix('`').and_then(|k| k.strip_suffix('`')) else {
            continue;
        };
        let Some(want) = documented_default(default.trim_end_matches(" |")) else {
            continue;
        };
        // `HOST-PID` is a pattern, not a value.
        let Some(got) = printed.get(key).filter(|_| key != "worker_id") else {
            continue;
        };
        let want = if key == "amqp_url" {
            want.replacen("guest:guest@", "guest:***@", 1)
        } else {
            want
        };
        assert_eq!(
            got, &want,
            "the default of {key}: docs say {want:?}, the code {got:?}"
        );
        checked.push(key.to_owned());
    }
    for key in [
        "cache_dir",
        "amqp_url",
        "queue_prefix",
        "delivery_limit",
        "drain_timeout_secs",
        "max_message_bytes",
        "consumer_timeout_ms",
        "results_queue_ttl_secs",
        "results_queue_max_length",
        "limits.default.timeout_ms",
        "limits.default.memory_bytes",
        "default_work_dir",
        "compile_wait_secs",
        "registry_retry_secs",
    ] {
        assert!(
            checked.iter().any(|k| k == key),
            "{key} was not compared: {checked:?}"
        );
    }
}
