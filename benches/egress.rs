//! What an outbound HTTP request of a job costs, against the same request sent by `reqwest`
//! directly, measured in the same run against the same server.
//!
//! - `egress/reqwest_fresh_connection`: one GET with reqwest, a new connection each time (as
//!   the sandbox makes one per request), the body read.
//! - `egress/job_0_requests`, `egress/job_10_requests`: a component job (the Rust client,
//!   `jobs/wasm/fetch-p2.wasm`) that sends no request, or ten to the same allowed host, each
//!   body read. Their difference over ten is what one request costs inside a job: the
//!   guest's wasi:http calls, the allow-list and address checks, the connection, hyper.
//!
//! The server is a plain HTTP/1.1 server on a free port of 127.0.0.1 (a thread per
//! connection, `ok` and close), so both arms pay the same for it.
//!
//! Run with `cargo bench --bench egress` (build the guests first: `jobs/build.sh rust`).
//! After criterion's output it prints the per-request figures and their ratio.

#[path = "support/medians.rs"]
mod medians;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use serde_json::json;
use wasmq_cache::Cache;
use wasmq_sandbox::{Sandbox, SandboxConfig};
use wasmq_spec::{Job, Status};

use medians::median_ns;

const REQUESTS: usize = 10;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A server that answers every request `ok` and closes; its port.
fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&mut stream);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

fn benches(c: &mut Criterion) {
    let port = server();
    let url = format!("http://127.0.0.1:{port}/");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("egress");
    g.measurement_time(Duration::from_secs(10));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .unwrap();
    g.bench_function("reqwest_fresh_connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.bytes().await.unwrap().as_ref(), b"ok");
            })
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(dir.path().join("cache"), None).unwrap());
    let config = SandboxConfig {
        max_concurrency: 1,
        allowed_outbound_hosts: vec![format!("http://127.0.0.1:{port}").parse().unwrap()],
        outbound_private_networks: vec!["127.0.0.1/32".parse().unwrap()],
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config, cache.clone()).unwrap();
    let path = root().join("jobs/wasm/fetch-p2.wasm");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run jobs/build.sh rust)", path.display()));
    let digest = cache.put_module(&bytes).unwrap();
    for n in [0, REQUESTS] {
        let job: Job = serde_json::from_value(json!({
            "id": "bench",
            "module": {"sha256": digest.to_hex()},
            "kind": "component",
            "args": vec![url.clone(); n],
            "limits": {"http_requests": REQUESTS},
        }))
        .unwrap();
        let expected = "status 200 bytes 2\n".repeat(n);
        let warm = rt.block_on(sandbox.run(&job));
        assert_eq!(warm.status, Status::Succeeded, "{}", warm.message);
        assert_eq!(warm.stdout, expected, "{}", warm.stderr);
        g.bench_function(format!("job_{n}_requests"), |b| {
            b.iter(|| {
                let r = rt.block_on(sandbox.run(&job));
                assert_eq!(r.stdout.len(), expected.len());
            })
        });
    }
    g.finish();
}

fn main() {
    let started = Instant::now();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    let (Some(direct), Some(zero), Some(ten)) = (
        median_ns("egress/reqwest_fresh_connection"),
        median_ns("egress/job_0_requests"),
        median_ns(&format!("egress/job_{REQUESTS}_requests")),
    ) else {
        println!("(not every arm ran: no ratio)");
        return;
    };
    let per_request = (ten - zero) / REQUESTS as f64;
    println!(
        "\none request: reqwest {:.1} µs, in a job {:.1} µs ((job of {REQUESTS} - job of 0) / {REQUESTS}: {:.1} µs - {:.1} µs); ratio {:.2}",
        direct / 1e3,
        per_request / 1e3,
        ten / 1e3,
        zero / 1e3,
        per_request / direct
    );
    println!("(bench ran {:.0?})", started.elapsed());
}
