//! Micro benchmarks of the sandbox, each against a baseline measured in the same run:
//! the cost of one job with the module loaded (against wasmtime used directly, see
//! `support/reference.rs`), parallel scaling on 1 and 2 threads, finding a module in
//! memory, on disk or by compiling it, and what the default limits cost CPU-bound guests.
//!
//! Run with `cargo bench --bench sandbox` (build the guests first: `jobs/build.sh`). After
//! criterion's own output it prints the machine, the versions and a table of ratios.
//! See benches/README.md for the figures and what they mean.

#[path = "support/medians.rs"]
mod medians;
#[path = "support/reference.rs"]
mod reference;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use serde_json::json;
use wasmq_cache::Cache;
use wasmq_sandbox::{Sandbox, SandboxConfig};
use wasmq_spec::{CacheOutcome, Job, Status};

use medians::{fmt_time, median_ns};
use reference::{Knobs, Reference};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn module_bytes(rel: &str) -> Vec<u8> {
    let path = root().join(rel);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run jobs/build.sh)", path.display()));
    if rel.ends_with(".wat") {
        wat::parse_bytes(&bytes).unwrap().into_owned()
    } else {
        bytes
    }
}

struct Bench {
    rt: tokio::runtime::Runtime,
    sandbox: Sandbox,
    cache: Arc<Cache>,
    _dir: tempfile::TempDir,
}

fn setup() -> Bench {
    setup_with(1)
}

/// A sandbox of `threads` concurrency on a runtime of as many threads (a current-thread
/// runtime for one, as the per-job figures are meant to be).
fn setup_with(threads: usize) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(dir.path().join("cache"), None).unwrap());
    let config = SandboxConfig {
        max_concurrency: threads,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config, cache.clone()).unwrap();
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    Bench {
        rt,
        sandbox,
        cache,
        _dir: dir,
    }
}

/// A job for `rel`, stored in the module store and referred to by sha256.
fn job_for(b: &Bench, rel: &str, extra: serde_json::Value) -> Job {
    let digest = b.cache.put_module(&module_bytes(rel)).unwrap();
    let mut j = json!({"id": "bench", "module": {"sha256": digest.to_hex()}});
    for (k, v) in extra.as_object().unwrap() {
        j[k] = v.clone();
    }
    serde_json::from_value(j).unwrap()
}

fn per_job(c: &mut Criterion) {
    let b = setup();
    let mut g = c.benchmark_group("per_job");
    for (name, rel, extra) in [
        ("noop_wat", "tests/fixtures/noop.wat", json!({})),
        ("hello_rust", "jobs/wasm/hello.wasm", json!({})),
        (
            "hello_rust_kind_given",
            "jobs/wasm/hello.wasm",
            json!({"kind": "command"}),
        ),
        (
            "hello_rust_work_dir_root",
            "jobs/wasm/hello.wasm",
            json!({"work_dir": "/"}),
        ),
        // One preopen and the kind given: what every job did before work_dir and kind
        // detection, the baseline of the two rows above.
        (
            "hello_rust_one_preopen_kind_given",
            "jobs/wasm/hello.wasm",
            json!({"work_dir": "/", "kind": "command"}),
        ),
        (
            "hello_rust_fuel",
            "jobs/wasm/hello.wasm",
            json!({"limits": {"fuel": 1_000_000_000u64}}),
        ),
        (
            "hello_rust_component",
            "jobs/wasm/hello-p2.wasm",
            json!({"kind": "component"}),
        ),
        (
            "function_wat",
            "tests/fixtures/reverse.wat",
            json!({"kind": "function", "input": "abc"}),
        ),
        (
            "function_rust",
            "jobs/wasm/upper.wasm",
            json!({"kind": "function", "input": "abc"}),
        ),
        (
            "handler_rust",
            "jobs/wasm/handler.wasm",
            json!({"kind": "handler", "input": "abc"}),
        ),
        // A real interpreter (boa) running a tenant's script: the plugin use case.
        (
            "js_script",
            "jobs/wasm/jsrun.wasm",
            json!({
                "work_dir": "/",
                "args": ["script.js"],
                "files": {"script.js": "const w = {}; for (const x of 'a b a c b a'.split(' ')) w[x] = (w[x] || 0) + 1; console.log(JSON.stringify(w));"},
            }),
        ),
    ] {
        let job = job_for(&b, rel, extra);
        let first = b.rt.block_on(b.sandbox.run(&job));
        assert_eq!(first.status, Status::Succeeded, "{}", first.message);
        g.bench_function(name, |bench| {
            bench.iter(|| b.rt.block_on(b.sandbox.run(&job)));
        });
    }
    g.finish();
}

/// The same guests on wasmtime used directly, one knob at a time: the baseline of
/// `per_job`.
fn reference(c: &mut Criterion) {
    let mut g = c.benchmark_group("reference");
    let hello = module_bytes("jobs/wasm/hello.wasm");
    let noop = module_bytes("tests/fixtures/noop.wat");
    let on = |k: fn(&mut Knobs)| {
        let mut knobs = Knobs::TUNED;
        k(&mut knobs);
        knobs
    };
    for (name, wasm, knobs) in [
        ("noop_tuned", &noop, Knobs::TUNED),
        (
            "noop_tuned_epoch_limits_preopen",
            &noop,
            on(|k| {
                k.epoch = true;
                k.limits = true;
                k.preopen = true;
            }),
        ),
        (
            "hello_ondemand",
            &hello,
            Knobs {
                pooling: false,
                ..Knobs::TUNED
            },
        ),
        (
            "hello_pooling_default",
            &hello,
            on(|k| k.keep_resident = false),
        ),
        ("hello_tuned", &hello, Knobs::TUNED),
        ("hello_tuned_epoch", &hello, on(|k| k.epoch = true)),
        ("hello_tuned_limits", &hello, on(|k| k.limits = true)),
        ("hello_tuned_preopen", &hello, on(|k| k.preopen = true)),
        (
            "hello_tuned_epoch_limits_preopen",
            &hello,
            on(|k| {
                k.epoch = true;
                k.limits = true;
                k.preopen = true;
            }),
        ),
        (
            "hello_tuned_fuel_epoch_limits_preopen",
            &hello,
            on(|k| {
                k.fuel = true;
                k.epoch = true;
                k.limits = true;
                k.preopen = true;
            }),
        ),
    ] {
        let r = Reference::new(knobs, wasm, &[]);
        if name.starts_with("hello") {
            assert_eq!(r.run(), b"hello, world\n");
        }
        g.bench_function(name, |bench| bench.iter(|| r.run()));
    }
    g.finish();
}

/// Jobs per second on one thread and on two: the sandbox's parallel efficiency.
fn parallel(c: &mut Criterion) {
    let mut g = c.benchmark_group("parallel_hello");
    for threads in [1usize, 2] {
        let b = setup_with(threads);
        let job = Arc::new(job_for(&b, "jobs/wasm/hello.wasm", json!({})));
        let first = b.rt.block_on(b.sandbox.run(&job));
        assert_eq!(first.status, Status::Succeeded, "{}", first.message);
        // One iteration is one job; `threads` tasks share the iterations, so the time per
        // iteration is the inverse of the throughput.
        g.bench_function(format!("{threads}_threads"), |bench| {
            bench.iter_custom(|iters| {
                let per_task = iters.div_ceil(threads as u64);
                let start = Instant::now();
                b.rt.block_on(async {
                    let tasks: Vec<_> = (0..threads)
                        .map(|_| {
                            let (sandbox, job) = (b.sandbox.clone(), job.clone());
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    let r = sandbox.run(&job).await;
                                    debug_assert_eq!(r.status, Status::Succeeded);
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
                start.elapsed() * iters as u32 / (per_task * threads as u64) as u32
            });
        });
    }
    g.finish();
}

/// Finding a module: compiling it, loading its artifact from disk (verify the MAC, map,
/// link), or taking it from the hot set; for a small and a large module.
fn resolve(c: &mut Criterion) {
    for (group, rel) in [
        ("resolve_hello", "jobs/wasm/hello.wasm"),
        ("resolve_jsonx", "jobs/wasm/jsonx.wasm"),
    ] {
        let mut g = c.benchmark_group(group);
        g.sample_size(10);
        let bytes = module_bytes(rel);
        // Compile: a fresh cache every time.
        g.bench_function("compile", |bench| {
            bench.iter_with_setup(setup, |b| {
                let p = b.rt.block_on(b.sandbox.prewarm(bytes.clone())).unwrap();
                assert_eq!(p.outcome, CacheOutcome::Compiled);
                b
            });
        });
        let b = setup();
        let digest = b.cache.put_module(&bytes).unwrap();
        b.rt.block_on(b.sandbox.prewarm(bytes.clone())).unwrap();
        g.sample_size(50);
        // Disk hit: artifact on disk, hot set emptied before each load; as for a job that
        // names the module by sha256 (the module's bytes are not read).
        g.bench_function("disk_hit", |bench| {
            bench.iter(|| {
                b.sandbox.clear_hot_set();
                let p =
                    b.rt.block_on(b.sandbox.prewarm_stored(digest, false))
                        .unwrap();
                assert_eq!(p.outcome, CacheOutcome::HitDisk);
            });
        });
        g.bench_function("memory_hit", |bench| {
            bench.iter(|| {
                let p =
                    b.rt.block_on(b.sandbox.prewarm_stored(digest, false))
                        .unwrap();
                assert_eq!(p.outcome, CacheOutcome::HitMemory);
            });
        });
        g.finish();
    }
}

/// CPU-bound guests under wasmq's default limits (epoch deadline, memory limiter, no
/// fuel) against the same guest on wasmtime with no limits at all, and with fuel.
fn cpu(c: &mut Criterion) {
    let b = setup();
    let mut g = c.benchmark_group("cpu");
    g.sample_size(20);
    for (name, rel, args) in [
        ("fib", "tests/fixtures/fib.wat", vec![]),
        ("sha256", "jobs/wasm/hashbench.wasm", vec!["4", "2"]),
    ] {
        let wasm = module_bytes(rel);
        let job = job_for(&b, rel, json!({ "args": args }));
        let first = b.rt.block_on(b.sandbox.run(&job));
        assert_eq!(first.status, Status::Succeeded, "{}", first.message);
        g.bench_function(format!("{name}_wasmq_default"), |bench| {
            bench.iter(|| b.rt.block_on(b.sandbox.run(&job)))
        });
        let with_fuel = job_for(
            &b,
            rel,
            json!({ "args": args, "limits": {"fuel": u64::MAX / 4} }),
        );
        g.bench_function(format!("{name}_wasmq_fuel"), |bench| {
            bench.iter(|| b.rt.block_on(b.sandbox.run(&with_fuel)))
        });
        let bare = Reference::new(Knobs::TUNED, &wasm, &args);
        assert_eq!(bare.run(), first.stdout.as_bytes());
        g.bench_function(format!("{name}_reference_no_limits"), |bench| {
            bench.iter(|| bare.run())
        });
    }
    g.finish();
}

/// How long a running job takes to stop once cancelled: from `cancel()` to its result,
/// for a guest computing and one blocked in a host call, against the same stop by its own
/// time limit (from the deadline to the result).
fn cancel(c: &mut Criterion) {
    let b = setup_with(2);
    let mut g = c.benchmark_group("stop");
    g.sample_size(20);
    let spin = job_for(
        &b,
        "tests/fixtures/loop.wat",
        json!({"limits": {"timeout_ms": 60_000}}),
    );
    let sleep = job_for(
        &b,
        "tests/fixtures/sleep.wat",
        json!({"limits": {"timeout_ms": 60_000}}),
    );
    let warm = b.rt.block_on(b.sandbox.run(&job_for(
        &b,
        "tests/fixtures/loop.wat",
        json!({"limits": {"timeout_ms": 5}}),
    )));
    assert_eq!(warm.status, Status::TimedOut);
    for (name, job) in [("spin_cancelled", &spin), ("sleep_cancelled", &sleep)] {
        g.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let token = tokio_util::sync::CancellationToken::new();
                    let (sandbox, job, t2) = (b.sandbox.clone(), job.clone(), token.clone());
                    let run =
                        b.rt.spawn(async move { sandbox.run_cancellable(&job, None, &t2).await });
                    // Long enough for the guest to be well inside its loop or its sleep.
                    std::thread::sleep(Duration::from_millis(5));
                    let t = Instant::now();
                    token.cancel();
                    let r = b.rt.block_on(run).unwrap().expect("no host fault");
                    total += t.elapsed();
                    assert_eq!(r.status, Status::Cancelled, "{}", r.message);
                }
                total
            })
        });
    }
    let timed = job_for(
        &b,
        "tests/fixtures/loop.wat",
        json!({"limits": {"timeout_ms": 5}}),
    );
    g.bench_function("spin_timed_out", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let r = b.rt.block_on(b.sandbox.run(&timed));
                assert_eq!(r.status, Status::TimedOut);
                // The time past the deadline (the run started just after `t`).
                total += t.elapsed().saturating_sub(Duration::from_millis(5));
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, per_job, reference, parallel, resolve, cpu, cancel);

/// Median of one benchmark from criterion's report of this run, in nanoseconds.
/// The machine and the versions the figures come from.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {}; wasmtime 48.0.8, wasmq {}",
        kernel.trim(),
        env!("CARGO_PKG_VERSION")
    )
}

/// Each figure of this run against its baseline from the same run.
fn print_ratios() {
    let pairs: &[(&str, &str, &str, &str)] = &[
        (
            "hello job: wasmq (epoch, limits, /work, async) / wasmtime tuned + epoch, limits, preopen",
            "per_job/hello_rust",
            "reference/hello_tuned_epoch_limits_preopen",
            "<= 1.5",
        ),
        (
            "hello job: wasmq / wasmtime tuned, no epoch, limits or preopen",
            "per_job/hello_rust",
            "reference/hello_tuned",
            "",
        ),
        (
            "no-op job: wasmq / wasmtime tuned + epoch, limits, preopen",
            "per_job/noop_wat",
            "reference/noop_tuned_epoch_limits_preopen",
            "",
        ),
        (
            "wasmtime: on-demand allocator / tuned pooling",
            "reference/hello_ondemand",
            "reference/hello_tuned",
            "",
        ),
        (
            "wasmtime: default pooling / tuned pooling",
            "reference/hello_pooling_default",
            "reference/hello_tuned",
            "",
        ),
        (
            "parallel efficiency: 1 thread / 2 threads (time per job)",
            "parallel_hello/1_threads",
            "parallel_hello/2_threads",
            ">= 1.5",
        ),
        (
            "cancel to stop, guest computing / time limit to stop",
            "stop/spin_cancelled",
            "stop/spin_timed_out",
            "",
        ),
        (
            "cancel to stop, guest in a host call / time limit to stop",
            "stop/sleep_cancelled",
            "stop/spin_timed_out",
            "",
        ),
        (
            "jsonx (1.3 MB): compile / disk hit",
            "resolve_jsonx/compile",
            "resolve_jsonx/disk_hit",
            ">= 1000",
        ),
        (
            "hello: compile / disk hit",
            "resolve_hello/compile",
            "resolve_hello/disk_hit",
            "",
        ),
        (
            "fib: wasmq default limits / no limits",
            "cpu/fib_wasmq_default",
            "cpu/fib_reference_no_limits",
            "<= 1.1",
        ),
        (
            "fib: wasmq with fuel / no limits",
            "cpu/fib_wasmq_fuel",
            "cpu/fib_reference_no_limits",
            "",
        ),
        (
            "sha256: wasmq default limits / no limits",
            "cpu/sha256_wasmq_default",
            "cpu/sha256_reference_no_limits",
            "<= 1.1",
        ),
        (
            "sha256: wasmq with fuel / no limits",
            "cpu/sha256_wasmq_fuel",
            "cpu/sha256_reference_no_limits",
            "",
        ),
    ];
    println!("\nmachine: {}", machine());
    println!(
        "{:<90} {:>10} {:>10} {:>8}  target",
        "ratio", "a", "b", "a/b"
    );
    for (what, a, b, target) in pairs {
        match (median_ns(a), median_ns(b)) {
            (Some(x), Some(y)) => println!(
                "{what:<90} {:>10} {:>10} {:>8.2}  {target}",
                fmt_time(x),
                fmt_time(y),
                x / y
            ),
            _ => println!("{what:<90} (not run)"),
        }
    }
}

/// As the `wasmq` binary does: no backtraces for library errors (see its `main`), so the
/// figures do not depend on whether `RUST_BACKTRACE` is set where the bench runs.
#[allow(unsafe_code)]
fn main() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: first statement of `main`, before criterion or tokio start any thread.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let started = Instant::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
    println!("(bench ran {:.0?})", started.elapsed().max(Duration::ZERO));
}
