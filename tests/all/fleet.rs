//! A broker-backed test fleet: its own queue prefix on the real RabbitMQ, worker
//! processes, `submit` and `results`, and cleanup of everything it declared.

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;

use crate::support::{Dir, Run};

/// The broker the tests use: `WASMQ_TEST_AMQP_URL`, or the local default.
pub fn amqp_url() -> String {
    std::env::var("WASMQ_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Fails the test, loudly, when no broker answers.
pub fn require_broker() {
    let addr = ("127.0.0.1", 5672)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
        && std::env::var("WASMQ_TEST_AMQP_URL").is_err()
    {
        panic!(
            "these tests need RabbitMQ at {}, and none answers: run deploy/local-broker.sh (the README's test command does), or set WASMQ_TEST_AMQP_URL",
            amqp_url()
        );
    }
}

/// One worker process and what it logged.
pub struct WorkerProc {
    pub child: Child,
    pub id: String,
    pub log: Arc<Mutex<String>>,
}

impl WorkerProc {
    /// Spawns `wasmq worker` as `cmd` says (logging at info), collects its stderr, and
    /// waits up to `timeout` until it consumes.
    pub fn spawn(cmd: Command, id: String, timeout: Duration) -> WorkerProc {
        let w = WorkerProc::spawn_unready(cmd, id);
        w.wait_for_log("worker consuming", timeout);
        w
    }

    /// Spawns `wasmq worker` as [`WorkerProc::spawn`] does, without waiting for anything.
    pub fn spawn_unready(mut cmd: Command, id: String) -> WorkerProc {
        let mut child = cmd
            .env("WASMQ_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        WorkerProc { child, id, log }
    }

    /// The address the worker serves /metrics on (`--metrics-addr`), from its log.
    pub fn metrics_addr(&self, timeout: Duration) -> String {
        let needle = "serving /metrics";
        self.wait_for_log(needle, timeout);
        let log = self.log.lock().unwrap();
        let line = log.lines().find(|l| l.contains(needle)).unwrap();
        let at = line.find("addr=").expect("the log line names the address") + 5;
        line[at..].split_whitespace().next().unwrap().to_owned()
    }
}

/// Declares the durable quorum queue `queue` (with `args` besides its type), bound to
/// `exchange` with `key`.
pub async fn declare_bound_quorum(
    ch: &lapin::Channel,
    queue: &str,
    exchange: &str,
    key: &str,
    mut args: FieldTable,
) {
    use lapin::options::QueueBindOptions;
    use lapin::types::AMQPValue;
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

/// Polls `cond` every 25 ms until it holds; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The value of the sample `name` (with its labels, as exposed) in a `/metrics` scrape.
pub fn sample(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(str::to_owned)
}

/// `GET path` from `addr` over plain HTTP/1.1: (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

impl WorkerProc {
    /// Sends `sig` (e.g. "TERM") to the worker.
    pub fn kill_with(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.child.id());
    }

    /// Waits until the worker logged `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log.lock().unwrap().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "worker {} did not log {needle:?} within {timeout:?}:\n{}",
            self.id,
            self.log.lock().unwrap()
        );
    }
}

/// A prefix of our own on the broker, with its processes.
pub struct Fleet {
    pub dir: Dir,
    pub prefix: String,
    pub workers: Vec<WorkerProc>,
    /// Extra flags every command gets (e.g. a delivery limit).
    pub broker_flags: Vec<String>,
    /// A cache directory (and module store) other than the fleet's own, shared with
    /// other tests.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Fleet {
    pub fn new(name: &str) -> Fleet {
        require_broker();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Fleet {
            dir: Dir::new(),
            prefix: format!("test.{name}.{}.{nanos}", std::process::id()),
            workers: Vec::new(),
            broker_flags: Vec::new(),
            cache_dir: None,
        }
    }

    /// `wasmq` with this fleet's broker, prefix and cache.
    pub fn wasmq(&self) -> Command {
        let mut c = self.dir.wasmq();
        c.env("WASMQ_AMQP_URL", amqp_url())
            .env("WASMQ_QUEUE_PREFIX", &self.prefix);
        if let Some(dir) = &self.cache_dir {
            c.env("WASMQ_CACHE_DIR", dir);
        }
        c
    }

    /// Makes the module store entry of the fixture `wat` unreadable (a directory where
    /// its file would be), so that every attempt of a job naming it is a host fault:
    /// the job's module reference (`{"sha256": ...}`), the module's bytes, and the entry.
    pub fn poison(&self, wat: &str) -> (Value, Vec<u8>, std::path::PathBuf) {
        let bytes = wat::parse_file(crate::support::fixture(wat)).unwrap();
        let hex = wasmq_cache::Digest::of(&bytes).to_hex();
        let path = self
            .dir
            .cache_dir()
            .join("modules")
            .join(&hex[..2])
            .join(format!("{hex}.wasm"));
        std::fs::create_dir_all(&path).unwrap();
        (serde_json::json!({ "sha256": hex }), bytes, path)
    }

    /// Starts a worker and waits until it consumes.
    pub fn start_worker(&mut self, concurrency: usize, extra: &[&str]) -> usize {
        let id = format!("{}-w{}", self.prefix, self.workers.len());
        let mut cmd = self.wasmq();
        cmd.args([
            "worker",
            "--worker-id",
            &id,
            "--concurrency",
            &concurrency.to_string(),
        ])
        .args(&self.broker_flags)
        .args(extra);
        let w = WorkerProc::spawn(cmd, id, Duration::from_secs(30));
        self.workers.push(w);
        self.workers.len() - 1
    }

    /// Submits jobs as one batch; returns the batch id.
    pub fn submit(&self, jobs: &[Value]) -> String {
        let file = self.dir.jobs_file("submit.jsonl", jobs);
        let out = self
            .wasmq()
            .arg("submit")
            .args(&self.broker_flags)
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "submit failed: {err}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `wasmq results --batch B --wait --timeout S`.
    pub fn results(&self, batch: &str, timeout_s: u64) -> Run {
        let out = self
            .wasmq()
            .args([
                "results",
                "--batch",
                batch,
                "--wait",
                "--timeout",
                &timeout_s.to_string(),
            ])
            .args(&self.broker_flags)
            .output()
            .unwrap();
        crate::support::parse(out)
    }

    /// Runs `f` with a lapin connection to the broker.
    pub fn with_broker<T>(&self, f: impl AsyncFnOnce(&Connection) -> T) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
                .await
                .unwrap();
            let out = f(&conn).await;
            let _ = conn.close(200, "test done".into()).await;
            out
        })
    }

    /// Publishes a raw message to the jobs queue (for messages `submit` would refuse).
    pub fn publish_raw(&self, body: &[u8], props: BasicProperties) {
        let queue = format!("{}.jobs", self.prefix);
        self.with_broker(async |c| {
            let ch = c.create_channel().await.unwrap();
            ch.confirm_select(Default::default()).await.unwrap();
            ch.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        });
    }

    /// Messages ready in a queue of this prefix (`suffix` like `jobs.dead`).
    pub fn ready(&self, suffix: &str) -> u32 {
        let queue = format!("{}.{suffix}", self.prefix);
        self.with_broker(async |c| {
            let ch = c.create_channel().await.unwrap();
            let q = ch
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            q.message_count()
        })
    }

    /// Closes every broker connection of worker `i` (as `rabbitmqctl close_connection`).
    pub fn close_worker_connections(&self, i: usize) -> usize {
        let id = &self.workers[i].id;
        let out = Command::new("rabbitmqctl")
            .args(["list_connections", "-q", "pid", "client_properties"])
            .output()
            .expect("rabbitmqctl is needed to close a worker's connections");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut closed = 0;
        for line in text.lines().filter(|l| l.contains(id.as_str())) {
            let pid = line.split('\t').next().unwrap();
            let st = Command::new("rabbitmqctl")
                .args(["close_connection", pid, "closed by a wasmq test"])
                .output()
                .unwrap();
            assert!(
                st.status.success(),
                "{}",
                String::from_utf8_lossy(&st.stderr)
            );
            closed += 1;
        }
        closed
    }

    /// Sends a signal to worker `i`.
    pub fn signal(&self, i: usize, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.workers[i].child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
        let prefix = self.prefix.clone();
        // Best effort: remove what this prefix declared.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let out = Command::new("rabbitmqctl")
                .args(["list_queues", "-q", "name"])
                .output();
            let names: Vec<String> = out
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .map(|l| l.trim().to_owned())
                        .filter(|l| l.starts_with(&prefix))
                        .collect()
                })
                .unwrap_or_default();
            self.with_broker(async |c| {
                let ch = c.create_channel().await.unwrap();
                for n in &names {
                    let _ = ch
                        .queue_delete(n.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                for suffix in ["jobs.dlx", "results", "control"] {
                    let _ = ch
                        .exchange_delete(format!("{prefix}.{suffix}").into(), Default::default())
                        .await;
                }
            });
        }));
    }
}
