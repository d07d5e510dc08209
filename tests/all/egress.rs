//! Outbound HTTP (`wasi:http`) of component jobs: linked for every component, and with no
//! allow-list every request is refused before a connection is opened.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use wasmq_spec::Status;

use crate::support::{Dir, guest, job, with};

/// A TCP server on a free port of 127.0.0.1 that counts the connections it accepts (and
/// answers each with a minimal HTTP response).
struct CountingServer {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl CountingServer {
    fn start() -> CountingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut s) = stream {
                    use std::io::Write;
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                }
            }
        });
        CountingServer { port, accepted }
    }
}

#[test]
fn without_an_allow_list_a_components_request_is_refused_and_no_connection_is_opened() {
    let server = CountingServer::start();
    // The server answers a plain connection: it would count a request that got through.
    std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while server.accepted.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        1,
        "the server counts connections"
    );

    let d = Dir::new();
    let authority = format!("127.0.0.1:{}", server.port);
    let r = d.run_jobs(
        &[with(
            job("fetch", &guest("fetch-p2")),
            json!({"kind": "component", "args": [authority]}),
        )],
        &[],
    );
    let f = r.by_id("fetch");
    assert_eq!(f.status, Status::Succeeded, "{}\n{}", f.message, r.stderr);
    // The guest saw wasi:http's own error code for a refused request, and went on.
    assert_eq!(
        f.stdout, "error ErrorCode::HttpRequestDenied\n",
        "{}",
        f.stderr
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        1,
        "the job opened a connection"
    );
}
