//! Consuming a queue: a [`Subscription`] hands out its messages as [`Incoming`] values,
//! and consumes a named queue again on the next session when the connection is lost.

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Acker, Channel, Consumer};

use super::{Client, ClientChannels, ClientSetup};
use crate::BrokerError;
use crate::amqp::subscribe_private;
use crate::supervisor::{Resume, Session, Supervisor};

/// A message read from a queue.
pub struct Incoming {
    /// The message body.
    pub body: Vec<u8>,
    /// Where the sender wants an answer.
    pub reply_to: Option<String>,
    /// The sender's correlation id.
    pub correlation_id: Option<String>,
    acker: Acker,
}

impl Incoming {
    /// Removes the message from its queue. After a reconnect the ack of a message read on
    /// the old connection fails: the broker has already put the message back.
    pub async fn ack(self) -> Result<(), BrokerError> {
        self.acker
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
}

/// How a subscription consumes its queue again on a new session.
struct Resubscribe {
    supervisor: Supervisor<ClientSetup>,
    prefetch: u16,
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
                    return Some(Ok(Incoming {
                        reply_to: d.properties.reply_to().as_ref().map(|s| s.to_string()),
                        correlation_id: d
                            .properties
                            .correlation_id()
                            .as_ref()
                            .map(|s| s.to_string()),
                        body: d.data,
                        acker: d.acker,
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
            match consume_on(&s, &self.queue, resume.prefetch)
                .await
                .map(|(_, c)| c)
            {
                Ok(c) => {
                    tracing::info!(queue = %self.queue, "consuming again after a reconnect");
                    self.consumer = c;
                }
                Err(e) => return Some(Err(e)),
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
            FieldTable::default(),
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
        let s = self.session().await?;
        let (_, consumer) = consume_on(&s, queue, prefetch).await?;
        Ok(Subscription {
            consumer,
            queue: queue.to_owned(),
            resume: Some(Resubscribe {
                supervisor: self.supervisor.clone(),
                prefetch,
                generation: s.generation,
            }),
        })
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
        })
    }
}
