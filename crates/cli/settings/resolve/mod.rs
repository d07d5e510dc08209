//! Resolution: the [`Layers`](super::Layers) of a command merged into the settings it
//! needs, each group checked once and carrying its [`Entries`](super::Entries) for
//! `wasmq config`.
//!
//! - `common`: [`CommonSettings`], what every command has (cache, stores, logging).
//! - `registries`: how registries are reached (part of the common settings).
//! - `sandbox`: [`SandboxSettings`], for the commands that run jobs.
//! - `broker`: [`BrokerSettings`], for the commands that talk to RabbitMQ, and
//!   [`StatusSettings`].
//! - `worker`: [`WorkerSettings`], the worker's own.

mod broker;
mod common;
mod registries;
mod sandbox;
mod worker;

pub use broker::{BrokerSettings, StatusSettings, dashboard_addr};
pub use common::CommonSettings;
pub use sandbox::SandboxSettings;
pub use worker::WorkerSettings;
