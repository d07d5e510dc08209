//! The queue interface of wasmq: where jobs come from and where results go.
//!
//! A [`Transport`] hands out job messages as [`Delivery`] values and publishes results;
//! a delivery is acknowledged only after its result is published, or requeued when the
//! host failed. The worker's run loop is written once against this interface, whatever
//! carries the jobs: the in-process [`MemoryQueue`] of `wasmq run`, or a broker (the
//! RabbitMQ transport of `wasmq-broker`).
//!
//! # Layout
//! - [`transport`]: the [`Transport`] and [`Delivery`] traits.
//! - [`link`]: [`link::LinkObserver`], told when a transport's link to its broker comes
//!   up, goes down, or is blocked by the broker.
//! - [`memory`]: [`MemoryQueue`], the in-process queue behind `wasmq run` (no broker), and
//!   its error, [`QueueError`].

pub mod link;
pub mod memory;
pub mod transport;

pub use memory::{MemoryDelivery, MemoryQueue, QueueError};
pub use transport::{Delivery, Transport};
