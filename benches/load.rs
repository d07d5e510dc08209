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
//! 2. **The CLI**: `wasmq submit` of the N jobs then `wasmq results --batch B --wait`.
//! 3. **A cold batch**: 1,000 jobs on 10 modules nobody has compiled (a fresh worker and
//!    cache): total time and how many jobs compiled.
//! 4. **Memory**: the worker's RSS at idle and while 2 jobs each touch 64 MiB.
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
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
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
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
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

/// Publishes `n` jobs (`body(i)`) to `jobs` and reads `n` results from `results`: all at
/// once (window 1,024) when `batch`, else one at a time, each waiting for its result.
async fn drive(
    n: usize,
    jobs: &str,
    results: &str,
    batch: bool,
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
        for _ in 0..n {
            let d = reader.next().await.unwrap().unwrap();
            let i = index_of(&d.data);
            latencies[i] = sent[i].get().expect("sent before its result").elapsed();
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
                &body(i),
                props.clone(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
            let d = reader.next().await.unwrap().unwrap();
            assert_eq!(index_of(&d.data), i);
            *latency = t.elapsed();
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    let jobs_per_s = n as f64 / start.elapsed().as_secs_f64();
    for c in [pc, rc] {
        let _ = c.close(200, "done".into()).await;
    }
    latencies.sort();
    Flow {
        jobs_per_s,
        latencies,
    }
}

/// The raw consumer: for each job, publish a confirmed 200-byte result carrying its id to
/// the job's `reply_to`, then ack; each delivery in its own task, `prefetch` at once.
async fn raw_worker(jobs: String, prefetch: u16) -> (Connection, tokio::task::JoinHandle<()>) {
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
    let task = tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let p = wpub.clone();
            tokio::spawn(async move {
                let to = d.properties.reply_to().clone().expect("reply_to");
                // The result: as large as the job, carrying its id.
                let body = raw_job(index_of(&d.data));
                p.basic_publish(
                    "".into(),
                    to.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
                d.ack(BasicAckOptions::default()).await.unwrap();
            });
        }
    });
    (wc, task)
}

/// A 200-byte body with id `n<i>`: a raw job, and its result.
fn raw_job(i: usize) -> Vec<u8> {
    let mut body = format!("{{\"id\":\"n{i}\",\"pad\":\"");
    body.extend(std::iter::repeat_n('x', 200 - body.len() - 2));
    body.push_str("\"}");
    body.into_bytes()
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

/// The raw ceiling: the flow with no wasm, under the full batch and one job at a time.
async fn raw_ceiling(n: usize, prefetch: u16) -> (Flow, Flow) {
    let tag = format!("bench.raw.{}", std::process::id());
    let (jobs, results) = (format!("{tag}.jobs"), format!("{tag}.results"));
    {
        let c = connect().await;
        let ch = c.create_channel().await.unwrap();
        quorum(&ch, &jobs).await;
        quorum(&ch, &results).await;
        let _ = c.close(200, "done".into()).await;
    }
    let (wc, worker) = raw_worker(jobs.clone(), prefetch).await;
    let batch = drive(n, &jobs, &results, true, raw_job).await;
    let single = drive(300, &jobs, &results, false, raw_job).await;
    worker.abort();
    let _ = wc.close(200, "done".into()).await;
    delete_queues(&[jobs, results]).await;
    (batch, single)
}

/// `wasmq` with the bench's broker, queue prefix and cache.
fn wasmq(prefix: &str, cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmq"));
    c.env("WASMQ_AMQP_URL", url())
        .env("WASMQ_QUEUE_PREFIX", prefix)
        .env("WASMQ_CACHE_DIR", cache)
        .env("WASMQ_LOG", "warn")
        .env_remove("WASMQ_CONFIG");
    c
}

/// Starts `wasmq worker -j 2` and waits until it consumes.
fn start_worker(prefix: &str, cache: &Path) -> Child {
    let mut worker = wasmq(prefix, cache)
        .args(["worker", "-j", "2"])
        .env("WASMQ_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = worker.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
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

fn prefix_queues(prefix: &str) -> Vec<String> {
    ["jobs", "jobs.dead", "results"]
        .iter()
        .map(|s| format!("{prefix}.{s}"))
        .collect()
}

/// wasmq through the same flow: a worker running a trivial job per message.
async fn wasmq_flow(n: usize, dir: &Path) -> (Flow, Flow) {
    let prefix = format!("bench.e2e.{}", std::process::id());
    let cache = dir.join("cache");
    let noop = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/noop.wat");
    let hex = prewarm(&prefix, &cache, noop);
    let worker = start_worker(&prefix, &cache);
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
    let batch = drive(n, &jobs, &results, true, job.clone()).await;
    let single = drive(300, &jobs, &results, false, job).await;
    stop(worker);
    let mut queues = prefix_queues(&prefix);
    queues.push(results);
    delete_queues(&queues).await;
    (batch, single)
}

/// `wasmq submit FILE`, then `wasmq results --batch B --wait`: the batch id and what
/// `results` printed.
fn submit_and_wait(prefix: &str, cache: &Path, file: &Path) -> (String, Vec<u8>) {
    let submit = wasmq(prefix, cache)
        .arg("submit")
        .arg(file)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(submit.status.success());
    let batch = String::from_utf8(submit.stdout).unwrap().trim().to_owned();
    let results = wasmq(prefix, cache)
        .args(["results", "--batch", &batch, "--wait", "--timeout", "600"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    (batch, results.stdout)
}

/// wasmq through its CLI: jobs per second from the start of `submit` to the last result
/// `results --wait` read.
fn cli_end_to_end(n: usize, dir: &Path) -> f64 {
    let prefix = format!("bench.cli.{}", std::process::id());
    let cache = dir.join("cache");
    let noop = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/noop.wat");
    let jobs: String = (0..n)
        .map(|i| format!("{{\"id\":\"n{i}\",\"module\":{{\"path\":{noop:?}}}}}\n"))
        .collect();
    let file = dir.join("jobs.jsonl");
    std::fs::write(&file, jobs).unwrap();
    prewarm(&prefix, &cache, noop);
    let worker = start_worker(&prefix, &cache);
    let start = Instant::now();
    let (batch, results) = submit_and_wait(&prefix, &cache, &file);
    let elapsed = start.elapsed();
    let got = results.iter().filter(|b| **b == b'\n').count();
    assert_eq!(got, n, "every job has a result");
    stop(worker);
    let mut queues = prefix_queues(&prefix);
    queues.push(format!("{prefix}.batch.{batch}"));
    for q in queues {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", "-q", &q])
            .output();
    }
    n as f64 / elapsed.as_secs_f64()
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
    let (batch, results) = submit_and_wait(&prefix, &cache, &file);
    let elapsed = start.elapsed().as_secs_f64();
    stop(worker);
    let lines: Vec<serde_json::Value> = String::from_utf8(results)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1000, "every job has a result");
    if let Some(bad) = lines.iter().find(|r| r["status"] != "succeeded") {
        panic!("a cold-batch job did not succeed: {bad}");
    }
    let compiled = lines.iter().filter(|r| r["cache"] == "compiled").count();
    let mut queues = prefix_queues(&prefix);
    queues.push(format!("{prefix}.batch.{batch}"));
    for q in queues {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", "-q", &q])
            .output();
    }
    (elapsed, compiled)
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

fn main() {
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
    let dir = tempfile::tempdir().unwrap();
    let (raw, raw_single) = rt.block_on(raw_ceiling(n, 66));
    let (wq, wq_single) = rt.block_on(wasmq_flow(n, dir.path()));
    report("raw broker ceiling (no wasm)", &raw, &raw);
    report("wasmq worker", &wq, &raw);
    report("raw, one job at a time", &raw_single, &raw_single);
    report("wasmq, one job at a time", &wq_single, &raw_single);
    let cli = cli_end_to_end(n, dir.path());
    println!(
        "wasmq submit -> worker -> results: {cli:>8.0} jobs/s ({:.2} of raw)",
        cli / raw.jobs_per_s
    );
    let (secs, compiled) = cold_batch(dir.path());
    println!(
        "cold batch, 1,000 jobs on 10 new modules: {secs:.2} s, {compiled} compiles (target 10)"
    );
    let (idle, peak, after) = memory(dir.path());
    println!(
        "worker RSS: idle {idle:.1} MiB, 2 x 64 MiB jobs in flight {peak:.1} MiB, after {after:.1} MiB"
    );
}
