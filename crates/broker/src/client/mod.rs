//! The client side of RabbitMQ for the commands: publishing jobs with confirms, reading
//! result queues, broadcasting on the control exchange and answering broadcasts.
//!
//! - this module: [`Client`], its connection and session, and the queries and messages
//!   every command shares.
//! - `submit`: publishing job messages ([`Client::publish_jobs`]).
//! - `batch`: a batch's results stream ([`Client::declare_batch_queue`], [`Client::read_batch`],
//!   [`Client::find_batch_queue`], [`Client::send_manifest`]).
//! - `subscription`: consuming a queue ([`Subscription`], [`Incoming`]), across
//!   reconnects.
//! - `dead`: reading a queue in place ([`Peeked`], [`Client::peek`]), and the repair of
//!   the dead-letter queue ([`Client::requeue_dead`], [`Client::purge`]).
//! - `streams`: following any stream from its first message ([`Client::follow_stream`]),
//!   and reading one up to a marker ([`Client::read_stream_to_marker`]).
//! - `workers`: the workers' latest heartbeats ([`Client::heartbeats`]), or all of them
//!   as they come ([`Client::follow_heartbeats`], [`HeartbeatFeed`]).

mod batch;
pub use crate::amqp::marker_of;
mod dead;
mod streams;
mod submit;
mod subscription;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::protocol::AMQPSoftError;
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;

use crate::BrokerError;
use crate::amqp::{Topology, json_properties, publish_confirmed, url_password, url_user};
use crate::supervisor::{NoObserver, Session, Setup, Supervisor, SupervisorConfig, soft_error};

pub use dead::Peeked;
pub use streams::{StreamFeed, StreamMessage};
pub use subscription::{Incoming, Subscription};
pub use workers::HeartbeatFeed;

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
            .map_err(BrokerError::channel("opening a channel"))?;
        if let Err(e) = self.topology.declare(&ch).await {
            // A tenant's broker user may not declare the topology: the operator's
            // processes (workers) declare it, and the channel the refusal closed is
            // replaced.
            if e.soft_error() != Some(AMQPSoftError::ACCESSREFUSED) {
                return Err(e);
            }
            tracing::debug!(error = %e, "this user may not declare the topology; using it as declared");
            ch = conn
                .create_channel()
                .await
                .map_err(BrokerError::channel("opening a channel"))?;
        }
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(BrokerError::channel("enabling publisher confirms"))?;
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
    async fn session(&self) -> Result<Arc<Session<ClientChannels>>, BrokerError> {
        self.supervisor.session().await?.ok_or(BrokerError::Closed)
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
            .map_err(BrokerError::channel("opening a channel"))
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
            return Err(last.unwrap_or(BrokerError::NoUrl));
        };
        let ch = conn
            .create_channel()
            .await
            .map_err(BrokerError::channel("opening a channel"))?;
        let q = declare_passive(&ch, queue).await;
        let _ = conn.close(200, "done".into()).await;
        match q {
            Ok(_) => Ok(true),
            Err(e) if soft_error(&e) == Some(AMQPSoftError::NOTFOUND) => Ok(false),
            Err(e) => Err(BrokerError::queue(format!("asking for queue {queue}"))(e)),
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
        let q = declare_passive(&ch, queue)
            .await
            .map_err(BrokerError::queue(format!(
                "queue {queue} does not exist (or expired)"
            )))?;
        let counts = (q.message_count(), q.consumer_count());
        let _ = ch.close(200, "done".into()).await;
        Ok(counts)
    }

    /// Closes the connection after every publish is confirmed.
    pub async fn close(self) {
        if let Some(s) = self.supervisor.current() {
            let _ = s.ch.wait_for_confirms().await;
        }
        self.supervisor.close().await;
    }
}

/// Asks the broker for `queue` without creating it (`NOT_FOUND` when it does not exist).
async fn declare_passive(ch: &Channel, queue: &str) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

/// The node URLs of a comma-separated list (a single URL is a list of one).
pub fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}
