//! A batch's own result queue: its name for this client's user, its declaration and
//! binding, finding it again, and the manifest that records the batch's size in it.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::AMQPSoftError;
use lapin::types::{AMQPValue, FieldTable};

use super::Client;
use crate::BrokerError;
use crate::amqp::{Topology, json_properties, publish_confirmed};
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
        .map_err(BrokerError::declare("declaring the batch result queue"))?;
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
}
