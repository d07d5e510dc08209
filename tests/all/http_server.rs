//! HTTP and HTTPS servers of the egress tests, on free ports of 127.0.0.1: real sockets,
//! a real TLS stack (rustls) and a certificate authority made for the test run.
//!
//! Paths: `/` answers `ok`; `/bytes/N` N bytes; `/redirect?to=URL` a 302 to URL; `/host`
//! the request's `Host` header; `/hang` never answers (the server notes when the client
//! closes the connection). Every connection answers one request and closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request the server read.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub body_len: usize,
}

#[derive(Default)]
struct State {
    accepted: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
    /// When each `/hang` connection was closed by the client.
    hangs_closed: Mutex<Vec<Instant>>,
}

/// A certificate authority of the test run, and a server certificate it signed for
/// `localhost` and `127.0.0.1`.
pub struct TestCa {
    /// The CA's certificate, in PEM.
    pub ca_file: PathBuf,
    config: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// Writes the CA's certificate into `dir`.
    pub fn new(dir: &Path) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wasmq test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = dir.join("test-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        TestCa {
            ca_file,
            config: Arc::new(config),
        }
    }
}

/// A server on a free port of 127.0.0.1.
pub struct TestServer {
    pub port: u16,
    pub scheme: &'static str,
    state: Arc<State>,
}

impl TestServer {
    /// An HTTP server.
    pub fn http() -> TestServer {
        TestServer::start(None)
    }

    /// An HTTPS server whose certificate `ca` signed.
    pub fn https(ca: &TestCa) -> TestServer {
        TestServer::start(Some(ca.config.clone()))
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                s.accepted.fetch_add(1, Ordering::SeqCst);
                let (s, tls) = (s.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    None => serve(stream, &s),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(conn, stream), &s)
                    }
                });
            }
        });
        TestServer {
            port,
            scheme,
            state,
        }
    }

    /// `scheme://127.0.0.1:PORT` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// `scheme://localhost:PORT` and `path`.
    pub fn named_url(&self, path: &str) -> String {
        format!("{}://localhost:{}{path}", self.scheme, self.port)
    }

    /// The allow-list entry of this server: `scheme://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        self.url("")
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Requests read so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }

    /// When the `/hang` connections closed by their client were closed.
    pub fn hangs_closed(&self) -> Vec<Instant> {
        self.state.hangs_closed.lock().unwrap().clone()
    }

    /// Waits up to `limit` for `n` `/hang` connections to be closed; the instants.
    pub fn wait_hangs_closed(&self, n: usize, limit: Duration) -> Vec<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let closed = self.hangs_closed();
            if closed.len() >= n || Instant::now() >= deadline {
                return closed;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads one request and answers it (or, for `/hang`, waits for the client to go).
fn serve<S: Read + Write>(stream: S, state: &State) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let (mut host, mut length, mut chunked) = (None, 0usize, false);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "host" => host = Some(value.to_owned()),
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
    }
    let body_len = if chunked {
        read_chunked(&mut reader)
    } else {
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        length
    };
    state.requests.lock().unwrap().push(Seen {
        method,
        path: path.clone(),
        host: host.clone(),
        body_len,
    });
    let mut stream = reader.into_inner();
    let (status, headers, body): (&str, String, Vec<u8>) = if path == "/" {
        ("200 OK", String::new(), b"ok".to_vec())
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        ("200 OK", String::new(), vec![b'a'; n.parse().unwrap()])
    } else if let Some(to) = path.strip_prefix("/redirect?to=") {
        ("302 Found", format!("location: {to}\r\n"), Vec::new())
    } else if path == "/host" {
        (
            "200 OK",
            String::new(),
            host.unwrap_or_default().into_bytes(),
        )
    } else if path == "/hang" {
        // Never answers; notes when the client closes the connection.
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        state.hangs_closed.lock().unwrap().push(Instant::now());
        return;
    } else {
        ("404 Not Found", String::new(), Vec::new())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

/// Reads a chunked body; its length.
fn read_chunked<R: BufRead>(reader: &mut R) -> usize {
    let mut total = 0;
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return total;
        }
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        let mut chunk = vec![0; n + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return total;
        }
        total += n;
        if n == 0 {
            return total;
        }
    }
}

/// A plain TCP stream to the server, to show that it counts connections.
pub fn poke(port: u16) {
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
}
