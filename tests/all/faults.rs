//! Faults, and an accounting check in the style of Jepsen's queue checker: a batch goes
//! through workers that are killed with SIGKILL and a broker that is restarted, and then
//! every submitted job must have exactly one result after de-duplication (none lost, none
//! unknown), with the duplicates and redeliveries counted and printed.
//!
//! Restarting the broker the other tests share would break them, so the accounting tests
//! start a private RabbitMQ node of their own (its own node name, ports, data and logs in a
//! temporary directory), restart that one over the same data directory, and shut it down
//! when they end. The long variant is `#[ignore]`d; run it with
//! `cargo test --test all -- --ignored faults`.
//!
//! This file also holds the worker's consumer-timeout check and a SIGTERM drain with two
//! jobs in flight (on the shared broker).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use wasmq_spec::{JobResult, Status};

use crate::fleet::{Fleet, WorkerProc, http_get, sample, wait_until};
use crate::support::{Dir, job, with};

/// A guest that echoes its stdin (the job's id, in these tests) to stdout and then sleeps
/// `ms` in `poll_oneoff`: it takes wall-clock time but no CPU, and its result says which
/// job it ran for.
fn echo_nap_wat(dir: &Path, ms: u64) -> PathBuf {
    let path = dir.join(format!("echo-nap-{ms}.wat"));
    let ns = ms * 1_000_000;
    std::fs::write(
        &path,
        format!(
            r#";; Echoes stdin to stdout, then sleeps {ms} ms.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; one iovec at 0: buffer 1024, length 1024; bytes read at 8
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 1024))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; a relative monotonic clock subscription at 64; the event goes to 128
    (i64.store (i32.const 64) (i64.const 1))
    (i32.store8 (i32.const 72) (i32.const 0))
    (i32.store (i32.const 80) (i32.const 1))
    (i64.store (i32.const 88) (i64.const {ns}))
    (i64.store (i32.const 96) (i64.const 0))
    (i32.store16 (i32.const 104) (i32.const 0))
    (drop (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 256)))))
"#
        ),
    )
    .unwrap();
    path
}

/// `n` jobs `<prefix><i>` running `wat`, each with its own id as stdin.
fn echo_jobs(n: usize, prefix: &str, wat: &Path) -> (Vec<Value>, Vec<String>) {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let jobs = ids
        .iter()
        .map(|id| with(job(id, wat), json!({ "stdin": id })))
        .collect();
    (jobs, ids)
}

/// Runs `cmd` to its end, killing it after `timeout`.
fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// A private RabbitMQ node
// ---------------------------------------------------------------------------------------

/// The directory with the real `rabbitmq-server` and `rabbitmqctl` scripts; fails the test,
/// saying what to install, when there is none.
///
/// Debian's `/usr/sbin/rabbitmq-server` is a wrapper that switches to the `rabbitmq` user
/// and its home directory, which would drop the environment that points the node at our
/// directory, so the scripts it wraps (`/usr/lib/rabbitmq/bin`) are used instead.
fn rabbitmq_sbin() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMQ_TEST_RABBITMQ_SBIN") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("rabbitmq-server").is_file() && dir.join("rabbitmqctl").is_file(),
            "WASMQ_TEST_RABBITMQ_SBIN={} holds no rabbitmq-server and rabbitmqctl scripts",
            dir.display()
        );
        return dir;
    }
    let mut candidates = vec![PathBuf::from("/usr/lib/rabbitmq/bin")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.extend(["/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"].map(PathBuf::from));
    for dir in candidates {
        let server = dir.join("rabbitmq-server");
        if !server.is_file() || !dir.join("rabbitmqctl").is_file() {
            continue;
        }
        let real = std::fs::canonicalize(&server).unwrap_or(server);
        if real.file_name() == Some("rabbitmq-script-wrapper".as_ref()) {
            continue;
        }
        return dir;
    }
    panic!(
        "the fault tests start a private RabbitMQ node of their own, and no rabbitmq-server was found \
         (looked in /usr/lib/rabbitmq/bin, PATH, /usr/sbin, /usr/local/sbin): install RabbitMQ \
         (on Debian: apt-get install rabbitmq-server, which deploy/local-broker.sh does), or set \
         WASMQ_TEST_RABBITMQ_SBIN to the directory holding the rabbitmq-server and rabbitmqctl scripts"
    );
}

/// `n` consecutive free TCP ports on 127.0.0.1, below the ephemeral range.
fn free_ports(n: u16) -> u16 {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().wrapping_mul(7919);
    for attempt in 0..2000u32 {
        let base = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(104_729)) % 10_000) as u16;
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("found no {n} consecutive free ports between 20000 and 30000");
}

static NODES: AtomicU32 = AtomicU32::new(0);

/// A RabbitMQ node of this test alone: its own node name, AMQP port, distribution ports,
/// Erlang cookie, config (no plugins), data and logs, all in a temporary directory. It is
/// stopped (and its directory removed, unless the test failed) when dropped.
struct PrivateBroker {
    dir: Option<tempfile::TempDir>,
    sbin: PathBuf,
    node: String,
    port: u16,
    /// The node's Erlang distribution port, then the range its CLI tools use.
    dist_ports: (u16, u16, u16),
    child: Option<Child>,
    starts: u32,
}

impl PrivateBroker {
    fn start_new() -> PrivateBroker {
        Self::start_with_cookie(None)
    }

    /// A private node; with `cookie`, its Erlang cookie (nodes of one cluster share it).
    fn start_with_cookie(cookie: Option<&str>) -> PrivateBroker {
        let sbin = rabbitmq_sbin();
        let dir = tempfile::Builder::new()
            .prefix("wasmq-faults-rabbitmq")
            .tempdir()
            .unwrap();
        let base = free_ports(13);
        let n = NODES.fetch_add(1, Ordering::Relaxed);
        let mut b = PrivateBroker {
            dir: Some(dir),
            sbin,
            node: format!("wasmq-faults-{}-{n}@localhost", std::process::id()),
            port: base,
            dist_ports: (base + 1, base + 2, base + 12),
            child: None,
            starts: 0,
        };
        let d = b.path().to_owned();
        std::fs::create_dir_all(d.join("home")).unwrap();
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\ncollect_statistics_interval = 1000\n",
                b.port
            ),
        )
        .unwrap();
        std::fs::write(d.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(d.join("rabbitmq-env.conf"), "").unwrap();
        if let Some(cookie) = cookie {
            use std::os::unix::fs::PermissionsExt;
            let path = d.join("home").join(".erlang.cookie");
            std::fs::write(&path, cookie).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        b.start();
        b
    }

    /// Joins this (running) node to the cluster of `first`.
    fn join(&self, first: &PrivateBroker) {
        for args in [
            vec!["stop_app"],
            vec!["join_cluster", first.node.as_str()],
            vec!["start_app"],
            vec!["await_startup", "--timeout", "120"],
        ] {
            let out = self.ctl(&args);
            assert!(
                out.status.success(),
                "rabbitmqctl {args:?} on {}: {}{}",
                self.node,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until dropped").path()
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The environment of the node and of its CLI tools; nothing of the machine's RabbitMQ
    /// (config, env file, cookie, ports) leaks in.
    fn command(&self, script: &str) -> Command {
        let d = self.path();
        let mut c = Command::new(self.sbin.join(script));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("RABBITMQ_") || k.starts_with("ERL_") {
                c.env_remove(k.as_ref());
            }
        }
        let (dist, ctl_min, ctl_max) = self.dist_ports;
        c.current_dir(d)
            .env("HOME", d.join("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_CTL_DIST_PORT_MIN", ctl_min.to_string())
            .env("RABBITMQ_CTL_DIST_PORT_MAX", ctl_max.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d.join("plugins-expanded"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdin(Stdio::null());
        c
    }

    /// `rabbitmqctl -n NODE ARGS...`.
    fn ctl(&self, args: &[&str]) -> Output {
        output_within(
            self.command("rabbitmqctl")
                .arg("-n")
                .arg(&self.node)
                .args(args),
            Duration::from_secs(120),
        )
    }

    /// The end of the node's console output, for failure messages.
    fn console_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.path().join(format!("console-{}.log", self.starts)))
                .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts the node over its data directory and waits until it has booted.
    fn start(&mut self) {
        assert!(self.child.is_none(), "the private node is already running");
        self.starts += 1;
        let console = File::create(self.path().join(format!("console-{}.log", self.starts)))
            .expect("console log");
        let mut child = self
            .command("rabbitmq-server")
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("start rabbitmq-server");
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the private RabbitMQ node {} exited while starting ({status}); data and logs in {}:\n{}",
                    self.node,
                    self.path().display(),
                    self.console_tail()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!(
                    "the private RabbitMQ node {} did not listen on {addr} within 120 s:\n{}",
                    self.node,
                    self.console_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = Some(child);
        let out = self.ctl(&["await_startup", "--timeout", "120"]);
        assert!(
            out.status.success(),
            "rabbitmqctl await_startup failed for {}: {}{}",
            self.node,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits for the node's start script (our child) to exit.
    fn reap(&mut self, what: &str) {
        let mut child = self.child.take().expect("the private node is running");
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                self.kill_vm();
                let _ = child.kill();
                let _ = child.wait();
                panic!("the private node did not exit within 60 s of {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the node cleanly (`rabbitmqctl stop`), as an operator restarting it would.
    fn stop(&mut self) {
        let out = self.ctl(&["stop"]);
        assert!(
            out.status.success(),
            "rabbitmqctl stop failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.reap("rabbitmqctl stop");
    }

    /// Kills the node's Erlang VM with SIGKILL: a crash, with no chance to flush anything.
    fn crash(&mut self) {
        assert!(self.kill_vm(), "the private node's pid file was not found");
        self.reap("SIGKILL");
    }

    fn kill_vm(&self) -> bool {
        match std::fs::read_to_string(self.path().join("rabbitmq.pid")) {
            Ok(pid) if !pid.trim().is_empty() => Command::new("kill")
                .args(["-KILL", pid.trim()])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            _ => false,
        }
    }

    /// Runs `f` with a connection to the node.
    fn with_conn<T>(&self, f: impl AsyncFnOnce(&Connection) -> T) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let conn = Connection::connect(&self.url(), ConnectionProperties::default())
                .await
                .unwrap();
            let out = f(&conn).await;
            let _ = conn.close(200, "test done".into()).await;
            out
        })
    }

    /// Messages ready in `queue`, as its leader counts them (exact, unlike the statistics).
    fn ready(&self, queue: &str) -> u32 {
        self.with_conn(async |c| {
            let ch = c.create_channel().await.unwrap();
            ch.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
        })
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The data dies with the test: no need for a clean stop.
            self.kill_vm();
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take()
            && std::thread::panicking()
        {
            eprintln!(
                "the private RabbitMQ node's data and logs are kept in {}",
                dir.keep().display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Workers, submit and results on the private node
// ---------------------------------------------------------------------------------------

/// A queue prefix, a cache directory and worker processes on a private node.
struct Rig {
    workers: Vec<WorkerProc>,
    dir: Dir,
    prefix: String,
    broker: PrivateBroker,
}

impl Rig {
    fn new(name: &str) -> Rig {
        Rig {
            workers: Vec::new(),
            dir: Dir::new(),
            prefix: format!("faults.{name}"),
            broker: PrivateBroker::start_new(),
        }
    }

    fn wasmq(&self) -> Command {
        let mut c = self.dir.wasmq();
        c.env("WASMQ_AMQP_URL", self.broker.url())
            .env("WASMQ_QUEUE_PREFIX", &self.prefix);
        c
    }

    fn queue(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    /// Starts a worker and waits until it consumes; returns its index.
    fn start_worker(&mut self, concurrency: usize) -> usize {
        let id = format!("w{}", self.workers.len());
        let mut cmd = self.wasmq();
        cmd.args(["worker", "--worker-id", &id, "--concurrency"])
            .arg(concurrency.to_string());
        let w = WorkerProc::spawn(cmd, id, Duration::from_secs(60));
        self.workers.push(w);
        self.workers.len() - 1
    }

    /// `job done` lines over every worker this rig started (repeated runs count again).
    fn done(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.log.lock().unwrap().matches("job done").count())
            .sum()
    }

    fn log_len(&self, i: usize) -> usize {
        self.workers[i].log.lock().unwrap().len()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The accounting test
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL the live worker of this slot, then start a new one in its place.
    KillWorker(usize),
    /// `rabbitmqctl stop`, then start the node again over the same data.
    RestartBroker,
    /// SIGKILL the node's VM, then start it again over the same data.
    CrashBroker,
}

struct Plan {
    name: &'static str,
    jobs: usize,
    /// How long each job sleeps.
    job_ms: u64,
    concurrency: usize,
    /// Each fault strikes once this many `job done` lines have been logged.
    faults: Vec<(usize, Fault)>,
}

/// What the history says, after the run.
#[derive(Debug, Default)]
struct Accounting {
    submitted: usize,
    /// Result messages published for the batch, duplicates included.
    published: usize,
    unique: usize,
    duplicates: usize,
    /// Jobs whose result came from a second or later delivery.
    redelivered: usize,
    max_attempt: u32,
    lost: Vec<String>,
    unexpected: Vec<String>,
    /// Results that are not the job's own (stdout is not its id) or did not succeed.
    wrong: Vec<String>,
    /// Jobs with more than one result whose results disagree on the status.
    inconsistent: Vec<String>,
}

/// Checks a history: `ids` submitted, `raw` every result message published for them.
fn account(ids: &[String], raw: &[JobResult]) -> Accounting {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut by_id: BTreeMap<&str, Vec<&JobResult>> = BTreeMap::new();
    for r in raw {
        by_id.entry(r.id.as_str()).or_default().push(r);
    }
    let mut a = Accounting {
        submitted: ids.len(),
        published: raw.len(),
        unique: by_id.len(),
        ..Default::default()
    };
    for id in ids {
        if !by_id.contains_key(id.as_str()) {
            a.lost.push(id.clone());
        }
    }
    for (id, rs) in &by_id {
        if !want.contains(id) {
            a.unexpected.push((*id).to_owned());
            continue;
        }
        a.duplicates += rs.len() - 1;
        if rs.iter().any(|r| r.attempt > 1) {
            a.redelivered += 1;
        }
        a.max_attempt = a
            .max_attempt
            .max(rs.iter().map(|r| r.attempt).max().unwrap_or(0));
        if rs
            .iter()
            .any(|r| r.status != Status::Succeeded || r.stdout != *id)
        {
            a.wrong.push((*id).to_owned());
        }
        if rs.iter().any(|r| r.status != rs[0].status) {
            a.inconsistent.push((*id).to_owned());
        }
    }
    a
}

/// Submits a batch, strikes the faults of `plan` while it runs, reads every result and
/// checks the accounting; panics with the figures when anything is off.
fn accounting_under_faults(plan: Plan) {
    let run_started = Instant::now();
    let mut rig = Rig::new(plan.name);
    let boot = run_started.elapsed();
    let mut live = [
        rig.start_worker(plan.concurrency),
        rig.start_worker(plan.concurrency),
    ];

    // A raw copy of every result of the batch, duplicates included: a quorum queue of our
    // own bound like the batch's queue, read after the run. `wasmq results` reads the
    // batch queue as a user would.
    let batch = "acct";
    let (audit, exchange) = (rig.queue("audit"), rig.queue("results"));
    rig.broker.with_conn(async |c| {
        let ch = c.create_channel().await.unwrap();
        crate::fleet::declare_bound_quorum(
            &ch,
            &audit,
            &exchange,
            &format!("{batch}.#"),
            FieldTable::default(),
        )
        .await;
    });

    let wat = echo_nap_wat(rig.dir.path(), plan.job_ms);
    let (jobs, ids) = echo_jobs(plan.jobs, "j", &wat);
    let file = rig.dir.jobs_file("batch.jsonl", &jobs);
    let out = output_within(
        rig.wasmq().args(["submit", "--batch", batch]).arg(&file),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "submit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let submitted_at = Instant::now();

    let jobs_queue = rig.queue("jobs");
    let mut log = Vec::new();
    let (mut kills, mut restarts, mut crashes) = (0, 0, 0);
    let mut outage = Duration::ZERO;
    for &(at, fault) in &plan.faults {
        wait_until(
            &format!("{at} jobs done before {fault:?}"),
            Duration::from_secs(300),
            || rig.done() >= at,
        );
        // The fault must land mid-batch: jobs not yet delivered to anyone remain.
        let ready = rig.broker.ready(&jobs_queue);
        assert!(
            ready > 0,
            "{fault:?} at {at} jobs done would not land mid-batch (no job left in the queue): make the jobs longer"
        );
        let t = submitted_at.elapsed();
        match fault {
            Fault::KillWorker(slot) => {
                let w = &mut rig.workers[live[slot]];
                w.child.kill().unwrap(); // SIGKILL
                w.child.wait().unwrap();
                live[slot] = rig.start_worker(plan.concurrency);
                kills += 1;
            }
            Fault::RestartBroker | Fault::CrashBroker => {
                let marks = live.map(|i| rig.log_len(i));
                let down = Instant::now();
                if matches!(fault, Fault::RestartBroker) {
                    rig.broker.stop();
                    restarts += 1;
                } else {
                    rig.broker.crash();
                    crashes += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
                rig.broker.start();
                outage += down.elapsed();
                // The same worker processes carry on: each reconnects by itself.
                for (slot, &i) in live.iter().enumerate() {
                    let w = &mut rig.workers[i];
                    assert!(
                        w.child.try_wait().unwrap().is_none(),
                        "worker {} (slot {slot}) exited when the broker went away:\n{}",
                        w.id,
                        w.log.lock().unwrap()
                    );
                    let from = marks[slot];
                    wait_until(
                        &format!("worker {} to reconnect", w.id),
                        Duration::from_secs(60),
                        || w.log.lock().unwrap()[from..].contains("connected to the broker"),
                    );
                }
            }
        }
        log.push(format!(
            "{fault:?} at {:.1} s, {at}+ jobs done, {ready} jobs still queued",
            t.as_secs_f64()
        ));
    }

    let out = output_within(
        rig.wasmq()
            .args(["results", "--batch", batch, "--wait", "--timeout", "300"]),
        Duration::from_secs(330),
    );
    let read = crate::support::parse(out);
    let processing = submitted_at.elapsed();

    // Drain the live workers: whatever they still hold is finished, published and acked.
    for &i in &live {
        let w = &mut rig.workers[i];
        let st = Command::new("kill")
            .args(["-TERM", &w.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
    for &i in &live {
        let w = &mut rig.workers[i];
        let status = w.child.wait().unwrap();
        assert!(
            status.success(),
            "worker {} did not drain cleanly: {status:?}\n{}",
            w.id,
            w.log.lock().unwrap()
        );
    }

    let (left, dead) = (
        rig.broker.ready(&jobs_queue),
        rig.broker.ready(&rig.queue("jobs.dead")),
    );
    let raw: Vec<JobResult> = rig.broker.with_conn(async |c| {
        let ch = c.create_channel().await.unwrap();
        let mut raw = Vec::new();
        while let Some(m) = ch
            .basic_get(audit.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            raw.push(serde_json::from_slice(&m.delivery.data).unwrap());
        }
        raw
    });
    let a = account(&ids, &raw);
    let dropped_by_reader = read
        .stderr
        .split(" duplicate(s) dropped")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);

    let report = format!(
        "accounting ({name}): {jobs} jobs of {ms} ms, 2 workers x {c}; {kills} worker kill(s) (SIGKILL), \
         {restarts} broker restart(s), {crashes} broker crash(es) (outage {outage:.1} s in all)\n  \
         faults: {faults}\n  \
         history: {published} result messages, {unique} distinct jobs, {dups} duplicate(s), \
         {redelivered} job(s) redelivered (max attempt {max_attempt}), {lost} lost, {unexpected} unknown, \
         {wrong} wrong, {inconsistent} inconsistent\n  \
         wasmq results: {n} results (exit {code}), {dropped_by_reader} duplicate(s) dropped by the reader\n  \
         after the drain: {left} job(s) left in the queue, {dead} dead-lettered\n  \
         time: broker boot {boot:.1} s, batch {processing:.1} s, total {total:.1} s",
        name = plan.name,
        jobs = a.submitted,
        ms = plan.job_ms,
        c = plan.concurrency,
        outage = outage.as_secs_f64(),
        faults = log.join("; "),
        published = a.published,
        unique = a.unique,
        dups = a.duplicates,
        redelivered = a.redelivered,
        max_attempt = a.max_attempt,
        lost = a.lost.len(),
        unexpected = a.unexpected.len(),
        wrong = a.wrong.len(),
        inconsistent = a.inconsistent.len(),
        n = read.results.len(),
        code = read.code,
        boot = boot.as_secs_f64(),
        processing = processing.as_secs_f64(),
        total = run_started.elapsed().as_secs_f64(),
    );
    eprintln!("{report}");

    assert!(
        a.lost.is_empty(),
        "{report}\nlost jobs (no result at all), e.g. {:?}",
        &a.lost[..a.lost.len().min(10)]
    );
    assert!(
        a.unexpected.is_empty(),
        "{report}\nresults for jobs never submitted: {:?}",
        a.unexpected
    );
    assert!(
        a.wrong.is_empty(),
        "{report}\nresults that are not their job's (or did not succeed), e.g. {:?}",
        &a.wrong[..a.wrong.len().min(10)]
    );
    assert!(a.inconsistent.is_empty(), "{report}\n{:?}", a.inconsistent);
    assert_eq!(
        a.published,
        a.unique + a.duplicates,
        "{report}\nevery message is one job's result"
    );
    // The reader's view: one result per job, each the job's own, all succeeded.
    assert_eq!(read.code, 0, "{report}\n{}", read.stderr);
    let read_ids: Vec<&str> = read.results.iter().map(|r| r.id.as_str()).collect();
    let read_unique: HashSet<&str> = read_ids.iter().copied().collect();
    assert_eq!(
        read_ids.len(),
        read_unique.len(),
        "{report}\nwasmq results printed a job twice"
    );
    assert_eq!(
        read_unique,
        ids.iter().map(String::as_str).collect::<HashSet<_>>(),
        "{report}\nwasmq results printed exactly the submitted jobs"
    );
    assert!(
        read.results
            .iter()
            .all(|r| r.status == Status::Succeeded && r.stdout == r.id),
        "{report}"
    );
    assert!(
        dropped_by_reader <= a.duplicates,
        "{report}\nthe reader dropped more duplicates than were published"
    );
    // The faults hit jobs in flight: SIGKILL and the broker's restart hand back every
    // unacked delivery, and those are delivered again.
    assert!(
        a.redelivered > 0,
        "{report}\nno job was redelivered: the faults did not hit jobs in flight"
    );
    assert_eq!(left, 0, "{report}\njobs left in the queue after the drain");
    assert_eq!(dead, 0, "{report}\njobs dead-lettered");
}

/// The CI variant: 1,500 jobs on two workers; one worker is killed with SIGKILL (and
/// replaced) and the broker is restarted, both mid-batch.
#[test]
fn faults_a_killed_worker_and_a_restarted_broker_lose_no_job() {
    accounting_under_faults(Plan {
        name: "ci",
        jobs: 1500,
        job_ms: 60,
        concurrency: 4,
        faults: vec![(300, Fault::KillWorker(0)), (750, Fault::RestartBroker)],
    });
}

/// The long variant: 5,000 jobs on two workers; six SIGKILLs alternating between them, a
/// clean broker restart and a broker crash (SIGKILL of its VM), all mid-batch.
/// `cargo test --test all -- --ignored faults`
#[test]
#[ignore = "long (about 70 s): cargo test --test all -- --ignored faults"]
fn faults_repeated_kills_and_broker_restarts_lose_no_job_long() {
    accounting_under_faults(Plan {
        name: "long",
        jobs: 5000,
        job_ms: 40,
        concurrency: 4,
        faults: vec![
            (400, Fault::KillWorker(0)),
            (1000, Fault::KillWorker(1)),
            (1600, Fault::RestartBroker),
            (2200, Fault::KillWorker(0)),
            (2800, Fault::KillWorker(1)),
            (3400, Fault::CrashBroker),
            (4000, Fault::KillWorker(0)),
            (4500, Fault::KillWorker(1)),
        ],
    });
}

/// The checker itself flags what it must: a lost job, an unknown id, a result that is not
/// its job's, disagreeing duplicates; and counts duplicates and redeliveries.
#[test]
fn faults_checker_flags_lost_unknown_wrong_and_duplicate_results() {
    let result = |id: &str, attempt: u32, stdout: &str, status: Status| {
        let mut r = JobResult::new(id, Some("acct".into()));
        r.status = status;
        r.attempt = attempt;
        r.stdout = stdout.into();
        r
    };
    let ids: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let ok = Status::Succeeded;
    let clean = account(
        &ids,
        &[
            result("a", 1, "a", ok),
            result("b", 2, "b", ok),
            result("c", 1, "c", ok),
            result("d", 1, "d", ok),
            result("b", 3, "b", ok),
        ],
    );
    assert!(clean.lost.is_empty() && clean.unexpected.is_empty() && clean.wrong.is_empty());
    assert_eq!(
        (
            clean.unique,
            clean.duplicates,
            clean.redelivered,
            clean.max_attempt
        ),
        (4, 1, 1, 3)
    );
    let bad = account(
        &ids,
        &[
            result("a", 1, "b", ok),
            result("b", 1, "b", ok),
            result("b", 2, "b", Status::Failed),
            result("zz", 1, "zz", ok),
            result("c", 1, "c", Status::TimedOut),
        ],
    );
    assert_eq!(bad.lost, ["d"]);
    assert_eq!(bad.unexpected, ["zz"]);
    assert_eq!(bad.wrong, ["a", "b", "c"]);
    assert_eq!(bad.inconsistent, ["b"]);
}

// ---------------------------------------------------------------------------------------
// The consumer timeout
// ---------------------------------------------------------------------------------------

/// Runs `wasmq worker ARGS` against a port where nothing listens: the consumer-timeout
/// check comes before any connection, so a refusal needs no broker and exits 2 at once. A
/// worker that passes the check keeps trying to connect; once it logged its first retry it
/// is sent SIGTERM, and it exits 0 without a broker.
fn worker_without_broker(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let port = free_ports(1);
    let mut c = dir.wasmq();
    c.env_remove("WASMQ_CONSUMER_TIMEOUT_MS")
        .env(
            "WASMQ_AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        )
        .env("WASMQ_QUEUE_PREFIX", "faults.ct")
        .arg("worker")
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut w = WorkerProc::spawn_unready(c, "ct".into());
    let start = Instant::now();
    loop {
        if let Some(st) = w.child.try_wait().unwrap() {
            let log = w.log.lock().unwrap().clone();
            return (st.code().unwrap_or(-1), log);
        }
        if w.log
            .lock()
            .unwrap()
            .contains("broker unreachable; retrying")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the worker neither exited nor retried"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    w.kill_with("TERM");
    let st = wait_exit(&mut w.child, Duration::from_secs(20));
    // The reader thread may still hold the last lines.
    std::thread::sleep(Duration::from_millis(100));
    let log = w.log.lock().unwrap().clone();
    (st.code().unwrap_or(-1), log)
}

/// Waits for `child` to exit, failing the test after `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("the process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn faults_worker_refuses_a_job_timeout_the_consumer_timeout_would_cut_short() {
    let dir = Dir::new();
    let refused = |code: i32, stderr: &str, max: &str, consumer: &str| {
        assert_eq!(code, 2, "a refused setting exits 2: {stderr}");
        assert!(
            stderr.contains(&format!("limits.maximum.timeout_ms = {max} ms"))
                && stderr.contains(&format!("consumer_timeout_ms = {consumer} ms"))
                && stderr.contains("--consumer-timeout-ms"),
            "the message names both values and how to fix it: {stderr}"
        );
        assert!(
            !stderr.contains("could not connect") && !stderr.contains("worker consuming"),
            "refused before connecting: {stderr}"
        );
    };
    let passed = |code: i32, stderr: &str| {
        assert!(
            !stderr.contains("consumer_timeout_ms ="),
            "the check passed: {stderr}"
        );
        assert!(
            stderr.contains("could not connect"),
            "and the worker went on to connect: {stderr}"
        );
        assert_eq!(code, 0, "and stopped on SIGTERM without a broker: {stderr}");
    };

    // The flag, against the built-in maximum (300 000 ms): 360 000 is needed.
    let (code, err) = worker_without_broker(&dir, &["--consumer-timeout-ms", "300000"], &[]);
    refused(code, &err, "300000", "300000");
    assert!(
        err.contains("at most 239999"),
        "the longest timeout that fits: {err}"
    );
    let (code, err) = worker_without_broker(&dir, &["--consumer-timeout-ms", "360000"], &[]);
    refused(code, &err, "300000", "360000");
    let (code, err) = worker_without_broker(&dir, &["--consumer-timeout-ms", "360001"], &[]);
    passed(code, &err);

    // The environment.
    let (code, err) = worker_without_broker(&dir, &[], &[("WASMQ_CONSUMER_TIMEOUT_MS", "5000")]);
    refused(code, &err, "300000", "5000");

    // The config file: a maximum of 30 minutes against RabbitMQ's default of 30 minutes.
    let long = dir.path().join("long.toml");
    std::fs::write(&long, "[limits.maximum]\ntimeout_ms = 1800000\n").unwrap();
    let long = long.to_str().unwrap();
    let (code, err) = worker_without_broker(&dir, &["--config", long], &[]);
    refused(code, &err, "1800000", "1800000");
    // ... accepted when the broker's timeout is raised (the flag beats the file) or off.
    let (code, err) = worker_without_broker(
        &dir,
        &["--config", long, "--consumer-timeout-ms", "3600000"],
        &[],
    );
    passed(code, &err);
    let (code, err) = worker_without_broker(
        &dir,
        &["--config", long],
        &[("WASMQ_CONSUMER_TIMEOUT_MS", "0")],
    );
    passed(code, &err);
    let both = dir.path().join("both.toml");
    std::fs::write(
        &both,
        "consumer_timeout_ms = 600000\n[limits.maximum]\ntimeout_ms = 540000\n",
    )
    .unwrap();
    let (code, err) = worker_without_broker(&dir, &["--config", both.to_str().unwrap()], &[]);
    refused(code, &err, "540000", "600000");

    // The defaults pass; a deep prefetch on one slot is warned about, not refused.
    let (code, err) = worker_without_broker(&dir, &[], &[]);
    passed(code, &err);
    let (code, err) = worker_without_broker(&dir, &["--concurrency", "1", "--prefetch", "10"], &[]);
    passed(code, &err);
    assert!(
        err.contains("for long jobs set --prefetch to --concurrency"),
        "{err}"
    );
    let (code, err) = worker_without_broker(&dir, &["--concurrency", "1", "--prefetch", "1"], &[]);
    passed(code, &err);
    assert!(!err.contains("set --prefetch"), "{err}");
}

// ---------------------------------------------------------------------------------------
// SIGTERM with two jobs in flight (the shared broker)
// ---------------------------------------------------------------------------------------

/// `rabbitmqctl list_queues` (ready, unacknowledged) of one queue on the shared broker.
fn listed_counts(queue: &str) -> Option<(u64, u64)> {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "-q",
            "--formatter",
            "json",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ])
        .output()
        .expect("rabbitmqctl is needed to list queues");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
    let row = rows.iter().find(|r| r["name"] == queue)?;
    Some((
        row["messages_ready"].as_u64()?,
        row["messages_unacknowledged"].as_u64()?,
    ))
}

#[test]
fn faults_sigterm_with_two_jobs_in_flight_finishes_publishes_and_acks_both() {
    const JOB_MS: u64 = 4000;
    let mut f = Fleet::new("drain2");
    f.start_worker(2, &["--drain-timeout-secs", "60"]);
    let wat = echo_nap_wat(f.dir.path(), JOB_MS);
    let (jobs, ids) = echo_jobs(2, "inflight", &wat);
    // From the start of the submit: a job may start before `submit` has returned.
    let submitted = Instant::now();
    let batch = f.submit(&jobs);
    // The worker takes a sandbox slot before a message, so with two slots both jobs are
    // running as soon as the broker has handed both over.
    wait_until(
        "both jobs to reach the worker",
        Duration::from_secs(30),
        || f.ready("jobs") == 0,
    );
    std::thread::sleep(Duration::from_millis(300));
    f.signal(0, "TERM");
    let signalled = submitted.elapsed();
    // Each job sleeps JOB_MS and started after the submit: neither had finished yet.
    assert!(
        signalled < Duration::from_millis(JOB_MS - 500),
        "the signal came {signalled:?} after the submit, too late to find both jobs running"
    );
    let status = f.workers[0].child.wait().unwrap();
    let exited = submitted.elapsed();
    assert_eq!(status.code(), Some(0), "a drained worker exits 0");
    assert!(
        exited >= Duration::from_millis(JOB_MS),
        "the worker waited for its jobs: exited {exited:?} after the submit"
    );
    let log = f.workers[0].log.lock().unwrap().clone();
    assert!(log.contains("draining"), "{log}");
    assert!(
        log.contains("drained; every job taken was published and acked"),
        "{log}"
    );
    assert_eq!(log.matches("job done").count(), 2, "{log}");

    let r = f.results(&batch, 60);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.results.len(), 2, "{}", r.stderr);
    assert!(!r.stderr.contains("duplicate"), "{}", r.stderr);
    for id in &ids {
        let x = r.by_id(id);
        assert_eq!(x.status, Status::Succeeded, "{}", x.message);
        assert_eq!(&x.stdout, id, "the job's own result");
        assert_eq!(x.attempt, 1, "delivered once");
        assert_eq!(x.worker.as_deref(), Some(f.workers[0].id.as_str()));
        assert!(
            x.timings.run_us >= JOB_MS * 1000 - 50_000,
            "ran its full {JOB_MS} ms, not cut short: {:?}",
            x.timings
        );
    }
    // Acked: nothing went back to the queue when the worker's connection closed. The
    // broker's statistics lag (quorum queues emit them every few seconds), so wait until
    // they show the queue empty; a lost ack would keep a message ready for good.
    let jobs_queue = format!("{}.jobs", f.prefix);
    let mut last = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        last = listed_counts(&jobs_queue);
        if last == Some((0, 0)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        last,
        Some((0, 0)),
        "rabbitmqctl list_queues {jobs_queue}: (messages_ready, messages_unacknowledged)"
    );
    assert_eq!(f.ready("jobs"), 0);
    assert_eq!(f.ready("jobs.dead"), 0);
}

// ---------------------------------------------------------------------------------------
// A broker that is down: at start, at the drain, and under `results` and `submit`
// ---------------------------------------------------------------------------------------

fn submit_file(rig: &Rig, name: &str, jobs: &[Value], extra: &[&str]) -> Output {
    let file = rig.dir.jobs_file(name, jobs);
    output_within(
        rig.wasmq().arg("submit").args(extra).arg(&file),
        Duration::from_secs(300),
    )
}

#[test]
fn faults_a_worker_started_before_its_broker_waits_and_stops_within_the_drain_when_it_is_down() {
    let mut rig = Rig::new("late");
    rig.broker.stop();
    let mut cmd = rig.wasmq();
    cmd.args([
        "worker",
        "--worker-id",
        "late",
        "--concurrency",
        "2",
        "--metrics-addr",
        "127.0.0.1:0",
        "--drain-timeout-secs",
        "4",
    ]);
    rig.workers
        .push(WorkerProc::spawn_unready(cmd, "late".into()));
    let addr = rig.workers[0].metrics_addr(Duration::from_secs(20));
    rig.workers[0].wait_for_log("broker unreachable; retrying", Duration::from_secs(20));
    let (code, body) = http_get(&addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("not connected to the broker"), "{body}");
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    assert_eq!(
        sample(&http_get(&addr, "/metrics").1, "wasmq_broker_connected").as_deref(),
        Some("0")
    );
    assert!(
        rig.workers[0].child.try_wait().unwrap().is_none(),
        "still running"
    );

    // The broker comes up: the worker connects, consumes and runs jobs.
    rig.broker.start();
    rig.workers[0].wait_for_log("worker consuming", Duration::from_secs(60));
    wait_until("readiness", Duration::from_secs(10), || {
        http_get(&addr, "/readyz").0 == 200
    });
    let quick = echo_nap_wat(rig.dir.path(), 1);
    let (jobs, _) = echo_jobs(3, "q", &quick);
    let out = submit_file(&rig, "quick.jsonl", &jobs, &["--batch", "quick"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output_within(
        rig.wasmq()
            .args(["results", "--batch", "quick", "--wait", "--timeout", "60"]),
        Duration::from_secs(90),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A long job in flight, then the broker goes away, then SIGTERM: the result cannot be
    // published, so the worker exits at the drain timeout and leaves the job to the broker.
    let slow = echo_nap_wat(rig.dir.path(), 30_000);
    let (jobs, _) = echo_jobs(1, "slow", &slow);
    let jobs: Vec<Value> = jobs
        .into_iter()
        .map(|j| with(j, json!({"limits": {"timeout_ms": 60000}})))
        .collect();
    let out = submit_file(&rig, "slow.jsonl", &jobs, &["--batch", "slow"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the slow job to start", Duration::from_secs(30), || {
        sample(&http_get(&addr, "/metrics").1, "wasmq_jobs_in_flight").as_deref() == Some("1")
    });
    rig.broker.stop();
    wait_until("readiness to drop", Duration::from_secs(20), || {
        http_get(&addr, "/readyz").0 == 503
    });
    let stopped = Instant::now();
    rig.workers[0].kill_with("TERM");
    let st = wait_exit(&mut rig.workers[0].child, Duration::from_secs(30));
    let took = stopped.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let log = rig.workers[0].log.lock().unwrap().clone();
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(
        took < Duration::from_secs(4 + 3),
        "exited {took:?} after SIGTERM, with a drain timeout of 4 s:\n{log}"
    );
    assert!(
        log.contains("jobs still running at the drain timeout"),
        "{log}"
    );
    eprintln!(
        "SIGTERM with the broker down and a job in flight: exited after {took:?} (drain timeout 4 s)"
    );

    // With nothing in flight, the same stop is immediate.
    let mut cmd = rig.wasmq();
    cmd.args([
        "worker",
        "--worker-id",
        "idle",
        "--drain-timeout-secs",
        "30",
    ]);
    rig.workers
        .push(WorkerProc::spawn_unready(cmd, "idle".into()));
    rig.workers[1].wait_for_log("broker unreachable; retrying", Duration::from_secs(20));
    let stopped = Instant::now();
    rig.workers[1].kill_with("TERM");
    let st = wait_exit(&mut rig.workers[1].child, Duration::from_secs(30));
    assert_eq!(st.code(), Some(0));
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "an idle worker with no broker stops at once, not at its 30 s drain timeout: {:?}",
        stopped.elapsed()
    );
}

#[test]
fn faults_results_wait_and_submit_survive_a_broker_restart() {
    let mut rig = Rig::new("clients");
    rig.start_worker(2);

    // `results --wait` reading while the broker restarts.
    let wat = echo_nap_wat(rig.dir.path(), 200);
    let (jobs, ids) = echo_jobs(40, "r", &wat);
    let out = submit_file(&rig, "r.jsonl", &jobs, &["--batch", "rb"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = rig
        .wasmq()
        .args(["results", "--batch", "rb", "--wait", "--timeout", "240"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("some results", Duration::from_secs(60), || rig.done() >= 6);
    rig.broker.stop();
    rig.broker.start();
    let out = reader.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "results --wait across the restart: {err}"
    );
    let got: HashSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<JobResult>(l).unwrap().id)
        .collect();
    assert_eq!(got, ids.iter().cloned().collect::<HashSet<_>>(), "{err}");

    // `submit` publishing while the broker restarts: nothing unconfirmed is lost.
    for w in &mut rig.workers {
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    let n = 30_000;
    let noop = echo_nap_wat(rig.dir.path(), 0);
    let (jobs, ids) = echo_jobs(n, "s", &noop);
    let file = rig.dir.jobs_file("s.jsonl", &jobs);
    let submitter = rig
        .wasmq()
        .args(["submit", "--batch", "sb", "--window", "8"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let jobs_queue = rig.queue("jobs");
    wait_until(
        "publishing to be under way",
        Duration::from_secs(120),
        || rig.broker.ready(&jobs_queue) > 2000,
    );
    rig.broker.stop();
    rig.broker.start();
    let out = submitter.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "submit across the restart: {err}");
    assert!(err.contains(&format!("submitted {n} jobs")), "{err}");
    // Every job is in the queue at least once (some twice: republished, unconfirmed).
    let seen = rig.broker.with_conn(async |c| {
        let ch = c.create_channel().await.unwrap();
        let mut seen = HashSet::new();
        let mut total = 0u64;
        while let Some(m) = ch
            .basic_get(jobs_queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            total += 1;
            seen.insert(
                m.delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .unwrap()
                    .to_string(),
            );
        }
        (seen, total)
    });
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.0.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} jobs lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "submit across a broker restart: {n} jobs, {} messages queued ({} republished)",
        seen.1,
        seen.1 - n as u64
    );
}

// ---------------------------------------------------------------------------------------
// A cluster of three nodes
// ---------------------------------------------------------------------------------------

/// Worker processes, killed when dropped (a failed assertion included).
struct Workers(Vec<WorkerProc>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// The node that leads quorum queue `queue`, as `node` reports it.
fn leader_of(node: &PrivateBroker, queue: &str) -> String {
    let out = node.ctl(&["list_queues", "name", "leader", "--formatter", "json", "-q"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "list_queues: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    rows.iter()
        .find(|r| r["name"] == queue)
        .and_then(|r| r["leader"].as_str())
        .unwrap_or_else(|| panic!("no leader of {queue} in {rows:?}"))
        .to_owned()
}

#[test]
fn faults_a_cluster_loses_the_leader_of_the_jobs_queue_and_no_job() {
    let run_started = Instant::now();
    let cookie = format!("WASMQCLUSTER{}", std::process::id());
    let mut nodes: Vec<PrivateBroker> = (0..3)
        .map(|_| PrivateBroker::start_with_cookie(Some(&cookie)))
        .collect();
    for n in &nodes[1..] {
        n.join(&nodes[0]);
    }
    let boot = run_started.elapsed();
    // Every process is given every node; each worker tries them in another order.
    let urls: Vec<String> = nodes.iter().map(PrivateBroker::url).collect();
    let list = |first: usize| -> String {
        (0..3)
            .map(|i| urls[(first + i) % 3].clone())
            .collect::<Vec<_>>()
            .join(",")
    };
    let dir = Dir::new();
    let prefix = "faults.cluster";
    let wasmq = |first: usize| {
        let mut c = dir.wasmq();
        c.env("WASMQ_AMQP_URL", list(first))
            .env("WASMQ_QUEUE_PREFIX", prefix);
        c
    };
    let mut workers = Workers(
        (0..2)
            .map(|i| {
                let mut cmd = wasmq(i);
                cmd.args([
                    "worker",
                    "--worker-id",
                    &format!("w{i}"),
                    "--concurrency",
                    "4",
                ]);
                WorkerProc::spawn(cmd, format!("w{i}"), Duration::from_secs(60))
            })
            .collect(),
    );
    let jobs_queue = format!("{prefix}.jobs");
    let leader = leader_of(&nodes[0], &jobs_queue);
    let doomed = nodes
        .iter()
        .position(|n| n.node == leader)
        .unwrap_or_else(|| panic!("the leader {leader} is none of the three nodes"));

    let wat = echo_nap_wat(dir.path(), 10);
    let (jobs, ids) = echo_jobs(3_000, "c", &wat);
    let file = dir.jobs_file("batch.jsonl", &jobs);
    let out = output_within(
        wasmq(1).args(["submit", "--batch", "cl"]).arg(&file),
        Duration::from_secs(180),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = |workers: &[WorkerProc]| -> usize {
        workers
            .iter()
            .map(|w| w.log.lock().unwrap().matches("job done").count())
            .sum()
    };
    wait_until(
        "a third of the batch done",
        Duration::from_secs(120),
        || done(&workers.0) >= 1_000,
    );
    let at = done(&workers.0);
    nodes[doomed].crash();
    let killed_at = run_started.elapsed();
    let survivor = (doomed + 1) % 3;

    let read = output_within(
        wasmq(survivor).args(["results", "--batch", "cl", "--wait", "--timeout", "300"]),
        Duration::from_secs(330),
    );
    let r = crate::support::parse(read);
    let got: HashSet<&str> = r.results.iter().map(|x| x.id.as_str()).collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !got.contains(id.as_str())).collect();
    let report = format!(
        "cluster: 3 nodes (booted and joined in {boot:.1?}); 2 workers x 4; 3,000 jobs of 10 ms; \
         killed the jobs queue's leader {leader} (SIGKILL) at {killed_at:.1?}, after {at} jobs; \
         results: {} distinct of {} read, {} missing; new leader {}",
        got.len(),
        r.results.len(),
        missing.len(),
        leader_of(&nodes[survivor], &jobs_queue),
    );
    eprintln!("{report}");
    assert_eq!(r.code, 0, "{report}\n{}", r.stderr);
    assert!(
        missing.is_empty(),
        "{report}: lost, e.g. {:?}",
        &missing[..missing.len().min(10)]
    );
    assert_eq!(got.len(), 3_000, "{report}");
    assert!(
        r.results
            .iter()
            .all(|x| x.status == Status::Succeeded && x.stdout == x.id),
        "{report}: a result is wrong"
    );
    // Both workers carried on through the surviving nodes: a second batch, after the
    // loss, is shared between them. (A quorum queue keeps the dead node's consumers,
    // suspected down, until the node returns, so counting consumers would not say.)
    for w in &mut workers.0 {
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "worker {} exited",
            w.id
        );
    }
    let (more, _) = echo_jobs(200, "after", &wat);
    let file = dir.jobs_file("after.jsonl", &more);
    let out = output_within(
        wasmq(survivor)
            .args(["submit", "--batch", "after"])
            .arg(&file),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = output_within(
        wasmq(survivor).args(["results", "--batch", "after", "--wait", "--timeout", "120"]),
        Duration::from_secs(150),
    );
    let r = crate::support::parse(read);
    assert_eq!(r.results.len(), 200, "{report}\n{}", r.stderr);
    for w in ["w0", "w1"] {
        assert!(
            r.results.iter().any(|x| x.worker.as_deref() == Some(w)),
            "{report}: worker {w} ran none of the batch after the loss"
        );
    }
}

#[test]
fn faults_a_broker_that_blocks_publishers_is_seen_and_nothing_is_lost() {
    let mut rig = Rig::new("blocked");
    let id = "w0".to_owned();
    let mut cmd = rig.wasmq();
    cmd.args([
        "worker",
        "--worker-id",
        &id,
        "--concurrency",
        "2",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    rig.workers
        .push(WorkerProc::spawn(cmd, id, Duration::from_secs(60)));
    let addr = rig.workers[0].metrics_addr(Duration::from_secs(10));
    let wat = echo_nap_wat(rig.dir.path(), 100);
    // Enough work (about 10 s) that the worker still publishes when the alarm starts.
    let (jobs, mut ids) = echo_jobs(200, "a", &wat);
    let out = submit_file(&rig, "a.jsonl", &jobs, &["--batch", "blocked"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("some results", Duration::from_secs(60), || rig.done() >= 2);

    // A memory alarm: the broker blocks every connection that publishes.
    let alarm = rig
        .broker
        .ctl(&["set_vm_memory_high_watermark", "absolute", "10MB"]);
    assert!(
        alarm.status.success(),
        "{}",
        String::from_utf8_lossy(&alarm.stderr)
    );
    wait_until(
        "readiness to say the broker blocks publishes",
        Duration::from_secs(30),
        || {
            let (code, body) = http_get(&addr, "/readyz");
            code == 503 && body.contains("blocking")
        },
    );
    assert_eq!(
        sample(&http_get(&addr, "/metrics").1, "wasmq_broker_blocked").as_deref(),
        Some("1")
    );
    // A submit meanwhile waits, and says why.
    let (more, more_ids) = echo_jobs(5, "b", &wat);
    ids.extend(more_ids);
    let file = rig.dir.jobs_file("b.jsonl", &more);
    let submitter = rig
        .wasmq()
        .args(["submit", "--batch", "blocked-b"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    let lifted = rig.broker.ctl(&["set_vm_memory_high_watermark", "0.4"]);
    assert!(
        lifted.status.success(),
        "{}",
        String::from_utf8_lossy(&lifted.stderr)
    );
    let out = submitter.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("holding back publishes"),
        "submit says why it waits: {err}"
    );
    wait_until("ready again", Duration::from_secs(30), || {
        http_get(&addr, "/readyz").0 == 200
    });
    assert_eq!(
        sample(&http_get(&addr, "/metrics").1, "wasmq_broker_blocked").as_deref(),
        Some("0")
    );
    let mut got: HashSet<String> = HashSet::new();
    for batch in ["blocked", "blocked-b"] {
        let out = rig
            .wasmq()
            .args(["results", "--batch", batch, "--wait", "--timeout", "120"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        got.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<JobResult>(l).unwrap().id),
        );
    }
    assert_eq!(got, ids.iter().cloned().collect::<HashSet<_>>());
}
