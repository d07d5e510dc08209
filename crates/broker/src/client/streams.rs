//! Following any stream from its first message, and reading one up to a marker: what a
//! reader of the batches index and of batches' results streams needs besides
//! [`Client::read_batch`].

use futures_util::StreamExt;
use lapin::{Channel, Consumer};

use super::Client;
use crate::BrokerError;
use crate::amqp::{Credit, Offset, STREAM_HEADER, consume_stream, header_str, read_to_own_marker};

/// A message of a stream, as a follower reads it.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    /// The body.
    pub body: Vec<u8>,
    /// The exchange it was published to (`""`: straight to the stream).
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// A manifest's results stream (its `x-wasmq-stream` header).
    pub stream: Option<String>,
    /// The `timestamp` property, in seconds.
    pub timestamp: Option<u64>,
    /// The `message_id` property.
    pub message_id: Option<String>,
}

/// How long reading a stream up to a marker may take.
const MARKER_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The prefetch of a followed stream.
const FEED_PREFETCH: u16 = 512;

/// A stream followed from its first message ([`Client::follow_stream`]). It does not
/// survive a lost connection: follow again.
pub struct StreamFeed {
    _channel: Channel,
    consumer: Consumer,
    queue: String,
    credit: Credit,
}

impl StreamFeed {
    /// The next message; `None` when the consumer ended (the stream deleted, the
    /// connection lost).
    pub async fn next(&mut self) -> Option<Result<StreamMessage, BrokerError>> {
        let d = match self.consumer.next().await? {
            Ok(d) => d,
            Err(e) => {
                return Some(Err(BrokerError::consume(format!(
                    "reading the stream {}",
                    self.queue
                ))(e)));
            }
        };
        self.credit.delivered(&d.acker).await;
        Some(Ok(StreamMessage {
            stream: d
                .properties
                .headers()
                .as_ref()
                .and_then(|h| header_str(h, STREAM_HEADER)),
            timestamp: *d.properties.timestamp(),
            message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
            exchange: d.exchange.to_string(),
            routing_key: d.routing_key.to_string(),
            body: d.data,
        }))
    }
}

impl Client {
    /// Follows `queue` (a stream) from its first message, on a channel of its own.
    pub async fn follow_stream(&self, queue: &str) -> Result<StreamFeed, BrokerError> {
        let ch = self.channel().await?;
        let consumer = consume_stream(
            &ch,
            queue,
            Offset::First,
            FEED_PREFETCH,
            &format!("the stream {queue}"),
        )
        .await?;
        Ok(StreamFeed {
            _channel: ch,
            consumer,
            queue: queue.to_owned(),
            credit: Credit::new(FEED_PREFETCH),
        })
    }

    /// Every message of `queue` (a stream this client may write to through the default
    /// exchange) published before this call, markers left out.
    pub async fn read_stream_to_marker(&self, queue: &str) -> Result<Vec<Vec<u8>>, BrokerError> {
        let ch = self.channel().await?;
        let mut out = Vec::new();
        read_to_own_marker(
            ch,
            queue,
            Offset::First,
            &format!("the stream {queue}"),
            MARKER_READ_LIMIT,
            |d| out.push(d.data),
        )
        .await?;
        Ok(out)
    }
}
