//! Queue depths from RabbitMQ's management HTTP API (the `rabbitmq_management` plugin):
//! AMQP tells how many messages of a queue are ready and how many consumers it has, but
//! not how many are delivered and not yet acked; the management API tells all three.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::BrokerError;

/// One queue's depth, and its message counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueueDepth {
    /// Messages waiting to be delivered.
    #[serde(default)]
    pub messages_ready: u64,
    /// Messages delivered and not yet acked.
    #[serde(default)]
    pub messages_unacknowledged: u64,
    /// Consumers of the queue.
    #[serde(default)]
    pub consumers: u64,
    /// How many messages have passed through the queue; absent until one has.
    #[serde(default)]
    pub message_stats: MessageStats,
}

/// A queue's message counts since it was declared (the broker refreshes them every
/// statistics interval, 5 s by default): a reader that polls them makes its own rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct MessageStats {
    /// Messages published to the queue.
    #[serde(default)]
    pub publish: u64,
    /// Messages acked by consumers.
    #[serde(default)]
    pub ack: u64,
}

/// The management API URL of the node an AMQP URL names: `http://HOST:15672`, with the
/// AMQP URL's user and password, and its vhost.
pub fn default_url(amqp_url: &str) -> Option<String> {
    use lapin::uri::AMQPUri;
    let uri: AMQPUri = amqp_url.parse().ok()?;
    Some(format!("http://{}:15672", uri.authority.host))
}

/// How long one request to the management API may take, answer included.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Reads queue depths from a management API.
#[derive(Debug, Clone)]
pub struct Management {
    base: String,
    user: String,
    password: String,
    vhost: String,
    http: reqwest::Client,
}

impl Management {
    /// The API at `base` (`http://host:15672`), with the credentials and vhost of
    /// `amqp_url`.
    pub fn new(base: &str, amqp_url: &str) -> Result<Management, BrokerError> {
        use lapin::uri::AMQPUri;
        let uri: AMQPUri = amqp_url.parse().map_err(BrokerError::InvalidUrl)?;
        let base = base.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| BrokerError::Management {
                base: base.clone(),
                error: Arc::new(e),
            })?;
        Ok(Management {
            base,
            user: uri.authority.userinfo.username,
            password: uri.authority.userinfo.password,
            vhost: uri.vhost,
            http,
        })
    }

    /// The depth of `queue`.
    pub async fn queue(&self, queue: &str) -> Result<QueueDepth, BrokerError> {
        let url = format!(
            "{}/api/queues/{}/{}",
            self.base,
            encode(&self.vhost),
            encode(queue)
        );
        let answered = |e| BrokerError::Management {
            base: self.base.clone(),
            error: Arc::new(e),
        };
        self.http
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(answered)?
            .json()
            .await
            .map_err(|e| BrokerError::ManagementBody {
                base: self.base.clone(),
                error: Arc::new(e),
            })
    }
}

/// Percent-encodes a path segment.
fn encode(s: &str) -> String {
    /// Every byte but RFC 3986's unreserved characters is written `%XX`.
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_from_the_amqp_url() {
        assert_eq!(
            default_url("amqp://u:p@rabbit.example:5672/%2f").as_deref(),
            Some("http://rabbit.example:15672")
        );
        let m = Management::new("http://h:15672/", "amqp://al:pw@h:5672/v%2F1").unwrap();
        assert_eq!(m.base, "http://h:15672");
        assert_eq!(m.vhost, "v/1");
        assert_eq!(encode("v/1"), "v%2F1");
        assert_eq!(encode("/"), "%2F");
    }

    #[test]
    fn counts_are_read_where_the_api_puts_them() {
        let d: QueueDepth = serde_json::from_str(
            r#"{"messages_ready": 3, "messages_unacknowledged": 2, "consumers": 1,
                "message_stats": {"publish": 40, "publish_details": {"rate": 8.0},
                                  "deliver_get": 38, "ack": 36,
                                  "ack_details": {"rate": 6.0}}}"#,
        )
        .unwrap();
        assert_eq!(
            d.message_stats,
            MessageStats {
                publish: 40,
                ack: 36
            }
        );
        // A queue no message has passed through has no message_stats.
        let d: QueueDepth = serde_json::from_str(r#"{"messages_ready": 0}"#).unwrap();
        assert_eq!(d.message_stats, MessageStats::default());
    }
}
