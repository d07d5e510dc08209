//! Reading RabbitMQ streams over AMQP: where a consumer starts, and the markers a reader
//! writes to know where a stream ended when it began to read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, BasicProperties, Channel, Consumer};

use super::publish::{json_properties, publish_confirmed};
use crate::BrokerError;

/// Where a stream's consumer starts.
#[derive(Debug, Clone, Copy)]
pub enum Offset {
    /// At its first message.
    First,
    /// At the messages of this long ago.
    Since(Duration),
}

/// The consumer arguments of `offset` (`x-stream-offset`).
pub fn offset_args(offset: Offset) -> FieldTable {
    let value = match offset {
        Offset::First => AMQPValue::LongString("first".into()),
        Offset::Since(ago) => AMQPValue::Timestamp(
            SystemTime::now()
                .checked_sub(ago)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        ),
    };
    let mut args = FieldTable::default();
    args.insert("x-stream-offset".into(), value);
    args
}

/// Consumes `stream` on `ch` from `offset`, `prefetch` at a time: a stream needs a
/// prefetch and manual acks (which only grant credit). `what` names the stream in errors.
pub(crate) async fn consume_stream(
    ch: &Channel,
    stream: &str,
    offset: Offset,
    prefetch: u16,
    what: &str,
) -> Result<Consumer, BrokerError> {
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(BrokerError::channel(format!(
            "setting the prefetch of {what}"
        )))?;
    ch.basic_consume(
        stream.into(),
        "".into(),
        BasicConsumeOptions::default(),
        offset_args(offset),
    )
    .await
    .map_err(BrokerError::consume(format!("reading {what}")))
}

/// The credit of a stream's consumer. A stream's acks remove nothing: they only let the
/// broker send more, up to the prefetch. An ack per message costs the broker a command per
/// message (the larger part of what a reader costs it); this acks every quarter of the
/// prefetch, with `multiple`, which covers the deliveries before.
#[derive(Debug)]
pub(crate) struct Credit {
    every: u16,
    unacked: u16,
}

impl Credit {
    /// For a consumer of `prefetch` messages at most.
    pub(crate) fn new(prefetch: u16) -> Credit {
        Credit {
            every: (prefetch / 4).max(1),
            unacked: 0,
        }
    }

    /// Counts the delivery of `acker`: acks it and every one before it once a quarter of
    /// the prefetch is unacked. A failed ack is left: the consumer's channel is gone.
    pub(crate) async fn delivered(&mut self, acker: &Acker) {
        self.unacked += 1;
        if self.unacked >= self.every {
            self.unacked = 0;
            let _ = acker.ack(BasicAckOptions { multiple: true }).await;
        }
    }

    /// For a consumer on a new channel (after a reconnect): nothing unacked.
    pub(crate) fn restart(&mut self) {
        self.unacked = 0;
    }
}

/// Whether a delivery comes from a stream: RabbitMQ gives each one its `x-stream-offset`.
pub(crate) fn from_stream(properties: &BasicProperties) -> bool {
    properties
        .headers()
        .as_ref()
        .is_some_and(|h| h.inner().contains_key("x-stream-offset"))
}

/// The prefetch of a reader up to its own marker.
const MARKER_READ_PREFETCH: u16 = 512;

/// Reads `stream` from `offset` up to a marker of this reader's own, which it first writes
/// to the stream (through the default exchange, confirmed): every message published before
/// the call, however slowly the broker delivers them. Each message but the markers (this
/// reader's and others') goes to `each`. `what` names the stream in errors; the read gives
/// up after `limit`. `ch` is the reader's, and is closed at the end.
pub(crate) async fn read_to_own_marker(
    ch: Channel,
    stream: &str,
    offset: Offset,
    what: &str,
    limit: std::time::Duration,
    mut each: impl FnMut(Delivery),
) -> Result<(), BrokerError> {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(BrokerError::channel("turning on publisher confirms"))?;
    let (marker, body) = new_marker()?;
    publish_confirmed(&ch, "", stream, true, &body, json_properties()).await?;
    let mut consumer = consume_stream(&ch, stream, offset, MARKER_READ_PREFETCH, what).await?;
    let mut credit = Credit::new(MARKER_READ_PREFETCH);
    let read = async {
        while let Some(d) = consumer.next().await {
            let d = d.map_err(BrokerError::consume(format!("reading {what}")))?;
            credit.delivered(&d.acker).await;
            match marker_of(&d.data) {
                Some(found) if found == marker => return Ok(()),
                Some(_) => {}
                None => each(d),
            }
        }
        Err(BrokerError::ConsumerEnded {
            queue: stream.to_owned(),
        })
    };
    let outcome = tokio::time::timeout(limit, read).await;
    let _ = ch.close(200, "done".into()).await;
    outcome.map_err(|_| BrokerError::Timeout {
        what: format!("reading {what} up to its end"),
    })?
}

/// A new marker: its token, and the message (`{"marker": TOKEN}`) that carries it.
pub(crate) fn new_marker() -> Result<(String, Vec<u8>), BrokerError> {
    let marker = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&serde_json::json!({ "marker": marker })).map_err(|e| {
        BrokerError::Encode {
            error: std::sync::Arc::new(e),
        }
    })?;
    Ok((marker, body))
}

/// The token of a message that is a reader's marker (`{"marker": ...}`).
pub fn marker_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Marker {
        marker: String,
    }
    serde_json::from_slice::<Marker>(body)
        .ok()
        .map(|m| m.marker)
}
