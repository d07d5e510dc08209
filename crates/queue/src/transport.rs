//! The interface between the worker and whatever carries its jobs.

use std::future::Future;

use wasmq_spec::JobResult;

/// One job message handed to a worker.
pub trait Delivery: Send + 'static {
    /// Why acknowledging or requeueing failed: a transport failure, the host's fault, so
    /// the job is requeued (or redelivered), never reported as failed.
    type Error: std::error::Error + Send + Sync + 'static;

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
    fn ack(self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The host failed: give the message back to be delivered again.
    fn requeue(self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A source of jobs and a sink for results.
pub trait Transport: Send + Sync + 'static {
    /// A failure of the transport: the host's fault, so the job is requeued, never
    /// reported as failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The deliveries this transport hands out.
    type Delivery: Delivery<Error = Self::Error>;

    /// The next job message; `None` once the source is closed and drained.
    fn next(&self) -> impl Future<Output = Option<Self::Delivery>> + Send;

    /// Publishes the result of `delivery`'s job; returns once the result is safely stored
    /// (for a broker: confirmed), so the delivery may be acknowledged.
    fn publish(
        &self,
        result: &JobResult,
        delivery: &Self::Delivery,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

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
