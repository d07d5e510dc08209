//! RabbitMQ for wasmq: the worker's transport and the broker side of the commands.
//!
//! The worker's run loop is written against the [`Transport`] and [`Delivery`] traits of
//! `wasmq-queue` (re-exported here, with its in-process [`MemoryQueue`]);
//! [`amqp::AmqpTransport`] implements them over AMQP 0-9-1, failing with a
//! [`BrokerError`].
//!
//! # Layout
//! - [`error`]: [`BrokerError`], what failed on the way to the broker, with the AMQP (or
//!   HTTP) error behind it.
//! - [`amqp`]: RabbitMQ: [`amqp::Topology`], the worker's [`amqp::AmqpTransport`], and
//!   helpers for the client commands.
//! - [`client`]: [`client::Client`], the connection of `submit`, `results`, `prewarm`,
//!   `status` and `dead`.
//! - [`lease`]: [`lease::AmqpLeases`], compile leases across a fleet as exclusive queues.
//! - [`management`]: queue depths from RabbitMQ's management HTTP API.
//! - [`supervisor`]: [`supervisor::Supervisor`], which keeps one connection up, hands out
//!   its current session and reconnects with backoff; every connection above uses one.
//! - [`memory`]: `wasmq-queue`'s in-process queue, re-exported.

pub mod amqp;
pub mod client;
pub mod error;
pub mod lease;
pub mod management;
pub mod supervisor;

pub use error::BrokerError;
pub use wasmq_queue::memory;
pub use wasmq_queue::{Delivery, MemoryDelivery, MemoryQueue, QueueError, Transport};
