//! RabbitMQ over AMQP 0-9-1 (lapin): topology, the worker's transport, and the client
//! side used by `submit`, `results` and `prewarm --broadcast`.
//!
//! Connections are kept by a [`Supervisor`] (see [`crate::supervisor`]) rather than by
//! lapin's automatic recovery: when the connection or a channel fails, the session is
//! dropped and rebuilt with backoff (connect, declare the topology, set up channels), and
//! the jobs consumer is recreated on the new session.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
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
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wasmq_spec::{JobResult, Status};

use crate::supervisor::{LinkObserver, Session, Setup, Supervisor, SupervisorConfig};
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
    /// The shared results queue's retention.
    pub results_retention: Retention,
}

/// How long the shared results queue keeps results nobody reads, and how many. At the
/// limit the broker drops the oldest results (`drop-head`): a publish is still confirmed,
/// so a full results queue never makes a worker requeue a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Results older than this are dropped (`x-message-ttl`); 0: no age limit.
    pub ttl_secs: u32,
    /// At most this many results are kept (`x-max-length`); 0: no length limit.
    pub max_length: u32,
}

impl Retention {
    /// Seven days, one million results.
    pub const DEFAULT: Retention = Retention {
        ttl_secs: 7 * 24 * 3600,
        max_length: 1_000_000,
    };
}

impl Topology {
    /// The quorum queue jobs are published to.
    pub fn jobs_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// The jobs queue of one tenant of the workers (`<prefix>.jobs.t.<user>`): its jobs
    /// from `submit` wait here, apart from everyone else's, so a worker can take them in
    /// turn with other tenants' (fair share).
    pub fn tenant_jobs_queue(&self, user: &str) -> String {
        format!("{}.jobs.t.{}", self.prefix, Self::user_word(user))
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

    /// The stream that keeps every control message (cancels among them) for a day, so a
    /// worker that starts or reconnects reads the cancels it missed.
    pub fn control_log(&self) -> String {
        format!("{}.control.log", self.prefix)
    }

    /// A batch's own result queue, for jobs without a `user_id` (see
    /// [`Topology::private_batch_queue`] for the others).
    pub fn batch_queue(&self, batch: &str) -> String {
        format!("{}.batch.{batch}", self.prefix)
    }

    /// The routing key of a result on the shared results exchange: `<batch>.<status>`
    /// (`_` when there is no batch).
    pub fn result_routing_key(batch: Option<&str>, status: Status) -> String {
        format!("{}.{}", batch.unwrap_or("_"), status.as_str())
    }

    /// The topic exchange of private results: those of the jobs of tenants (users with a
    /// policy on the worker), routed under the tenant ([`Topology::private_key`]), so that
    /// a broker user's topic permissions can confine it to its own.
    pub fn private_exchange(&self) -> String {
        format!("{}.results.private", self.prefix)
    }

    /// The topic exchange a tenant's `submit` publishes jobs to, with the tenant as the
    /// routing key (to [`Topology::tenant_jobs_queue`]); what no binding takes goes
    /// through [`Topology::submit_rest_exchange`] to the jobs queue.
    pub fn submit_exchange(&self) -> String {
        format!("{}.submit", self.prefix)
    }

    /// The alternate exchange of [`Topology::submit_exchange`]: to the jobs queue.
    pub fn submit_rest_exchange(&self) -> String {
        format!("{}.submit.rest", self.prefix)
    }

    /// A broker user as one word of a routing key or queue name: bytes other than
    /// `A-Z a-z 0-9 _ -` percent-encoded, so it has no `.` and no two users share one.
    pub fn user_word(user: &str) -> String {
        /// Every byte but `A-Z a-z 0-9 _ -` is written `%XX`.
        const WORD: &percent_encoding::AsciiSet =
            &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'-');
        percent_encoding::utf8_percent_encode(user, WORD).to_string()
    }

    /// The routing key of a tenant's result on [`Topology::private_exchange`]:
    /// `<user>.<batch>.<status>` (`_` without a batch).
    pub fn private_key(user: &str, batch: Option<&str>, status: Status) -> String {
        format!(
            "{}.{}.{}",
            Self::user_word(user),
            batch.unwrap_or("_"),
            status.as_str()
        )
    }

    /// The routing key of a batch's manifest on the private exchange: `<user>.<batch>`
    /// (one word fewer than a result's).
    pub fn manifest_key(user: &str, batch: &str) -> String {
        format!("{}.{batch}", Self::user_word(user))
    }

    /// A batch's own result queue for `user`'s jobs: `<prefix>.batch.<user>.<batch>`, and
    /// a tag after it, keyed by `secret` (the user's password), so that nobody without it
    /// can name the queue (RabbitMQ answers a passive declare of any queue name, which
    /// would tell its size).
    pub fn private_batch_queue(&self, user: &str, batch: &str, secret: Option<&[u8]>) -> String {
        let mut name = format!("{}.batch.{}.{batch}", self.prefix, Self::user_word(user));
        if let Some(secret) = secret {
            let key = blake3::derive_key("wasmq 2026-12 batch queue names", secret);
            let mut h = blake3::Hasher::new_keyed(&key);
            h.update(self.prefix.as_bytes());
            h.update(b"\0");
            h.update(user.as_bytes());
            h.update(b"\0");
            h.update(batch.as_bytes());
            let tag = h.finalize();
            name.push('.');
            name.push_str(&tag.to_hex()[..32]);
        }
        name
    }

    /// The arguments of every jobs queue: quorum, the delivery limit, dead-lettered.
    fn jobs_args(&self) -> FieldTable {
        let mut args = quorum_args(Some(self.delivery_limit));
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_exchange().into()),
        );
        args
    }

    /// Declares a tenant's jobs queue and binds it to the submit exchange under the
    /// tenant's name (after [`Topology::declare`]).
    pub async fn declare_tenant_queue(&self, ch: &Channel, user: &str) -> Result<(), BrokerError> {
        let queue = self.tenant_jobs_queue(user);
        ch.queue_declare(queue.as_str().into(), durable_queue(), self.jobs_args())
            .await
            .map_err(|e| BrokerError(format!("declaring the tenant jobs queue {queue}: {e}")))?;
        ch.queue_bind(
            queue.as_str().into(),
            self.submit_exchange().into(),
            Self::user_word(user).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| BrokerError(format!("binding the tenant jobs queue {queue}: {e}")))
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
        ch.queue_declare(self.jobs_queue().into(), durable_queue(), self.jobs_args())
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
        let mut results_args = quorum_args(None);
        let r = self.results_retention;
        if r.ttl_secs > 0 {
            results_args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::from(r.ttl_secs) * 1000),
            );
        }
        if r.max_length > 0 {
            results_args.insert(
                "x-max-length".into(),
                AMQPValue::LongLongInt(i64::from(r.max_length)),
            );
            results_args.insert(
                "x-overflow".into(),
                AMQPValue::LongString("drop-head".into()),
            );
        }
        ch.queue_declare(self.results_queue().into(), durable_queue(), results_args)
            .await
            .map_err(|e| {
                BrokerError(format!(
                    "declaring the results queue {} (if it exists with another retention, give every process the same results_queue_ttl_secs and results_queue_max_length, or delete the queue): {e}",
                    self.results_queue()
                ))
            })?;
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
            self.private_exchange().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(err("declaring the private results exchange"))?;
        ch.exchange_declare(
            self.submit_rest_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(err("declaring the submit exchange's alternate"))?;
        ch.queue_bind(
            self.jobs_queue().into(),
            self.submit_rest_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err("binding the jobs queue"))?;
        let mut submit_args = FieldTable::default();
        submit_args.insert(
            "alternate-exchange".into(),
            AMQPValue::LongString(self.submit_rest_exchange().into()),
        );
        ch.exchange_declare(
            self.submit_exchange().into(),
            ExchangeKind::Topic,
            durable,
            submit_args,
        )
        .await
        .map_err(err("declaring the submit exchange"))?;
        ch.exchange_declare(
            self.control_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(err("declaring the control exchange"))?;
        let mut log_args = FieldTable::default();
        log_args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        log_args.insert(
            "x-max-age".into(),
            AMQPValue::LongString(CONTROL_LOG_AGE.into()),
        );
        ch.queue_declare(self.control_log().into(), durable_queue(), log_args)
            .await
            .map_err(err("declaring the control log stream"))?;
        ch.queue_bind(
            self.control_log().into(),
            self.control_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err("binding the control log stream"))?;
        Ok(())
    }
}

/// How long the control log keeps messages: a day (what workers honour a cancel for),
/// and an hour more.
const CONTROL_LOG_AGE: &str = "25h";
/// How far back a worker reads the control log when it starts or reconnects.
pub const CONTROL_LOG_REPLAY: Duration = Duration::from_secs(24 * 3600);

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

/// The password in `url`, percent-decoded, when it has one.
pub fn url_password(url: &str) -> Option<String> {
    let uri: lapin::uri::AMQPUri = url.parse().ok()?;
    let pw = uri.authority.userinfo.password;
    (!pw.is_empty()).then_some(pw)
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
    /// Node URLs, `amqp://user:pass@host:port/vhost` (or `amqps://` with the `tls`
    /// feature), tried in order.
    pub urls: Vec<String>,
    /// Names and arguments.
    pub topology: Topology,
    /// Unacked deliveries at once: the jobs running plus the results awaiting confirms.
    pub prefetch: u16,
    /// Name of the connection on the broker (shown in its tools).
    pub connection_name: String,
    /// The broker users that are tenants of this worker: their jobs have queues of their
    /// own, their results are private (never in the shared results queue), and their
    /// `reply_to` must be a queue of their own ([`reply_allowed`]).
    pub tenants: BTreeSet<String>,
}

/// Whether a tenant `user` may have its results sent to `queue`: a server-named queue
/// (`amq.gen-...`, exclusive to the connection that declared it), RabbitMQ's direct
/// reply-to, or one of the user's own batch queues. Anything else could be another
/// user's queue.
pub fn reply_allowed(topology: &Topology, user: &str, queue: &str) -> bool {
    let own = format!("{}.batch.{}.", topology.prefix, Topology::user_word(user));
    queue.starts_with("amq.gen-")
        || queue.starts_with("amq.rabbitmq.reply-to")
        || queue.starts_with(&own)
}

/// The channels of one worker session.
pub struct WorkerChannels {
    /// Consumes the jobs queue (the consumer is started by [`AmqpTransport::next`]).
    pub consume: Channel,
    /// In confirm mode: every result publish waits for the broker's ack.
    pub publish: Channel,
    /// Messages of the control exchange, from this session's private queue. It is
    /// subscribed before the jobs consumer starts, so a worker counted among the jobs
    /// queue's consumers always answers a broadcast.
    pub control: tokio::sync::Mutex<Consumer>,
    /// The control log from [`CONTROL_LOG_REPLAY`] ago on: the messages this worker was
    /// not connected for, then every new one again.
    pub control_log: tokio::sync::Mutex<Consumer>,
    /// The body of the marker this session appended to the control log: once it is read
    /// back, every earlier message (every cancel) has been applied.
    log_marker: Vec<u8>,
    /// Set once the marker is read back; the jobs consumer starts after it.
    caught_up: tokio::sync::watch::Sender<bool>,
}

/// How long a worker waits to read the control log up to its marker before it takes jobs
/// anyway.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets up a worker session: the topology, the channels, the control subscription.
pub struct WorkerSetup {
    topology: Topology,
    tenants: BTreeSet<String>,
}

impl Setup for WorkerSetup {
    type Channels = WorkerChannels;

    async fn setup(
        &self,
        conn: &Connection,
        _generation: u64,
    ) -> Result<WorkerChannels, BrokerError> {
        let consume = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        self.topology.declare(&consume).await?;
        for t in &self.tenants {
            self.topology.declare_tenant_queue(&consume, t).await?;
        }
        let publish = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(err("enabling publisher confirms"))?;
        let control = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        let log = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        let control_log = replay_control_log(&log, &self.topology.control_log()).await?;
        let control = subscribe_private(&control, Some(&self.topology.control_exchange())).await?;
        // Appended after the replay started, so it is read back after every older message.
        let log_marker = serde_json::to_vec(&serde_json::json!({
            "marker": format!("{}-{}", std::process::id(), uuid::Uuid::new_v4())
        }))
        .expect("a marker serializes");
        publish_confirmed(
            &publish,
            "",
            &self.topology.control_log(),
            true,
            &log_marker,
            json_properties(),
        )
        .await?;
        Ok(WorkerChannels {
            consume,
            publish,
            control: tokio::sync::Mutex::new(control.1),
            control_log: tokio::sync::Mutex::new(control_log),
            log_marker,
            caught_up: tokio::sync::watch::Sender::new(false),
        })
    }
}

/// Consumes the control log stream from [`CONTROL_LOG_REPLAY`] ago.
async fn replay_control_log(ch: &Channel, stream: &str) -> Result<Consumer, BrokerError> {
    // A stream needs a prefetch and manual acks (which only grant credit).
    ch.basic_qos(256, BasicQosOptions::default())
        .await
        .map_err(err("setting the control log's prefetch"))?;
    let since = std::time::SystemTime::now()
        .checked_sub(CONTROL_LOG_REPLAY)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut args = FieldTable::default();
    args.insert("x-stream-offset".into(), AMQPValue::Timestamp(since));
    ch.basic_consume(
        stream.into(),
        "".into(),
        BasicConsumeOptions::default(),
        args,
    )
    .await
    .map_err(err("reading the control log"))
}

/// A message of the control exchange, as [`AmqpTransport::serve_control`] hands it on.
#[derive(Debug)]
pub struct ControlMessage {
    /// The body.
    pub body: Vec<u8>,
    /// The `user_id` property: the broker user that sent it, verified by the broker.
    pub user_id: Option<String>,
    /// Read again from the control log (sent before this session, or a second copy of
    /// one the private queue brought): apply it, never answer it.
    pub replayed: bool,
}

/// Declares a private queue (deleted with its connection) on `ch`, binds it to
/// `exchange` when given, and consumes it: (queue name, consumer).
pub(crate) async fn subscribe_private(
    ch: &Channel,
    exchange: Option<&str>,
) -> Result<(String, Consumer), BrokerError> {
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
    if let Some(exchange) = exchange {
        ch.queue_bind(
            name.as_str().into(),
            exchange.into(),
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
    Ok((name, consumer))
}

/// The worker's transport on RabbitMQ: consumes the jobs queue, publishes results with
/// confirms; its connection is kept by a [`Supervisor`].
pub struct AmqpTransport {
    config: AmqpConfig,
    supervisor: Supervisor<WorkerSetup>,
    /// The jobs consumer and the session it was started on.
    consumer: tokio::sync::Mutex<Option<(u64, Jobs)>>,
    observer: Arc<dyn LinkObserver>,
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
    /// Where its result goes.
    route: Route,
}

/// Where a job's result is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The shared results exchange, `<batch>.<status>`: no `user_id`, or a user that is
    /// not a tenant.
    Shared,
    /// The private results exchange, under the tenant.
    Private,
}

/// Every jobs consumer of a session as one stream; each delivery says whether it came
/// from a tenant's own jobs queue. `None` in place of a delivery: that consumer ended (the
/// broker cancelled it), which the merged stream would otherwise not tell.
type Jobs = SelectAll<BoxStream<'static, (bool, Option<Result<LapinDelivery, lapin::Error>>)>>;

/// How long a consumer cancel may take at shutdown before the worker goes on without it.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

impl AmqpTransport {
    /// Starts the transport: its supervisor connects in the background, and keeps
    /// retrying while the broker is unreachable, until `link_shutdown` is cancelled (which
    /// closes the connection: cancel it only after the drain).
    pub fn start(
        config: AmqpConfig,
        observer: Arc<dyn LinkObserver>,
        link_shutdown: CancellationToken,
    ) -> AmqpTransport {
        let supervisor = Supervisor::start(
            SupervisorConfig {
                urls: config.urls.clone(),
                name: config.connection_name.clone(),
                give_up_after: None,
            },
            WorkerSetup {
                topology: config.topology.clone(),
                tenants: config.tenants.clone(),
            },
            observer.clone(),
            link_shutdown,
        );
        AmqpTransport {
            config,
            supervisor,
            consumer: tokio::sync::Mutex::new(None),
            observer,
            stopped: AtomicBool::new(false),
        }
    }

    /// The supervisor of this transport's connection (the control loop shares it).
    pub fn supervisor(&self) -> &Supervisor<WorkerSetup> {
        &self.supervisor
    }

    fn consumer_tag(&self, generation: u64) -> String {
        format!("{}-{generation}", self.config.connection_name)
    }

    /// The queues this worker consumes: the jobs queue, then each tenant's, with their
    /// consumer tags.
    fn queues(&self, generation: u64) -> Vec<(String, String)> {
        let t = &self.config.topology;
        let mut queues = vec![(t.jobs_queue(), self.consumer_tag(generation))];
        for (i, tenant) in self.config.tenants.iter().enumerate() {
            queues.push((
                t.tenant_jobs_queue(tenant),
                format!("{}-t{i}", self.consumer_tag(generation)),
            ));
        }
        queues
    }

    /// Consumes every queue of [`AmqpTransport::queues`], each with the prefetch (the
    /// broker applies it per consumer), as one stream.
    async fn start_consumer(&self, s: &Session<WorkerChannels>) -> Result<Jobs, BrokerError> {
        s.consume
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await
            .map_err(err("setting the prefetch"))?;
        let mut consumers = Vec::new();
        for (i, (queue, tag)) in self.queues(s.generation).into_iter().enumerate() {
            let c = s
                .consume
                .basic_consume(
                    queue.as_str().into(),
                    tag.into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| BrokerError(format!("starting to consume {queue}: {e}")))?;
            // The first is the shared jobs queue; the others are tenants' own.
            let own = i > 0;
            let ended = futures_util::stream::once(async move { (own, None) });
            consumers.push(c.map(move |d| (own, Some(d))).chain(ended).boxed());
        }
        Ok(futures_util::stream::select_all(consumers))
    }

    /// A job message as a delivery; `own`: it came from its tenant's own jobs queue.
    fn to_delivery(&self, d: LapinDelivery, own: bool) -> AmqpDelivery {
        let headers = d.properties.headers().as_ref();
        // Quorum queues count earlier deliveries in `x-delivery-count`.
        let count = headers.and_then(|h| h.inner().get("x-delivery-count").and_then(as_u64));
        let attempt = match count {
            Some(n) => n as u32 + 1,
            None if d.redelivered => 2,
            None => 1,
        };
        let user_id = d.properties.user_id().clone();
        let tenant = user_id
            .as_ref()
            .is_some_and(|u| self.config.tenants.contains(u.as_str()));
        // Private when the tenant's job came through its own queue: its `submit` found
        // that queue, so it waits for its results on the private exchange. (A job of a
        // tenant that reached the shared jobs queue, sent before any worker with its
        // policy had declared its queue, has its results where its submit looks: the
        // shared exchange, which a tenant user with only its own permissions could not
        // bind to, so its submit would have failed.)
        let route = if tenant && own {
            Route::Private
        } else {
            Route::Shared
        };
        let mut reply_to = d.properties.reply_to().clone();
        if let (Some(u), Some(to)) = (&user_id, &reply_to)
            && tenant
            && !reply_allowed(&self.config.topology, u.as_str(), to.as_str())
        {
            warn!(user = %u, reply_to = %to, "a tenant's reply_to is not a queue of its own; its result goes to its private results instead");
            reply_to = None;
        }
        AmqpDelivery {
            attempt,
            user_id,
            reply_to,
            correlation_id: d.properties.correlation_id().clone(),
            acker: d.acker,
            data: d.data,
            route,
        }
    }

    /// Closes the connection; unacked deliveries go back to the queue.
    pub async fn close(&self) {
        self.supervisor.close().await;
    }

    /// Answers the messages of the control exchange until `shutdown`, on every session:
    /// `answer` turns a message into the body of its reply, which goes to the message's
    /// `reply_to` (when it has one) with its correlation id. Messages of the control log
    /// are handed to `answer` too, marked replayed, and never answered.
    pub async fn serve_control<F, Fut>(&self, shutdown: CancellationToken, mut answer: F)
    where
        F: FnMut(ControlMessage) -> Fut,
        Fut: Future<Output = Vec<u8>>,
    {
        let mut after = 0;
        loop {
            let s = tokio::select! {
                s = self.supervisor.session_after(after) => match s {
                    Ok(Some(s)) => s,
                    Ok(None) | Err(_) => return,
                },
                _ = shutdown.cancelled() => return,
            };
            after = s.generation;
            let mut control = s.control.lock().await;
            let mut log = s.control_log.lock().await;
            loop {
                let (msg, replayed) = tokio::select! {
                    m = control.next() => (m, false),
                    m = log.next() => (m, true),
                    _ = shutdown.cancelled() => return,
                };
                let d = match msg {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        self.supervisor
                            .lost(&s, format!("the control consumer failed: {e}"));
                        break;
                    }
                    None => {
                        self.supervisor.lost(&s, "the control consumer ended");
                        break;
                    }
                };
                if replayed && d.data == s.log_marker {
                    let _ = d.acker.ack(BasicAckOptions::default()).await;
                    s.caught_up.send_replace(true);
                    continue;
                }
                let reply_to = d.properties.reply_to().clone();
                let correlation = d.properties.correlation_id().clone();
                let message = ControlMessage {
                    user_id: d.properties.user_id().as_ref().map(|u| u.to_string()),
                    body: d.data,
                    replayed,
                };
                let body = answer(message).await;
                if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
                    warn!(error = %e, "could not ack a control message");
                }
                if let Some(to) = reply_to.filter(|_| !replayed) {
                    let mut props = json_properties();
                    if let Some(c) = correlation {
                        props = props.with_correlation_id(c);
                    }
                    if let Err(e) =
                        publish_confirmed(&s.publish, "", to.as_str(), true, &body, props).await
                    {
                        warn!(error = %e, "could not answer a control message");
                    }
                }
            }
        }
    }
}

/// A header's value as a count.
pub(crate) fn as_u64(v: &AMQPValue) -> Option<u64> {
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
        let mut after = 0;
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return None;
            }
            // `None`: the link is shutting down; an error: it gave up (never, for a worker).
            let s = match self.supervisor.session_after(after).await {
                Ok(Some(s)) => s,
                Ok(None) => return None,
                Err(e) => {
                    warn!(error = %e, "no broker connection; no more jobs");
                    return None;
                }
            };
            let mut consumer = self.consumer.lock().await;
            if self.stopped.load(Ordering::SeqCst) {
                return None;
            }
            if consumer.as_ref().is_none_or(|(g, _)| *g != s.generation) {
                // Cancels first: a job cancelled while this worker was away must not run.
                let mut caught_up = s.caught_up.subscribe();
                let waited = tokio::time::timeout(CATCH_UP_TIMEOUT, caught_up.wait_for(|c| *c));
                if waited.await.is_err() {
                    warn!(
                        timeout_secs = CATCH_UP_TIMEOUT.as_secs(),
                        "the control log was not read up to this session's marker in time; taking jobs anyway"
                    );
                }
                match self.start_consumer(&s).await {
                    Ok(c) => {
                        *consumer = Some((s.generation, c));
                        self.observer.consuming(true);
                        info!(generation = s.generation, queue = %self.config.topology.jobs_queue(), prefetch = self.config.prefetch, "worker consuming");
                    }
                    Err(e) => {
                        warn!(error = %e, "could not start consuming; reconnecting");
                        self.supervisor.lost(&s, e.0);
                        after = s.generation;
                        continue;
                    }
                }
            }
            let (_, c) = consumer.as_mut().expect("set above");
            let why = match c.next().await {
                Some((own, Some(Ok(d)))) => return Some(self.to_delivery(d, own)),
                Some((_, Some(Err(e)))) => format!("the jobs consumer failed: {e}"),
                Some((_, None)) | None if self.stopped.load(Ordering::SeqCst) => return None,
                Some((_, None)) | None => "the broker cancelled a jobs consumer".to_owned(),
            };
            *consumer = None;
            self.observer.consuming(false);
            self.supervisor.lost(&s, why);
            after = s.generation;
        }
    }

    async fn publish(
        &self,
        result: &JobResult,
        delivery: &AmqpDelivery,
    ) -> Result<(), BrokerError> {
        let s = match self.supervisor.session().await? {
            Some(s) => s,
            None => {
                return Err(BrokerError(
                    "the broker connection is closing; the result was not published".into(),
                ));
            }
        };
        let body = serde_json::to_vec(result)
            .map_err(|e| BrokerError(format!("encoding a result: {e}")))?;
        let mut props = json_properties().with_message_id(result.id.as_str().into());
        if let Some(c) = &delivery.correlation_id {
            props = props.with_correlation_id(c.clone());
        }
        let t = &self.config.topology;
        let (exchange, key) = match (delivery.route, &delivery.user_id) {
            (Route::Private, Some(user)) => (
                t.private_exchange(),
                Topology::private_key(user.as_str(), result.batch.as_deref(), result.status),
            ),
            _ => (
                t.results_exchange(),
                Topology::result_routing_key(result.batch.as_deref(), result.status),
            ),
        };
        let alive = || s.connected() && s.publish.status().connected();
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
                    Err(e) if alive() => {
                        warn!(job = %result.id, reply_to = %reply_to, error = %e, "reply queue unreachable; publishing to the results exchange");
                        publish_confirmed(&s.publish, &exchange, &key, true, &body, props).await
                    }
                    other => other,
                }
            }
            None => publish_confirmed(&s.publish, &exchange, &key, true, &body, props).await,
        };
        if let Err(e) = &outcome
            && !alive()
        {
            self.supervisor
                .lost(&s, format!("publishing a result failed: {e}"));
        }
        outcome
    }

    async fn stop_consuming(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.observer.consuming(false);
        // Never waits on a broker that is down: with no session there is no consumer.
        if let Some(s) = self.supervisor.current() {
            let cancels = self.queues(s.generation).into_iter().map(|(_, tag)| {
                s.consume
                    .basic_cancel(tag.into(), BasicCancelOptions::default())
            });
            let all = futures_util::future::join_all(cancels);
            match tokio::time::timeout(CANCEL_TIMEOUT, all).await {
                Ok(outcomes) => {
                    for e in outcomes.into_iter().filter_map(Result::err) {
                        warn!(error = %e, "could not cancel a consumer");
                    }
                }
                Err(_) => warn!("the broker did not answer the consumer cancels in time"),
            }
        }
    }

    fn redelivery_limit(&self) -> Option<u32> {
        None
    }

    fn local_buffer(&self) -> Option<usize> {
        None
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
            results_retention: Retention::DEFAULT,
        };
        assert_eq!(t.jobs_queue(), "p.jobs");
        assert_eq!(t.batch_queue("b1"), "p.batch.b1");
        assert_eq!(Topology::user_word("al.ice@x"), "al%2Eice%40x");
        assert_eq!(Topology::user_word("a-b_C9"), "a-b_C9");
        assert_eq!(
            Topology::private_key("al.ice", Some("b1"), Status::Cancelled),
            "al%2Eice.b1.cancelled"
        );
        assert_eq!(
            Topology::private_key("bob", None, Status::Succeeded),
            "bob._.succeeded"
        );
        assert_eq!(Topology::manifest_key("bob", "b1"), "bob.b1");
        assert_eq!(t.private_batch_queue("bob", "b1", None), "p.batch.bob.b1");
        let tagged = t.private_batch_queue("bob", "b1", Some(b"pw"));
        assert!(tagged.starts_with("p.batch.bob.b1."), "{tagged}");
        assert_eq!(tagged.len(), "p.batch.bob.b1.".len() + 32);
        assert_eq!(tagged, t.private_batch_queue("bob", "b1", Some(b"pw")));
        assert_ne!(tagged, t.private_batch_queue("bob", "b1", Some(b"other")));
        assert_ne!(tagged, t.private_batch_queue("bob", "b2", Some(b"pw")));
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
