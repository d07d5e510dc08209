//! Queue transports of wasmq: where jobs come from and where results go.
//!
//! A [`Transport`] hands out job messages as [`Delivery`] values and publishes results;
//! a delivery is acknowledged only after its result is published, or requeued when the
//! host failed. The worker's run loop is written once against this interface.
//!
//! # Layout
//! - [`memory`]: [`MemoryQueue`], the in-process queue behind `wasmq run` (no broker).
//! - [`amqp`]: RabbitMQ: [`amqp::Topology`], the worker's [`amqp::AmqpTransport`], and
//!   helpers for the client commands.
//! - [`client`]: [`client::Client`], the connection of `submit`, `results`, `prewarm`,
//!   `status` and `dead`.
//! - [`lease`]: [`lease::AmqpLeases`], compile leases across a fleet as exclusive queues.
//! - [`management`]: queue depths from RabbitMQ's management HTTP API.
//! - [`supervisor`]: [`supervisor::Supervisor`], which keeps one connection up, hands out
//!   its current session and reconnects with backoff; every connection above uses one.

pub mod amqp;
pub mod client;
pub mod lease;
pub mod management;
pub mod memory;
pub mod supervisor;

use std::future::Future;

use wasmq_spec::JobResult;

pub use memory::MemoryQueue;

/// A transport failed: the host's fault, so the job is requeued, never reported as failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);

/// One job message handed to a worker.
pub trait Delivery: Send + 'static {
    /// The message body: a job as JSON.
    fn body(&self) -> &[u8];

    /// Which delivery of this message this is (1 for the first).
    fn attempt(&self) -> u32;

    /// The tenant that published the message, as the transport verified it; `None` when
    /// the message names none or the transport cannot verify one. For RabbitMQ this is
    /// the `user_id` property, which the broker checks against the publishing
    /// connection's user.
    fn tenant(&self) -> Option<&str> {
        None
    }

    /// The job is done and its result published: remove the message.
    fn ack(self) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// The host failed: give the message back to be delivered again.
    fn requeue(self) -> impl Future<Output = Result<(), BrokerError>> + Send;
}

/// A source of jobs and a sink for results.
pub trait Transport: Send + Sync + 'static {
    /// The deliveries this transport hands out.
    type Delivery: Delivery;

    /// The next job message; `None` once the source is closed and drained.
    fn next(&self) -> impl Future<Output = Option<Self::Delivery>> + Send;

    /// Publishes the result of `delivery`'s job; returns once the result is safely stored
    /// (for a broker: confirmed), so the delivery may be acknowledged.
    fn publish(
        &self,
        result: &JobResult,
        delivery: &Self::Delivery,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Stops taking new jobs (deliveries already handed out stay valid); `next` returns
    /// `None` once it has.
    fn stop_consuming(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// How many deliveries the worker may take ahead of the jobs it runs; `None` when
    /// the transport bounds that itself (a broker's prefetch).
    fn local_buffer(&self) -> Option<usize> {
        Some(64)
    }

    /// Deliveries of one message after which a host fault is reported as an
    /// `internal_error` result instead of a requeue; `None` when the transport itself
    /// enforces a limit (a broker's delivery limit and dead-letter queue).
    fn redelivery_limit(&self) -> Option<u32> {
        Some(3)
    }
}
