//! The client side of RabbitMQ for the commands: publishing jobs with confirms, reading
//! result queues, broadcasting on the control exchange and answering broadcasts.

use std::collections::VecDeque;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Acker, Channel, Confirmation, Connection, Consumer, PublisherConfirm};

use crate::BrokerError;
use crate::amqp::{Topology, connect, json_properties, publish_confirmed, url_user};

fn err(context: &str) -> impl FnOnce(lapin::Error) -> BrokerError + '_ {
    move |e| BrokerError(format!("{context}: {e}"))
}

/// A connection for one command, with the topology declared and a confirming channel.
pub struct Client {
    conn: Connection,
    ch: Channel,
    topology: Topology,
    /// The connection's user, set as `user_id` on job messages (see [`url_user`]).
    user: Option<ShortString>,
}

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
    /// Removes the message from its queue.
    pub async fn ack(self) -> Result<(), BrokerError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(err("acking a message"))
    }
}

/// Messages from one queue, in order.
pub struct Subscription {
    consumer: Consumer,
    /// The queue's name (server-named queues get theirs here).
    pub queue: String,
}

impl Subscription {
    /// The next message; `None` when the consumer ended.
    pub async fn next(&mut self) -> Option<Result<Incoming, BrokerError>> {
        let d = self.consumer.next().await?;
        Some(d.map_err(err("reading a queue")).map(|d| {
            Incoming {
                reply_to: d.properties.reply_to().as_ref().map(|s| s.to_string()),
                correlation_id: d
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|s| s.to_string()),
                body: d.data,
                acker: d.acker,
            }
        }))
    }
}

impl Client {
    /// Connects (the connection is named `name` on the broker) and declares the topology.
    pub async fn connect(url: &str, name: &str, topology: Topology) -> Result<Client, BrokerError> {
        let conn = connect(url, name).await?;
        let ch = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        topology.declare(&ch).await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(err("enabling publisher confirms"))?;
        Ok(Client {
            conn,
            ch,
            topology,
            user: url_user(url).map(ShortString::from),
        })
    }

    /// The `user_id` this client's job messages carry: the user of its connection, which
    /// the broker verifies, so workers know the jobs' tenant.
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.as_str())
    }

    /// A new channel on this client's connection.
    async fn channel(&self) -> Result<Channel, BrokerError> {
        self.conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))
    }

    /// The names this client uses.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Declares a batch's own result queue, bound to `<batch>.#` on the results exchange,
    /// deleted by the broker after `idle_ms` without consumers or use.
    pub async fn declare_batch_queue(
        &self,
        batch: &str,
        idle_ms: u32,
    ) -> Result<String, BrokerError> {
        let t = &self.topology;
        let name = t.batch_queue(batch);
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongUInt(idle_ms));
        self.ch
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await
            .map_err(err("declaring the batch result queue"))?;
        self.ch
            .queue_bind(
                name.as_str().into(),
                t.results_exchange().into(),
                format!("{batch}.#").into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err("binding the batch result queue"))?;
        Ok(name)
    }

    /// Publishes job messages (id, JSON body) to the jobs queue, persistent, keeping up to
    /// `window` unconfirmed at once; `on_confirmed` is told how many were confirmed so far.
    /// Returns once every message is confirmed. Each carries the connection's user as its
    /// `user_id` ([`Client::user`]), its verified tenant.
    pub async fn publish_jobs(
        &self,
        jobs: impl IntoIterator<Item = (String, Vec<u8>)>,
        window: usize,
        mut on_confirmed: impl FnMut(u64),
    ) -> Result<u64, BrokerError> {
        let queue = self.topology.jobs_queue();
        let mut pending: VecDeque<PublisherConfirm> = VecDeque::new();
        let mut confirmed = 0u64;
        for (id, body) in jobs {
            if pending.len() >= window.max(1) {
                check(pending.pop_front().expect("non-empty").await)?;
                confirmed += 1;
                on_confirmed(confirmed);
            }
            let mut props = json_properties().with_message_id(id.into());
            if let Some(user) = &self.user {
                props = props.with_user_id(user.clone());
            }
            let confirm = self
                .ch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .map_err(err("publishing a job"))?;
            pending.push_back(confirm);
        }
        while let Some(c) = pending.pop_front() {
            check(c.await)?;
            confirmed += 1;
            on_confirmed(confirmed);
        }
        Ok(confirmed)
    }

    /// Publishes one JSON message straight to a queue (through the default exchange).
    pub async fn send_to_queue(
        &self,
        queue: &str,
        body: &[u8],
        correlation_id: Option<&str>,
    ) -> Result<(), BrokerError> {
        let mut props = json_properties();
        if let Some(c) = correlation_id {
            props = props.with_correlation_id(c.into());
        }
        publish_confirmed(&self.ch, "", queue, true, body, props).await
    }

    /// Sends `body` to every worker on the control exchange, answers to `reply_to`.
    pub async fn broadcast(
        &self,
        body: &[u8],
        reply_to: &str,
        correlation_id: &str,
    ) -> Result<(), BrokerError> {
        let props = json_properties()
            .with_reply_to(reply_to.into())
            .with_correlation_id(correlation_id.into());
        publish_confirmed(
            &self.ch,
            &self.topology.control_exchange(),
            "",
            false,
            body,
            props,
        )
        .await
    }

    /// (messages ready, consumers) of a queue that must exist.
    pub async fn queue_counts(&self, queue: &str) -> Result<(u32, u32), BrokerError> {
        let ch = self.channel().await?;
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| BrokerError(format!("queue {queue} does not exist (or expired): {e}")))?;
        let counts = (q.message_count(), q.consumer_count());
        let _ = ch.close(200, "done".into()).await;
        Ok(counts)
    }

    /// Consumes an existing queue with manual acks, `prefetch` at a time.
    pub async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BrokerError> {
        let ch = self.channel().await?;
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(err("setting the prefetch"))?;
        let consumer = ch
            .basic_consume(
                queue.into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| BrokerError(format!("could not read queue {queue}: {e}")))?;
        Ok(Subscription {
            consumer,
            queue: queue.to_owned(),
        })
    }

    /// A private queue (deleted with this connection), bound to the control exchange when
    /// `control` is set, and consumed.
    pub async fn private_queue(&self, control: bool) -> Result<Subscription, BrokerError> {
        let ch = self.channel().await?;
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(err("declaring a private queue"))?;
        let name = q.name().to_string();
        if control {
            ch.queue_bind(
                name.as_str().into(),
                self.topology.control_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err("binding to the control exchange"))?;
        }
        let consumer = ch
            .basic_consume(
                name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err("consuming a private queue"))?;
        Ok(Subscription {
            consumer,
            queue: name,
        })
    }

    /// Closes the connection after every publish is confirmed.
    pub async fn close(self) {
        let _ = self.ch.wait_for_confirms().await;
        let _ = self.conn.close(200, "done".into()).await;
    }
}

fn check(c: Result<Confirmation, lapin::Error>) -> Result<(), BrokerError> {
    match c.map_err(err("waiting for a publish confirm"))? {
        Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
        Confirmation::Nack(_) => Err(BrokerError(
            "the broker refused a job message (nack)".into(),
        )),
    }
}
