//! [`Topology`]: the names of every exchange and queue wasmq declares, their arguments,
//! and their declaration.

use lapin::Channel;
use lapin::ExchangeKind;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use wasmq_spec::Status;

use crate::BrokerError;

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
    /// The retention of each batch's results stream.
    pub batch_retention: BatchRetention,
}

/// How long a batch's results stream is kept, and how large it may grow: past the age a
/// worker deletes the stream (reading never removes a result: only this does), past the
/// size the broker drops its oldest results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRetention {
    /// Seconds from the batch's submit until its stream is deleted.
    pub max_age_secs: u64,
    /// Bytes the stream may hold (`x-max-length-bytes`).
    pub max_bytes: u64,
}

impl BatchRetention {
    /// Seven days, 1 GiB.
    pub const DEFAULT: BatchRetention = BatchRetention {
        max_age_secs: 7 * 24 * 3600,
        max_bytes: 1024 * 1024 * 1024,
    };

    /// The longest `max_age_secs`: what the batches index keeps.
    pub const MAX_AGE_SECS: u64 = 30 * 24 * 3600;
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

    /// The name of the topic exchange results are published to (routing key
    /// `<batch>.<status>`), and of the shared results queue, bound to it for every result:
    /// both are `<prefix>.results`.
    pub fn results(&self) -> String {
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

    /// The batches index: a stream that receives every batch's manifest (with the name of
    /// its results stream and the time of its submit), read by the workers to delete the
    /// streams of batches past their retention. Bound to the private results exchange with
    /// `*.*` (a tenant's manifest) and fed directly for everyone else's.
    pub fn batches_index(&self) -> String {
        format!("{}.batches", self.prefix)
    }

    /// One tenant's own batches index: the manifests of its batches alone (bound to the
    /// private results exchange with `<user>.*`), in a name of its batch streams' family,
    /// so that the tenant may read it and nobody else. `~` is no character of a batch
    /// name, so no batch's stream has this name.
    pub fn tenant_batches_index(&self, user: &str) -> String {
        format!("{}.batch.{}.~index", self.prefix, Self::user_word(user))
    }

    /// The arguments of a batches index: a stream of 30 days in small segments.
    fn index_args() -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        args.insert("x-max-age".into(), AMQPValue::LongString(INDEX_AGE.into()));
        args.insert(
            "x-stream-max-segment-size-bytes".into(),
            AMQPValue::LongLongInt(INDEX_SEGMENT_BYTES),
        );
        args
    }

    /// The arguments of a batch's results stream.
    pub fn batch_stream_args(&self) -> FieldTable {
        let r = self.batch_retention;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        args.insert(
            "x-max-age".into(),
            AMQPValue::LongString(format!("{}s", r.max_age_secs.max(1)).into()),
        );
        args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(i64::try_from(r.max_bytes).unwrap_or(i64::MAX)),
        );
        args.insert(
            "x-stream-max-segment-size-bytes".into(),
            AMQPValue::LongLongInt(
                BATCH_SEGMENT_BYTES.min(i64::try_from(r.max_bytes).unwrap_or(i64::MAX)),
            ),
        );
        args
    }

    /// The stream of workers' heartbeats: an hour of them, read by `wasmq status`.
    pub fn heartbeats(&self) -> String {
        format!("{}.heartbeats", self.prefix)
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
            .map_err(BrokerError::declare(format!(
                "declaring the tenant jobs queue {queue}"
            )))?;
        ch.queue_bind(
            queue.as_str().into(),
            self.submit_exchange().into(),
            Self::user_word(user).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare(format!(
            "binding the tenant jobs queue {queue}"
        )))?;
        let index = self.tenant_batches_index(user);
        ch.queue_declare(index.as_str().into(), durable_queue(), Self::index_args())
            .await
            .map_err(BrokerError::declare(format!(
                "declaring the tenant's batches index {index}"
            )))?;
        ch.queue_bind(
            index.as_str().into(),
            self.private_exchange().into(),
            format!("{}.*", Self::user_word(user)).as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare(format!(
            "binding the tenant's batches index {index}"
        )))
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
        .map_err(BrokerError::declare("declaring the dead-letter exchange"))?;
        ch.queue_declare(self.dead_queue().into(), durable_queue(), quorum_args(None))
            .await
            .map_err(BrokerError::declare("declaring the dead-letter queue"))?;
        ch.queue_bind(
            self.dead_queue().into(),
            self.dead_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("binding the dead-letter queue"))?;
        ch.queue_declare(self.jobs_queue().into(), durable_queue(), self.jobs_args())
            .await
            .map_err(BrokerError::declare(format!(
                "declaring the jobs queue {} (if it exists with another delivery limit, use the same --delivery-limit everywhere)",
                self.jobs_queue()
            )))?;
        ch.exchange_declare(
            self.results().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("declaring the results exchange"))?;
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
        ch.queue_declare(self.results().into(), durable_queue(), results_args)
            .await
            .map_err(BrokerError::declare(format!(
                "declaring the results queue {} (if it exists with another retention, give every process the same results_queue_ttl_secs and results_queue_max_length, or delete the queue)",
                self.results()
            )))?;
        ch.queue_bind(
            self.results().into(),
            self.results().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("binding the results queue"))?;
        ch.exchange_declare(
            self.private_exchange().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare(
            "declaring the private results exchange",
        ))?;
        ch.exchange_declare(
            self.submit_rest_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare(
            "declaring the submit exchange's alternate",
        ))?;
        ch.queue_bind(
            self.jobs_queue().into(),
            self.submit_rest_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("binding the jobs queue"))?;
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
        .map_err(BrokerError::declare("declaring the submit exchange"))?;
        ch.exchange_declare(
            self.control_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("declaring the control exchange"))?;
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
            .map_err(BrokerError::declare("declaring the control log stream"))?;
        ch.queue_bind(
            self.control_log().into(),
            self.control_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("binding the control log stream"))?;
        let mut beat_args = FieldTable::default();
        beat_args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        beat_args.insert(
            "x-max-age".into(),
            AMQPValue::LongString(HEARTBEATS_AGE.into()),
        );
        beat_args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(HEARTBEATS_MAX_BYTES),
        );
        ch.queue_declare(self.heartbeats().into(), durable_queue(), beat_args)
            .await
            .map_err(BrokerError::declare("declaring the heartbeats stream"))?;
        ch.queue_declare(
            self.batches_index().into(),
            durable_queue(),
            Self::index_args(),
        )
        .await
        .map_err(BrokerError::declare("declaring the batches index stream"))?;
        ch.queue_bind(
            self.batches_index().into(),
            self.private_exchange().into(),
            "*.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("binding the batches index stream"))?;
        Ok(())
    }
}

/// How long the batches index keeps a manifest: [`BatchRetention::MAX_AGE_SECS`].
const INDEX_AGE: &str = "30D";

/// Segments of the batches index, small so that its retention removes old ones.
const INDEX_SEGMENT_BYTES: i64 = 1024 * 1024;

/// Segments of a batch's results stream (RabbitMQ's default is 500 MB).
const BATCH_SEGMENT_BYTES: i64 = 64 * 1024 * 1024;

/// How long the heartbeats stream keeps heartbeats: a worker gone for longer is no longer
/// listed.
const HEARTBEATS_AGE: &str = "1h";

/// The most the heartbeats stream holds, in bytes (a heartbeat is about 250 bytes).
const HEARTBEATS_MAX_BYTES: i64 = 64 * 1024 * 1024;

/// How long the control log keeps messages: a day (what workers honour a cancel for),
/// and an hour more.
const CONTROL_LOG_AGE: &str = "25h";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        let t = Topology {
            batch_retention: BatchRetention::DEFAULT,
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
}
