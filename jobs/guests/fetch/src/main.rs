//! GETs `http://AUTHORITY/` (the first argument) through `wasi:http/outgoing-handler` and
//! prints how it ended: `status N`, or `error CODE` with the error code the host gave, or
//! `refused CODE` when the host refused the request outright. Exits 0 either way: a refusal
//! is something the guest goes on to report.

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, OutgoingRequest, Scheme};

fn main() {
    let authority = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:80".to_owned());
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&Scheme::Http)).unwrap();
    request.set_authority(Some(&authority)).unwrap();
    request.set_path_with_query(Some("/")).unwrap();
    match outgoing_handler::handle(request, None) {
        Err(code) => println!("refused {code:?}"),
        Ok(response) => {
            response.subscribe().block();
            match response.get() {
                Some(Ok(Ok(r))) => println!("status {}", r.status()),
                Some(Ok(Err(code))) => println!("error {code:?}"),
                other => println!("error {other:?}"),
            }
        }
    }
}
