//! Outbound HTTP of component jobs (`wasi:http/outgoing-handler`): the operator's door to
//! the network, and the only one.
//!
//! `wasi:http` is linked for every component, so that components built with their tools'
//! defaults (componentize-js imports `wasi:http` even when its code never fetches) run.
//! Every request goes through [`Egress`], the sandbox's own hooks; wasmtime-wasi-http's
//! default client is not compiled in. A request is sent only when:
//! - the job is within `limits.http_requests`;
//! - its URL's scheme, host and port match an entry of the job's `allowed_outbound_hosts`
//!   (the job's own narrowing, or its policy's list; none allows nothing);
//! - its `Host` header is the URL's host, and it has no forbidden header (hop-by-hop ones,
//!   a second `Host`: the guest cannot even set them);
//! - the name resolves to an address that is not private, loopback, link-local (the cloud
//!   metadata address), CGNAT, multicast, unspecified or otherwise special, unless the
//!   operator lists its network in `outbound_private_networks`; only such addresses are
//!   tried, and the address actually connected to is checked once more.
//!
//! Anything else is refused before a connection is opened: the guest sees
//! `HTTP-request-denied`, and the job goes on. Connect (DNS, TCP and TLS) and first-byte
//! timeouts are the job's limits, shortened by the guest's own request options; the
//! response bodies of a job are cut at `limits.http_response_bytes` in all. The job's
//! timeout or cancel drops its store, and with it every request in flight.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderName};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use wasmq_spec::outbound::{RequestHost, Scheme, outbound_allowed};
use wasmq_spec::{HttpUsage, Limits, OutboundHost};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

/// The worker's side of egress, shared by every job: the private networks it opens and
/// the TLS roots.
#[derive(Debug)]
pub(crate) struct Outbound {
    private_networks: Vec<IpNet>,
    ca_file: Option<PathBuf>,
    /// Built at the first HTTPS request (reading the system's roots takes milliseconds).
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Outbound {
    /// The settings of [`SandboxConfig`](crate::SandboxConfig) (checked by its `check`).
    pub(crate) fn new(private_networks: Vec<IpNet>, ca_file: Option<PathBuf>) -> Outbound {
        Outbound {
            private_networks,
            ca_file,
            tls: OnceLock::new(),
        }
    }

    /// The TLS client settings: the system's roots and the operator's CA file.
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if let Some(path) = &self.ca_file {
                    for cert in read_ca_file(path)? {
                        roots
                            .add(cert)
                            .map_err(|e| format!("outbound_ca_file {}: {e}", path.display()))?;
                    }
                }
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS settings: {e}"))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }

    /// Why `ip` may not be connected to; `None` when it may.
    pub(crate) fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = ip.to_canonical();
        if self.private_networks.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        special_range(ip)
    }
}

/// The certificates of a PEM file; an error when it holds none.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("outbound_ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "outbound_ca_file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// The kind of address `ip` is when it is not a public unicast one (canonical: an
/// IPv4-mapped IPv6 address is its IPv4 address).
pub(crate) fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(if ip.is_unspecified() || a == 0 {
        "unspecified (0.0.0.0/8)"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local (the cloud metadata address among them)"
    } else if a == 100 && (b & 0xc0) == 64 {
        "CGNAT (100.64.0.0/10)"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_broadcast() || a >= 240 {
        "reserved (240.0.0.0/4)"
    } else if ip.is_documentation() {
        "documentation"
    } else if (a, b, c) == (192, 0, 0) || (a, b, c) == (192, 88, 99) {
        "IETF protocol assignments"
    } else if a == 198 && (b & 0xfe) == 18 {
        "benchmarking (198.18.0.0/15)"
    } else {
        return None;
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if ip.is_unicast_link_local() {
        return Some("link-local");
    }
    if ip.is_unique_local() {
        return Some("private (unique local, fc00::/7)");
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address: judged by it.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return special_v4(v4);
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return special_v4(v4);
    }
    if s[0] & 0xe000 != 0x2000 {
        return Some("not global unicast (outside 2000::/3)");
    }
    if s[0] == 0x2001 && s[1] < 0x200 {
        return Some("IETF protocol assignments (2001::/23, Teredo among them)");
    }
    if s[0] == 0x2001 && s[1] == 0xdb8 {
        return Some("documentation");
    }
    None
}

/// What the requests of one job did; read into the result's `http` once the job ends.
#[derive(Debug, Default)]
pub(crate) struct HttpCounters {
    requests: AtomicU64,
    ok: AtomicU64,
    denied: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

impl HttpCounters {
    /// The result's `http` object; `None` when the job sent no request.
    pub(crate) fn usage(&self) -> Option<HttpUsage> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let requests = get(&self.requests);
        (requests > 0).then(|| HttpUsage {
            requests,
            ok: get(&self.ok),
            denied: get(&self.denied),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
        })
    }

    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The egress of one job: its list, its limits, its counters.
pub(crate) struct Egress {
    outbound: Arc<Outbound>,
    allowed: Vec<OutboundHost>,
    requests: u64,
    response_bytes: u64,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    counters: Arc<HttpCounters>,
}

impl Egress {
    /// The egress of a job allowed `allowed`, under `limits`.
    pub(crate) fn new(
        outbound: Arc<Outbound>,
        allowed: Vec<OutboundHost>,
        limits: &Limits,
    ) -> Egress {
        Egress {
            outbound,
            allowed,
            requests: limits.http_requests,
            response_bytes: limits.http_response_bytes,
            connect_timeout: Duration::from_millis(limits.http_connect_timeout_ms),
            first_byte_timeout: Duration::from_millis(limits.http_first_byte_timeout_ms),
            counters: Arc::default(),
        }
    }

    /// The job's counters, to read once it has ended.
    pub(crate) fn counters(&self) -> Arc<HttpCounters> {
        self.counters.clone()
    }

    /// Where `request` goes, or why it may not go there. Only the list, the count and the
    /// headers: addresses are checked once resolved.
    fn target(&self, request: &http::Request<WasiBody>, n: u64) -> Result<Target, String> {
        if n > self.requests {
            return Err(format!(
                "the job has sent limits.http_requests = {} requests",
                self.requests
            ));
        }
        let uri = request.uri();
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err("the scheme is neither http nor https".into()),
        };
        let text = uri.host().unwrap_or_default();
        let host = RequestHost::parse(text)
            .ok_or_else(|| format!("the host {text:?} is not a DNS name or an IP address"))?;
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        if !outbound_allowed(&self.allowed, scheme, &host, port) {
            return Err("not in the job's allowed_outbound_hosts".into());
        }
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        // `user@host` would go out in the Host header, where a server may read the user part
        // as the host.
        if authority.contains('@') {
            return Err("its URL has a user part".into());
        }
        let mut hosts = request.headers().get_all(HOST).iter();
        match (hosts.next(), hosts.next()) {
            (Some(h), None) if h.as_bytes() == authority.as_bytes() => {}
            _ => return Err("its Host header is not the URL's host".into()),
        }
        if let Some(name) = request
            .headers()
            .keys()
            .find(|name| **name != HOST && forbidden(name))
        {
            return Err(format!("it has the forbidden header {name}"));
        }
        Ok(Target {
            method: request.method().clone(),
            scheme,
            name: text
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            host,
            port,
        })
    }
}

/// Headers a guest may not set: wasmtime-wasi-http's (hop-by-hop headers, `Host`, proxy
/// headers) and the other hop-by-hop ones of RFC 9110 (`TE`, `Trailer`).
fn forbidden(name: &HeaderName) -> bool {
    DEFAULT_FORBIDDEN_HEADERS.contains(name)
        || *name == http::header::TE
        || *name == http::header::TRAILER
}

/// Where one allowed request goes.
#[derive(Debug, Clone)]
struct Target {
    method: http::Method,
    scheme: Scheme,
    /// The host as the URL names it, without an IPv6 address's brackets.
    name: String,
    host: RequestHost,
    port: u16,
}

/// What `send_request` resolves to: the response and the future of its connection's I/O.
type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

/// How a request that was not answered ended.
enum Failure {
    Denied(String),
    Timeout(HttpError),
    Error(HttpError),
}

impl WasiHttpHooks for Egress {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(forbidden)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_io: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let started = Instant::now();
        let counters = self.counters.clone();
        let n = counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let target = match self.target(&request, n) {
            Ok(t) => t,
            Err(why) => {
                HttpCounters::add(&counters.denied, 1);
                // The URL's path and query may hold secrets: not logged.
                let uri = request.uri();
                tracing::debug!(
                    method = %request.method(),
                    scheme = uri.scheme_str().unwrap_or_default(),
                    host = uri.host().unwrap_or_default(),
                    port = uri.port_u16(),
                    outcome = "denied",
                    ms = 0,
                    "outbound request refused: {why}"
                );
                return Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)));
            }
        };
        let shorter =
            |limit: Duration, asked: Option<Duration>| asked.map_or(limit, |a| a.min(limit));
        let connect = shorter(
            self.connect_timeout,
            options.and_then(|o| o.connect_timeout),
        );
        let first_byte = shorter(
            self.first_byte_timeout,
            options.and_then(|o| o.first_byte_timeout),
        );
        let outbound = self.outbound.clone();
        let budget = self.response_bytes;
        Box::new(async move {
            let sent = send(
                &outbound, &target, request, connect, first_byte, &counters, budget, started,
            )
            .await;
            sent.map_err(|failure| {
                let (outcome, error, why) = match failure {
                    Failure::Denied(why) => {
                        HttpCounters::add(&counters.denied, 1);
                        ("denied", HttpError::HttpRequestDenied, why)
                    }
                    Failure::Timeout(e) => {
                        HttpCounters::add(&counters.timeouts, 1);
                        ("timeout", e, String::new())
                    }
                    Failure::Error(e) => {
                        HttpCounters::add(&counters.errors, 1);
                        ("error", e, String::new())
                    }
                };
                tracing::debug!(
                    method = %target.method,
                    scheme = target.scheme.as_str(),
                    host = %target.name,
                    port = target.port,
                    outcome,
                    error = %error,
                    ms = started.elapsed().as_millis() as u64,
                    "outbound request failed{}{why}",
                    if why.is_empty() { "" } else { ": " }
                );
                error
            })
        })
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Resolves, checks the addresses, connects, and sends `request`; the response's body
/// counts what it brings against `budget`.
#[allow(clippy::too_many_arguments)]
async fn send(
    outbound: &Outbound,
    target: &Target,
    request: http::Request<WasiBody>,
    connect: Duration,
    first_byte: Duration,
    counters: &Arc<HttpCounters>,
    budget: u64,
    started: Instant,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    Failure,
> {
    let deadline = tokio::time::Instant::now() + connect;
    let addrs: Vec<SocketAddr> = match &target.host {
        RequestHost::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
        RequestHost::Name(name) => tokio::time::timeout_at(
            deadline,
            tokio::net::lookup_host((name.as_str(), target.port)),
        )
        .await
        .map_err(|_| Failure::Timeout(HttpError::DnsTimeout))?
        .map_err(|e| {
            Failure::Error(HttpError::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })
        })?
        .collect(),
    };
    let mut refused = None;
    let permitted: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match outbound.refuses(a.ip()) {
            Some(kind) => {
                refused.get_or_insert((a.ip(), kind));
                false
            }
            None => true,
        })
        .collect();
    if permitted.is_empty() {
        return Err(Failure::Denied(match refused {
            Some((ip, kind)) => format!(
                "{} resolves to {ip}, a {kind} address, and outbound_private_networks does not list it",
                target.name
            ),
            None => format!("{} resolves to no address", target.name),
        }));
    }
    let mut last = None;
    let mut tcp = None;
    for addr in permitted {
        match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(addr)).await {
            Err(_) => return Err(Failure::Timeout(HttpError::ConnectionTimeout)),
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last = Some(e),
        }
    }
    let Some(tcp) = tcp else {
        let e = last
            .map(HttpError::Connect)
            .unwrap_or(HttpError::ConnectionRefused);
        return Err(Failure::Error(e));
    };
    // The address actually connected to, checked again.
    let peer = tcp
        .peer_addr()
        .map_err(|e| Failure::Error(HttpError::Connect(e)))?;
    if let Some(kind) = outbound.refuses(peer.ip()) {
        return Err(Failure::Denied(format!(
            "connected to {peer}, a {kind} address"
        )));
    }
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Stream> = match target.scheme {
        Scheme::Http => Box::new(tcp),
        Scheme::Https => {
            let tls = outbound
                .tls()
                .map_err(|e| Failure::Error(HttpError::InternalError(Some(e))))?;
            let name = match &target.host {
                RequestHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
                RequestHost::Name(n) => ServerName::try_from(n.clone())
                    .map_err(|_| Failure::Error(HttpError::HttpRequestUriInvalid))?,
            };
            let connector = tokio_rustls::TlsConnector::from(tls);
            let stream = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
                .await
                .map_err(|_| Failure::Timeout(HttpError::ConnectionTimeout))?
                .map_err(|e| Failure::Error(tls_error(e)))?;
            Box::new(stream)
        }
    };
    let (mut sender, conn) = tokio::time::timeout_at(
        deadline,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(io)),
    )
    .await
    .map_err(|_| Failure::Timeout(HttpError::ConnectionTimeout))?
    .map_err(|e| Failure::Error(e.into()))?;

    // The request line names the path alone, as to an origin server.
    let (mut parts, body) = request.into_parts();
    parts.uri = http::Uri::builder()
        .path_and_query(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Failure::Error(HttpError::HttpRequestUriInvalid))?;
    let body = Sending {
        inner: body,
        counters: counters.clone(),
    };
    let request = http::Request::from_parts(parts, body);

    let mut answer = std::pin::pin!(tokio::time::timeout(
        first_byte,
        sender.send_request(request)
    ));
    let mut conn = Some(conn);
    // Waits for the response's head while driving the connection's I/O.
    let response = std::future::poll_fn(|cx| match answer.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(c).poll(cx));
            conn = None;
            match done {
                Ok(()) => answer.as_mut().poll(cx),
                Err(e) => Poll::Ready(Ok(Err(e))),
            }
        }
    })
    .await
    .map_err(|_| Failure::Timeout(HttpError::ConnectionReadTimeout))?
    .map_err(|e| Failure::Error(e.into()))?;

    HttpCounters::add(&counters.ok, 1);
    let status = response.status().as_u16();
    let response = response.map(|incoming| {
        Receiving {
            inner: incoming,
            counters: counters.clone(),
            budget,
            received: 0,
            log: Finished {
                target: target.clone(),
                status,
                started,
            },
        }
        .boxed_unsync()
    });
    let io = async move {
        match conn {
            Some(conn) => conn.await.map_err(HttpError::from),
            None => Ok(()),
        }
    };
    Ok((response, Box::new(io)))
}

/// The guest's error code for a failed TLS handshake.
fn tls_error(e: std::io::Error) -> HttpError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => HttpError::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => HttpError::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => HttpError::TlsProtocolError,
    }
}

/// A request body that counts the bytes it sends.
struct Sending {
    inner: WasiBody,
    counters: Arc<HttpCounters>,
}

impl Body for Sending {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(data) = f.data_ref()
        {
            HttpCounters::add(&self.counters.bytes_sent, data.len() as u64);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The line logged when a response has been read (or dropped).
struct Finished {
    target: Target,
    status: u16,
    started: Instant,
}

/// A response body that counts the bytes it brings against the job's
/// `limits.http_response_bytes`, and ends with `HTTP-response-body-size` past them.
struct Receiving {
    inner: hyper::body::Incoming,
    counters: Arc<HttpCounters>,
    budget: u64,
    received: u64,
    log: Finished,
}

impl Body for Receiving {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(f)) => match f.data_ref().map(|d| d.len() as u64) {
                Some(n) => {
                    let total = self.counters.bytes_received.fetch_add(n, Ordering::Relaxed) + n;
                    if total > self.budget {
                        // What went past the limit was not delivered.
                        self.counters.bytes_received.fetch_sub(n, Ordering::Relaxed);
                        Some(Err(HttpError::HttpResponseBodySize(Some(self.budget))))
                    } else {
                        self.received += n;
                        Some(Ok(f))
                    }
                }
                None => Some(Ok(f)),
            },
            Some(Err(e)) => Some(Err(e.into())),
            None => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        let Finished {
            target,
            status,
            started,
        } = &self.log;
        tracing::debug!(
            method = %target.method,
            scheme = target.scheme.as_str(),
            host = %target.name,
            port = target.port,
            status,
            bytes = self.received,
            ms = started.elapsed().as_millis() as u64,
            outcome = "ok",
            "outbound request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_addresses_are_refused_and_public_ones_are_not() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.170",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
            "2001::1",
            "100::1",
        ] {
            assert!(special_range(ip(refused)).is_some(), "{refused}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(special_range(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn listed_private_networks_are_opened_and_no_others() {
        let o = Outbound::new(vec!["127.0.0.1/32".parse().unwrap()], None);
        assert_eq!(o.refuses(ip("127.0.0.1")), None);
        assert_eq!(o.refuses(ip("::ffff:127.0.0.1")), None);
        assert!(o.refuses(ip("127.0.0.2")).is_some());
        assert!(o.refuses(ip("::1")).is_some());
        assert!(o.refuses(ip("169.254.169.254")).is_some());
    }
}
