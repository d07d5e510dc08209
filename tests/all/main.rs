//! Integration tests: they drive the real `wasmq` binary on real guests (WAT fixtures
//! under `tests/fixtures`, Rust programs under `jobs/guests` built by `jobs/build.sh`).

mod broker;
mod cache;
mod cancel;
mod cli;
mod dashboard;
mod deploy;
mod egress;
mod fairshare;
mod faults;
mod files;
mod fleet;
mod grafana;
mod hostile;
mod http_server;
mod interpreters;
mod isolation;
mod kinds;
mod ops;
mod parity;
mod python_client;
mod reactors;
mod registry;
mod snapshot;
mod statuses;
mod support;
mod tenants;
mod wasi;
