//! Outbound HTTP of component jobs (`wasi:http/outgoing-handler`).
//!
//! `wasi:http` is linked for every component, so that components built with their tools'
//! defaults (componentize-js imports `wasi:http` even when its code never fetches) run.
//! Every request goes through [`Egress`], the sandbox's own hooks, never wasmtime-wasi-http's
//! default client: with no allow-list, which is the only setting there is, each request is
//! refused before any connection is opened, and the guest sees the standard
//! `HTTP-request-denied` error code, not a crash.

use std::future::Future;

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The egress policy of one job: no outbound host is allowed.
#[derive(Debug, Default)]
pub(crate) struct Egress;

/// What `send_request` resolves to: the response and the future of its body's I/O.
type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_io: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        tracing::debug!(
            method = %request.method(),
            uri = %request.uri(),
            "outbound request refused: this worker allows no outbound hosts"
        );
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}
