//! One reconnect supervisor for every connection wasmq opens to RabbitMQ.
//!
//! A [`Supervisor`] owns one connection at a time. A task of its own connects (trying each
//! node URL in turn), sets the new connection up (channels, topology, consumers: the
//! [`Setup`] of its user), and hands out the current [`Session`] through a
//! `tokio::sync::watch` channel. When the connection fails, or a user reports that a
//! session stopped working ([`Supervisor::lost`]), the task drops that session and builds a
//! new one, with exponential backoff between failed attempts. A user that works on one
//! session after another follows them with a [`Resume`]: it reports the session it lost
//! and waits for the next one.
//!
//! Nothing waits on the supervisor without also waiting on its shutdown token: once it is
//! cancelled, [`Supervisor::session`] returns `None` at once, whether or not a broker is
//! reachable, so a drain never hangs on a broker that is down.
//!
//! Deliveries taken on a session that is gone cannot be acked any more; the broker
//! redelivers them, which is why every result carries the job id and the attempt.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures_util::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::BrokerError;
use crate::amqp::redact;

/// Sets up a new connection: what every session of one supervisor holds besides it.
pub trait Setup: Send + Sync + 'static {
    /// The channels (and whatever else) of one session.
    type Channels: Send + Sync + 'static;

    /// Builds a session's channels on a freshly opened connection; an error drops the
    /// connection and the supervisor tries again after its backoff.
    fn setup(
        &self,
        conn: &Connection,
        generation: u64,
    ) -> impl Future<Output = Result<Self::Channels, BrokerError>> + Send;

    /// Whether an error that closes one channel (a soft AMQP error) ends the session, as it
    /// does by default. A setup whose users expect such errors as answers (a compile lease
    /// that another worker holds) says no, and keeps its connection.
    fn channel_errors_end_the_session(&self) -> bool {
        true
    }
}

pub use wasmq_queue::link::{LinkObserver, NoObserver};

/// One connection and what its [`Setup`] built on it.
pub struct Session<C> {
    /// Counts sessions of one supervisor from 1; a report of a loss names the session it
    /// is about, so a late report about an old session is ignored.
    pub generation: u64,
    /// The node this session is connected to, password redacted.
    pub node: String,
    conn: Connection,
    /// The channels of the session.
    pub channels: C,
}

impl<C> Session<C> {
    /// True while the connection is open.
    pub fn connected(&self) -> bool {
        self.conn.status().connected()
    }

    /// The connection, to open more channels on it.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl<C> std::ops::Deref for Session<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.channels
    }
}

/// The state a supervisor publishes.
enum Link<C> {
    /// No session now; the text says why (shown in readiness and errors).
    Down(String),
    /// The current session.
    Up(Arc<Session<C>>),
    /// The supervisor stopped (shutdown, or it gave up): why.
    Closed(BrokerError),
}

impl<C> Clone for Link<C> {
    fn clone(&self) -> Self {
        match self {
            Link::Down(s) => Link::Down(s.clone()),
            Link::Up(s) => Link::Up(s.clone()),
            Link::Closed(s) => Link::Closed(s.clone()),
        }
    }
}

/// How a supervisor connects.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Node URLs, tried in order on every attempt; the first that answers is used.
    pub urls: Vec<String>,
    /// The connection's name on the broker (shown in its tools).
    pub name: String,
    /// Give up (the supervisor closes, [`Supervisor::session`] returns an error) after
    /// failing to connect for this long; `None` retries for ever.
    pub give_up_after: Option<Duration>,
}

/// Backoff between failed attempts: doubles from `MIN_BACKOFF` up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The delays between failed attempts, from the first failure on (no jitter, no limit on
/// the number of attempts: [`SupervisorConfig::give_up_after`] bounds them by time).
fn backoff() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(MIN_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

/// The supervisor of one connection; cloning shares it.
pub struct Supervisor<S: Setup> {
    link: watch::Receiver<Link<S::Channels>>,
    lost: mpsc::UnboundedSender<(u64, String)>,
    shutdown: CancellationToken,
}

impl<S: Setup> Clone for Supervisor<S> {
    fn clone(&self) -> Self {
        Supervisor {
            link: self.link.clone(),
            lost: self.lost.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<S: Setup> Supervisor<S> {
    /// Starts supervising: the first session is built in the background, and retried
    /// with backoff while the broker is unreachable. `shutdown` stops it (and closes the
    /// connection).
    pub fn start(
        config: SupervisorConfig,
        setup: S,
        observer: Arc<dyn LinkObserver>,
        shutdown: CancellationToken,
    ) -> Supervisor<S> {
        Supervisor::spawn(config, setup, observer, shutdown, None)
    }

    /// Spawns the supervisor's task, starting from `first` when there is one.
    fn spawn(
        config: SupervisorConfig,
        setup: S,
        observer: Arc<dyn LinkObserver>,
        shutdown: CancellationToken,
        first: Option<Arc<Session<S::Channels>>>,
    ) -> Supervisor<S> {
        let initial = match &first {
            Some(s) => Link::Up(s.clone()),
            None => Link::Down("connecting to the broker".into()),
        };
        let (tx, link) = watch::channel(initial);
        let (lost, lost_rx) = mpsc::unbounded_channel();
        let task = Task {
            config,
            setup,
            observer,
            link: tx,
            lost: lost_rx,
            shutdown: shutdown.clone(),
        };
        tokio::spawn(task.run(first));
        Supervisor {
            link,
            lost,
            shutdown,
        }
    }

    /// As [`Supervisor::start`], but the first session is built now, and an error is
    /// returned when it cannot be: for commands that should fail fast when no broker is
    /// there at all, and survive its restarts once connected.
    pub async fn connect(
        config: SupervisorConfig,
        setup: S,
        observer: Arc<dyn LinkObserver>,
        shutdown: CancellationToken,
    ) -> Result<Supervisor<S>, BrokerError> {
        let first = open(&config, &setup, 1).await;
        let session = match first {
            Ok(s) => Arc::new(s),
            Err(e) => {
                observer.disconnected(&e.to_string());
                return Err(e);
            }
        };
        observer.connected(1, false);
        Ok(Supervisor::spawn(
            config,
            setup,
            observer,
            shutdown,
            Some(session),
        ))
    }

    /// The current session, waiting for one while the broker is down; `Ok(None)` once
    /// shutdown began, an error when the supervisor gave up.
    pub async fn session(&self) -> Result<Option<Arc<Session<S::Channels>>>, BrokerError> {
        self.session_after(0).await
    }

    /// As [`Supervisor::session`], but only a session newer than generation `after`: what
    /// a user that just reported a session lost waits for.
    pub async fn session_after(
        &self,
        after: u64,
    ) -> Result<Option<Arc<Session<S::Channels>>>, BrokerError> {
        let mut link = self.link.clone();
        loop {
            if self.shutdown.is_cancelled() {
                return Ok(None);
            }
            match &*link.borrow_and_update() {
                Link::Up(s) if s.generation <= after => {}
                Link::Up(s) if s.connected() => return Ok(Some(s.clone())),
                Link::Up(s) => {
                    let _ = self
                        .lost
                        .send((s.generation, "the connection is closed".into()));
                }
                Link::Closed(why) => return Err(why.clone()),
                Link::Down(_) => {}
            }
            tokio::select! {
                changed = link.changed() => {
                    if changed.is_err() {
                        return Ok(None);
                    }
                }
                _ = self.shutdown.cancelled() => return Ok(None),
            }
        }
    }

    /// The current session if there is one now, without waiting.
    pub fn current(&self) -> Option<Arc<Session<S::Channels>>> {
        match &*self.link.borrow() {
            Link::Up(s) if s.connected() => Some(s.clone()),
            _ => None,
        }
    }

    /// Why there is no session now, or `None` when there is one.
    pub fn down_reason(&self) -> Option<String> {
        match &*self.link.borrow() {
            Link::Up(s) if s.connected() => None,
            Link::Up(_) => Some("the broker connection was lost".into()),
            Link::Down(why) => Some(why.clone()),
            Link::Closed(why) => Some(why.to_string()),
        }
    }

    /// Reports that `session` stopped working (a channel error, a consumer cancelled by
    /// the broker): the supervisor replaces it, unless it already has.
    pub fn lost(&self, session: &Session<S::Channels>, why: impl Into<String>) {
        let _ = self.lost.send((session.generation, why.into()));
    }

    /// The token that stops this supervisor.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Stops the supervisor and closes its connection; deliveries not acked go back to
    /// their queues.
    pub async fn close(&self) {
        let last = self.current();
        self.shutdown.cancel();
        if let Some(s) = last {
            let close = s.conn.close(200, "wasmq closing".into());
            let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
        }
    }
}

/// One user's way through the sessions of a supervisor: the session to work on, and once
/// the user reports that one lost, the next (never the lost one again).
pub struct Resume<'a, S: Setup> {
    supervisor: &'a Supervisor<S>,
    /// The generation of the last session reported lost; a session handed out is newer.
    after: u64,
}

impl<'a, S: Setup> Resume<'a, S> {
    /// Follows `supervisor`'s sessions from the current one on.
    pub fn new(supervisor: &'a Supervisor<S>) -> Resume<'a, S> {
        Resume {
            supervisor,
            after: 0,
        }
    }

    /// The session to work on: the current one, newer than any reported lost, waiting
    /// for it while the broker is down; `Ok(None)` once shutdown began, an error when
    /// the supervisor gave up (as [`Supervisor::session_after`]).
    pub async fn session(&self) -> Result<Option<Arc<Session<S::Channels>>>, BrokerError> {
        self.supervisor.session_after(self.after).await
    }

    /// Reports that `session` stopped working, `why` (see [`Supervisor::lost`]): the next
    /// [`Resume::session`] is a newer one.
    pub fn lost(&mut self, session: &Session<S::Channels>, why: impl Into<String>) {
        self.supervisor.lost(session, why);
        self.after = session.generation;
    }

    /// As [`Resume::lost`], for a user that noticed the loss of session `generation`
    /// without holding it (a consumer that ended): the loss is reported while that
    /// session is still the supervisor's current one, connected; otherwise the supervisor
    /// has seen it go already.
    pub fn lost_generation(&mut self, generation: u64, why: impl Into<String>) {
        if let Some(s) = self.supervisor.current()
            && s.generation == generation
        {
            self.supervisor.lost(&s, why);
        }
        self.after = generation;
    }
}

/// Opens a connection to the first node of `config` that answers and sets it up.
async fn open<S: Setup>(
    config: &SupervisorConfig,
    setup: &S,
    generation: u64,
) -> Result<Session<S::Channels>, BrokerError> {
    let mut errors = Vec::new();
    for url in &config.urls {
        let props =
            ConnectionProperties::default().with_connection_name(config.name.as_str().into());
        match Connection::connect(url, props).await {
            Ok(conn) => match setup.setup(&conn, generation).await {
                Ok(channels) => {
                    return Ok(Session {
                        generation,
                        node: redact(url),
                        conn,
                        channels,
                    });
                }
                Err(e) => {
                    let _ = conn.close(320, "wasmq setup failed".into()).await;
                    errors.push(BrokerError::Setup {
                        node: redact(url),
                        error: Box::new(e),
                    });
                }
            },
            Err(error) => errors.push(BrokerError::Connect {
                node: redact(url),
                error,
            }),
        }
    }
    Err(BrokerError::Unreachable(errors))
}

/// Whether `e` closed one channel only (a soft AMQP error), not the connection.
fn is_channel_error(e: &lapin::Error) -> bool {
    soft_error(e).is_some()
}

/// The soft AMQP error (one that closed a channel, not the connection) that `e` is, if it
/// is one: `NOT_FOUND`, `ACCESS_REFUSED`, `RESOURCE_LOCKED`, ...
pub(crate) fn soft_error(e: &lapin::Error) -> Option<lapin::protocol::AMQPSoftError> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(a) => match a.kind() {
            lapin::protocol::AMQPErrorKind::Soft(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The supervisor's own task.
struct Task<S: Setup> {
    config: SupervisorConfig,
    setup: S,
    observer: Arc<dyn LinkObserver>,
    link: watch::Sender<Link<S::Channels>>,
    lost: mpsc::UnboundedReceiver<(u64, String)>,
    shutdown: CancellationToken,
}

impl<S: Setup> Task<S> {
    async fn run(mut self, mut current: Option<Arc<Session<S::Channels>>>) {
        let shutdown = self.shutdown.clone();
        let mut generation = current.as_ref().map_or(0, |s| s.generation);
        let mut ever_connected = current.is_some();
        let mut delays = backoff();
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            if let Some(session) = current.take() {
                // Up: wait until it is lost or shutdown begins.
                let why = tokio::select! {
                    why = self.watch(&session) => why,
                    _ = shutdown.cancelled() => {
                        let _ = self.link.send(Link::Closed(BrokerError::ShuttingDown));
                        return;
                    }
                };
                warn!(generation = session.generation, error = %why, "lost the broker connection; reconnecting");
                self.observer.blocked(None);
                self.observer.disconnected(&why);
                let _ = self.link.send(Link::Down(why));
                tokio::spawn(async move {
                    let _ = session.conn.close(320, "wasmq reconnecting".into()).await;
                });
                failing_since = None;
                delays = backoff();
                continue;
            }
            let attempt = tokio::select! {
                r = open(&self.config, &self.setup, generation + 1) => r,
                _ = self.shutdown.cancelled() => {
                    let _ = self.link.send(Link::Closed(BrokerError::ShuttingDown));
                    return;
                }
            };
            match attempt {
                Ok(session) => {
                    generation += 1;
                    info!(generation, node = %session.node, "connected to the broker");
                    self.observer.connected(generation, ever_connected);
                    ever_connected = true;
                    let session = Arc::new(session);
                    let _ = self.link.send(Link::Up(session.clone()));
                    current = Some(session);
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if let Some(limit) = self.config.give_up_after
                        && since.elapsed() >= limit
                    {
                        let why = BrokerError::GaveUp {
                            after_secs: limit.as_secs(),
                            error: Box::new(e),
                        };
                        self.observer.disconnected(&why.to_string());
                        let _ = self.link.send(Link::Closed(why));
                        return;
                    }
                    let delay = delays.next().unwrap_or(MAX_BACKOFF);
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "broker unreachable; retrying");
                    self.observer.disconnected(&e.to_string());
                    let _ = self
                        .link
                        .send(Link::Down(format!("broker unreachable: {e}")));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.cancelled() => {
                            let _ = self.link.send(Link::Closed(BrokerError::ShuttingDown));
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Returns why `session` is gone: its connection failed, or a user reported it lost.
    async fn watch(&mut self, session: &Session<S::Channels>) -> String {
        let mut events = std::pin::pin!(session.conn.events_listener());
        // A connection that failed before the listener was set reports nothing: poll it.
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Event::Error(e))
                        if !self.setup.channel_errors_end_the_session() && is_channel_error(&e) => {}
                    Some(Event::Error(e)) => return e.to_string(),
                    Some(Event::ConnectionBlocked(reason)) => {
                        warn!(reason = %reason, "the broker is holding back publishes (a resource alarm on the broker); waiting until it lifts");
                        self.observer.blocked(Some(&reason));
                    }
                    Some(Event::ConnectionUnblocked) => {
                        info!("the broker lets publishes through again");
                        self.observer.blocked(None);
                    }
                    Some(_) => {}
                    None => return "the connection is closed".into(),
                },
                report = self.lost.recv() => match report {
                    Some((g, why)) if g == session.generation => return why,
                    Some(_) => {}
                    None => return "the supervisor was dropped".into(),
                },
                _ = poll.tick() => {
                    if !session.conn.status().connected() {
                        return "the connection is closed".into();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_100_ms_up_to_5_s() {
        let millis: Vec<u128> = backoff().take(9).map(|d| d.as_millis()).collect();
        assert_eq!(
            millis,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000],
            "{millis:?}"
        );
    }
}
