//! Consuming a queue: a [`Subscription`] hands out its messages as [`Incoming`] values,
//! and consumes a named queue again on the next session when the connection is lost.

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Acker, Channel, Consumer};

use super::{Client, ClientChannels, ClientSetup};
use crate::BrokerError;
use crate::amqp::{Credit, Offset, from_stream, offset_args, subscribe_private};
use crate::supervisor::{Resume, Session, Supervisor};

/// How long a consumer the broker refuses is tried again (a stream whose replica moves
/// after the loss of a node).
const CONSUME_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The pause between two tries.
const CONSUME_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// A message read from a queue.
pub struct Incoming {
    /// The message body.
    pub body: Vec<u8>,
    /// Where the sender wants an answer.
    pub reply_to: Option<String>,
    /// The sender's correlation id.
    pub correlation_id: Option<String>,
    /// The message's id.
    pub message_id: Option<String>,
    /// `None` for a stream's message: the subscription grants the stream credit itself.
    acker: Option<Acker>,
}

impl Incoming {
    /// Removes the message from its queue. After a reconnect the ack of a message read on
    /// the old connection fails: the broker has already put the message back. A stream's
    /// message is never removed, and this does nothing.
    pub async fn ack(self) -> Result<(), BrokerError> {
        let Some(acker) = self.acker else {
            return Ok(());
        };
        acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(BrokerError::ack("acking a message"))
    }
}

/// Messages from one queue, in order.
pub struct Subscription {
    consumer: Consumer,
    /// The queue's name (server-named queues get theirs here).
    pub queue: String,
    /// For a named queue: how to consume it again on a new session.
    resume: Option<Resubscribe>,
    /// The credit of a stream's consumer (used once its messages say it is a stream).
    credit: Credit,
}

/// How a subscription consumes its queue again on a new session.
struct Resubscribe {
    supervisor: Supervisor<ClientSetup>,
    prefetch: u16,
    /// The consumer's arguments (a stream's offset: from its first message again, so a
    /// reader drops what it has seen by job id).
    args: FieldTable,
    /// The session the queue is consumed on now.
    generation: u64,
}

impl Subscription {
    /// The next message; `None` when the consumer ended. A subscription to a named queue
    /// survives a lost connection: it consumes the queue again on the next session
    /// (messages read but not acked are delivered again).
    pub async fn next(&mut self) -> Option<Result<Incoming, BrokerError>> {
        loop {
            let why = match self.consumer.next().await {
                Some(Ok(d)) => {
                    let acker = if from_stream(&d.properties) {
                        self.credit.delivered(&d.acker).await;
                        None
                    } else {
                        Some(d.acker)
                    };
                    return Some(Ok(Incoming {
                        reply_to: d.properties.reply_to().as_ref().map(|s| s.to_string()),
                        correlation_id: d
                            .properties
                            .correlation_id()
                            .as_ref()
                            .map(|s| s.to_string()),
                        message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
                        body: d.data,
                        acker,
                    }));
                }
                Some(Err(e)) => BrokerError::consume(format!("reading queue {}", self.queue))(e),
                None => BrokerError::ConsumerEnded {
                    queue: self.queue.clone(),
                },
            };
            let Some(resume) = &mut self.resume else {
                return Some(Err(why));
            };
            // A stream whose replica is moving (a node of a cluster lost) can refuse a
            // consumer for a while: tried again until CONSUME_RETRY has passed.
            let deadline = tokio::time::Instant::now() + CONSUME_RETRY;
            let mut why = why;
            loop {
                let mut sessions = Resume::new(&resume.supervisor);
                sessions.lost_generation(resume.generation, why.to_string());
                let s = match sessions.session().await {
                    Ok(Some(s)) => s,
                    Ok(None) => return None,
                    Err(e) => {
                        return Some(Err(BrokerError::Resume {
                            lost: Box::new(why),
                            error: Box::new(e),
                        }));
                    }
                };
                resume.generation = s.generation;
                match consume_on(&s, &self.queue, resume.prefetch, resume.args.clone()).await {
                    Ok((_, c)) => {
                        tracing::info!(queue = %self.queue, "consuming again after a reconnect");
                        self.consumer = c;
                        self.credit.restart();
                        break;
                    }
                    Err(e) if tokio::time::Instant::now() < deadline => {
                        tracing::warn!(queue = %self.queue, error = %e, "could not consume again; retrying");
                        why = e;
                        tokio::time::sleep(CONSUME_PAUSE).await;
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
        }
    }
}

/// A consumer of `queue` on a channel of its own with `prefetch` unacked at most; the
/// channel comes back too, for a caller that closes it when done.
pub(super) async fn consume_on(
    s: &Session<ClientChannels>,
    queue: &str,
    prefetch: u16,
    args: FieldTable,
) -> Result<(Channel, Consumer), BrokerError> {
    let ch = s
        .connection()
        .create_channel()
        .await
        .map_err(BrokerError::channel("opening a channel"))?;
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(BrokerError::channel("setting the prefetch"))?;
    let consumer = ch
        .basic_consume(
            queue.into(),
            ShortString::from(""),
            BasicConsumeOptions::default(),
            args,
        )
        .await
        .map_err(BrokerError::consume(format!(
            "could not read queue {queue}"
        )))?;
    Ok((ch, consumer))
}

impl Client {
    /// Consumes an existing queue with manual acks, `prefetch` at a time; the
    /// subscription consumes it again after a reconnect.
    pub async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BrokerError> {
        self.consume_with(queue, prefetch, FieldTable::default())
            .await
    }

    /// Reads a stream (a batch's results) from its first message, `prefetch` at a time;
    /// the acks only grant credit, and nothing is removed. After a reconnect it reads
    /// from the first message again. A queue that is not a stream (a batch's queue of an
    /// older version) is consumed as a queue.
    pub async fn read_stream(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<Subscription, BrokerError> {
        match self
            .consume_with(queue, prefetch, offset_args(Offset::First))
            .await
        {
            // A queue that is not a stream refuses a stream offset.
            Err(e) if e.precondition_failed() => {
                self.consume_with(queue, prefetch, FieldTable::default())
                    .await
            }
            other => other,
        }
    }

    async fn consume_with(
        &self,
        queue: &str,
        prefetch: u16,
        args: FieldTable,
    ) -> Result<Subscription, BrokerError> {
        let deadline = tokio::time::Instant::now() + CONSUME_RETRY;
        loop {
            let s = self.session().await?;
            match consume_on(&s, queue, prefetch, args.clone()).await {
                Ok((_, consumer)) => {
                    return Ok(Subscription {
                        consumer,
                        queue: queue.to_owned(),
                        resume: Some(Resubscribe {
                            supervisor: self.supervisor.clone(),
                            prefetch,
                            args,
                            generation: s.generation,
                        }),
                        credit: Credit::new(prefetch),
                    });
                }
                // A consume the broker refused with a hard error took the connection
                // with it: on the next session. A refusal of the consume itself (not
                // found, access refused, a precondition) would only be refused again.
                Err(e)
                    if tokio::time::Instant::now() < deadline
                        && e.soft_error().is_none()
                        && !s.connection().status().connected() =>
                {
                    tracing::warn!(queue, error = %e, "could not consume; retrying");
                    Resume::new(&self.supervisor).lost_generation(s.generation, e.to_string());
                    tokio::time::sleep(CONSUME_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A private queue (deleted with this connection), bound to the control exchange when
    /// `control` is set, and consumed. It does not survive a reconnect.
    pub async fn private_queue(&self, control: bool) -> Result<Subscription, BrokerError> {
        let ch = self.channel().await?;
        let exchange = control.then(|| self.topology.control_exchange());
        let (queue, consumer) = subscribe_private(&ch, exchange.as_deref()).await?;
        Ok(Subscription {
            consumer,
            queue,
            resume: None,
            credit: Credit::new(1),
        })
    }
}
