//! The shipped Grafana dashboard (`deploy/grafana/wasmq-dashboard.json`): every query of
//! every panel run, as Grafana would run it, against a real Prometheus (Debian's,
//! installed by `deploy/local-prometheus.sh`) that scrapes real workers and the local
//! RabbitMQ's `rabbitmq_prometheus` endpoint (enabled by `deploy/local-broker.sh`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wasmq_spec::Status;

use crate::fleet::{Fleet, wait_until};
use crate::support::{fixture, guest, job, with};

/// Seconds between scrapes: short, so that the test's minute has many samples.
const SCRAPE_S: u64 = 1;

/// Where RabbitMQ's `rabbitmq_prometheus` plugin serves.
const RABBITMQ_METRICS: &str = "127.0.0.1:15692";

/// A Prometheus server of the test's own, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Prometheus, or a loud failure saying how to get it.
fn prometheus_binary() -> PathBuf {
    let path = PathBuf::from("/usr/bin/prometheus");
    assert!(
        path.exists(),
        "/usr/bin/prometheus is missing: run deploy/local-prometheus.sh (the README's test command does)"
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus on a free port, scraping `workers` (their `/metrics`) and
    /// RabbitMQ's per-queue series every [`SCRAPE_S`]; waits until every target is up.
    fn start(workers: &[String]) -> Prometheus {
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("prometheus.yml");
        let text = format!(
            "global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: {SCRAPE_S}s\n\
             scrape_configs:\n\
             \x20 - job_name: wasmq-worker\n    static_configs:\n      - targets: {workers}\n\
             \x20 - job_name: rabbitmq\n    metrics_path: /metrics/per-object\n    static_configs:\n      - targets: [\"{RABBITMQ_METRICS}\"]\n",
            workers = json!(workers),
        );
        std::fs::write(&config, text).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Prometheus {
            child,
            addr,
            _data: data,
        };
        let expected = workers.len() + 1;
        wait_until("every scrape target up", Duration::from_secs(60), || {
            let Ok((200, body)) = get(&format!("http://{}/api/v1/targets", p.addr)) else {
                return false;
            };
            let targets: Value = serde_json::from_str(&body).unwrap();
            let up = targets["data"]["activeTargets"]
                .as_array()
                .map_or(0, |t| t.iter().filter(|t| t["health"] == "up").count());
            up == expected
        });
        p
    }

    /// A GET of the HTTP API that must succeed.
    fn api(&self, path: &str) -> Value {
        let (code, body) = get(&format!("http://{}{path}", self.addr)).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{path}: {body}");
        v["data"].clone()
    }

    /// An instant query at `at` (Unix seconds).
    fn query(&self, expr: &str, at: f64) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}&time={at}", encode(expr)));
        data["result"].as_array().unwrap().clone()
    }

    /// A range query, as a time series panel runs it: (labels, values) of each series.
    fn query_range(&self, expr: &str, start: f64, end: f64) -> Vec<(Value, Vec<f64>)> {
        let data = self.api(&format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={SCRAPE_S}",
            encode(expr)
        ));
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let values = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
                    .collect();
                (s["metric"].clone(), values)
            })
            .collect()
    }
}

/// `GET url`: (status code, body). Prometheus and RabbitMQ answer large bodies in chunks.
fn get(url: &str) -> Result<(u16, String), reqwest::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let r = reqwest::Client::new()
                .get(url)
                .timeout(Duration::from_secs(10))
                .send()
                .await?;
            let code = r.status().as_u16();
            Ok((code, r.text().await?))
        })
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A query with Grafana's variables put in as the dashboard would: `$instance` is its
/// "All" value, `$__rate_interval` four scrape intervals (Grafana's floor), `$__range` the
/// time range shown.
fn substitute(expr: &str, prefix: &str, range_s: u64) -> String {
    expr.replace("${queue_prefix}", prefix)
        .replace("$instance", ".*")
        .replace("$__rate_interval", &format!("{}s", 4 * SCRAPE_S))
        .replace("$__range", &format!("{range_s}s"))
}

/// The greatest finite value of a series (NaN when it has none).
fn max(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NAN, f64::max)
}

/// The series whose label `name` is `value`.
fn series<'a>(drawn: &'a [(Value, Vec<f64>)], name: &str, value: &str) -> Option<&'a [f64]> {
    drawn
        .iter()
        .find(|(labels, _)| labels[name] == value)
        .map(|(_, v)| v.as_slice())
}

#[test]
fn every_query_of_the_grafana_dashboard_draws_what_the_workers_did_in_a_real_prometheus() {
    prometheus_binary();
    let answered = get(&format!("http://{RABBITMQ_METRICS}/metrics/per-object"));
    assert!(
        answered.as_ref().is_ok_and(|(code, _)| *code == 200),
        "RabbitMQ's rabbitmq_prometheus endpoint ({RABBITMQ_METRICS}) did not answer: run deploy/local-broker.sh, which enables it: {answered:?}"
    );

    let mut f = Fleet::new("grafana");
    f.broker_flags = vec!["--delivery-limit".into(), "2".into()];
    // fib.wat's module store entry is unreadable: each attempt is a host fault, the job
    // is delivered again, and ends in the dead-letter queue.
    let (module, _, _) = f.poison("fib.wat");
    let metrics = ["--metrics-addr", "127.0.0.1:0"];
    f.start_worker(2, &metrics);
    f.start_worker(1, &metrics);
    let instances: Vec<String> = f
        .workers
        .iter()
        .map(|w| w.metrics_addr(Duration::from_secs(10)))
        .collect();
    let p = Prometheus::start(&instances);
    let start = now_s();

    let mut jobs: Vec<Value> = (0..6)
        .map(|i| job(&format!("ok{i}"), &fixture("noop.wat")))
        .collect();
    jobs.push(job("exit1", &fixture("exit7.wat")));
    jobs.push(job("exit2", &fixture("exit7.wat")));
    jobs.push(job("trap", &fixture("unreachable.wat")));
    // No allow-list: its request is denied, and the guest says so.
    jobs.push(with(
        job("fetch", &guest("fetch-p2")),
        json!({"kind": "component", "args": ["http://127.0.0.1:9/"]}),
    ));
    let batch = f.submit(&jobs);
    f.submit(&[json!({"id": "poison", "module": module})]);
    let run = f.results(&batch, 120);
    assert_eq!(run.results.len(), jobs.len(), "{}", run.stderr);
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &run.results {
        *by_status.entry(r.status.as_str()).or_default() += 1;
    }
    assert!(
        by_status.get("succeeded").is_some_and(|n| *n >= 6),
        "{by_status:?}"
    );
    assert_eq!(by_status.get("trapped"), Some(&1), "{by_status:?}");
    let fetch = run.by_id("fetch");
    assert_eq!(fetch.http.as_ref().map(|h| h.denied), Some(1), "{fetch:?}");
    wait_until(
        "the poison job in the dead-letter queue",
        Duration::from_secs(60),
        || f.ready("jobs.dead") == 1,
    );
    let dead = format!("{}.jobs.dead", f.prefix);
    // Prometheus has scraped it all: every result counted, the dead letter seen (RabbitMQ
    // refreshes its queue metrics every few seconds).
    wait_until("the last results scraped", Duration::from_secs(60), || {
        p.query("sum(wasmq_jobs_total)", now_s())
            .first()
            .is_some_and(|s| s["value"][1] == json!(jobs.len().to_string()))
            && p.query(
                &format!("rabbitmq_queue_messages_ready{{queue=\"{dead}\"}}"),
                now_s(),
            )
            .first()
            .is_some_and(|s| s["value"][1] == "1")
    });
    // A few more samples after the last change, as a dashboard open a little later has.
    std::thread::sleep(Duration::from_secs(3 * SCRAPE_S));
    let end = now_s();
    let range_s = (end - start).ceil() as u64;

    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/wasmq-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();

    // The `instance` variable's query lists both workers.
    let variable = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    assert_eq!(
        variable["query"]["query"],
        "label_values(wasmq_build_info, instance)"
    );
    let listed = p.api("/api/v1/label/instance/values?match%5B%5D=wasmq_build_info");
    let mut want = instances.clone();
    want.sort();
    assert_eq!(listed, json!(want));

    let mut drawn_panels = Vec::new();
    let mut report = String::new();
    for panel in dash["panels"].as_array().unwrap() {
        let Some(targets) = panel["targets"].as_array() else {
            continue;
        };
        let title = panel["title"].as_str().unwrap();
        let mut drawn = Vec::new();
        for t in targets {
            let expr = substitute(t["expr"].as_str().unwrap(), &f.prefix, range_s);
            if t["instant"] == true {
                for s in p.query(&expr, end) {
                    let v = s["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                    drawn.push((s["metric"].clone(), vec![v]));
                }
            } else {
                drawn.extend(p.query_range(&expr, start, end));
            }
            assert!(!drawn.is_empty(), "panel {title:?}: no series for {expr}");
        }
        for (labels, values) in &drawn {
            report.push_str(&format!(
                "{title}\t{labels}\tmax {}\tlast {}\n",
                max(values),
                values.last().copied().unwrap_or(f64::NAN)
            ));
        }
        drawn_panels.push((title.to_owned(), drawn));
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("grafana");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("panels.tsv"), &report).unwrap();

    let all_zero = |d: &[(Value, Vec<f64>)]| {
        d.iter()
            .all(|(_, v)| v.iter().all(|x| *x == 0.0 || x.is_nan()))
    };
    for (title, drawn) in &drawn_panels {
        let d = drawn.as_slice();
        match title.as_str() {
            "Jobs finished by status" => {
                for status in Status::ALL {
                    let s = series(d, "status", status.as_str())
                        .unwrap_or_else(|| panic!("{title}: no {status:?} series\n{report}"));
                    let seen = by_status.contains_key(status.as_str());
                    assert_eq!(
                        max(s) > 0.0,
                        seen,
                        "{title}: {status:?} drawn {s:?}, results {by_status:?}"
                    );
                }
            }
            "Jobs finished by kind" => {
                for kind in ["command", "component"] {
                    let s = series(d, "kind", kind).unwrap_or_else(|| panic!("{title}: {kind}"));
                    assert!(max(s) > 0.0, "{title}: {kind} {s:?}");
                }
                let s = series(d, "kind", "handler").unwrap();
                assert_eq!(max(s), 0.0, "{title}: no handler ran");
            }
            "Job duration p50 / p99" | "Compile duration p50 / p99" => {
                for (_, v) in d {
                    assert!(max(v) > 0.0, "{title}: {v:?}");
                }
            }
            "Jobs in flight" | "Broker connected" | "Broker reconnects" => {
                let mut seen: Vec<String> = d
                    .iter()
                    .map(|(l, _)| l["instance"].as_str().unwrap().to_owned())
                    .collect();
                seen.sort();
                assert_eq!(seen, want, "{title}");
                if title == "Broker connected" {
                    assert!(
                        d.iter().all(|(_, v)| v.iter().all(|x| *x == 1.0)),
                        "{title}"
                    );
                }
                if title == "Broker reconnects" {
                    assert!(all_zero(d), "{title}: {d:?}");
                }
            }
            "Jobs not succeeded" => {
                let not = jobs.len() - by_status["succeeded"];
                let want = not as f64 / jobs.len() as f64;
                let got = *d[0].1.last().unwrap();
                assert!(
                    (got - want).abs() < 0.02,
                    "{title}: {got} drawn, {not} of {} not succeeded",
                    jobs.len()
                );
            }
            "Compiles" => {
                assert!(d.iter().any(|(_, v)| max(v) > 0.0), "{title}: {d:?}");
            }
            "Module cache" => {
                let compiled = series(d, "result", "compiled").unwrap();
                assert!(max(compiled) > 0.0, "{title}: {compiled:?}");
                let remote = series(d, "result", "hit-remote").unwrap();
                assert_eq!(max(remote), 0.0, "{title}: no module store is set");
            }
            "Redeliveries" => {
                assert!(d.iter().any(|(_, v)| max(v) > 0.0), "{title}: {d:?}");
            }
            "Broker blocking publishes" => {
                assert_eq!(d.len(), 2, "{title}");
                assert!(all_zero(d), "{title}: {d:?}");
            }
            "Jobs waiting, and dead-lettered" => {
                let jobs_q = series(d, "queue", &format!("{}.jobs", f.prefix))
                    .unwrap_or_else(|| panic!("{title}: no jobs queue\n{report}"));
                assert_eq!(*jobs_q.last().unwrap(), 0.0, "{title}");
                let dead_q = series(d, "queue", &dead).unwrap();
                assert_eq!(*dead_q.last().unwrap(), 1.0, "{title}");
                assert!(
                    d.iter().all(|(l, _)| l["queue"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{}.jobs", f.prefix))),
                    "{title}: only this prefix's queues: {d:?}"
                );
            }
            "Outbound HTTP requests" => {
                assert!(
                    max(series(d, "outcome", "denied").unwrap()) > 0.0,
                    "{title}"
                );
                assert_eq!(max(series(d, "outcome", "ok").unwrap()), 0.0, "{title}");
            }
            "HTTP response bytes" => {
                assert!(all_zero(d), "{title}: {d:?}");
            }
            "Versions" => {
                assert_eq!(d.len(), 1, "{title}: {d:?}");
                assert_eq!(d[0].0["version"], env!("CARGO_PKG_VERSION"), "{title}");
                assert_eq!(d[0].1, vec![2.0], "{title}: two workers");
            }
            other => panic!("panel {other:?} is not checked here: say what it must draw"),
        }
    }
}
