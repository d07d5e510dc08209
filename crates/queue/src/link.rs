//! The health of a transport's link to its broker, as a worker's metrics and readiness
//! see it.

/// Told of every change of a transport's link to its broker (for metrics and readiness).
pub trait LinkObserver: Send + Sync + 'static {
    /// A session is up; `reconnect` is false for the first one.
    fn connected(&self, generation: u64, reconnect: bool);
    /// The link is down (or never came up): `why` says what happened.
    fn disconnected(&self, why: &str);
    /// The worker started (`true`) or stopped (`false`) consuming the jobs queue.
    fn consuming(&self, _consuming: bool) {}
    /// The broker blocked publishes on the connection (AMQP's `connection.blocked`, a
    /// resource alarm: memory or disk), with its reason; `None`: it unblocked them, or the
    /// connection is gone.
    fn blocked(&self, _reason: Option<&str>) {}
}

/// An observer that does nothing.
#[derive(Debug, Default)]
pub struct NoObserver;

impl LinkObserver for NoObserver {
    fn connected(&self, _: u64, _: bool) {}
    fn disconnected(&self, _: &str) {}
}
