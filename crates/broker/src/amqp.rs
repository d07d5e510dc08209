//! RabbitMQ over AMQP 0-9-1 (lapin): topology, the worker's transport, and the client
//! side used by `submit`, `results` and `prewarm --broadcast`.
//!
//! The worker's transport owns its reconnect loop rather than relying on lapin's
//! automatic recovery: when the connection or a channel fails, the session is dropped and
//! rebuilt with backoff (connect, declare the topology, set up channels), and the consumer
//! is recreated on the new session. Deliveries taken on the old session cannot be acked
//! any more; the broker redelivers them, which is why every result carries the job id and
//! the attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery as LapinDelivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use tracing::{info, warn};
use wasmq_spec::{JobResult, Status};

use crate::{BrokerError, Delivery, Transport};

fn err(context: &str) -> impl FnOnce(lapin::Error) -> BrokerError + '_ {
    move |e| BrokerError(format!("{context}: {e}"))
}

/// The names of everything wasmq declares, all under one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Prefix of every name (`wasmq` by default), so deployments and tests can share a
    /// broker.
    pub prefix: String,
    /// Deliveries of one job message before the broker dead-letters it.
    pub delivery_limit: u32,
}

impl Topology {
    /// The quorum queue jobs are published to.
    pub fn jobs_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// Where messages go after the delivery limit.
    pub fn dead_queue(&self) -> String {
        format!("{}.jobs.dead", self.prefix)
    }

    /// The dead-letter exchange of the jobs queue.
    pub fn dead_exchange(&self) -> String {
        format!("{}.jobs.dlx", self.prefix)
    }

    /// The topic exchange results are published to, routing key `<batch>.<status>`.
    pub fn results_exchange(&self) -> String {
        format!("{}.results", self.prefix)
    }

    /// The default results queue, bound to every result.
    pub fn results_queue(&self) -> String {
        format!("{}.results", self.prefix)
    }

    /// The fanout exchange for broadcasts to every worker.
    pub fn control_exchange(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// A batch's own result queue.
    pub fn batch_queue(&self, batch: &str) -> String {
        format!("{}.batch.{batch}", self.prefix)
    }

    /// The routing key of a result: `<batch>.<status>` (`_` when there is no batch).
    pub fn result_routing_key(batch: Option<&str>, status: Status) -> String {
        format!("{}.{}", batch.unwrap_or("_"), status.as_str())
    }

    /// Declares every exchange and queue; safe to repeat (each declaration is idempotent
    /// as long as the arguments agree).
    pub async fn declare(&self, ch: &Channel) -> Result<(), BrokerError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            self.dead_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(err("declaring the dead-letter exchange"))?;
        ch.queue_declare(self.dead_queue().into(), durable_queue(), quorum_args(None))
            .await
            .map_err(err("declaring the dead-letter queue"))?;
        ch.queue_bind(
            self.dead_queue().into(),
            self.dead_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err("binding the dead-letter queue"))?;
        let mut jobs_args = quorum_args(Some(self.delivery_limit));
        jobs_args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_exchange().into()),
        );
        ch.queue_declare(self.jobs_queue().into(), durable_queue(), jobs_args)
            .await
            .map_err(|e| {
                BrokerError(format!(
                    "declaring the jobs queue {} (if it exists with another delivery limit, use the same --delivery-limit everywhere): {e}",
                    self.jobs_queue()
                ))
            })?;
        ch.exchange_declare(
            self.results_exchange().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(err("declaring the results exchange"))?;
        ch.queue_declare(
            self.results_queue().into(),
            durable_queue(),
            quorum_args(None),
        )
        .await
        .map_err(err("declaring the results queue"))?;
        ch.queue_bind(
            self.results_queue().into(),
            self.results_exchange().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err("binding the results queue"))?;
        ch.exchange_declare(
            self.control_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(err("declaring the control exchange"))?;
        Ok(())
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn quorum_args(delivery_limit: Option<u32>) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    if let Some(limit) = delivery_limit {
        args.insert("x-delivery-limit".into(), AMQPValue::LongInt(limit as i32));
    }
    args
}

/// Opens a connection named `name` (shown in the broker's management tools).
pub async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .map_err(|e| {
        BrokerError(format!(
            "could not connect to the broker at {}: {e}",
            redact(url)
        ))
    })
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The user a connection to `url` authenticates as, percent-decoded (`guest` when the URL
/// names none): the `user_id` RabbitMQ accepts on that connection's messages. `None` when
/// the URL does not parse, uses EXTERNAL or ANONYMOUS authentication (the user comes from
/// the client certificate or the broker, not the URL), or names a user too long for the
/// property.
pub fn url_user(url: &str) -> Option<String> {
    use lapin::uri::{AMQPUri, SASLMechanism};
    let uri: AMQPUri = url.parse().ok()?;
    if matches!(
        uri.query.auth_mechanism,
        Some(SASLMechanism::External | SASLMechanism::Anonymous)
    ) {
        return None;
    }
    let user = uri.authority.userinfo.username;
    (user.len() <= 255).then_some(user)
}

/// JSON, persistent.
pub fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
}

/// Publishes and waits for the broker's confirm; a nack, or a return of a mandatory
/// message, is an error.
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), BrokerError> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory,
                ..Default::default()
            },
            body,
            props,
        )
        .await
        .map_err(err("publishing"))?
        .await
        .map_err(err("waiting for the publish confirm"))?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => Err(BrokerError(format!(
            "the broker could not route the message (exchange {exchange:?}, routing key {routing_key:?})"
        ))),
        Confirmation::Nack(_) => Err(BrokerError("the broker refused the message (nack)".into())),
    }
}

/// Settings of the worker's transport.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (or `amqps://` with the `tls` feature).
    pub url: String,
    /// Names and arguments.
    pub topology: Topology,
    /// Unacked deliveries at once: the jobs running plus the results awaiting confirms.
    pub prefetch: u16,
    /// Name of the connection on the broker (shown in its tools).
    pub connection_name: String,
}

/// One connection with its two channels.
struct Session {
    generation: u64,
    conn: Connection,
    consume: Channel,
    /// In confirm mode: every result publish waits for the broker's ack.
    publish: Channel,
}

/// The worker's transport on RabbitMQ: consumes the jobs queue, publishes results with
/// confirms, reconnects with backoff.
pub struct AmqpTransport {
    config: AmqpConfig,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    consumer: tokio::sync::Mutex<Option<(u64, Consumer)>>,
    generation: AtomicU64,
    stopped: AtomicBool,
}

/// A job message taken from RabbitMQ.
pub struct AmqpDelivery {
    data: Vec<u8>,
    attempt: u32,
    /// The `user_id` property: RabbitMQ refuses a publish whose `user_id` is not the
    /// publishing connection's user, so a present one is verified.
    user_id: Option<ShortString>,
    acker: Acker,
    reply_to: Option<ShortString>,
    correlation_id: Option<ShortString>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl AmqpTransport {
    /// Connects and declares the topology; fails when the broker cannot be reached now
    /// (later losses are retried forever).
    pub async fn connect(config: AmqpConfig) -> Result<AmqpTransport, BrokerError> {
        let t = AmqpTransport {
            config,
            session: tokio::sync::Mutex::new(None),
            consumer: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        };
        let s = t.open_session().await?;
        *t.session.lock().await = Some(Arc::new(s));
        Ok(t)
    }

    async fn open_session(&self) -> Result<Session, BrokerError> {
        let conn = connect(&self.config.url, &self.config.connection_name).await?;
        let consume = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        self.config.topology.declare(&consume).await?;
        let publish = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(err("enabling publisher confirms"))?;
        Ok(Session {
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
            conn,
            consume,
            publish,
        })
    }

    /// The live session, reconnecting with backoff until one is had.
    async fn session(&self) -> Arc<Session> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref()
            && s.conn.status().connected()
        {
            return s.clone();
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match self.open_session().await {
                Ok(s) => {
                    info!(generation = s.generation, "connected to the broker");
                    let s = Arc::new(s);
                    *guard = Some(s.clone());
                    return s;
                }
                Err(e) => {
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "broker unreachable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Drops the session of `generation` (if still current) so the next use reconnects.
    async fn invalidate(&self, generation: u64) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| s.generation == generation) {
            let s = guard.take().expect("checked");
            tokio::spawn(async move {
                let _ = s.conn.close(320, "wasmq reconnecting".into()).await;
            });
        }
    }

    async fn start_consumer(&self, s: &Session) -> Result<Consumer, BrokerError> {
        s.consume
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await
            .map_err(err("setting the prefetch"))?;
        s.consume
            .basic_consume(
                self.config.topology.jobs_queue().into(),
                format!("{}-{}", self.config.connection_name, s.generation).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err("starting to consume the jobs queue"))
    }

    fn to_delivery(d: LapinDelivery) -> AmqpDelivery {
        // Quorum queues count earlier deliveries in `x-delivery-count`.
        let count = d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count").and_then(as_u64));
        let attempt = match count {
            Some(n) => n as u32 + 1,
            None if d.redelivered => 2,
            None => 1,
        };
        AmqpDelivery {
            attempt,
            user_id: d.properties.user_id().clone(),
            reply_to: d.properties.reply_to().clone(),
            correlation_id: d.properties.correlation_id().clone(),
            acker: d.acker,
            data: d.data,
        }
    }
}

fn as_u64(v: &AMQPValue) -> Option<u64> {
    match v {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::Timestamp(n) => Some(*n),
        _ => None,
    }
}

impl Transport for AmqpTransport {
    type Delivery = AmqpDelivery;

    async fn next(&self) -> Option<AmqpDelivery> {
        let mut delay = Duration::from_millis(100);
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return None;
            }
            let s = self.session().await;
            let mut consumer = self.consumer.lock().await;
            if consumer.as_ref().is_none_or(|(g, _)| *g != s.generation) {
                match self.start_consumer(&s).await {
                    Ok(c) => *consumer = Some((s.generation, c)),
                    Err(e) => {
                        warn!(error = %e, "could not start consuming; reconnecting");
                        drop(consumer);
                        self.invalidate(s.generation).await;
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let (_, c) = consumer.as_mut().expect("set above");
            match c.next().await {
                Some(Ok(d)) => return Some(Self::to_delivery(d)),
                Some(Err(e)) => {
                    warn!(error = %e, "lost the broker connection; reconnecting");
                }
                None if self.stopped.load(Ordering::SeqCst) => return None,
                None => warn!("the broker cancelled the consumer; reconnecting"),
            }
            *consumer = None;
            drop(consumer);
            self.invalidate(s.generation).await;
        }
    }

    async fn publish(
        &self,
        result: &JobResult,
        delivery: &AmqpDelivery,
    ) -> Result<(), BrokerError> {
        let s = self.session().await;
        let body = serde_json::to_vec(result)
            .map_err(|e| BrokerError(format!("encoding a result: {e}")))?;
        let mut props = json_properties().with_message_id(result.id.as_str().into());
        if let Some(c) = &delivery.correlation_id {
            props = props.with_correlation_id(c.clone());
        }
        let t = &self.config.topology;
        // Every publish is mandatory: a result the broker cannot route is an error (the job
        // is requeued and, past the delivery limit, dead-lettered), never a silent drop.
        let outcome = match &delivery.reply_to {
            Some(reply_to) => {
                let direct = publish_confirmed(
                    &s.publish,
                    "",
                    reply_to.as_str(),
                    true,
                    &body,
                    props.clone(),
                )
                .await;
                match direct {
                    Err(e) if s.conn.status().connected() && s.publish.status().connected() => {
                        warn!(job = %result.id, reply_to = %reply_to, error = %e, "reply queue unreachable; publishing to the results exchange");
                        let key =
                            Topology::result_routing_key(result.batch.as_deref(), result.status);
                        publish_confirmed(
                            &s.publish,
                            &t.results_exchange(),
                            &key,
                            true,
                            &body,
                            props,
                        )
                        .await
                    }
                    other => other,
                }
            }
            None => {
                let key = Topology::result_routing_key(result.batch.as_deref(), result.status);
                publish_confirmed(&s.publish, &t.results_exchange(), &key, true, &body, props).await
            }
        };
        if outcome.is_err() && !(s.conn.status().connected() && s.publish.status().connected()) {
            self.invalidate(s.generation).await;
        }
        outcome
    }

    async fn stop_consuming(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(s) = self.session.lock().await.clone() {
            let tag = format!("{}-{}", self.config.connection_name, s.generation);
            if let Err(e) = s
                .consume
                .basic_cancel(tag.into(), BasicCancelOptions::default())
                .await
            {
                warn!(error = %e, "could not cancel the consumer");
            }
        }
    }

    fn redelivery_limit(&self) -> Option<u32> {
        None
    }
}

impl AmqpTransport {
    /// Closes the connection; unacked deliveries go back to the queue.
    pub async fn close(&self) {
        if let Some(s) = self.session.lock().await.take() {
            let _ = s.conn.close(200, "wasmq worker stopping".into()).await;
        }
    }
}

impl Delivery for AmqpDelivery {
    fn body(&self) -> &[u8] {
        &self.data
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    fn tenant(&self) -> Option<&str> {
        self.user_id.as_ref().map(|u| u.as_str())
    }

    async fn ack(self) -> Result<(), BrokerError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(err("acking a job"))
    }

    async fn requeue(self) -> Result<(), BrokerError> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(err("requeueing a job"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        let t = Topology {
            prefix: "p".into(),
            delivery_limit: 5,
        };
        assert_eq!(t.jobs_queue(), "p.jobs");
        assert_eq!(t.batch_queue("b1"), "p.batch.b1");
        assert_eq!(
            Topology::result_routing_key(Some("b1"), Status::TimedOut),
            "b1.timed_out"
        );
        assert_eq!(
            Topology::result_routing_key(None, Status::Succeeded),
            "_.succeeded"
        );
    }

    #[test]
    fn the_url_user_is_percent_decoded() {
        assert_eq!(
            url_user("amqp://al%40ice:p%3Ass@h:5672/%2f").as_deref(),
            Some("al@ice")
        );
        assert_eq!(url_user("amqp://h:5672/%2f").as_deref(), Some("guest"));
        assert_eq!(url_user("amqp://u:p@h/%2f?auth_mechanism=external"), None);
        assert_eq!(url_user("not a url"), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("amqp://guest:secret@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(redact("amqp://h"), "amqp://h");
    }
}
