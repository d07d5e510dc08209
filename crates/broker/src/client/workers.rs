//! The workers of a prefix, as their heartbeats in the heartbeats stream tell.
//!
//! A stream has no end a reader could wait for, so the reader first writes a marker of its
//! own to it (confirmed), then reads from an hour back until it meets the marker: it has
//! then seen every heartbeat published before it began, however slowly the broker
//! delivers them.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::{Channel, Consumer};
use wasmq_spec::control::{Heartbeat, HeartbeatMessage};

use super::Client;
use crate::BrokerError;
use crate::amqp::{Credit, Offset, consume_stream, read_to_own_marker};

/// How far back the heartbeats are read: the stream's retention.
const LOOK_BACK: Duration = Duration::from_secs(3600);

/// How long reading up to the marker may take.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// The heartbeats stream, followed from an hour back: every heartbeat as it comes
/// ([`Client::follow_heartbeats`]). It does not survive a lost connection: follow again.
pub struct HeartbeatFeed {
    _channel: Channel,
    consumer: Consumer,
    stream: String,
    credit: Credit,
}

impl HeartbeatFeed {
    /// The next heartbeat (markers and messages of later versions are skipped); `None`
    /// when the consumer ended.
    pub async fn next(&mut self) -> Option<Result<Heartbeat, BrokerError>> {
        while let Some(d) = self.consumer.next().await {
            let d = match d {
                Ok(d) => d,
                Err(e) => {
                    return Some(Err(BrokerError::consume(format!(
                        "reading the heartbeats stream {}",
                        self.stream
                    ))(e)));
                }
            };
            self.credit.delivered(&d.acker).await;
            if let Ok(HeartbeatMessage::Heartbeat { heartbeat }) = serde_json::from_slice(&d.data) {
                return Some(Ok(heartbeat));
            }
        }
        None
    }
}

/// The prefetch of a heartbeats reader.
const BEATS_PREFETCH: u16 = 512;

/// Consumes the heartbeats `stream` on `ch` from [`LOOK_BACK`] ago.
async fn consume_from_look_back(ch: &Channel, stream: &str) -> Result<Consumer, BrokerError> {
    consume_stream(
        ch,
        stream,
        Offset::Since(LOOK_BACK),
        BEATS_PREFETCH,
        "the heartbeats stream",
    )
    .await
}

impl Client {
    /// Follows the heartbeats stream from an hour back; `Ok(None)` when no worker has
    /// declared it on this prefix yet.
    pub async fn follow_heartbeats(&self) -> Result<Option<HeartbeatFeed>, BrokerError> {
        let stream = self.topology.heartbeats();
        if !self.queue_exists(&stream).await? {
            return Ok(None);
        }
        let ch = self.channel().await?;
        let consumer = consume_from_look_back(&ch, &stream).await?;
        Ok(Some(HeartbeatFeed {
            _channel: ch,
            consumer,
            stream,
            credit: Credit::new(BEATS_PREFETCH),
        }))
    }

    /// The latest heartbeat of each worker heard from in the last hour, by worker id; none
    /// when no worker has declared the heartbeats stream on this prefix.
    pub async fn heartbeats(&self) -> Result<Vec<Heartbeat>, BrokerError> {
        let stream = self.topology.heartbeats();
        if !self.queue_exists(&stream).await? {
            return Ok(Vec::new());
        }
        let ch = self.channel().await?;
        let mut latest: BTreeMap<String, Heartbeat> = BTreeMap::new();
        read_to_own_marker(
            ch,
            &stream,
            Offset::Since(LOOK_BACK),
            &format!("the heartbeats stream {stream}"),
            READ_LIMIT,
            |d| {
                // Messages of later versions are skipped.
                if let Ok(HeartbeatMessage::Heartbeat { heartbeat: h }) =
                    serde_json::from_slice(&d.data)
                    && latest.get(&h.worker).is_none_or(|old| old.at_ms <= h.at_ms)
                {
                    latest.insert(h.worker.clone(), h);
                }
            },
        )
        .await?;
        Ok(latest.into_values().collect())
    }
}
