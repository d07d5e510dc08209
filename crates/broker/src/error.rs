//! [`BrokerError`]: what failed on the way to RabbitMQ, with the library error behind it.

use std::sync::Arc;

use lapin::protocol::AMQPSoftError;
use wasmq_cache::ErrorChain;

/// A transport failed: the host's fault, so the job is requeued, never reported as failed.
///
/// Each variant says what was being done, and keeps the library error behind it (the AMQP
/// error: [`BrokerError::amqp`]), which is classified by its kind
/// ([`BrokerError::soft_error`]), never by its text. The message quotes that error, so a
/// log line or a command's error says everything at once; for that reason the error is
/// not handed out again as [`Error::source`], which would print it twice in a chain
/// (`{:#}`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// Opening a connection to a node failed.
    #[error("could not connect to the broker at {node}: {error}")]
    Connect {
        /// The node's URL, password redacted.
        node: String,
        /// The AMQP error.
        error: lapin::Error,
    },
    /// A node accepted the connection, but setting the session up on it failed.
    #[error("{node}: {error}")]
    Setup {
        /// The node's URL, password redacted.
        node: String,
        /// What failed.
        error: Box<BrokerError>,
    },
    /// No node could be connected to and set up: the failure of each, in order.
    #[error("{}", join(.0))]
    Unreachable(Vec<BrokerError>),
    /// The connection could not be opened again within the reconnect window.
    #[error("{error} (gave up after {after_secs} s of failed attempts)")]
    GaveUp {
        /// How long it tried, in seconds.
        after_secs: u64,
        /// The last attempt's failure.
        error: Box<BrokerError>,
    },
    /// The connection is shutting down (as asked), so nothing more goes over it.
    #[error("shutting down")]
    ShuttingDown,
    /// The connection of a command is closed.
    #[error("the broker connection is closed")]
    Closed,
    /// The worker's connection closed before a result could be published.
    #[error("the broker connection is closing; the result was not published")]
    Closing,
    /// Opening or setting up a channel failed (confirms, prefetch).
    #[error("{what}: {error}")]
    Channel {
        /// What was being done.
        what: String,
        /// The AMQP error.
        error: lapin::Error,
    },
    /// Declaring or binding an exchange or a queue failed.
    #[error("{what}: {error}")]
    Declare {
        /// What was being declared or bound (and, for some, what to do about it).
        what: String,
        /// The AMQP error.
        error: lapin::Error,
    },
    /// Binding a tenant's batch queue was refused: no worker with the tenant's policy
    /// has declared its jobs queue yet, so its results do not go through its own queues.
    #[error(
        "declaring or binding the batch's results stream: {error} (a tenant's results come through its own queues once a worker with its policy has declared its jobs queue {jobs_queue}: start one first)"
    )]
    NoTenantQueue {
        /// The tenant's jobs queue.
        jobs_queue: String,
        /// The AMQP error (`ACCESS_REFUSED`).
        error: lapin::Error,
    },
    /// A batch name that makes a result queue name longer than RabbitMQ allows.
    #[error(
        "batch {batch:?} makes a result queue name of {len} bytes for this user, above RabbitMQ's 255; use a shorter batch name"
    )]
    BatchNameTooLong {
        /// The batch.
        batch: String,
        /// The length of the queue name.
        len: usize,
    },
    /// A batch's results stream cannot be declared: a queue of that name exists, made by
    /// an older `submit` (a quorum queue).
    #[error(
        "the batch's results queue {queue} exists as a queue of an older wasmq (deleted after a day unused): submit under another batch name, or delete it ({error})"
    )]
    BatchQueueExists {
        /// The queue.
        queue: String,
        /// The broker's refusal.
        error: lapin::Error,
    },
    /// Starting a consumer, or reading messages from one, failed.
    #[error("{what}: {error}")]
    Consume {
        /// What was being consumed.
        what: String,
        /// The AMQP error.
        error: lapin::Error,
    },
    /// The broker ended the consumer of a queue.
    #[error("the consumer of queue {queue} ended")]
    ConsumerEnded {
        /// The queue.
        queue: String,
    },
    /// A subscription lost its session and could not resume on a new one.
    #[error("{lost}; {error}")]
    Resume {
        /// What ended the subscription's session.
        lost: Box<BrokerError>,
        /// Why there is no new session.
        error: Box<BrokerError>,
    },
    /// Publishing a message, or waiting for its confirm, failed.
    #[error("{what}: {error}")]
    Publish {
        /// What was being published.
        what: String,
        /// The AMQP error.
        error: lapin::Error,
    },
    /// A mandatory message was returned: nothing is bound to its routing key.
    #[error(
        "the broker could not route the message (exchange {exchange:?}, routing key {routing_key:?})"
    )]
    Unroutable {
        /// The exchange it was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
    },
    /// The broker refused a message (a negative confirm).
    #[error("the broker refused {what} (nack)")]
    Refused {
        /// Which message.
        what: &'static str,
    },
    /// Moving a dead-lettered job of another user needs a broker user allowed to
    /// impersonate it.
    #[error(
        "{error} (the job's user_id is {user_id:?}: moving another user's job needs a broker user with RabbitMQ's impersonator tag)"
    )]
    Impersonation {
        /// The job's `user_id`.
        user_id: String,
        /// The failed publish.
        error: Box<BrokerError>,
    },
    /// Acknowledging or requeueing a message failed.
    #[error("{what}: {error}")]
    Ack {
        /// What was being acknowledged.
        what: String,
        /// The AMQP error.
        error: lapin::Error,
    },
    /// Asking the broker about a queue, or purging one, failed.
    #[error("{what}: {error}")]
    Queue {
        /// What was asked.
        what: String,
        /// The AMQP error.
        error: lapin::Error,
    },
    /// A message could not be encoded as JSON.
    #[error("encoding a message: {error}")]
    Encode {
        /// The JSON error.
        error: Arc<serde_json::Error>,
    },
    /// Waiting on the broker took longer than its limit.
    #[error("timed out {what}")]
    Timeout {
        /// What was waited for.
        what: String,
    },
    /// No broker URL was given.
    #[error("no broker URL")]
    NoUrl,
    /// An AMQP URL that does not parse.
    #[error("invalid AMQP URL: {0}")]
    InvalidUrl(String),
    /// The management HTTP API could not be set up, reached, or answered with an error.
    #[error("the management API at {base} answered: {}", ErrorChain(&**.error))]
    Management {
        /// The API's base URL.
        base: String,
        /// The HTTP error.
        error: Arc<reqwest::Error>,
    },
    /// The management HTTP API sent a body that is not the expected JSON.
    #[error("the management API at {base} sent: {}", ErrorChain(&**.error))]
    ManagementBody {
        /// The API's base URL.
        base: String,
        /// The HTTP (decoding) error.
        error: Arc<reqwest::Error>,
    },
}

fn join(errors: &[BrokerError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl BrokerError {
    /// The AMQP error behind this one, if there is one (for a list of failed attempts,
    /// the last one's).
    pub fn amqp(&self) -> Option<&lapin::Error> {
        match self {
            BrokerError::Connect { error, .. }
            | BrokerError::Channel { error, .. }
            | BrokerError::Declare { error, .. }
            | BrokerError::NoTenantQueue { error, .. }
            | BrokerError::BatchQueueExists { error, .. }
            | BrokerError::Consume { error, .. }
            | BrokerError::Publish { error, .. }
            | BrokerError::Ack { error, .. }
            | BrokerError::Queue { error, .. } => Some(error),
            BrokerError::Setup { error, .. }
            | BrokerError::GaveUp { error, .. }
            | BrokerError::Impersonation { error, .. } => error.amqp(),
            BrokerError::Resume { lost, .. } => lost.amqp(),
            BrokerError::Unreachable(errors) => errors.last().and_then(BrokerError::amqp),
            _ => None,
        }
    }

    /// Whether the broker refused this user the operation (its permissions).
    pub fn access_refused(&self) -> bool {
        self.soft_error() == Some(AMQPSoftError::ACCESSREFUSED)
    }

    /// Whether the broker refused what was asked of an existing queue or exchange (as
    /// a queue that is not a stream refuses a stream offset).
    pub fn precondition_failed(&self) -> bool {
        self.soft_error() == Some(AMQPSoftError::PRECONDITIONFAILED)
    }

    /// Whether the broker answered that the queue or exchange does not exist.
    pub fn not_found(&self) -> bool {
        self.soft_error() == Some(AMQPSoftError::NOTFOUND)
    }

    /// The soft AMQP error (one that closed a channel, not the connection) behind this
    /// one: `NOT_FOUND`, `ACCESS_REFUSED`, `RESOURCE_LOCKED`, ...
    pub fn soft_error(&self) -> Option<AMQPSoftError> {
        self.amqp().and_then(crate::supervisor::soft_error)
    }

    /// A failure to open or set up a channel, as `what`.
    pub(crate) fn channel(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> BrokerError {
        let what = what.into();
        move |error| BrokerError::Channel { what, error }
    }

    /// A failure to declare or bind, as `what`.
    pub(crate) fn declare(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> BrokerError {
        let what = what.into();
        move |error| BrokerError::Declare { what, error }
    }

    /// A failure to consume, as `what`.
    pub(crate) fn consume(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> BrokerError {
        let what = what.into();
        move |error| BrokerError::Consume { what, error }
    }

    /// A failure to publish, as `what`.
    pub(crate) fn publish(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> BrokerError {
        let what = what.into();
        move |error| BrokerError::Publish { what, error }
    }

    /// A failure to acknowledge, as `what`.
    pub(crate) fn ack(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> BrokerError {
        let what = what.into();
        move |error| BrokerError::Ack { what, error }
    }

    /// A failure to ask about (or purge) a queue, as `what`.
    pub(crate) fn queue(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> BrokerError {
        let what = what.into();
        move |error| BrokerError::Queue { what, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_say_what_failed() {
        let refused = BrokerError::Refused {
            what: "a job message",
        };
        assert_eq!(
            refused.to_string(),
            "the broker refused a job message (nack)"
        );
        let gave_up = BrokerError::GaveUp {
            after_secs: 300,
            error: Box::new(BrokerError::Unreachable(vec![
                BrokerError::Closed,
                BrokerError::NoUrl,
            ])),
        };
        assert_eq!(
            gave_up.to_string(),
            "the broker connection is closed; no broker URL (gave up after 300 s of failed attempts)"
        );
        assert!(gave_up.amqp().is_none());
    }
}
