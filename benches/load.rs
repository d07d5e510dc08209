//! The end-to-end load benchmark: wasmq through RabbitMQ against the broker's own ceiling,
//! measured in the same run on the same broker, plus a cold batch and the worker's memory.
//!
//! 1. **Throughput and latency.** One client publishes N jobs (persistent, with confirms,
//!    window 1,024) and reads N results, recording when each job was sent and when its
//!    result arrived. Against (a) the **raw ceiling**: the same flow with no wasm, a
//!    consumer with the worker's prefetch that publishes a confirmed result per job to a
//!    quorum queue, then acks; and (b) **wasmq**: `wasmq worker -j 2` (prewarmed) running
//!    a trivial job per message, its results sent to the client's quorum queue by
//!    `reply_to`. Jobs/s, p50/p99 submit-to-result latency under the full batch, and p50/p99
//!    of a single job sent alone (one at a time, 300 times).
//! 2. **The CLI**: `wasmq submit` of the N jobs then `wasmq results --batch B --wait`, as
//!    a user without a policy and as a tenant (a policy on the worker: its own jobs queue
//!    and private results).
//! 3. **A cold batch**: 1,000 jobs on 10 modules nobody has compiled (a fresh worker and
//!    cache): total time and how many jobs compiled.
//! 4. **Memory**: the worker's RSS at idle and while 2 jobs each touch 64 MiB.
//! 5. **Fair share**: tenant A submits 20,000 no-op jobs, then tenant B 100 (two broker
//!    users with tenant policies, one worker `-j 2`): B's latency from the start of its
//!    submit to each of its results, and how long A's batch took.
//!    `WASMQ_BENCH_ONLY=fair` runs this flow alone (for each binary), and the next.
//! 6. **Cancel to stop**: 30 running jobs, each cancelled by a message on the control
//!    exchange 100 ms after it was sent: from the cancel's publish to the job's result.
//! 7. **A cold fleet**: three workers with empty caches of their own, 10 modules nobody has
//!    compiled (the 1.5 MB `jsonx` guest, made distinct by a custom section), 1,000 jobs,
//!    modules in a registry (Debian's `docker-registry`, started here on a free port):
//!    compiles in the whole fleet and the time from submit to the last result, without
//!    and then with the shared artifact store. `WASMQ_BENCH_ONLY=fleet` runs it alone.
//!
//! Every batch flow also reports the CPU time each process spent on it (the worker, the
//! client, and the broker's `beam.smp`, from `/proc/PID/stat`), per 10,000 jobs. The raw
//! consumer runs as its own process (this binary, started again) so that its CPU time is
//! its own. The wasmq flow runs three jobs: one with no output (`tests/fixtures/noop.wat`),
//! the Rust hello-world guest, and one that writes 1 KiB to stdout. Each batch flow runs
//! `WASMQ_BENCH_REPEAT` times (default 3), interleaved, and reports the medians.
//!
//! - `WASMQ_BENCH_BASELINE=PATH`: another `wasmq` binary (an earlier build) whose flows run
//!   alternately with this build's, in the same run, on rows marked `(baseline)`.
//! - `WASMQ_BENCH_PERF_DIR=DIR`: records a `perf` profile (DWARF call graphs) of the
//!   worker during each wasmq batch into `DIR/worker<flow>.perf.data`. Sampling inflates
//!   the worker's CPU time in that run.
//!
//! Run: `cargo bench --bench load` (`WASMQ_BENCH_JOBS`, default 10000; the broker from
//! `WASMQ_TEST_AMQP_URL` or 127.0.0.1:5672). It prints the machine, the versions and every
//! figure with its ratio to the raw ceiling.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

fn url() -> String {
    std::env::var("WASMQ_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

async fn quorum(ch: &Channel, name: &str) {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("declare a quorum queue");
}

/// What one run of the flow measured.
struct Flow {
    jobs_per_s: f64,
    /// Submit-to-result latency of each job, sorted.
    latencies: Vec<Duration>,
    /// Jobs in the flow.
    jobs: usize,
    /// CPU time of each process from the first publish to the last result.
    cpu: Usage,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU time (user + system) of a process, from `/proc/PID/stat`: its own threads, or the
/// children it has waited for.
fn proc_cpu(pid: &str, children: bool) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14 to 17 of the line (1-based); `fields`
    // starts at field 4.
    let at = if children { 12 } else { 10 };
    let ticks = fields.get(at).copied().unwrap_or(0) + fields.get(at + 1).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The broker's Erlang VM (`beam.smp`): the pid `rabbitmqctl` reports for the node, asked
/// once (the bench never restarts the broker).
fn broker_pid() -> Option<String> {
    static PID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PID.get_or_init(|| {
        let out = Command::new("rabbitmqctl")
            .args(["eval", "os:getpid()."])
            .output()
            .ok()?;
        let pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_matches('"')
            .to_owned();
        pid.parse::<u32>().ok().map(|_| pid)
    })
    .clone()
}

/// The processes a flow's CPU time is counted for.
#[derive(Clone)]
struct Processes {
    /// The consumer: the raw worker or `wasmq worker`.
    worker: String,
    /// Count the client's waited-for children (the CLI's `submit` and `results`) instead
    /// of this process.
    client_children: bool,
    broker: Option<String>,
}

/// CPU time per process over a stretch of a run.
#[derive(Clone, Copy, Default)]
struct Usage {
    worker: Duration,
    client: Duration,
    broker: Duration,
}

impl Processes {
    fn sample(&self) -> Usage {
        Usage {
            worker: proc_cpu(&self.worker, false),
            client: proc_cpu("self", self.client_children),
            broker: self
                .broker
                .as_deref()
                .map_or(Duration::ZERO, |b| proc_cpu(b, false)),
        }
    }
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage {
            worker: self.worker.saturating_sub(o.worker),
            client: self.client.saturating_sub(o.client),
            broker: self.broker.saturating_sub(o.broker),
        }
    }
}

impl Usage {
    fn total(&self) -> Duration {
        self.worker + self.client + self.broker
    }
}

/// The run with the median rate, with the median CPU time of each process over `runs`.
fn median(mut runs: Vec<Flow>) -> Flow {
    let mid = runs.len() / 2;
    let pick = |f: fn(&Usage) -> Duration, runs: &[Flow]| {
        let mut v: Vec<Duration> = runs.iter().map(|r| f(&r.cpu)).collect();
        v.sort();
        v[mid]
    };
    let cpu = Usage {
        worker: pick(|u| u.worker, &runs),
        client: pick(|u| u.client, &runs),
        broker: pick(|u| u.broker, &runs),
    };
    runs.sort_by(|a, b| a.jobs_per_s.total_cmp(&b.jobs_per_s));
    let mut m = runs.swap_remove(mid);
    m.cpu = cpu;
    m
}

/// The job's index, from the `"id":"n<i>"` every job and result body carries.
fn index_of(body: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    v["id"].as_str().expect("an id")[1..].parse().expect("n<i>")
}

async fn connect() -> Connection {
    Connection::connect(&url(), ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ (deploy/local-broker.sh starts one)")
}

/// Jobs sent one at a time are numbered from here, so that a late second result of a
/// batch's job is not taken for theirs.
const SINGLE: usize = 1_000_000;

/// Counts a second result of a job. Most are the same result message delivered again: a
/// reader's acks still in flight when it closed its connection are lost, and the broker
/// redelivers those results to the next reader (`redelivered` is set). Shows the first
/// one seen that was not redelivered: a job that ran twice.
fn note_duplicate(d: &lapin::message::Delivery, seen: &mut Seen) {
    if d.redelivered {
        seen.redelivered += 1;
        return;
    }
    if seen.twice == 0 {
        let text = String::from_utf8_lossy(&d.data);
        println!("a job ran twice: {}", &text[..text.len().min(600)]);
    }
    seen.twice += 1;
}

/// Second results seen by one flow.
#[derive(Default)]
struct Seen {
    redelivered: usize,
    twice: usize,
}

/// Publishes `n` jobs (`body(i)`) to `jobs` and reads `n` results from `results`: all at
/// once (window 1,024) when `batch`, else one at a time, each waiting for its result.
async fn drive(
    n: usize,
    jobs: &str,
    results: &str,
    batch: bool,
    procs: &Processes,
    body: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
) -> Flow {
    let (pc, rc) = (connect().await, connect().await);
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_reply_to(results.into());
    let rch = rc.create_channel().await.unwrap();
    rch.basic_qos(256, BasicQosOptions::default())
        .await
        .unwrap();
    let mut reader = rch
        .basic_consume(
            results.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let pch = pc.create_channel().await.unwrap();
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let sent: Arc<Vec<std::sync::OnceLock<Instant>>> =
        Arc::new((0..n).map(|_| std::sync::OnceLock::new()).collect());
    let mut latencies = vec![Duration::ZERO; n];
    let mut duplicates = Seen::default();
    let before = procs.sample();
    let start = Instant::now();
    if batch {
        let (jobs_q, sent_p) = (jobs.to_owned(), sent.clone());
        let publisher = tokio::spawn(async move {
            let mut pending = std::collections::VecDeque::new();
            for i in 0..n {
                if pending.len() >= 1024 {
                    let c: lapin::PublisherConfirm = pending.pop_front().unwrap();
                    c.await.unwrap();
                }
                let _ = sent_p[i].set(Instant::now());
                let c = pch
                    .basic_publish(
                        "".into(),
                        jobs_q.as_str().into(),
                        BasicPublishOptions::default(),
                        &body(i),
                        props.clone(),
                    )
                    .await
                    .unwrap();
                pending.push_back(c);
            }
            for c in pending {
                c.await.unwrap();
            }
        });
        // At-least-once: a job that ran twice has two results; the first one counts.
        let mut seen = 0;
        while seen < n {
            let d = reader.next().await.unwrap().unwrap();
            let i = index_of(&d.data);
            if latencies[i] == Duration::ZERO {
                latencies[i] = sent[i].get().expect("sent before its result").elapsed();
                seen += 1;
            } else {
                note_duplicate(&d, &mut duplicates);
            }
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
        publisher.await.unwrap();
    } else {
        for (i, latency) in latencies.iter_mut().enumerate() {
            let t = Instant::now();
            pch.basic_publish(
                "".into(),
                jobs.into(),
                BasicPublishOptions::default(),
                &body(SINGLE + i),
                props.clone(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
            loop {
                let d = reader.next().await.unwrap().unwrap();
                let got = index_of(&d.data);
                d.ack(BasicAckOptions::default()).await.unwrap();
                if got == SINGLE + i {
                    break;
                }
                // A second result of an earlier job (of this flow, or of the batch before).
                assert!(got < SINGLE + i, "a result of job {got} before it was sent");
                note_duplicate(&d, &mut duplicates);
            }
            *latency = t.elapsed();
        }
    }
    let jobs_per_s = n as f64 / start.elapsed().as_secs_f64();
    let cpu = procs.sample() - before;
    if duplicates.redelivered + duplicates.twice > 0 {
        println!(
            "(not counted: {} results delivered again after a reader closed, {} second results of jobs that ran twice)",
            duplicates.redelivered, duplicates.twice
        );
    }
    for c in [pc, rc] {
        let _ = c.close(200, "done".into()).await;
    }
    latencies.sort();
    Flow {
        jobs_per_s,
        latencies,
        jobs: n,
        cpu,
    }
}

/// The raw consumer, in a process of its own (this binary, started again with
/// `WASMQ_BENCH_RAW_WORKER` set): for each job, publish a confirmed result of
/// `result_bytes` carrying its id to the job's `reply_to`, then ack; each delivery in its
/// own task, `prefetch` at once. It prints `ready` once it consumes.
/// `exchange` is the full name of the choice's exchange, if it has one.
fn start_raw_worker(
    jobs: &str,
    prefetch: u16,
    result_bytes: usize,
    choice: &Choice,
    exchange: Option<&str>,
) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("this bench's path"))
        .env("WASMQ_BENCH_RAW_WORKER", jobs)
        .env("WASMQ_BENCH_RAW_PREFETCH", prefetch.to_string())
        .env("WASMQ_BENCH_RAW_RESULT_BYTES", result_bytes.to_string())
        .env(
            "WASMQ_BENCH_RAW_MANDATORY",
            (choice.mandatory as u8).to_string(),
        )
        .env(
            "WASMQ_BENCH_RAW_PERSISTENT",
            (choice.persistent as u8).to_string(),
        )
        .env("WASMQ_BENCH_RAW_EXCHANGE", exchange.unwrap_or(""))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the raw consumer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the raw consumer starts");
    child
}

/// The raw consumer's own `main`.
fn raw_worker_main(jobs: String) {
    let env_num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let prefetch = env_num("WASMQ_BENCH_RAW_PREFETCH", 66) as u16;
    let result_bytes = env_num("WASMQ_BENCH_RAW_RESULT_BYTES", 200);
    let mandatory = env_num("WASMQ_BENCH_RAW_MANDATORY", 0) == 1;
    let mode = if env_num("WASMQ_BENCH_RAW_PERSISTENT", 1) == 1 {
        2
    } else {
        1
    };
    let exchange = std::env::var("WASMQ_BENCH_RAW_EXCHANGE").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let wc = connect().await;
        let wch = wc.create_channel().await.unwrap();
        wch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .unwrap();
        let wpub = Arc::new(wc.create_channel().await.unwrap());
        wpub.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut consumer = wch
            .basic_consume(
                jobs.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        println!("ready");
        while let Some(Ok(d)) = consumer.next().await {
            let p = wpub.clone();
            let exchange = exchange.clone();
            tokio::spawn(async move {
                // To the job's `reply_to`, or through the exchange with a result's
                // routing key (`<batch>.<status>`).
                let to = match exchange.as_str() {
                    "" => d
                        .properties
                        .reply_to()
                        .clone()
                        .expect("reply_to")
                        .to_string(),
                    _ => "b1.succeeded".to_owned(),
                };
                let body = padded(index_of(&d.data), result_bytes);
                p.basic_publish(
                    exchange.as_str().into(),
                    to.as_str().into(),
                    BasicPublishOptions {
                        mandatory,
                        ..Default::default()
                    },
                    &body,
                    BasicProperties::default().with_delivery_mode(mode),
                )
                .await
                .unwrap()
                .await
                .unwrap();
                d.ack(BasicAckOptions::default()).await.unwrap();
            });
        }
    });
}

/// A body of `len` bytes with id `n<i>`: a raw job, and its result.
fn padded(i: usize, len: usize) -> Vec<u8> {
    let mut body = format!("{{\"id\":\"n{i}\",\"pad\":\"");
    body.extend(std::iter::repeat_n('x', len.saturating_sub(body.len() + 2)));
    body.push_str("\"}");
    body.into_bytes()
}

/// A 200-byte raw job.
fn raw_job(i: usize) -> Vec<u8> {
    padded(i, 200)
}

async fn delete_queues(names: &[String]) {
    let c = connect().await;
    let ch = c.create_channel().await.unwrap();
    for q in names {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = c.close(200, "done".into()).await;
}

/// How the raw consumer publishes its results, for the cost of each choice to the broker.
#[derive(Clone, Copy)]
struct Choice {
    name: &'static str,
    /// The queue the client reads is a quorum queue (else a classic durable one).
    quorum: bool,
    mandatory: bool,
    persistent: bool,
    /// Through this topic exchange, with a result's routing key, to two queues: the one
    /// the client reads (bound to `b1.#`, as `submit` binds a batch's queue) and a quorum
    /// queue bound to `#` that nobody reads (wasmq's shared results queue).
    exchange: Option<&'static str>,
}

/// The raw ceiling's results: persistent and confirmed, to a quorum queue (wasmq's worker
/// also sets `mandatory`, the first choice below).
const REPLY_TO: Choice = Choice {
    name: "persistent, confirmed, to a quorum queue",
    quorum: true,
    mandatory: false,
    persistent: true,
    exchange: None,
};

/// Each choice against [`REPLY_TO`], one at a time.
const CHOICES: [Choice; 4] = [
    Choice {
        name: "+ mandatory",
        mandatory: true,
        ..REPLY_TO
    },
    Choice {
        name: "classic durable queue instead of quorum",
        quorum: false,
        ..REPLY_TO
    },
    Choice {
        name: "transient (not persistent)",
        persistent: false,
        ..REPLY_TO
    },
    Choice {
        name: "topic exchange: batch queue + shared queue",
        quorum: false,
        exchange: Some("results"),
        ..REPLY_TO
    },
];

/// The raw ceiling: the flow with no wasm, under the full batch and one job at a time,
/// each result `result_bytes` long, published as `choice` says.
async fn raw_ceiling(
    n: usize,
    prefetch: u16,
    result_bytes: usize,
    tag: &str,
    choice: &Choice,
) -> (Flow, Flow) {
    let tag = format!("bench.raw{tag}.{}", std::process::id());
    let (jobs, results) = (format!("{tag}.jobs"), format!("{tag}.results"));
    let shared = format!("{tag}.shared");
    let exchange = choice.exchange.map(|e| format!("{tag}.{e}"));
    {
        let c = connect().await;
        let ch = c.create_channel().await.unwrap();
        quorum(&ch, &jobs).await;
        if choice.quorum {
            quorum(&ch, &results).await;
        } else {
            ch.queue_declare(
                results.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
        if let Some(x) = exchange.as_deref() {
            ch.exchange_declare(
                x.into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
            quorum(&ch, &shared).await;
            for (q, key) in [(&results, "b1.#"), (&shared, "#")] {
                ch.queue_bind(
                    q.as_str().into(),
                    x.into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            }
        }
        let _ = c.close(200, "done".into()).await;
    }
    let worker = start_raw_worker(&jobs, prefetch, result_bytes, choice, exchange.as_deref());
    let procs = Processes {
        worker: worker.id().to_string(),
        client_children: false,
        broker: broker_pid(),
    };
    let batch = drive(n, &jobs, &results, true, &procs, raw_job).await;
    let single = drive(300, &jobs, &results, false, &procs, raw_job).await;
    stop(worker);
    delete_queues(&[jobs, results, shared]).await;
    if let Some(x) = exchange.as_deref() {
        let c = connect().await;
        let ch = c.create_channel().await.unwrap();
        let _ = ch
            .exchange_delete(x.into(), lapin::options::ExchangeDeleteOptions::default())
            .await;
        let _ = c.close(200, "done".into()).await;
    }
    (batch, single)
}

/// The `wasmq` binary the flows run: this build's, or the baseline's
/// (`WASMQ_BENCH_BASELINE`) while its flows run.
static BINARY: std::sync::RwLock<String> = std::sync::RwLock::new(String::new());

fn use_binary(path: &str) {
    *BINARY.write().unwrap() = path.to_owned();
}

/// `wasmq` with the bench's broker, queue prefix and cache.
fn wasmq(prefix: &str, cache: &Path) -> Command {
    let bin = BINARY.read().unwrap().clone();
    let mut c = Command::new(bin);
    c.env("WASMQ_AMQP_URL", url())
        .env("WASMQ_QUEUE_PREFIX", prefix)
        .env("WASMQ_CACHE_DIR", cache)
        .env("WASMQ_LOG", "warn")
        .env_remove("WASMQ_CONFIG");
    c
}

/// Starts `wasmq worker -j 2` and waits until it consumes.
fn start_worker(prefix: &str, cache: &Path) -> Child {
    start_worker_with(prefix, cache, &[])
}

/// As [`start_worker`], with more flags.
fn start_worker_with(prefix: &str, cache: &Path, extra: &[&str]) -> Child {
    let mut worker = wasmq(prefix, cache)
        .args(["worker", "-j", "2"])
        .args(extra)
        .env("WASMQ_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = worker.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // A warning of the worker's (a requeue, a reconnect) explains odd figures.
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("worker: {line}");
            }
            if line.contains("consuming")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the worker logs that it is consuming");
    worker
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Uploads and compiles `module` with `wasmq prewarm`; returns its sha256.
fn prewarm(prefix: &str, cache: &Path, module: &str) -> String {
    let out = wasmq(prefix, cache)
        .args(["prewarm", module])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap()["sha256:".len()..].to_owned()
}

/// What tenant B saw under tenant A's backlog.
struct Fairness {
    /// From the start of B's submit to each of its 100 results, sorted.
    b: Vec<Duration>,
    /// From the start of A's submit to its last result.
    a_total: Duration,
    a_jobs: usize,
}

/// A broker user of this run with every permission (so that an earlier build, which
/// declares the topology from `submit`, runs as it too); deleted by [`drop_user`].
fn bench_user(tag: &str) -> (String, String) {
    let name = format!("bench-{tag}-{}", std::process::id());
    let password = format!("pw-{tag}");
    for args in [
        vec!["add_user", name.as_str(), password.as_str()],
        vec![
            "set_permissions",
            "-p",
            "/",
            name.as_str(),
            ".*",
            ".*",
            ".*",
        ],
    ] {
        let out = Command::new("rabbitmqctl").args(&args).output().unwrap();
        assert!(out.status.success(), "rabbitmqctl {args:?}");
    }
    let rest = url().rsplit_once('@').map(|(_, r)| r.to_owned()).unwrap();
    (name.clone(), format!("amqp://{name}:{password}@{rest}"))
}

fn drop_user(name: &str) {
    let _ = Command::new("rabbitmqctl")
        .args(["delete_user", name])
        .output();
}

/// Tenant A's 20,000 jobs, then tenant B's 100, on one worker.
fn fair_share(dir: &Path, tag: &str) -> Fairness {
    let prefix = format!("bench.fair{tag}.{}", std::process::id());
    let cache = dir.join("cache");
    let noop = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/noop.wat");
    let write_jobs = |name: &str, n: usize| {
        let jobs: String = (0..n)
            .map(|i| format!("{{\"id\":\"{name}{i}\",\"module\":{{\"path\":{noop:?}}}}}\n"))
            .collect();
        let file = dir.join(format!("fair-{name}.jsonl"));
        std::fs::write(&file, jobs).unwrap();
        file
    };
    let (a_jobs, b_jobs) = (write_jobs("a", 20_000), write_jobs("b", 100));
    let ((a, a_url), (b, b_url)) = (bench_user("fair-a"), bench_user("fair-b"));
    let cfg = dir.join("fair.toml");
    std::fs::write(&cfg, format!("[tenants.{a}]\n\n[tenants.{b}]\n")).unwrap();
    prewarm(&prefix, &cache, noop);
    let worker = start_worker_with(&prefix, &cache, &["--config", cfg.to_str().unwrap()]);
    let submit = |url: &str, batch: &str, file: &Path| {
        let out = wasmq(&prefix, &cache)
            .args(["submit", "--batch", batch, "--amqp-url", url])
            .arg(file)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "submit {batch}");
    };
    let results = |url: &str, batch: &str, since: Instant| -> Vec<Duration> {
        let mut child = wasmq(&prefix, &cache)
            .args(["results", "--batch", batch, "--wait", "--timeout", "600"])
            .args(["--amqp-url", url])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let times = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .map(|_| since.elapsed())
            .collect();
        assert!(child.wait().unwrap().success());
        times
    };
    let a_start = Instant::now();
    submit(&a_url, "backlog", &a_jobs);
    let b_start = Instant::now();
    submit(&b_url, "quick", &b_jobs);
    let mut b_times = results(&b_url, "quick", b_start);
    let a_times = results(&a_url, "backlog", a_start);
    stop(worker);
    for q in prefix_queues(&prefix) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", "-q", &q])
            .output();
    }
    drop_user(&a);
    drop_user(&b);
    assert_eq!(b_times.len(), 100, "every job of B has a result");
    assert_eq!(a_times.len(), 20_000, "every job of A has a result");
    b_times.sort();
    Fairness {
        b: b_times,
        a_total: a_times.iter().max().copied().unwrap_or_default(),
        a_jobs: a_times.len(),
    }
}

/// From a cancel published to the control exchange to the result of the running job it
/// stops, through the broker and a worker: `iterations` times, sorted. Each job spins (a
/// guest computing) and has been running for 100 ms when the cancel is sent.
async fn cancel_latency(dir: &Path, iterations: usize) -> Vec<Duration> {
    let prefix = format!("bench.cancel.{}", std::process::id());
    let cache = dir.join("cache");
    let spin = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/loop.wat");
    let hex = prewarm(&prefix, &cache, spin);
    let worker = start_worker(&prefix, &cache);
    let c = connect().await;
    let ch = c.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let replies = format!("{prefix}.replies");
    quorum(&ch, &replies).await;
    let mut results = ch
        .basic_consume(
            replies.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let user = "guest";
    let mut took = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let id = format!("spin{i}");
        let job = format!(
            "{{\"id\":\"{id}\",\"module\":{{\"sha256\":\"{hex}\"}},\"limits\":{{\"timeout_ms\":60000}}}}"
        );
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_user_id(user.into())
            .with_reply_to(replies.as_str().into());
        ch.basic_publish(
            "".into(),
            format!("{prefix}.jobs").as_str().into(),
            BasicPublishOptions::default(),
            job.as_bytes(),
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let cancel = format!("{{\"cancel\":{{\"ids\":[\"{id}\"]}},\"sent_at_ms\":{sent_at_ms}}}");
        let t = Instant::now();
        ch.basic_publish(
            format!("{prefix}.control").as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            cancel.as_bytes(),
            BasicProperties::default().with_user_id(user.into()),
        )
        .await
        .unwrap();
        let d = results.next().await.unwrap().unwrap();
        took.push(t.elapsed());
        let r: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
        assert_eq!(r["id"], id.as_str());
        assert_eq!(r["status"], "cancelled", "{r}");
    }
    let _ = c.close(200, "done".into()).await;
    stop(worker);
    let queues = prefix_queues(&prefix);
    delete_queues(&queues).await;
    took.sort();
    took
}

fn report_fairness(label: &str, f: &Fairness) {
    println!(
        "{:<34} B's 100 results: p50 {:>7.0} ms, p99 {:>7.0} ms, last {:>7.0} ms after B's submit began; A's {} jobs in {:.1} s",
        format!("fair share{label}"),
        percentile(&f.b, 0.50).as_secs_f64() * 1e3,
        percentile(&f.b, 0.99).as_secs_f64() * 1e3,
        f.b.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        f.a_jobs,
        f.a_total.as_secs_f64()
    );
}

/// Every queue whose name starts with `prefix.` (the batch queues and the control log
/// among them).
fn prefix_queues(prefix: &str) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "name"])
        .output()
        .expect("rabbitmqctl list_queues");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| l.starts_with(&format!("{prefix}.")))
        .collect()
}

/// wasmq through the same flow: a worker running a job of `module` per message.
async fn wasmq_flow(n: usize, dir: &Path, module: &Path, tag: &str) -> (Flow, Flow) {
    let prefix = format!("bench.e2e{tag}.{}", std::process::id());
    let cache = dir.join("cache");
    let hex = prewarm(&prefix, &cache, &module.to_string_lossy());
    let worker = start_worker(&prefix, &cache);
    let procs = Processes {
        worker: worker.id().to_string(),
        client_children: false,
        broker: broker_pid(),
    };
    let results = format!("{prefix}.replies");
    {
        let c = connect().await;
        let ch = c.create_channel().await.unwrap();
        quorum(&ch, &results).await;
        let _ = c.close(200, "done".into()).await;
    }
    let jobs = format!("{prefix}.jobs");
    let job = move |i: usize| {
        format!("{{\"id\":\"n{i}\",\"module\":{{\"sha256\":\"{hex}\"}}}}").into_bytes()
    };
    let perf = profile(worker.id(), tag);
    let batch = drive(n, &jobs, &results, true, &procs, job.clone()).await;
    if let Some(perf) = perf {
        finish_profile(perf);
    }
    let single = drive(300, &jobs, &results, false, &procs, job).await;
    stop(worker);
    let mut queues = prefix_queues(&prefix);
    queues.push(results);
    delete_queues(&queues).await;
    (batch, single)
}

/// With `WASMQ_BENCH_PERF_DIR` set, records a `perf` profile of the worker (`pid`) into
/// `DIR/worker<tag>.perf.data` while the batch runs, with DWARF call graphs.
fn profile(pid: u32, tag: &str) -> Option<Child> {
    let dir = std::env::var_os("WASMQ_BENCH_PERF_DIR")?;
    let out = Path::new(&dir).join(format!("worker{tag}.perf.data"));
    let child = Command::new("perf")
        .args(["record", "-F", "999", "--call-graph", "dwarf,32768", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("WASMQ_BENCH_PERF_DIR is set: perf must be installed");
    // perf attaches to the process's threads before it records.
    std::thread::sleep(Duration::from_millis(500));
    println!("profiling the worker into {}", out.display());
    Some(child)
}

fn finish_profile(mut perf: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let _ = perf.wait();
}

/// A module whose `_start` writes 1 KiB of text (16 lines of 64 bytes) to stdout.
fn stdout_1k_module(dir: &Path) -> std::path::PathBuf {
    let line = "the quick brown fox jumps over the lazy dog, 0123456789 abcdefg\\n";
    let text = line.repeat(16);
    let wat = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\10\00\00\00\00\04\00\00")
  (data (i32.const 16) "{text}")
  (func (export "_start")
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    );
    let path = dir.join("stdout1k.wat");
    std::fs::write(&path, wat).unwrap();
    path
}

/// `wasmq submit FILE`, then `wasmq results --batch B --wait`: the batch id and what
/// `results` printed.
fn submit_and_wait(prefix: &str, cache: &Path, file: &Path) -> (String, Vec<u8>) {
    submit_and_wait_with(prefix, cache, file, &[])
}

/// As [`submit_and_wait`], with more flags for both commands.
fn submit_and_wait_with(
    prefix: &str,
    cache: &Path,
    file: &Path,
    flags: &[&str],
) -> (String, Vec<u8>) {
    let submit = wasmq(prefix, cache)
        .arg("submit")
        .args(flags)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        submit.status.success(),
        "{}",
        String::from_utf8_lossy(&submit.stderr)
    );
    let batch = String::from_utf8(submit.stdout).unwrap().trim().to_owned();
    let results = wasmq(prefix, cache)
        .args(["results", "--batch", &batch, "--wait", "--timeout", "600"])
        .args(flags)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    (batch, results.stdout)
}

/// Checks that every one of `n` jobs of a batch succeeded, removes the queues of
/// `prefix`, and returns how many jobs compiled their module.
fn compiles_in(results: &[u8], n: usize, what: &str, prefix: &str) -> usize {
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(results)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n, "every job of the {what} has a result");
    if let Some(bad) = lines.iter().find(|r| r["status"] != "succeeded") {
        panic!("a job of the {what} did not succeed: {bad}");
    }
    for q in prefix_queues(prefix) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", "-q", &q])
            .output();
    }
    lines.iter().filter(|r| r["cache"] == "compiled").count()
}

/// wasmq through its CLI: `wasmq submit` of the N jobs, then `wasmq results --batch B
/// --wait`, timed from the start of submit; a job's latency is from the start of submit to
/// its result line, read as `results` prints it. The client's CPU time is that of the two
/// processes.
fn cli_end_to_end(n: usize, dir: &Path, tenant: bool) -> Flow {
    let prefix = format!(
        "bench.cli{}.{}",
        if tenant { "t" } else { "" },
        std::process::id()
    );
    let cache = dir.join("cache");
    // As a tenant: a broker user with a policy on the worker, its own jobs queue and
    // private results.
    let user = tenant.then(|| bench_user("cli"));
    let url = user.as_ref().map_or_else(url, |(_, u)| u.clone());
    let cfg = dir.join("cli-tenant.toml");
    if let Some((name, _)) = &user {
        std::fs::write(&cfg, format!("[tenants.{name}]\n")).unwrap();
    }
    let noop = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/noop.wat");
    let jobs: String = (0..n)
        .map(|i| format!("{{\"id\":\"n{i}\",\"module\":{{\"path\":{noop:?}}}}}\n"))
        .collect();
    let file = dir.join("jobs.jsonl");
    std::fs::write(&file, jobs).unwrap();
    prewarm(&prefix, &cache, noop);
    let extra: Vec<&str> = match &user {
        Some(_) => vec!["--config", cfg.to_str().unwrap()],
        None => vec![],
    };
    let worker = start_worker_with(&prefix, &cache, &extra);
    let procs = Processes {
        worker: worker.id().to_string(),
        client_children: true,
        broker: broker_pid(),
    };
    let before = procs.sample();
    let start = Instant::now();
    let submit = wasmq(&prefix, &cache)
        .arg("submit")
        .args(["--amqp-url", &url])
        .arg(&file)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(submit.status.success());
    let batch = String::from_utf8(submit.stdout).unwrap().trim().to_owned();
    let mut results = wasmq(&prefix, &cache)
        .args(["results", "--batch", &batch, "--wait", "--timeout", "600"])
        .args(["--amqp-url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut latencies: Vec<Duration> = BufReader::new(results.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .map(|_| start.elapsed())
        .collect();
    assert!(results.wait().unwrap().success());
    let elapsed = start.elapsed();
    let cpu = procs.sample() - before;
    assert_eq!(latencies.len(), n, "every job has a result");
    stop(worker);
    for q in prefix_queues(&prefix) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", "-q", &q])
            .output();
    }
    if let Some((name, _)) = &user {
        drop_user(name);
    }
    latencies.sort();
    Flow {
        jobs_per_s: n as f64 / elapsed.as_secs_f64(),
        latencies,
        jobs: n,
        cpu,
    }
}

/// Appends a custom section named `wasmq-bench` holding `tag` to a module: the same code,
/// another digest, so nothing compiled before matches it.
fn with_custom_section(wasm: &[u8], tag: u32) -> Vec<u8> {
    let name = b"wasmq-bench";
    let payload_len = 1 + name.len() + 4;
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(payload_len as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&tag.to_le_bytes());
    out
}

/// 1,000 jobs over 10 modules nobody has compiled, through a fresh worker and cache:
/// (seconds from submit to the last result, jobs that compiled).
fn cold_batch(dir: &Path) -> (f64, usize) {
    let prefix = format!("bench.cold.{}", std::process::id());
    let cache = dir.join("cold-cache");
    let base = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/jobs/wasm/wordcount.wasm"
    ))
    .expect("jobs/build.sh builds the guests");
    let nonce = std::process::id();
    let modules: Vec<_> = (0..10)
        .map(|m| {
            let p = dir.join(format!("cold-{m}.wasm"));
            std::fs::write(&p, with_custom_section(&base, nonce.wrapping_mul(16) + m)).unwrap();
            p
        })
        .collect();
    let jobs: String = (0..1000)
        .map(|i| {
            format!(
                "{{\"id\":\"c{i}\",\"module\":{{\"path\":{:?}}},\"files\":{{\"input.txt\":\"a b c\"}}}}\n",
                modules[i % 10]
            )
        })
        .collect();
    let file = dir.join("cold.jsonl");
    std::fs::write(&file, jobs).unwrap();
    let worker = start_worker(&prefix, &cache);
    let start = Instant::now();
    let (_, results) = submit_and_wait(&prefix, &cache, &file);
    let elapsed = start.elapsed().as_secs_f64();
    stop(worker);
    let compiled = compiles_in(&results, 1000, "cold batch", &prefix);
    (elapsed, compiled)
}

#[path = "../tests/support/registry.rs"]
mod registry_server;

/// A cold fleet: three workers with empty caches of their own, 10 modules nobody has
/// compiled (the 1.5 MB `jsonx` guest with 10 different custom sections), 1,000 jobs, the
/// module store in a registry; with `shared`, an artifact store in the same registry.
/// Returns (seconds from the start of submit to the last result, compiles in the fleet).
fn cold_fleet(dir: &Path, shared: bool) -> (f64, usize) {
    let registry = registry_server::TestRegistry::start();
    let tag = if shared { "shared" } else { "alone" };
    let prefix = format!("bench.fleet.{tag}.{}", std::process::id());
    let base = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs/wasm/jsonx.wasm"))
        .expect("jobs/build.sh builds the guests");
    let nonce = std::process::id().wrapping_mul(64) + if shared { 32 } else { 0 };
    let modules: Vec<_> = (0..10)
        .map(|m| {
            let p = dir.join(format!("fleet-{tag}-{m}.wasm"));
            std::fs::write(&p, with_custom_section(&base, nonce + m)).unwrap();
            p
        })
        .collect();
    let jobs: String = (0..1000)
        .map(|i| {
            format!(
                "{{\"id\":\"f{i}\",\"module\":{{\"path\":{:?}}},\"stdin\":\"[]\"}}\n",
                modules[i % 10]
            )
        })
        .collect();
    let file = dir.join(format!("fleet-{tag}.jsonl"));
    std::fs::write(&file, jobs).unwrap();
    let mut flags = vec![
        "--module-store".to_owned(),
        registry.url("bench/modules"),
        "--insecure-registry".to_owned(),
        registry.addr.clone(),
        "--artifact-key-file".to_owned(),
        dir.join("fleet.key").display().to_string(),
    ];
    if shared {
        flags.extend([
            "--artifact-store".to_owned(),
            registry.url("bench/artifacts"),
        ]);
    }
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let workers: Vec<Child> = (0..3)
        .map(|w| {
            let cache = dir.join(format!("fleet-{tag}-cache-{w}"));
            start_worker_with(
                &prefix,
                &cache,
                &[&flag_refs[..], &["--prefetch", "4"]].concat(),
            )
        })
        .collect();
    let submit_cache = dir.join(format!("fleet-{tag}-submit"));
    let start = Instant::now();
    let (_, results) = submit_and_wait_with(&prefix, &submit_cache, &file, &flag_refs);
    let elapsed = start.elapsed().as_secs_f64();
    for w in workers {
        stop(w);
    }
    let compiled = compiles_in(&results, 1000, "cold fleet", &prefix);
    (elapsed, compiled)
}

/// Runs the cold fleet without and with the shared artifact store, in turn, and prints
/// both.
fn report_cold_fleet(dir: &Path) {
    let alone = cold_fleet(dir, false);
    std::thread::sleep(Duration::from_secs(1));
    let shared = cold_fleet(dir, true);
    for (label, (secs, compiled)) in [("without", alone), ("with", shared)] {
        println!(
            "cold fleet, 3 workers, 10 new modules, 1,000 jobs, {label} the shared artifact store: {compiled} compiles, last result at {secs:.2} s"
        );
    }
    println!(
        "cold fleet: the shared artifact store took {:.2}x the time to the last result",
        shared.0 / alone.0.max(1e-9)
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The worker's RSS (MiB) idle after a first job, at its peak while 2 jobs each touch
/// 64 MiB and sleep, and idle again after them.
fn memory(dir: &Path) -> (f64, f64, f64) {
    let prefix = format!("bench.mem.{}", std::process::id());
    let cache = dir.join("mem-cache");
    let module = dir.join("touch64.wat");
    // 64 MiB of memory, every byte written, then a 1.5 s sleep in poll_oneoff.
    std::fs::write(
        &module,
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1024)
  (func (export "_start")
    (memory.fill (i32.const 0) (i32.const 7) (i32.const 67108864))
    (i64.store (i32.const 0) (i64.const 1))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 1500000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#,
    )
    .unwrap();
    let noop = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/noop.wat");
    let job = |id: &str, m: &Path| format!("{{\"id\":\"{id}\",\"module\":{{\"path\":{m:?}}}}}\n");
    std::fs::write(dir.join("warm.jsonl"), job("w", Path::new(noop))).unwrap();
    std::fs::write(
        dir.join("touch.jsonl"),
        job("t1", &module) + &job("t2", &module),
    )
    .unwrap();
    let worker = start_worker(&prefix, &cache);
    let pid = worker.id();
    let run_batch = |file: &str| {
        let submit = wasmq(&prefix, &cache)
            .arg("submit")
            .arg(dir.join(file))
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let batch = String::from_utf8(submit.stdout).unwrap().trim().to_owned();
        wasmq(&prefix, &cache)
            .args(["results", "--batch", &batch, "--wait", "--timeout", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    assert!(run_batch("warm.jsonl").wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid);
    let mut results = run_batch("touch.jsonl");
    let mut peak = 0;
    while results.try_wait().unwrap().is_none() {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    stop(worker);
    for q in prefix_queues(&prefix) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", "-q", &q])
            .output();
    }
    let mib = |k: u64| k as f64 / 1024.0;
    (mib(idle), mib(peak), mib(after))
}

fn report(name: &str, f: &Flow, raw: &Flow) {
    println!(
        "{name:<34} {:>8.0} jobs/s ({:.2} of raw)   latency p50 {:>8.2?} p99 {:>8.2?}",
        f.jobs_per_s,
        f.jobs_per_s / raw.jobs_per_s,
        percentile(&f.latencies, 0.5),
        percentile(&f.latencies, 0.99)
    );
}

/// CPU-seconds per 10,000 jobs of each process, and per job in all.
fn report_cpu(name: &str, f: &Flow, worker: &str, client: &str) {
    let per10k = |d: Duration| d.as_secs_f64() * 10_000.0 / f.jobs as f64;
    let per_job_us = |d: Duration| d.as_secs_f64() * 1e6 / f.jobs as f64;
    println!(
        "{name:<34} CPU-s per 10,000 jobs: {worker} {:.2}, {client} {:.2}, broker {:.2}, total {:.2}   per job: {worker} {:.0} us, total {:.0} us",
        per10k(f.cpu.worker),
        per10k(f.cpu.client),
        per10k(f.cpu.broker),
        per10k(f.cpu.total()),
        per_job_us(f.cpu.worker),
        per_job_us(f.cpu.total()),
    );
}

fn main() {
    if let Ok(jobs) = std::env::var("WASMQ_BENCH_RAW_WORKER") {
        raw_worker_main(jobs);
        return;
    }
    // `cargo bench` passes flags such as `--bench`; this benchmark has none of its own.
    let n: usize = std::env::var("WASMQ_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let broker = Command::new("rabbitmqctl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "machine: {cores} cores, Linux {}, RabbitMQ {broker}, wasmtime 48.0.8, lapin 4.12.3",
        kernel.trim()
    );
    println!("jobs: {n}; one worker of concurrency 2 (prefetch 66), all on this machine");
    if broker_pid().is_none() {
        println!("(rabbitmqctl does not report the broker's pid: its CPU time reads 0)");
    }
    let repeat: usize = std::env::var("WASMQ_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let this = env!("CARGO_BIN_EXE_wasmq").to_owned();
    let baseline = std::env::var("WASMQ_BENCH_BASELINE").ok();
    let mut binaries = vec![("", this.clone())];
    if let Some(b) = &baseline {
        println!("baseline: {b} (its rows say `baseline`), run alternately with this build");
        binaries.push((" (baseline)", b.clone()));
    }
    println!("each batch flow runs {repeat} times (WASMQ_BENCH_REPEAT): medians");
    let dir = tempfile::tempdir().unwrap();
    let only = std::env::var("WASMQ_BENCH_ONLY").unwrap_or_default();
    if only == "fleet" {
        use_binary(&this);
        report_cold_fleet(dir.path());
        return;
    }
    let fair_only = only == "fair";
    let mut fair = Vec::new();
    for (label, bin) in &binaries {
        use_binary(bin);
        let tag = if label.is_empty() { "" } else { "base" };
        fair.push((label.to_owned(), fair_share(dir.path(), tag)));
        std::thread::sleep(Duration::from_secs(1));
    }
    use_binary(&this);
    for (label, f) in &fair {
        report_fairness(label, f);
    }
    let stops = rt.block_on(cancel_latency(dir.path(), 30));
    println!(
        "{:<34} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (30 running jobs, each cancelled through the control exchange)",
        "cancel to result",
        percentile(&stops, 0.50).as_secs_f64() * 1e3,
        percentile(&stops, 0.99).as_secs_f64() * 1e3,
        stops.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if fair_only {
        return;
    }
    let stdout_1k = stdout_1k_module(dir.path());
    let noop = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/noop.wat"
    ));
    // The Rust hello-world guest (`jobs/guests/hello`): a WASI command of a real
    // toolchain, whose start-up (wasi-libc, args, env, stdin) the no-op job skips.
    let hello = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs/wasm/hello.wasm"));
    // The broker settles (quorum queues deleted, logs compacted) between flows.
    let settle = || std::thread::sleep(Duration::from_secs(1));
    let mut rows: std::collections::BTreeMap<String, Vec<Flow>> = Default::default();
    let mut add = |name: String, f: Flow| rows.entry(name).or_default().push(f);
    let (mut raw_single, mut wq_single) = (None, None);
    for round in 0..repeat {
        let (raw, single) = rt.block_on(raw_ceiling(n, 66, 200, "", &REPLY_TO));
        add("raw".into(), raw);
        raw_single.get_or_insert(single);
        settle();
        // A raw result as long as the 1 KiB job's result (its stdout, JSON-escaped, plus
        // the rest of a result).
        let (raw_1k, _) = rt.block_on(raw_ceiling(n, 66, 1_700, "1k", &REPLY_TO));
        add("raw 1k".into(), raw_1k);
        settle();
        for (c, choice) in CHOICES.iter().enumerate() {
            let (f, _) = rt.block_on(raw_ceiling(n, 66, 200, &format!("c{c}"), choice));
            add(format!("choice {c}"), f);
            settle();
        }
        for (label, bin) in &binaries {
            use_binary(bin);
            let (wq, single) = rt.block_on(wasmq_flow(n, dir.path(), noop, ""));
            add(format!("noop{label}"), wq);
            if label.is_empty() && round == 0 {
                wq_single = Some(single);
            }
            settle();
            let (f, _) = rt.block_on(wasmq_flow(n, dir.path(), hello, "hello"));
            add(format!("hello{label}"), f);
            settle();
            let (f, _) = rt.block_on(wasmq_flow(n, dir.path(), &stdout_1k, "1k"));
            add(format!("1k{label}"), f);
            settle();
            add(format!("cli{label}"), cli_end_to_end(n, dir.path(), false));
            settle();
            add(
                format!("tenant cli{label}"),
                cli_end_to_end(n, dir.path(), true),
            );
            settle();
        }
    }
    use_binary(&this);
    let mut rows: std::collections::BTreeMap<String, Flow> =
        rows.into_iter().map(|(k, v)| (k, median(v))).collect();
    println!("the broker's cost of each choice, 200-byte results through the raw consumer:");
    let per10k = |f: &Flow| f.cpu.broker.as_secs_f64() * 10_000.0 / f.jobs as f64;
    let today = per10k(&rows["raw"]);
    println!(
        "  {:<46} broker {today:.2} CPU-s per 10,000 jobs, {:>6.0} jobs/s",
        REPLY_TO.name, rows["raw"].jobs_per_s
    );
    for (c, choice) in CHOICES.iter().enumerate() {
        let f = rows.remove(&format!("choice {c}")).unwrap();
        println!(
            "  {:<46} broker {:.2} CPU-s per 10,000 jobs ({:.2}x), {:>6.0} jobs/s",
            choice.name,
            per10k(&f),
            per10k(&f) / today.max(1e-9),
            f.jobs_per_s
        );
    }
    let raw = rows.remove("raw").unwrap();
    let raw_1k = rows.remove("raw 1k").unwrap();
    let (raw_single, wq_single) = (raw_single.unwrap(), wq_single.unwrap());
    report("raw broker ceiling (no wasm)", &raw, &raw);
    report("raw, one job at a time", &raw_single, &raw_single);
    report("wasmq, one job at a time", &wq_single, &raw_single);
    report("raw, 1.7 KB results", &raw_1k, &raw);
    for (label, _) in &binaries {
        let row = |k: &str| &rows[&format!("{k}{label}")];
        report(&format!("wasmq worker{label}"), row("noop"), &raw);
        report(&format!("wasmq, hello guest{label}"), row("hello"), &raw);
        report(&format!("wasmq, 1 KiB stdout{label}"), row("1k"), &raw);
        println!(
            "{:<34} {:.2} of the raw ceiling with results of its size",
            format!("wasmq, 1 KiB stdout{label}"),
            row("1k").jobs_per_s / raw_1k.jobs_per_s
        );
        report(&format!("wasmq CLI{label}"), row("cli"), &raw);
        report(
            &format!("wasmq CLI, a tenant{label}"),
            row("tenant cli"),
            &raw,
        );
    }
    report_cpu("raw broker ceiling (no wasm)", &raw, "consumer", "client");
    report_cpu("raw, 1.7 KB results", &raw_1k, "consumer", "client");
    for (label, _) in &binaries {
        let row = |k: &str| &rows[&format!("{k}{label}")];
        report_cpu(
            &format!("wasmq worker{label}"),
            row("noop"),
            "worker",
            "client",
        );
        report_cpu(
            &format!("wasmq, hello guest{label}"),
            row("hello"),
            "worker",
            "client",
        );
        report_cpu(
            &format!("wasmq, 1 KiB stdout{label}"),
            row("1k"),
            "worker",
            "client",
        );
        report_cpu(
            &format!("wasmq CLI{label}"),
            row("cli"),
            "worker",
            "submit+results",
        );
        report_cpu(
            &format!("wasmq CLI, a tenant{label}"),
            row("tenant cli"),
            "worker",
            "submit+results",
        );
    }
    let (secs, compiled) = cold_batch(dir.path());
    println!(
        "cold batch, 1,000 jobs on 10 new modules: {secs:.2} s, {compiled} compiles (target 10)"
    );
    report_cold_fleet(dir.path());
    let (idle, peak, after) = memory(dir.path());
    println!(
        "worker RSS: idle {idle:.1} MiB, 2 x 64 MiB jobs in flight {peak:.1} MiB, after {after:.1} MiB"
    );
}
