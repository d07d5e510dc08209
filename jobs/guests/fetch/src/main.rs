//! An HTTP client through `wasi:http/outgoing-handler`: sends one request per URL argument
//! and prints one line per request saying how it ended. Exits 0 whatever happened: a
//! refusal is something the guest goes on to report.
//!
//! `fetch [OPTION]... URL...`, where a URL is `scheme://authority/path` (or a bare
//! `authority`, taken as `http://authority/`), and the options are:
//! - `--header NAME=VALUE`: a request header (repeatable);
//! - `--post N`: send a POST with an N-byte body instead of a GET;
//! - `--follow`: follow redirects (up to 5), one line per hop;
//! - `--print-body`: print the body after the status line;
//! - `--connect-timeout-ms N`, `--first-byte-timeout-ms N`: the request's own options.
//!
//! The lines: `status N bytes M` (and ` body-error CODE` when reading the body failed),
//! `error CODE` (the response never came), `refused CODE` (`handle` refused it outright),
//! `header-error ERROR` (the guest could not even set its headers).

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use wasi::io::streams::StreamError;

#[derive(Default)]
struct Options {
    headers: Vec<(String, Vec<u8>)>,
    post: Option<usize>,
    follow: bool,
    print_body: bool,
    connect_timeout_ms: Option<u64>,
    first_byte_timeout_ms: Option<u64>,
}

fn main() {
    let mut o = Options::default();
    let mut urls = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value after the option");
        match a.as_str() {
            "--header" => {
                let v = value();
                let (name, value) = v.split_once('=').expect("--header NAME=VALUE");
                o.headers.push((name.to_owned(), value.as_bytes().to_vec()));
            }
            "--post" => o.post = Some(value().parse().expect("--post N")),
            "--follow" => o.follow = true,
            "--print-body" => o.print_body = true,
            "--connect-timeout-ms" => o.connect_timeout_ms = Some(value().parse().unwrap()),
            "--first-byte-timeout-ms" => o.first_byte_timeout_ms = Some(value().parse().unwrap()),
            _ => urls.push(a),
        }
    }
    for url in urls {
        let mut url = url;
        for _hop in 0..6 {
            match fetch(&url, &o) {
                Some(next) if o.follow => url = next,
                _ => break,
            }
        }
    }
}

/// Sends one request and prints how it ended; returns the redirect's target, if any.
fn fetch(url: &str, o: &Options) -> Option<String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some(("http", rest)) => (Scheme::Http, rest),
        Some((other, rest)) => (Scheme::Other(other.to_owned()), rest),
        None => (Scheme::Http, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = match Fields::from_list(&o.headers) {
        Ok(h) => h,
        Err(e) => {
            println!("header-error {e:?}");
            return None;
        }
    };
    let request = OutgoingRequest::new(headers);
    request.set_scheme(Some(&scheme)).unwrap();
    request.set_authority(Some(authority)).unwrap();
    request.set_path_with_query(Some(path)).unwrap();
    if o.post.is_some() {
        request.set_method(&Method::Post).unwrap();
    }
    let options = RequestOptions::new();
    let ns = |ms: u64| ms * 1_000_000;
    if let Some(ms) = o.connect_timeout_ms {
        options.set_connect_timeout(Some(ns(ms))).unwrap();
    }
    if let Some(ms) = o.first_byte_timeout_ms {
        options.set_first_byte_timeout(Some(ns(ms))).unwrap();
    }
    let body = request.body().unwrap();
    let response = match outgoing_handler::handle(request, Some(options)) {
        Ok(r) => r,
        Err(code) => {
            println!("refused {code:?}");
            return None;
        }
    };
    {
        let stream = body.write().unwrap();
        let data = vec![b'x'; o.post.unwrap_or(0)];
        for chunk in data.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
    response.subscribe().block();
    let r = match response.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(code))) => {
            println!("error {code:?}");
            return None;
        }
        other => {
            println!("error {other:?}");
            return None;
        }
    };
    let status = r.status();
    let location = r.headers().get("location").into_iter().next();
    let (body, error) = read_body(&r);
    match error {
        None => println!("status {status} bytes {}", body.len()),
        Some(e) => println!("status {status} bytes {} body-error {e:?}", body.len()),
    }
    if o.print_body {
        println!("{}", String::from_utf8_lossy(&body));
    }
    match location {
        Some(l) if (300..400).contains(&status) => Some(String::from_utf8(l).unwrap()),
        _ => None,
    }
}

/// The response's body, and the error that ended it early.
fn read_body(r: &IncomingResponse) -> (Vec<u8>, Option<ErrorCode>) {
    let body = r.consume().unwrap();
    let stream = body.stream().unwrap();
    let mut out = Vec::new();
    let error = loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break None,
            Err(StreamError::LastOperationFailed(e)) => {
                break Some(
                    wasi::http::types::http_error_code(&e)
                        .unwrap_or(ErrorCode::InternalError(Some(e.to_debug_string()))),
                );
            }
        }
    };
    (out, error)
}
