//! The client side of RabbitMQ for the commands: publishing jobs with confirms, reading
//! result queues, broadcasting on the control exchange and answering broadcasts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Acker, Channel, Confirmation, Connection, Consumer, PublisherConfirm};
use tokio_util::sync::CancellationToken;

use crate::BrokerError;
use crate::amqp::{
    Topology, as_u64, json_properties, publish_confirmed, subscribe_private, url_password, url_user,
};
use crate::supervisor::{NoObserver, Session, Setup, Supervisor, SupervisorConfig, soft_error};
use lapin::protocol::AMQPSoftError;

fn err(context: &str) -> impl FnOnce(lapin::Error) -> BrokerError + '_ {
    move |e| BrokerError(format!("{context}: {e}"))
}

/// How long a command keeps trying to reconnect after losing the broker before it gives
/// up with an error.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(300);

/// The channel of one client session: in confirm mode, with the topology declared.
pub struct ClientChannels {
    ch: Channel,
}

/// Sets up a client session.
pub struct ClientSetup {
    topology: Topology,
}

impl Setup for ClientSetup {
    type Channels = ClientChannels;

    async fn setup(
        &self,
        conn: &Connection,
        _generation: u64,
    ) -> Result<ClientChannels, BrokerError> {
        let mut ch = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        if let Err(e) = self.topology.declare(&ch).await {
            // A tenant's broker user may not declare the topology: the operator's
            // processes (workers) declare it, and the channel the refusal closed is
            // replaced.
            if !e.0.contains("ACCESS_REFUSED") {
                return Err(e);
            }
            tracing::debug!(error = %e, "this user may not declare the topology; using it as declared");
            ch = conn
                .create_channel()
                .await
                .map_err(err("opening a channel"))?;
        }
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(err("enabling publisher confirms"))?;
        Ok(ClientChannels { ch })
    }
}

/// A connection for one command, with the topology declared and a confirming channel. It
/// fails fast when no broker answers at first, and reconnects (for up to
/// [`RECONNECT_WINDOW`]) when the broker goes away later.
pub struct Client {
    supervisor: Supervisor<ClientSetup>,
    topology: Topology,
    /// The connection's user, set as `user_id` on job messages (see [`url_user`]).
    user: Option<ShortString>,
    /// The connection's password, which keys the names of this user's batch queues.
    secret: Option<Vec<u8>>,
    /// The node URLs, for connections of their own.
    urls: Vec<String>,
    /// The user is a tenant of the workers: a worker with its policy has declared its
    /// jobs queue ([`Topology::tenant_jobs_queue`]). Its jobs then go there, and its
    /// results through the private results exchange. Asked of the broker once, by the
    /// first call that needs it.
    tenant: tokio::sync::OnceCell<bool>,
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
    /// Removes the message from its queue. After a reconnect the ack of a message read on
    /// the old connection fails: the broker has already put the message back.
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
    /// For a named queue: how to consume it again on a new session.
    resume: Option<Resume>,
}

struct Resume {
    supervisor: Supervisor<ClientSetup>,
    prefetch: u16,
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
                Some(Err(e)) => format!("reading queue {}: {e}", self.queue),
                None => format!("the consumer of queue {} ended", self.queue),
            };
            let Some(resume) = &mut self.resume else {
                return Some(Err(BrokerError(why)));
            };
            if let Some(s) = resume.supervisor.current()
                && s.generation == resume.generation
            {
                resume.supervisor.lost(&s, why.clone());
            }
            let s = match resume.supervisor.session_after(resume.generation).await {
                Ok(Some(s)) => s,
                Ok(None) => return None,
                Err(e) => return Some(Err(BrokerError(format!("{why}; {e}")))),
            };
            resume.generation = s.generation;
            match consume_on(&s, &self.queue, resume.prefetch).await {
                Ok(c) => {
                    tracing::info!(queue = %self.queue, "consuming again after a reconnect");
                    self.consumer = c;
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

async fn consume_on(
    s: &Session<ClientChannels>,
    queue: &str,
    prefetch: u16,
) -> Result<Consumer, BrokerError> {
    let ch = s
        .connection()
        .create_channel()
        .await
        .map_err(err("opening a channel"))?;
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(err("setting the prefetch"))?;
    ch.basic_consume(
        queue.into(),
        ShortString::from(""),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| BrokerError(format!("could not read queue {queue}: {e}")))
}

impl Client {
    /// Connects (the connection is named `name` on the broker) and declares the topology;
    /// `url` may list several nodes, comma-separated, tried in order.
    pub async fn connect(url: &str, name: &str, topology: Topology) -> Result<Client, BrokerError> {
        let urls = split_urls(url);
        let user = urls
            .first()
            .and_then(|u| url_user(u))
            .map(ShortString::from);
        let secret = urls
            .first()
            .and_then(|u| url_password(u))
            .map(String::into_bytes);
        let supervisor = Supervisor::connect(
            SupervisorConfig {
                urls,
                name: name.to_owned(),
                give_up_after: Some(RECONNECT_WINDOW),
            },
            ClientSetup {
                topology: topology.clone(),
            },
            Arc::new(NoObserver),
            CancellationToken::new(),
        )
        .await?;
        Ok(Client {
            urls: split_urls(url),
            supervisor,
            topology,
            user,
            secret,
            tenant: tokio::sync::OnceCell::new(),
        })
    }

    /// The live session, waiting (within [`RECONNECT_WINDOW`]) for a reconnect.
    async fn session_after(&self, after: u64) -> Result<Arc<Session<ClientChannels>>, BrokerError> {
        self.supervisor
            .session_after(after)
            .await?
            .ok_or_else(|| BrokerError("the broker connection is closed".into()))
    }

    async fn session(&self) -> Result<Arc<Session<ClientChannels>>, BrokerError> {
        self.session_after(0).await
    }

    /// The `user_id` this client's job messages carry: the user of its connection, which
    /// the broker verifies, so workers know the jobs' tenant.
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.as_str())
    }

    /// A new channel on this client's connection.
    async fn channel(&self) -> Result<Channel, BrokerError> {
        self.session()
            .await?
            .connection()
            .create_channel()
            .await
            .map_err(err("opening a channel"))
    }

    /// The names this client uses.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether a queue exists (a passive declare, which needs no permission), on a
    /// connection of its own: a miss closes the channel, which the supervised connection
    /// would take for a lost session.
    async fn queue_exists(&self, queue: &str) -> Result<bool, BrokerError> {
        let mut last = None;
        let mut conn = None;
        for url in &self.urls {
            match crate::amqp::connect(url, "wasmq probe").await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(conn) = conn else {
            return Err(last.unwrap_or_else(|| BrokerError("no broker URL".into())));
        };
        let ch = conn
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        let _ = conn.close(200, "done".into()).await;
        match q {
            Ok(_) => Ok(true),
            Err(e) if soft_error(&e) == Some(AMQPSoftError::NOTFOUND) => Ok(false),
            Err(e) => Err(BrokerError(format!("asking for queue {queue}: {e}"))),
        }
    }

    /// The tenant this client's user is, when it is one: when its jobs queue exists.
    async fn tenant(&self) -> Result<Option<&str>, BrokerError> {
        let Some(user) = self.user() else {
            return Ok(None);
        };
        let queue = self.topology.tenant_jobs_queue(user);
        let is = *self
            .tenant
            .get_or_try_init(|| self.queue_exists(&queue))
            .await?;
        Ok(is.then_some(user))
    }

    /// The result queue `submit` declared for `batch`: a tenant's own, unless it does not
    /// exist and the shared exchange's queue of that batch does (submitted before any
    /// worker with the tenant's policy had declared its jobs queue).
    pub async fn find_batch_queue(&self, batch: &str) -> Result<String, BrokerError> {
        let name = self.batch_queue(batch).await?;
        if self.tenant().await?.is_some() && !self.queue_exists(&name).await? {
            let shared = self.topology.batch_queue(batch);
            if self.queue_exists(&shared).await? {
                return Ok(shared);
            }
        }
        Ok(name)
    }

    /// The result queue of `batch` as this client names it: for a tenant, its own
    /// ([`Topology::private_batch_queue`]), whose results come through the private
    /// results exchange; for anyone else, the batch's queue on the shared results
    /// exchange.
    async fn batch_queue(&self, batch: &str) -> Result<String, BrokerError> {
        Ok(match self.tenant().await? {
            Some(user) => self
                .topology
                .private_batch_queue(user, batch, self.secret.as_deref()),
            None => self.topology.batch_queue(batch),
        })
    }

    /// Declares a batch's own result queue ([`Client::batch_queue`]), bound to
    /// `<user>.<batch>.#` on the private results exchange for a tenant (`<batch>.#` on the
    /// shared one for anyone else), deleted by the broker after `idle_ms` without
    /// consumers or use.
    pub async fn declare_batch_queue(
        &self,
        batch: &str,
        idle_ms: u32,
    ) -> Result<String, BrokerError> {
        let t = &self.topology;
        let s = self.session().await?;
        let name = self.batch_queue(batch).await?;
        let tenant = self.tenant().await?;
        if name.len() > 255 {
            return Err(BrokerError(format!(
                "batch {batch:?} makes a result queue name of {} bytes for this user, above RabbitMQ's 255; use a shorter batch name",
                name.len()
            )));
        }
        let (exchange, key) = match tenant {
            Some(user) => (
                t.private_exchange(),
                format!("{}.#", Topology::manifest_key(user, batch)),
            ),
            None => (t.results_exchange(), format!("{batch}.#")),
        };
        // A quorum queue, replicated, so a batch's results outlive the loss of a node of
        // a cluster, as the jobs and the shared results do.
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert("x-expires".into(), AMQPValue::LongUInt(idle_ms));
        s.ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map_err(err("declaring the batch result queue"))?;
        s.ch.queue_bind(
            name.as_str().into(),
            exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| {
            let hint = if self.user().is_some() && tenant.is_none() && soft_error(&e) == Some(AMQPSoftError::ACCESSREFUSED) {
                format!(
                    " (a tenant's results come through its own queues once a worker with its policy has declared its jobs queue {}: start one first)",
                    t.tenant_jobs_queue(self.user().unwrap_or(""))
                )
            } else {
                String::new()
            };
            BrokerError(format!("binding the batch result queue: {e}{hint}"))
        })?;
        Ok(name)
    }

    /// Publishes job messages (id, JSON body) to the jobs queue, persistent, keeping up to
    /// `window` unconfirmed at once; `on_confirmed` is told how many were confirmed so far.
    /// Returns once every message is confirmed. Each carries the connection's user as its
    /// `user_id` ([`Client::user`]), its verified tenant.
    ///
    /// When the connection drops, every message not yet confirmed is published again on
    /// the next connection: some may then be queued twice, which is harmless, since a
    /// job's results are told apart by its id.
    pub async fn publish_jobs(
        &self,
        jobs: &[(String, Vec<u8>)],
        window: usize,
        mut on_confirmed: impl FnMut(u64),
    ) -> Result<u64, BrokerError> {
        let to = match self.tenant().await? {
            // A tenant's jobs go to its own jobs queue, through the submit exchange under
            // its name (which topic permissions can hold it to).
            Some(user) => (self.topology.submit_exchange(), Topology::user_word(user)),
            None => (String::new(), self.topology.jobs_queue()),
        };
        self.publish_many(to, jobs, window, &mut on_confirmed).await
    }

    /// Records a batch's size in its result queue: on the private results exchange under
    /// a tenant's name (see [`Client::batch_queue`]), or straight to the queue.
    pub async fn send_manifest(&self, batch: &str, body: &[u8]) -> Result<(), BrokerError> {
        match self.tenant().await? {
            Some(user) => {
                let s = self.session().await?;
                publish_confirmed(
                    &s.ch,
                    &self.topology.private_exchange(),
                    &Topology::manifest_key(user, batch),
                    true,
                    body,
                    json_properties(),
                )
                .await
            }
            None => {
                self.send_to_queue(&self.topology.batch_queue(batch), body, None)
                    .await
            }
        }
    }

    /// Publishes job messages to (exchange, routing key).
    async fn publish_many(
        &self,
        (exchange, key): (String, String),
        jobs: &[(String, Vec<u8>)],
        window: usize,
        on_confirmed: &mut impl FnMut(u64),
    ) -> Result<u64, BrokerError> {
        let mut confirmed = 0usize;
        let mut after = 0;
        while confirmed < jobs.len() {
            let s = self.session_after(after).await?;
            let mut pending: VecDeque<PublisherConfirm> = VecDeque::new();
            let mut next = confirmed;
            let failed = loop {
                if next < jobs.len() && pending.len() < window.max(1) {
                    let (id, body) = &jobs[next];
                    let mut props = json_properties().with_message_id(id.as_str().into());
                    if let Some(user) = &self.user {
                        props = props.with_user_id(user.clone());
                    }
                    match s
                        .ch
                        .basic_publish(
                            exchange.as_str().into(),
                            key.as_str().into(),
                            BasicPublishOptions::default(),
                            body,
                            props,
                        )
                        .await
                    {
                        Ok(c) => pending.push_back(c),
                        Err(e) => break err("publishing a job")(e),
                    }
                    next += 1;
                    continue;
                }
                let Some(c) = pending.pop_front() else {
                    break BrokerError(String::new());
                };
                match check(c.await) {
                    Ok(()) => {
                        confirmed += 1;
                        on_confirmed(confirmed as u64);
                    }
                    Err(e) => break e,
                }
            };
            if confirmed == jobs.len() {
                break;
            }
            if still_connected(&s.ch, || s.connected()).await {
                // The broker refused a message on a healthy connection: not a reconnect.
                return Err(failed);
            }
            tracing::warn!(error = %failed, unconfirmed = jobs.len() - confirmed, "lost the broker connection while publishing; publishing what was not confirmed again");
            self.supervisor.lost(&s, failed.0);
            after = s.generation;
        }
        Ok(confirmed as u64)
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
        let s = self.session().await?;
        publish_confirmed(&s.ch, "", queue, true, body, props).await
    }

    /// Sends `body` to every worker on the control exchange, answers to `reply_to`, with
    /// this connection's user as its `user_id`.
    pub async fn broadcast(
        &self,
        body: &[u8],
        reply_to: &str,
        correlation_id: &str,
    ) -> Result<(), BrokerError> {
        let mut props = json_properties()
            .with_reply_to(reply_to.into())
            .with_correlation_id(correlation_id.into());
        // Workers apply a cancel only to the jobs of the user that sent it.
        if let Some(user) = &self.user {
            props = props.with_user_id(user.clone());
        }
        let s = self.session().await?;
        publish_confirmed(
            &s.ch,
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

    /// Consumes an existing queue with manual acks, `prefetch` at a time; the
    /// subscription consumes it again after a reconnect.
    pub async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BrokerError> {
        let s = self.session().await?;
        let consumer = consume_on(&s, queue, prefetch).await?;
        Ok(Subscription {
            consumer,
            queue: queue.to_owned(),
            resume: Some(Resume {
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

    /// Closes the connection after every publish is confirmed.
    pub async fn close(self) {
        if let Some(s) = self.supervisor.current() {
            let _ = s.ch.wait_for_confirms().await;
        }
        self.supervisor.close().await;
    }
}

/// A message of a queue, read without removing it.
#[derive(Debug, Clone)]
pub struct Peeked {
    /// The body.
    pub body: Vec<u8>,
    /// The `message_id` property (a job's id).
    pub message_id: Option<String>,
    /// The `user_id` property (a job's verified tenant).
    pub user_id: Option<String>,
    /// Deliveries of the message before it was dead-lettered (`x-delivery-count` + 1),
    /// when the broker recorded it.
    pub attempts: Option<u64>,
    /// Why it was dead-lettered (`x-first-death-reason`, or the last `x-death` entry's
    /// reason: `delivery_limit`, `rejected`, `expired`, `maxlen`).
    pub death_reason: Option<String>,
    /// The queue it was dead-lettered from.
    pub death_queue: Option<String>,
    props: lapin::BasicProperties,
    acker: Acker,
}

fn header_str(h: &FieldTable, key: &str) -> Option<String> {
    match h.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn peeked(d: lapin::message::Delivery) -> Peeked {
    let headers = d.properties.headers().clone().unwrap_or_default();
    let first_death = headers.inner().get("x-death").and_then(|v| match v {
        AMQPValue::FieldArray(a) => a.as_slice().first().and_then(|e| match e {
            AMQPValue::FieldTable(t) => Some(t.clone()),
            _ => None,
        }),
        _ => None,
    });
    Peeked {
        message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
        user_id: d.properties.user_id().as_ref().map(|s| s.to_string()),
        attempts: headers
            .inner()
            .get("x-delivery-count")
            .and_then(as_u64)
            .map(|n| n + 1),
        death_reason: header_str(&headers, "x-first-death-reason")
            .or_else(|| first_death.as_ref().and_then(|t| header_str(t, "reason"))),
        death_queue: header_str(&headers, "x-first-death-queue")
            .or_else(|| first_death.as_ref().and_then(|t| header_str(t, "queue"))),
        props: d.properties,
        body: d.data,
        acker: d.acker,
    }
}

/// How long a queue read waits for the next message before taking what it has.
const PEEK_IDLE: Duration = Duration::from_secs(2);

impl Client {
    /// Reads the messages of `queue` ready now (at most `max`) and gives each to `handle`:
    /// `Ok(true)` removes it from the queue; every other message returns to the queue when
    /// the read ends, whatever happens. Returns how many were read.
    async fn read_queue(
        &self,
        queue: &str,
        max: u32,
        mut handle: impl AsyncFnMut(&Peeked) -> Result<bool, BrokerError>,
    ) -> Result<u32, BrokerError> {
        let (ready, _) = self.queue_counts(queue).await?;
        let want = ready.min(max);
        if want == 0 {
            return Ok(0);
        }
        let s = self.session().await?;
        let ch = s
            .connection()
            .create_channel()
            .await
            .map_err(err("opening a channel"))?;
        ch.basic_qos(
            want.min(u32::from(u16::MAX)) as u16,
            BasicQosOptions::default(),
        )
        .await
        .map_err(err("setting the prefetch"))?;
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| BrokerError(format!("could not read queue {queue}: {e}")))?;
        let mut seen = 0u32;
        let mut outcome = Ok(());
        while seen < want {
            let d = match tokio::time::timeout(PEEK_IDLE, consumer.next()).await {
                Ok(Some(Ok(d))) => d,
                Ok(Some(Err(e))) => {
                    outcome = Err(err("reading a queue")(e));
                    break;
                }
                Ok(None) | Err(_) => break,
            };
            seen += 1;
            let p = peeked(d);
            match handle(&p).await {
                Ok(true) => {
                    p.acker
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(err("removing a message"))?;
                }
                Ok(false) => {}
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        // Closing the channel returns every message not acked to the queue.
        let _ = ch.close(200, "done".into()).await;
        outcome.map(|()| seen)
    }

    /// The messages of `queue` ready now, at most `max`, left in the queue.
    pub async fn peek(&self, queue: &str, max: u32) -> Result<Vec<Peeked>, BrokerError> {
        let mut out = Vec::new();
        self.read_queue(queue, max, async |p| {
            out.push(p.clone());
            Ok(false)
        })
        .await?;
        Ok(out)
    }

    /// Moves the messages of the dead-letter queue that `pick` chooses back to the jobs
    /// queue, with their properties (the broker counts their deliveries from zero again):
    /// each is removed from the dead-letter queue only once the jobs queue confirmed it.
    /// Returns (moved, left).
    pub async fn requeue_dead(
        &self,
        mut pick: impl FnMut(&Peeked) -> bool,
    ) -> Result<(u32, u32), BrokerError> {
        let jobs = self.topology.jobs_queue();
        let mut moved = 0u32;
        let seen = self
            .read_queue(&self.topology.dead_queue(), u32::MAX, async |p| {
                if !pick(p) {
                    return Ok(false);
                }
                let s = self.session().await?;
                let props = p.props.clone().with_headers(FieldTable::default());
                publish_confirmed(&s.ch, "", &jobs, true, &p.body, props)
                    .await
                    .map_err(|e| {
                        let who = p.user_id.as_deref().unwrap_or("");
                        BrokerError(if who.is_empty() || Some(who) == self.user() {
                            format!("{e}")
                        } else {
                            format!(
                                "{e} (the job's user_id is {who:?}: moving another user's job needs a broker user with RabbitMQ's impersonator tag)"
                            )
                        })
                    })?;
                moved += 1;
                Ok(true)
            })
            .await?;
        Ok((moved, seen - moved))
    }

    /// Removes every message of `queue`; returns how many there were.
    pub async fn purge(&self, queue: &str) -> Result<u32, BrokerError> {
        let s = self.session().await?;
        s.ch.queue_purge(queue.into(), lapin::options::QueuePurgeOptions::default())
            .await
            .map_err(|e| BrokerError(format!("purging queue {queue}: {e}")))
    }
}

/// The node URLs of a comma-separated list (a single URL is a list of one).
pub fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check(c: Result<Confirmation, lapin::Error>) -> Result<(), BrokerError> {
    match c.map_err(err("waiting for a publish confirm"))? {
        Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
        Confirmation::Nack(_) => Err(BrokerError(
            "the broker refused a job message (nack)".into(),
        )),
    }
}
/// Whether a session still looks connected a moment after a publish failed. lapin hands
/// the caller an I/O error (a reset connection) before the connection's status and the
/// supervisor's view show the loss, so the failure is given up to a second to show there
/// before it is taken for the broker refusing a message on a healthy connection.
async fn still_connected(ch: &lapin::Channel, session_connected: impl Fn() -> bool) -> bool {
    for _ in 0..10 {
        if !(session_connected() && ch.status().connected()) {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    true
}
