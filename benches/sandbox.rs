//! Micro benchmarks of the sandbox: the cost of one job with the module already loaded,
//! and the cost of finding a module in memory, on disk, or by compiling it.
//!
//! Run with `cargo bench --bench sandbox` (build the guests first: `jobs/build.sh`).
//! See benches/README.md for the figures and what they mean.

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use serde_json::json;
use wasmq_cache::Cache;
use wasmq_sandbox::{Sandbox, SandboxConfig};
use wasmq_spec::{Job, Status};

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
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(dir.path().join("cache"), None).unwrap());
    let config = SandboxConfig {
        max_concurrency: 1,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config, cache.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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

fn resolve(c: &mut Criterion) {
    let mut g = c.benchmark_group("resolve_jsonx");
    g.sample_size(10);
    let bytes = module_bytes("jobs/wasm/jsonx.wasm");
    // Compile: a fresh cache every time.
    g.bench_function("compile", |bench| {
        bench.iter_with_setup(setup, |b| {
            let p = b.rt.block_on(b.sandbox.prewarm(bytes.clone())).unwrap();
            assert_eq!(p.outcome, wasmq_spec::CacheOutcome::Compiled);
            b
        });
    });
    // Disk hit: artifact on disk, hot set emptied before each load.
    let b = setup();
    b.rt.block_on(b.sandbox.prewarm(bytes.clone())).unwrap();
    let job = job_for(&b, "jobs/wasm/jsonx.wasm", json!({"stdin": "[]"}));
    g.sample_size(50);
    g.bench_function("disk_hit_job", |bench| {
        bench.iter(|| {
            b.sandbox.clear_hot_set();
            let r = b.rt.block_on(b.sandbox.run(&job));
            assert_eq!(r.cache, Some(wasmq_spec::CacheOutcome::HitDisk));
        });
    });
    g.bench_function("memory_hit_job", |bench| {
        bench.iter(|| b.rt.block_on(b.sandbox.run(&job)));
    });
    g.finish();
}

criterion_group!(benches, per_job, resolve);

/// As the `wasmq` binary does: no backtraces for library errors (see its `main`), so the
/// figures do not depend on whether `RUST_BACKTRACE` is set where the bench runs.
#[allow(unsafe_code)]
fn main() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: first statement of `main`, before criterion or tokio start any thread.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
