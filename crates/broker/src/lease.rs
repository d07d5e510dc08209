//! Compile leases across a fleet, held as exclusive RabbitMQ queues.
//!
//! Taking lease `NAME` declares the queue `<prefix>.lease.NAME` as exclusive on this
//! worker's lease connection. RabbitMQ lets one connection own an exclusive queue and
//! refuses the others (`RESOURCE_LOCKED`), so the first worker to ask holds the lease. It
//! is released when the holder deletes the queue, and by the broker when the holder's
//! connection goes away: a worker that dies (or loses its node) while compiling delays the
//! others, never blocks them. No message ever goes through such a queue.

use std::time::Duration;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use wasmq_cache::remote::{BoxFuture, LeaseGuard, Leases, RemoteError};

use crate::BrokerError;
use crate::supervisor::{NoObserver, Setup, Supervisor, SupervisorConfig, soft_error};
use lapin::protocol::AMQPSoftError;

/// How long a lease request waits for a broker connection before the worker compiles
/// without one.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// A lease connection needs nothing set up: each lease opens its own channel.
struct LeaseSetup;

impl Setup for LeaseSetup {
    type Channels = ();

    async fn setup(&self, _conn: &Connection, _generation: u64) -> Result<(), BrokerError> {
        Ok(())
    }

    /// A lease another worker holds is refused with a channel error: an answer, not a
    /// failure of the connection (whose loss would release every lease it holds).
    fn channel_errors_end_the_session(&self) -> bool {
        false
    }
}

/// The compile leases of one worker, on a connection of their own.
pub struct AmqpLeases {
    supervisor: Supervisor<LeaseSetup>,
    prefix: String,
}

impl std::fmt::Debug for AmqpLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpLeases")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl AmqpLeases {
    /// Starts the lease connection (in the background, reconnecting like every other);
    /// `shutdown` closes it, releasing every lease held.
    pub fn start(
        urls: Vec<String>,
        name: String,
        prefix: String,
        shutdown: CancellationToken,
    ) -> AmqpLeases {
        let supervisor = Supervisor::start(
            SupervisorConfig {
                urls,
                name,
                give_up_after: None,
            },
            LeaseSetup,
            std::sync::Arc::new(NoObserver),
            shutdown,
        );
        AmqpLeases { supervisor, prefix }
    }

    /// Closes the lease connection: every lease it holds is released by the broker.
    pub async fn close(&self) {
        self.supervisor.close().await;
    }

    /// The queue that stands for lease `name` (queue names have at most 255 bytes).
    fn queue(&self, name: &str) -> String {
        let mut q = format!("{}.lease.{name}", self.prefix);
        q.truncate(255);
        q
    }

    async fn take(&self, name: &str) -> Result<Option<Box<dyn LeaseGuard>>, RemoteError> {
        let session = tokio::time::timeout(CONNECT_WAIT, self.supervisor.session())
            .await
            .map_err(|_| {
                RemoteError::Unavailable("no broker connection for the compile lease".into())
            })?
            .map_err(|e| RemoteError::Unavailable(e.to_string()))?
            .ok_or_else(|| RemoteError::Unavailable("shutting down".into()))?;
        let channel = session
            .connection()
            .create_channel()
            .await
            .map_err(|e| RemoteError::Unavailable(format!("opening a lease channel: {e}")))?;
        let queue = self.queue(name);
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(_) => {
                debug!(%queue, "compile lease taken");
                Ok(Some(Box::new(Lease { channel, queue })))
            }
            // Another connection owns it (the broker closed this channel).
            Err(e) if soft_error(&e) == Some(AMQPSoftError::RESOURCELOCKED) => Ok(None),
            Err(e) => {
                let _ = channel.close(200, "lease refused".into()).await;
                Err(RemoteError::Unavailable(format!(
                    "declaring lease queue {queue}: {e}"
                )))
            }
        }
    }
}

impl Leases for AmqpLeases {
    fn try_take<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Box<dyn LeaseGuard>>, RemoteError>> {
        Box::pin(self.take(name))
    }
}

/// A lease held: the exclusive queue and the channel that declared it.
struct Lease {
    channel: Channel,
    queue: String,
}

impl LeaseGuard for Lease {}

impl Drop for Lease {
    fn drop(&mut self) {
        let (channel, queue) = (self.channel.clone(), std::mem::take(&mut self.queue));
        // Released in the background; if this fails the broker deletes the queue when the
        // connection closes.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
                let _ = channel.close(200, "lease released".into()).await;
                debug!(%queue, "compile lease released");
            });
        }
    }
}
