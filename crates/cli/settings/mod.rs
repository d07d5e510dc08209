//! Settings: flags and their `WASMQ_*` environment variables over the TOML config file
//! over the defaults.
//!
//! A command flattens the argument groups it takes ([`args`]), calls [`start`] with its
//! own `ArgMatches` (which tell a flag from its environment variable), and resolves from
//! the [`Layers`](sources::Layers) so obtained the settings groups it needs, each once:
//! every value merged, checked, and recorded with its [`Source`](sources::Source) for
//! `wasmq config`.
//!
//! # Layout
//! - `args`: the clap argument groups ([`CommonArgs`], [`SandboxArgs`], [`BrokerArgs`],
//!   [`WorkerArgs`], and [`ClientArgs`]: common and broker, for the commands that only
//!   talk to RabbitMQ).
//! - `file`: the config file's schema.
//! - `defaults`: every default; the flags' help shows them from there.
//! - `sources`: `Layers` (a command line and the file), `Value`s that keep their
//!   `Source`, and the `Entries` `wasmq config` prints.
//! - `resolve`: the settings groups ([`CommonSettings`], [`SandboxSettings`],
//!   [`BrokerSettings`], [`WorkerSettings`], [`StatusSettings`]).
//! - `start`: reading the file, logging, the async runtime.

mod args;
pub mod defaults;
mod file;
mod resolve;
mod sources;
mod start;

pub use args::{BrokerArgs, ClientArgs, CommonArgs, SandboxArgs, WorkerArgs};
pub use resolve::{
    BrokerSettings, CommonSettings, SandboxSettings, StatusSettings, WorkerSettings, dashboard_addr,
};
pub use start::{runtime, start, start_client};
