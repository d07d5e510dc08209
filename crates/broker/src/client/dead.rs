//! Reading a queue in place: [`Peeked`] messages, left in the queue unless chosen; the
//! repair of the dead-letter queue (moving jobs back to the jobs queue) and purging.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::Acker;
use lapin::options::BasicAckOptions;
use lapin::types::{AMQPValue, FieldTable};

use super::Client;
use super::subscription::consume_on;
use crate::BrokerError;
use crate::amqp::{as_u64, header_str, publish_confirmed};

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
        let prefetch = want.min(u32::from(u16::MAX)) as u16;
        let (ch, mut consumer) = consume_on(&s, queue, prefetch, FieldTable::default()).await?;
        let mut seen = 0u32;
        let mut outcome = Ok(());
        while seen < want {
            let d = match tokio::time::timeout(PEEK_IDLE, consumer.next()).await {
                Ok(Some(Ok(d))) => d,
                Ok(Some(Err(e))) => {
                    outcome = Err(BrokerError::consume("reading a queue")(e));
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
                        .map_err(BrokerError::ack("removing a message"))?;
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
                        if who.is_empty() || Some(who) == self.user() {
                            e
                        } else {
                            BrokerError::Impersonation {
                                user_id: who.to_owned(),
                                error: Box::new(e),
                            }
                        }
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
            .map_err(BrokerError::queue(format!("purging queue {queue}")))
    }
}
