//! Outbound HTTP (`wasi:http`) of component jobs, against real servers on 127.0.0.1: with
//! no allow-list nothing leaves the sandbox; with one, exactly what it lists, checked
//! against the URL and again against the address connected to, within the job's limits.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_spec::{HttpUsage, JobResult, Status};

use crate::http_server::{TestCa, TestServer, poke};
use crate::support::{Dir, Run, guest, job, with};

/// A job of the Rust client guest (`jobs/guests/fetch`) with these arguments.
fn fetch(id: &str, args: &[&str]) -> Value {
    with(
        job(id, &guest("fetch-p2")),
        json!({"kind": "component", "args": args}),
    )
}

/// `--allowed-outbound-host` for each of `hosts`, with 127.0.0.1/32 opened for the
/// tests' servers.
fn allowing(hosts: &[&str]) -> Vec<String> {
    let mut flags = vec![
        "--outbound-private-network".to_owned(),
        "127.0.0.1/32".to_owned(),
    ];
    for h in hosts {
        flags.push("--allowed-outbound-host".to_owned());
        flags.push((*h).to_owned());
    }
    flags
}

fn run(d: &Dir, jobs: &[Value], flags: &[String]) -> Run {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    d.run_jobs(jobs, &flags)
}

fn succeeded<'a>(r: &'a Run, id: &str) -> &'a JobResult {
    let x = r.by_id(id);
    assert_eq!(
        x.status,
        Status::Succeeded,
        "{id}: {} {}\n{}\n{}",
        x.code,
        x.message,
        x.stderr,
        r.stderr
    );
    x
}

const DENIED: &str = "error ErrorCode::HttpRequestDenied";

#[test]
fn without_an_allow_list_a_components_request_is_refused_and_no_connection_is_opened() {
    let server = TestServer::http();
    // The server counts connections: a plain one shows it would count a request.
    poke(server.port);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.accepted() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.accepted(), 1, "the server counts connections");

    let d = Dir::new();
    let authority = format!("127.0.0.1:{}", server.port);
    let jobs = [
        fetch("bare", &[&authority]),
        fetch(
            "several",
            &[
                &server.url("/"),
                &server.named_url("/"),
                &format!("https://127.0.0.1:{}/", server.port),
                "http://169.254.169.254/latest/meta-data/",
            ],
        ),
    ];
    // Even with the test's network opened: no allow-list, no request.
    let r = run(&d, &jobs, &allowing(&[]));
    let bare = succeeded(&r, "bare");
    // The guest saw wasi:http's own error code for a refused request, and went on.
    assert_eq!(bare.stdout, format!("{DENIED}\n"), "{}", bare.stderr);
    let several = succeeded(&r, "several");
    assert_eq!(several.stdout, format!("{DENIED}\n").repeat(4));
    assert_eq!(
        several.http,
        Some(HttpUsage {
            requests: 4,
            denied: 4,
            ..HttpUsage::default()
        })
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.accepted(), 1, "a job opened a connection");
}

#[test]
fn an_allowed_request_goes_through_and_the_result_says_what_it_did() {
    let server = TestServer::http();
    let d = Dir::new();
    let jobs = [
        fetch("get", &["--post", "100", &server.url("/bytes/1000")]),
        // A core module has no wasi:http: its result has no `http`.
        job("core", &guest("hello")),
    ];
    let r = run(&d, &jobs, &allowing(&[&server.origin()]));
    let get = succeeded(&r, "get");
    assert_eq!(get.stdout, "status 200 bytes 1000\n", "{}", get.stderr);
    assert_eq!(
        get.http,
        Some(HttpUsage {
            requests: 1,
            ok: 1,
            bytes_sent: 100,
            bytes_received: 1000,
            ..HttpUsage::default()
        })
    );
    assert_eq!(succeeded(&r, "core").http, None);
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/bytes/1000");
    assert_eq!(seen[0].body_len, 100);
    // The Host header is the URL's host.
    assert_eq!(
        seen[0].host.as_deref(),
        Some(format!("127.0.0.1:{}", server.port).as_str())
    );
}

#[test]
fn what_the_list_does_not_name_is_refused_and_the_job_goes_on() {
    let server = TestServer::http();
    let other = TestServer::http();
    let d = Dir::new();
    let https_same_port = format!("https://127.0.0.1:{}/", server.port);
    let to_other = server.url(&format!("/redirect?to={}", other.url("/")));
    let jobs = [
        fetch(
            "refusals",
            &[
                // A host not on the list (the same server, another loopback address).
                &format!("http://127.0.0.2:{}/", server.port),
                // Another port of the allowed host.
                &other.url("/"),
                // Another scheme of the allowed host and port.
                &https_same_port,
                // A user part, which a server could read from the Host header as the host.
                &format!("http://internal.example@127.0.0.1:{}/", server.port),
                // The allowed host, once more: the job goes on.
                &server.url("/"),
            ],
        ),
        fetch("redirect", &["--follow", &to_other]),
        fetch(
            "spoofed-host",
            &["--header", "host=internal.example", &server.url("/host")],
        ),
        fetch(
            "hop-by-hop",
            &["--header", "transfer-encoding=chunked", &server.url("/")],
        ),
        // A job may narrow its list, never widen it.
        with(
            fetch("narrowed", &[&server.url("/")]),
            json!({"allowed_outbound_hosts": []}),
        ),
        with(
            fetch("widened", &[&server.url("/")]),
            json!({"allowed_outbound_hosts": [other.origin()]}),
        ),
    ];
    let r = run(&d, &jobs, &allowing(&[&server.origin()]));
    let refusals = succeeded(&r, "refusals");
    assert_eq!(
        refusals.stdout,
        format!("{}status 200 bytes 2\n", format!("{DENIED}\n").repeat(4))
    );
    let redirect = succeeded(&r, "redirect");
    assert_eq!(redirect.stdout, format!("status 302 bytes 0\n{DENIED}\n"));
    assert_eq!(
        succeeded(&r, "spoofed-host").stdout,
        "header-error HeaderError::Forbidden\n"
    );
    assert_eq!(
        succeeded(&r, "hop-by-hop").stdout,
        "header-error HeaderError::Forbidden\n"
    );
    assert_eq!(succeeded(&r, "narrowed").stdout, format!("{DENIED}\n"));
    let widened = r.by_id("widened");
    assert_eq!(
        (widened.status, widened.code.as_str()),
        (Status::Rejected, "outbound_host_not_allowed"),
        "{}",
        widened.message
    );
    assert!(
        widened.message.contains(&other.origin()),
        "{}",
        widened.message
    );
    assert_eq!(
        other.accepted(),
        0,
        "a refused request reached the other server"
    );
    // The server saw the allowed requests alone: the redirect's first hop and the last.
    let seen = server.requests();
    let redirect_path = to_other.replace(&server.origin(), "");
    let mut expected = vec!["/", redirect_path.as_str()];
    expected.sort();
    assert_eq!(sorted_paths(&seen), expected, "{seen:?}");
}

fn sorted_paths(seen: &[crate::http_server::Seen]) -> Vec<&str> {
    let mut v: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    v.sort();
    v
}

#[test]
fn a_name_that_resolves_to_a_refused_address_is_refused_before_any_connection() {
    let server = TestServer::http();
    let d = Dir::new();
    let jobs = [fetch(
        "loopback",
        &[&server.named_url("/"), &server.url("/")],
    )];
    // Both entries are on the list, but loopback is not opened: `localhost` (a name that
    // resolves to loopback, as a rebinding name would) and the literal address are refused.
    let flags = [
        "--allowed-outbound-host".to_owned(),
        format!("http://localhost:{}", server.port),
        "--allowed-outbound-host".to_owned(),
        server.origin(),
    ];
    let r = run(&d, &jobs, &flags);
    let x = succeeded(&r, "loopback");
    assert_eq!(x.stdout, format!("{DENIED}\n{DENIED}\n"));
    assert_eq!(server.accepted(), 0, "a connection reached the server");
    // With 127.0.0.1/32 opened, the name goes through (to its 127.0.0.1 address).
    let mut opened = flags.to_vec();
    opened.extend([
        "--outbound-private-network".to_owned(),
        "127.0.0.1/32".to_owned(),
    ]);
    let r = run(
        &d,
        &[fetch("opened", &[&server.named_url("/host")])],
        &opened,
    );
    let host = format!("localhost:{}", server.port);
    assert_eq!(
        succeeded(&r, "opened").stdout,
        format!("status 200 bytes {}\n", host.len())
    );
    assert_eq!(server.requests()[0].host.as_deref(), Some(host.as_str()));
}

#[test]
fn https_uses_the_system_roots_and_the_operators_ca_file() {
    let d = Dir::new();
    let ca = TestCa::new(d.path());
    let server = TestServer::https(&ca);
    let jobs = [fetch(
        "tls",
        &[&server.named_url("/"), &server.url("/bytes/5000")],
    )];
    let hosts = [
        format!("https://localhost:{}", server.port),
        server.origin(),
    ];
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let mut flags = allowing(&hosts);
    // Without the CA, the test's certificate is not trusted.
    let r = run(&d, &jobs, &flags);
    assert_eq!(
        succeeded(&r, "tls").stdout,
        "error ErrorCode::TlsCertificateError\n".repeat(2)
    );
    flags.extend([
        "--outbound-ca-file".to_owned(),
        ca.ca_file.display().to_string(),
    ]);
    let r = run(&d, &jobs, &flags);
    let x = succeeded(&r, "tls");
    assert_eq!(x.stdout, "status 200 bytes 2\nstatus 200 bytes 5000\n");
    assert_eq!(x.http.unwrap().bytes_received, 5002);
    // A CA file that holds no certificate stops `wasmq run` at start.
    let bad = d.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let out = d
        .wasmq()
        .args(["run", "--outbound-ca-file", bad.to_str().unwrap()])
        .arg(d.jobs_file("one.jsonl", &jobs))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outbound_ca_file"), "{err}");
}

#[test]
fn limits_bound_the_count_the_bytes_and_the_waits_of_requests() {
    let server = TestServer::http();
    let d = Dir::new();
    let limited =
        |id: &str, args: &[&str], limits: Value| with(fetch(id, args), json!({ "limits": limits }));
    let jobs = [
        limited(
            "count",
            &[&server.url("/"), &server.url("/"), &server.url("/")],
            json!({"http_requests": 2}),
        ),
        limited(
            "bytes",
            &[&server.url("/bytes/600"), &server.url("/bytes/600")],
            json!({"http_response_bytes": 1000}),
        ),
        // A server that never answers: the job's first-byte limit ends the wait, the
        // guest reports it and goes on.
        limited(
            "never-answers",
            &[&server.url("/hang"), &server.url("/")],
            json!({"http_first_byte_timeout_ms": 300}),
        ),
        // The guest's own, shorter timeout is kept.
        limited(
            "guest-timeout",
            &["--first-byte-timeout-ms", "200", &server.url("/hang")],
            json!({"http_first_byte_timeout_ms": 60_000}),
        ),
    ];
    let started = Instant::now();
    let r = run(&d, &jobs, &allowing(&[&server.origin()]));
    let count = succeeded(&r, "count");
    assert_eq!(
        count.stdout,
        format!("status 200 bytes 2\nstatus 200 bytes 2\n{DENIED}\n")
    );
    let usage = count.http.unwrap();
    assert_eq!((usage.requests, usage.ok, usage.denied), (3, 2, 1));

    let bytes = succeeded(&r, "bytes");
    let lines: Vec<&str> = bytes.stdout.lines().collect();
    assert_eq!(lines[0], "status 200 bytes 600", "{}", bytes.stdout);
    // The body's stream fails; wasmtime-wasi-http 48's `http-error-code` gives no code for
    // an error of a response body, so the guest reads the error's text.
    assert!(
        lines[1].starts_with("status 200 bytes ")
            && lines[1].contains("body-error")
            && lines[1].contains("HTTP response body size exceeds limit: 1000 bytes"),
        "{}",
        bytes.stdout
    );
    let received = bytes.http.unwrap().bytes_received;
    assert!((600..=1000).contains(&received), "{received}");

    let hang = succeeded(&r, "never-answers");
    assert_eq!(
        hang.stdout,
        "error ErrorCode::ConnectionReadTimeout\nstatus 200 bytes 2\n"
    );
    let usage = hang.http.unwrap();
    assert_eq!((usage.requests, usage.ok, usage.timeouts), (2, 1, 1));
    let guest = succeeded(&r, "guest-timeout");
    assert_eq!(guest.stdout, "error ErrorCode::ConnectionReadTimeout\n");
    // Each wait ended at its timeout, not at the job's: the whole run is short, and the
    // server saw both waiting connections closed.
    assert!(
        guest.timings.run_us < 5_000_000 && hang.timings.run_us < 5_000_000,
        "{:?} {:?}",
        guest.timings,
        hang.timings
    );
    assert_eq!(server.wait_hangs_closed(2, Duration::from_secs(5)).len(), 2);
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_job_that_times_out_in_a_request_drops_it_at_once() {
    let server = TestServer::http();
    let d = Dir::new();
    let jobs = [with(
        fetch("slow", &[&server.url("/hang")]),
        json!({"limits": {"timeout_ms": 1000, "http_first_byte_timeout_ms": 60_000}}),
    )];
    let r = run(&d, &jobs, &allowing(&[&server.origin()]));
    let ended = Instant::now();
    let x = r.by_id("slow");
    assert_eq!(
        (x.status, x.code.as_str()),
        (Status::TimedOut, "timeout"),
        "{}",
        x.message
    );
    assert_eq!(x.http.map(|h| (h.requests, h.ok)), Some((1, 0)));
    // The connection was closed when the job ended, not at the 60 s first-byte limit.
    let closed = server.wait_hangs_closed(1, Duration::from_secs(10));
    assert_eq!(closed.len(), 1, "the request outlived its job");
    assert!(
        closed[0] < ended + Duration::from_secs(2),
        "closed {:?} after the run ended",
        closed[0].saturating_duration_since(ended)
    );
}

#[test]
fn a_worker_gives_each_tenant_its_own_hosts() {
    use crate::fleet::{Fleet, http_get, sample};
    use crate::tenants::{results_as, submit_as, two_users, write_config};
    let (a, b) = two_users();
    let (sa, sb) = (TestServer::http(), TestServer::http());
    let mut f = Fleet::new("egress-tenants");
    let top = "outbound_private_networks = [\"127.0.0.1/32\"]";
    let tenants = format!(
        "[tenants.{a}]\nallowed_outbound_hosts = [\"{}\"]\n\n[tenants.{b}]\nallowed_outbound_hosts = [\"{}\"]\n",
        sa.origin(),
        sb.origin(),
        a = a.name,
        b = b.name,
    );
    let cfg = write_config(&f, top, &tenants);
    f.start_worker(2, &["--config", &cfg, "--metrics-addr", "127.0.0.1:0"]);
    let addr = f.workers[0].metrics_addr(Duration::from_secs(10));
    let both = |id: &str| fetch(id, &[&sa.url("/"), &sb.url("/")]);
    let batch_a = submit_as(&f, &a, "egress-a", &[both("a")], false);
    let batch_b = submit_as(
        &f,
        &b,
        "egress-b",
        &[
            both("b"),
            // b may not widen its list to a's host.
            with(
                fetch("b-wider", &[&sa.url("/")]),
                json!({"allowed_outbound_hosts": [sa.origin()]}),
            ),
        ],
        false,
    );
    let ra = results_as(&f, &a, &batch_a, 90);
    let rb = results_as(&f, &b, &batch_b, 90);
    assert_eq!(
        succeeded(&ra, "a").stdout,
        format!("status 200 bytes 2\n{DENIED}\n")
    );
    assert_eq!(
        succeeded(&rb, "b").stdout,
        format!("{DENIED}\nstatus 200 bytes 2\n")
    );
    let wider = rb.by_id("b-wider");
    assert_eq!(
        (wider.status, wider.code.as_str()),
        (Status::Rejected, "outbound_host_not_allowed"),
        "{}",
        wider.message
    );
    assert_eq!((sa.requests().len(), sb.requests().len()), (1, 1));
    // The worker's metrics count each request by outcome, and the bytes received.
    let text = http_get(&addr, "/metrics").1;
    assert_eq!(
        sample(&text, "wasmq_http_requests_total{outcome=\"ok\"}").as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "wasmq_http_requests_total{outcome=\"denied\"}").as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "wasmq_http_response_bytes_total").as_deref(),
        Some("4"),
        "{text}"
    );
}

#[test]
fn a_job_cancelled_in_the_middle_of_a_request_drops_it_at_once() {
    use crate::fleet::{Fleet, wait_until};
    let server = TestServer::http();
    let mut f = Fleet::new("egress-cancel");
    let mut flags = allowing(&[&server.origin()]);
    flags.push("--timeout-ms".to_owned());
    flags.push("120000".to_owned());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    f.start_worker(1, &flags);
    let batch = f.submit(&[with(
        fetch("waiting", &[&server.url("/hang")]),
        json!({"limits": {"http_first_byte_timeout_ms": 120_000}}),
    )]);
    wait_until(
        "the request reaches the server",
        Duration::from_secs(60),
        || !server.requests().is_empty(),
    );
    let (out, err) = crate::cancel::cancel(&f, &["--batch", &batch]);
    assert!(out.contains("stopped waiting on"), "{out}\n{err}");
    let cancelled = Instant::now();
    let closed = server.wait_hangs_closed(1, Duration::from_secs(10));
    assert_eq!(closed.len(), 1, "the request outlived its cancelled job");
    assert!(
        closed[0] < cancelled + Duration::from_secs(2),
        "closed {:?} after the cancel",
        closed[0].saturating_duration_since(cancelled)
    );
    let r = f.results(&batch, 60);
    let x = r.by_id("waiting");
    assert_eq!(x.status, Status::Cancelled, "{}", x.message);
    assert_eq!(x.http.map(|h| h.requests), Some(1));
}

/// The three guest languages' clients, each sending `urls` in turn: Rust (the `wasi`
/// crate), Python (componentize-py's bindings) and JavaScript (componentize-js's `fetch`).
fn every_language(urls: &[&str]) -> Vec<Value> {
    use crate::interpreters::built;
    vec![
        fetch("rust", urls),
        with(
            job("python", &built("fetch-py.wasm")),
            json!({"kind": "component", "args": urls}),
        ),
        with(
            job("js", &built("fetch-js.wasm")),
            json!({"kind": "handler", "input": serde_json::to_string(urls).unwrap()}),
        ),
    ]
}

/// Each language's lines for an answered `/` and then a refused request.
fn assert_each_language(r: &Run) {
    assert_eq!(
        succeeded(r, "rust").stdout,
        format!("status 200 bytes 2\n{DENIED}\n")
    );
    assert_eq!(
        succeeded(r, "python").stdout,
        "status 200 bytes 2\nerror HttpRequestDenied\n"
    );
    // fetch() rejects a refused request with a TypeError whose message does not carry the
    // wasi:http code.
    let js = succeeded(r, "js");
    assert_eq!(
        js.output.as_deref(),
        Some("status 200 bytes 2\nerror NetworkError when attempting to fetch resource\n"),
        "{}",
        js.stderr
    );
    for id in ["rust", "python", "js"] {
        let usage = r.by_id(id).http.unwrap();
        assert_eq!((usage.requests, usage.ok, usage.denied), (2, 1, 1), "{id}");
    }
}

#[test]
fn each_guest_language_reaches_an_allowed_host_and_no_other_through_run_and_a_worker() {
    use crate::fleet::Fleet;
    use crate::interpreters::shared_cache;
    let server = TestServer::http();
    let other = TestServer::http();
    let (allowed, refused) = (server.url("/"), other.url("/"));
    let jobs = every_language(&[&allowed, &refused]);
    let flags = allowing(&[&server.origin()]);

    let d = Dir::new();
    let file = d.jobs_file("languages.jsonl", &jobs);
    let out = d
        .wasmq()
        .env("WASMQ_CACHE_DIR", shared_cache())
        .arg("run")
        .args(&flags)
        .arg(&file)
        .output()
        .unwrap();
    assert_each_language(&crate::support::parse(out));

    let mut f = Fleet::new("egress-languages");
    f.cache_dir = Some(shared_cache());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    f.start_worker(2, &flags);
    let batch = f.submit(&jobs);
    let r = f.results(&batch, 120);
    assert_each_language(&r);
    assert_eq!(server.requests().len(), 6);
    assert_eq!(other.accepted(), 0);
}

#[test]
fn any_host_allowed_still_reaches_no_special_address_however_it_is_written() {
    let server = TestServer::http();
    let d = Dir::new();
    let p = server.port;
    let urls: Vec<String> = [
        format!("http://127.0.0.1:{p}/"),
        format!("http://localhost:{p}/"),
        format!("http://127.1:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://0x7f.0.0.1:{p}/"),
        format!("http://0177.0.0.1:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[::ffff:7f00:1]:{p}/"),
        format!("http://[::1]:{p}/"),
        format!("http://0.0.0.0:{p}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
        "http://100.100.100.200/latest/meta-data/".to_owned(),
    ]
    .into();
    let args: Vec<&str> = urls.iter().map(String::as_str).collect();
    let flags = [
        "--allowed-outbound-host".to_owned(),
        "http://*:*".to_owned(),
    ];
    let started = Instant::now();
    let r = run(&d, &[fetch("special", &args)], &flags);
    let x = succeeded(&r, "special");
    assert_eq!(
        x.stdout,
        format!("{DENIED}\n").repeat(urls.len()),
        "{}",
        x.stderr
    );
    assert_eq!(x.http.unwrap().denied, urls.len() as u64);
    assert_eq!(server.accepted(), 0, "a special address was connected to");
    // Refused before any connect: no waiting on the unreachable metadata addresses.
    assert!(started.elapsed() < Duration::from_secs(20));
}
