//! The control exchange and its log: the private queues that subscribe to broadcasts, the
//! replay of the control log, and the worker's loop that answers control messages.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::publish::{json_properties, publish_confirmed};
use super::transport::AmqpTransport;
use crate::BrokerError;
use crate::supervisor::Resume;

/// How far back a worker reads the control log when it starts or reconnects.
pub const CONTROL_LOG_REPLAY: Duration = Duration::from_secs(24 * 3600);

/// Consumes the control log stream from [`CONTROL_LOG_REPLAY`] ago.
pub(super) async fn replay_control_log(
    ch: &Channel,
    stream: &str,
) -> Result<Consumer, BrokerError> {
    super::consume_stream(
        ch,
        stream,
        super::Offset::Since(CONTROL_LOG_REPLAY),
        256,
        "the control log",
    )
    .await
}

/// A message of the control exchange, as [`AmqpTransport::serve_control`] hands it on.
#[derive(Debug)]
pub struct ControlMessage {
    /// The body.
    pub body: Vec<u8>,
    /// The `user_id` property: the broker user that sent it, verified by the broker.
    pub user_id: Option<String>,
    /// Read again from the control log (sent before this session, or a second copy of
    /// one the private queue brought): apply it, never answer it.
    pub replayed: bool,
}

/// Declares a private queue (deleted with its connection) on `ch`, binds it to
/// `exchange` when given, and consumes it: (queue name, consumer).
pub(crate) async fn subscribe_private(
    ch: &Channel,
    exchange: Option<&str>,
) -> Result<(String, Consumer), BrokerError> {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("declaring a private queue"))?;
    let name = q.name().to_string();
    if let Some(exchange) = exchange {
        ch.queue_bind(
            name.as_str().into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::declare("binding to the control exchange"))?;
    }
    let consumer = ch
        .basic_consume(
            name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::consume("consuming a private queue"))?;
    Ok((name, consumer))
}

impl AmqpTransport {
    /// Answers the messages of the control exchange until `shutdown`, on every session:
    /// `answer` turns a message into the body of its reply, which goes to the message's
    /// `reply_to` (when it has one) with its correlation id. Messages of the control log
    /// are handed to `answer` too, marked replayed, and never answered.
    pub async fn serve_control<F, Fut>(&self, shutdown: CancellationToken, mut answer: F)
    where
        F: FnMut(ControlMessage) -> Fut,
        Fut: Future<Output = Vec<u8>>,
    {
        let mut sessions = Resume::new(self.supervisor());
        loop {
            let s = tokio::select! {
                s = sessions.session() => match s {
                    Ok(Some(s)) => s,
                    Ok(None) | Err(_) => return,
                },
                _ = shutdown.cancelled() => return,
            };
            let mut control = s.control.lock().await;
            let mut log = s.control_log.lock().await;
            loop {
                let (msg, replayed) = tokio::select! {
                    m = control.next() => (m, false),
                    m = log.next() => (m, true),
                    _ = shutdown.cancelled() => return,
                };
                let d = match msg {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        sessions.lost(&s, format!("the control consumer failed: {e}"));
                        break;
                    }
                    None => {
                        sessions.lost(&s, "the control consumer ended");
                        break;
                    }
                };
                if replayed && d.data == s.log_marker {
                    let _ = d.acker.ack(BasicAckOptions::default()).await;
                    s.caught_up.send_replace(true);
                    continue;
                }
                let reply_to = d.properties.reply_to().clone();
                let correlation = d.properties.correlation_id().clone();
                let message = ControlMessage {
                    user_id: d.properties.user_id().as_ref().map(|u| u.to_string()),
                    body: d.data,
                    replayed,
                };
                let body = answer(message).await;
                if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
                    warn!(error = %e, "could not ack a control message");
                }
                if let Some(to) = reply_to.filter(|_| !replayed) {
                    let mut props = json_properties();
                    if let Some(c) = correlation {
                        props = props.with_correlation_id(c);
                    }
                    if let Err(e) =
                        publish_confirmed(&s.publish, "", to.as_str(), true, &body, props).await
                    {
                        warn!(error = %e, "could not answer a control message");
                    }
                }
            }
        }
    }
}
