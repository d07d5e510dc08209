//! The worker's transport on RabbitMQ: [`AmqpTransport`] consumes the jobs queues and
//! publishes results with confirms; [`AmqpDelivery`] is one job message taken from them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use lapin::Acker;
use lapin::message::Delivery as LapinDelivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{FieldTable, ShortString};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wasmq_spec::JobResult;

use super::headers::as_u64;
use super::publish::{json_properties, publish_confirmed};
use super::session::{CATCH_UP_TIMEOUT, WorkerChannels, WorkerSetup};
use super::topology::Topology;
use crate::supervisor::{LinkObserver, Resume, Session, Supervisor, SupervisorConfig};
use crate::{BrokerError, Delivery, Transport};

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

/// The worker's transport on RabbitMQ: consumes the jobs queue, publishes results with
/// confirms; its connection is kept by a [`Supervisor`].
pub struct AmqpTransport {
    pub(super) config: AmqpConfig,
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

    /// Publishes a heartbeat (a JSON [`HeartbeatMessage`](wasmq_spec::control::HeartbeatMessage))
    /// to the heartbeats stream and waits for the broker's confirm; an error while the
    /// worker is not connected (that heartbeat is skipped).
    pub async fn heartbeat(&self, body: &[u8]) -> Result<(), BrokerError> {
        let s = match self.supervisor.current() {
            Some(s) if s.connected() => s,
            _ => return Err(BrokerError::Closing),
        };
        publish_confirmed(
            &s.publish,
            "",
            &self.config.topology.heartbeats(),
            true,
            body,
            json_properties(),
        )
        .await
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
            .map_err(BrokerError::channel("setting the prefetch"))?;
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
                .map_err(BrokerError::consume(format!("starting to consume {queue}")))?;
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
}

impl Transport for AmqpTransport {
    type Error = BrokerError;
    type Delivery = AmqpDelivery;

    async fn next(&self) -> Option<AmqpDelivery> {
        let mut sessions = Resume::new(&self.supervisor);
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return None;
            }
            // `None`: the link is shutting down; an error: it gave up (never, for a worker).
            let s = match sessions.session().await {
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
                        sessions.lost(&s, e.to_string());
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
            sessions.lost(&s, why);
        }
    }

    async fn publish(
        &self,
        result: &JobResult,
        delivery: &AmqpDelivery,
    ) -> Result<(), BrokerError> {
        let s = match self.supervisor.session().await? {
            Some(s) => s,
            None => return Err(BrokerError::Closing),
        };
        let body =
            serde_json::to_vec(result).map_err(|e| BrokerError::Encode { error: Arc::new(e) })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut props = json_properties()
            .with_message_id(result.id.as_str().into())
            .with_timestamp(now);
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
                t.results(),
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
    type Error = BrokerError;

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
            .map_err(BrokerError::ack("acking a job"))
    }

    async fn requeue(self) -> Result<(), BrokerError> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(BrokerError::ack("requeueing a job"))
    }
}
