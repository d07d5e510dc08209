//! The end-to-end load benchmark: wasmq through RabbitMQ against the broker's own ceiling,
//! measured in the same run on the same broker.
//!
//! 1. **Raw ceiling**: the same message flow with no wasm: publish N persistent 200-byte
//!    jobs with confirms (window 1,024) to a quorum queue; a consumer with the worker's
//!    prefetch publishes a 200-byte result with confirms to a quorum queue for each, then
//!    acks it; a reader consumes the N results.
//! 2. **wasmq**: `wasmq worker -j 2` (prewarmed), `wasmq submit` of N trivial jobs, then
//!    `wasmq results --batch B --wait`, timed from the start of submit.
//!
//! Run: `cargo bench --bench load` (`WASMQ_BENCH_JOBS`, default 10000; the broker from
//! `WASMQ_TEST_AMQP_URL` or 127.0.0.1:5672). It prints the machine, the versions and both
//! figures with their ratio.

use std::process::{Command, Stdio};
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

/// The broker's ceiling for wasmq's flow, without wasm: jobs per second.
async fn raw_ceiling(n: usize, prefetch: u16) -> f64 {
    let tag = format!("bench.raw.{}", std::process::id());
    let (jobs, results) = (format!("{tag}.jobs"), format!("{tag}.results"));
    let props = BasicProperties::default().with_delivery_mode(2);
    let payload = vec![b'x'; 200];
    let connect = || async {
        Connection::connect(&url(), ConnectionProperties::default())
            .await
            .expect("connect")
    };
    let (pc, wc, rc) = (connect().await, connect().await, connect().await);
    let setup = pc.create_channel().await.unwrap();
    quorum(&setup, &jobs).await;
    quorum(&setup, &results).await;

    // The worker: consume, publish a confirmed result, ack; each delivery in its own task.
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
    let (results_q, payload_w, props_w) = (results.clone(), payload.clone(), props.clone());
    let worker = tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let (p, q, body, props) = (
                wpub.clone(),
                results_q.clone(),
                payload_w.clone(),
                props_w.clone(),
            );
            tokio::spawn(async move {
                p.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .unwrap()
                .await
                .unwrap();
                d.ack(BasicAckOptions::default()).await.unwrap();
            });
        }
    });

    let rch = rc.create_channel().await.unwrap();
    rch.basic_qos(256, BasicQosOptions::default())
        .await
        .unwrap();
    let mut reader = rch
        .basic_consume(
            results.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let start = Instant::now();
    let pch = pc.create_channel().await.unwrap();
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let jobs_q = jobs.clone();
    let publisher = tokio::spawn(async move {
        let mut pending = std::collections::VecDeque::new();
        for _ in 0..n {
            if pending.len() >= 1024 {
                let c: lapin::PublisherConfirm = pending.pop_front().unwrap();
                c.await.unwrap();
            }
            let c = pch
                .basic_publish(
                    "".into(),
                    jobs_q.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
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
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    publisher.await.unwrap();
    worker.abort();
    for q in [&jobs, &results] {
        let _ = setup
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for c in [pc, wc, rc] {
        let _ = c.close(200, "done".into()).await;
    }
    rate
}

/// wasmq end to end: jobs per second from the start of submit to the last result read.
fn wasmq_end_to_end(n: usize) -> f64 {
    let bin = env!("CARGO_BIN_EXE_wasmq");
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("bench.e2e.{}", std::process::id());
    let noop = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/noop.wat");
    let jobs: String = (0..n)
        .map(|i| format!("{{\"id\":\"n{i}\",\"module\":{{\"path\":{noop:?}}}}}\n"))
        .collect();
    let file = dir.path().join("jobs.jsonl");
    std::fs::write(&file, jobs).unwrap();
    let wasmq = || {
        let mut c = Command::new(bin);
        c.env("WASMQ_AMQP_URL", url())
            .env("WASMQ_QUEUE_PREFIX", &prefix)
            .env("WASMQ_CACHE_DIR", dir.path().join("cache"))
            .env("WASMQ_LOG", "warn");
        c
    };
    assert!(
        wasmq()
            .args(["prewarm", noop])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let mut worker = wasmq()
        .args(["worker", "-j", "2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    let submit = wasmq()
        .arg("submit")
        .arg(&file)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(submit.status.success());
    let batch = String::from_utf8(submit.stdout).unwrap().trim().to_owned();
    let results = wasmq()
        .args(["results", "--batch", &batch, "--wait", "--timeout", "600"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let got = results.stdout.iter().filter(|b| **b == b'\n').count();
    assert_eq!(got, n, "every job has a result");
    let _ = worker.kill();
    let _ = worker.wait();
    for q in ["jobs", "jobs.dead", "results"]
        .iter()
        .map(|s| format!("{prefix}.{s}"))
        .chain([format!("{prefix}.batch.{batch}")])
    {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", "-q", &q])
            .output();
    }
    n as f64 / elapsed.as_secs_f64()
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
    let raw = rt.block_on(raw_ceiling(n, 66));
    println!("raw broker ceiling (no wasm):        {raw:>8.0} jobs/s");
    let e2e = wasmq_end_to_end(n);
    println!("wasmq submit -> worker -> results:   {e2e:>8.0} jobs/s");
    println!("ratio wasmq / raw ceiling:           {:>8.2}", e2e / raw);
}
