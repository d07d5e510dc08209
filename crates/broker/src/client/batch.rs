//! A batch's own result queue: its name for this client's user, its declaration and
//! binding, finding it again, and the manifest that records the batch's size in it.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::AMQPSoftError;
use lapin::types::{AMQPValue, FieldTable};

use super::Client;
use crate::BrokerError;
use crate::amqp::{Topology, json_properties, marker_of, new_marker, publish_confirmed};
use crate::supervisor::soft_error;

impl Client {
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

    /// Declares a batch's results stream ([`Client::batch_queue`]), bound to
    /// `<user>.<batch>.#` on the private results exchange for a tenant (`<batch>.#` on the
    /// shared one for anyone else), with the topology's [`BatchRetention`](crate::amqp::BatchRetention).
    /// A stream is read without being consumed, from its first result, by any number of
    /// readers; the workers delete it once the batch is past its retention.
    pub async fn declare_batch_queue(&self, batch: &str) -> Result<String, BrokerError> {
        let t = &self.topology;
        let s = self.session().await?;
        let name = self.batch_queue(batch).await?;
        let tenant = self.tenant().await?;
        if name.len() > 255 {
            return Err(BrokerError::BatchNameTooLong {
                batch: batch.to_owned(),
                len: name.len(),
            });
        }
        let (exchange, key) = match tenant {
            Some(user) => (
                t.private_exchange(),
                format!("{}.#", Topology::manifest_key(user, batch)),
            ),
            None => (t.results(), format!("{batch}.#")),
        };
        // A declare the broker refuses closes the channel: on a channel of its own.
        let ch = s
            .connection()
            .create_channel()
            .await
            .map_err(BrokerError::channel("opening a channel"))?;
        let declared = ch
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                t.batch_stream_args(),
            )
            .await;
        let _ = ch.close(200, "done".into()).await;
        declared.map_err(|error| match (soft_error(&error), self.user()) {
            (Some(AMQPSoftError::PRECONDITIONFAILED), _) => BrokerError::BatchQueueExists {
                queue: name.clone(),
                error,
            },
            // A tenant user whose jobs queue no worker has declared yet may not declare a
            // batch stream of the shared results.
            (Some(AMQPSoftError::ACCESSREFUSED), Some(user)) if tenant.is_none() => {
                BrokerError::NoTenantQueue {
                    jobs_queue: t.tenant_jobs_queue(user),
                    error,
                }
            }
            _ => BrokerError::declare("declaring the batch results stream")(error),
        })?;
        s.ch.queue_bind(
            name.as_str().into(),
            exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|error| match self.user() {
            // A tenant user whose jobs queue no worker has declared yet may not bind to
            // the shared results exchange.
            Some(user)
                if tenant.is_none() && soft_error(&error) == Some(AMQPSoftError::ACCESSREFUSED) =>
            {
                BrokerError::NoTenantQueue {
                    jobs_queue: t.tenant_jobs_queue(user),
                    error,
                }
            }
            _ => BrokerError::declare("binding the batch result queue")(error),
        })?;
        Ok(name)
    }

    /// Records a batch's size in its results stream, with the stream's name and the time
    /// of the submit (for the workers that delete it past its retention): on the private
    /// results exchange under a tenant's name (which the batches index is bound to), or
    /// straight to the stream and to the batches index.
    pub async fn send_manifest(&self, batch: &str, body: &[u8]) -> Result<(), BrokerError> {
        let stream = self.batch_queue(batch).await?;
        let mut headers = FieldTable::default();
        headers.insert(
            STREAM_HEADER.into(),
            AMQPValue::LongString(stream.as_str().into()),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // The id tells this manifest from another submit's to the same batch, also when a
        // reader reads the stream again after a reconnect.
        let props = json_properties()
            .with_headers(headers)
            .with_timestamp(now)
            .with_message_id(uuid::Uuid::new_v4().to_string().into());
        let s = self.session().await?;
        match self.tenant().await? {
            Some(user) => {
                publish_confirmed(
                    &s.ch,
                    &self.topology.private_exchange(),
                    &Topology::manifest_key(user, batch),
                    true,
                    body,
                    props,
                )
                .await
            }
            None => {
                publish_confirmed(&s.ch, "", &stream, true, body, props.clone()).await?;
                let index = self.topology.batches_index();
                match publish_confirmed(&s.ch, "", &index, true, body, props).await {
                    // Only workers of an older version have run on this prefix.
                    Err(BrokerError::Unroutable { .. }) => {
                        tracing::warn!(
                            "no worker has declared the batches index {index} (workers of an older version): the results stream {stream} is not deleted when its retention ends"
                        );
                        Ok(())
                    }
                    other => other,
                }
            }
        }
    }

    /// Writes a marker of this reader's own to the batch's results stream, the way its
    /// manifest goes, and returns it: a reader that meets it has read everything published
    /// before.
    pub async fn send_marker(&self, batch: &str) -> Result<String, BrokerError> {
        let (marker, body) = new_marker()?;
        let (exchange, key) = match self.tenant().await? {
            Some(user) => (
                self.topology.private_exchange(),
                Topology::manifest_key(user, batch),
            ),
            None => (String::new(), self.find_batch_queue(batch).await?),
        };
        // A stream whose leader was on a node just lost refuses writes (with a hard error
        // in RabbitMQ 3.10) until another replica leads: tried again meanwhile.
        let deadline = tokio::time::Instant::now() + STREAM_RETRY;
        loop {
            let s = self.session().await?;
            match publish_confirmed(&s.ch, &exchange, &key, true, &body, json_properties()).await {
                Ok(()) => return Ok(marker),
                Err(e) if tokio::time::Instant::now() < deadline && !s.connected() => {
                    tracing::warn!(error = %e, "could not write to the batch's results stream; retrying");
                    crate::supervisor::Resume::new(&self.supervisor)
                        .lost_generation(s.generation, e.to_string());
                    tokio::time::sleep(STREAM_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

use crate::amqp::STREAM_HEADER;

/// How long a write to a batch's results stream the broker refuses is tried again.
const STREAM_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The pause between two tries.
const STREAM_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

impl Client {
    /// Every message of a batch's results stream published before this call (manifests
    /// and results, markers left out), from the first, leaving them all in the stream.
    pub async fn read_batch(&self, batch: &str) -> Result<Vec<Vec<u8>>, BrokerError> {
        let queue = self.find_batch_queue(batch).await?;
        // Fails here, before a marker is written, when the batch has no stream.
        self.queue_counts(&queue).await?;
        let marker = self.send_marker(batch).await?;
        let mut sub = self.read_stream(&queue, 512).await?;
        let mut out = Vec::new();
        while let Some(m) = sub.next().await {
            let m = m?;
            let mine = marker_of(&m.body);
            let body = m.body.clone();
            let _ = m.ack().await;
            match mine {
                Some(found) if found == marker => return Ok(out),
                Some(_) => {}
                None => out.push(body),
            }
        }
        Err(BrokerError::ConsumerEnded { queue })
    }
}
