//! Deleting the results streams of batches past their retention.
//!
//! A stream has no `x-expires`, and its retention never removes its last segment, so a
//! batch's stream would outlive its results for ever. Every batch's manifest also goes to
//! the batches index (with the name of the batch's stream, and the submit's time); the
//! workers read the index up to a marker of their own, and delete the streams of batches
//! submitted more than `batch_results_max_age_secs` ago. A stream's name is taken from the
//! manifest only when it is the one its route allows (a tenant can write only under its
//! own name), so no manifest can have a worker delete another queue.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::QueueDeleteOptions;
use wasmq_spec::control::ResultMessage;

use super::headers::header_str;
use super::stream::{Offset, read_to_own_marker};
use super::topology::Topology;
use super::transport::AmqpTransport;
use crate::BrokerError;

/// The header of a manifest that names its batch's results stream.
pub(crate) const STREAM_HEADER: &str = "x-wasmq-stream";

/// How long reading the index up to the marker may take.
const READ_LIMIT: Duration = Duration::from_secs(60);

/// Whether a manifest that came through `exchange` with `routing_key` may name `named` as
/// its batch's stream: under a tenant's name on the private results exchange
/// (`<user>.<batch>`, then a tag), or straight to the index from a user without a policy
/// (the batch's shared stream).
pub fn manifest_names_stream(
    t: &Topology,
    exchange: &str,
    routing_key: &str,
    batch: &str,
    named: &str,
) -> bool {
    if exchange == t.private_exchange() {
        let Some((user, key_batch)) = routing_key.split_once('.') else {
            return false;
        };
        let base = format!("{}.batch.{user}.{key_batch}", t.prefix);
        key_batch == batch
            && (named == base
                || named.strip_prefix(&base).is_some_and(|tag| {
                    tag.len() == 33
                        && tag.starts_with('.')
                        && tag[1..].bytes().all(|b| b.is_ascii_hexdigit())
                }))
    } else {
        exchange.is_empty() && named == t.batch_queue(batch)
    }
}

impl AmqpTransport {
    /// Deletes the results streams of batches submitted more than `max_age` ago; returns
    /// how many it deleted (others may have deleted some first).
    pub async fn sweep_batches(&self, max_age: Duration) -> Result<usize, BrokerError> {
        let t = &self.config.topology;
        let s = match self.supervisor().current() {
            Some(s) if s.connected() => s,
            _ => return Err(BrokerError::Closing),
        };
        let ch = s
            .connection()
            .create_channel()
            .await
            .map_err(BrokerError::channel("opening a channel"))?;
        let index = t.batches_index();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut expired = Vec::new();
        read_to_own_marker(
            ch,
            &index,
            Offset::First,
            &format!("the batches index {index}"),
            READ_LIMIT,
            |d| {
                let Ok(ResultMessage::Manifest { manifest }) = serde_json::from_slice(&d.data)
                else {
                    return;
                };
                let (Some(named), Some(at)) = (
                    d.properties
                        .headers()
                        .as_ref()
                        .and_then(|h| header_str(h, STREAM_HEADER)),
                    *d.properties.timestamp(),
                ) else {
                    return;
                };
                if at.saturating_add(max_age.as_secs()) < now
                    && manifest_names_stream(
                        t,
                        d.exchange.as_str(),
                        d.routing_key.as_str(),
                        &manifest.batch,
                        &named,
                    )
                {
                    expired.push(named);
                }
            },
        )
        .await?;
        expired.sort();
        expired.dedup();
        let mut deleted = 0;
        for name in expired {
            // A stream already deleted closes the channel: one channel each.
            let ch = s
                .connection()
                .create_channel()
                .await
                .map_err(BrokerError::channel("opening a channel"))?;
            if ch
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .is_ok()
            {
                deleted += 1;
                tracing::info!(stream = %name, "deleted the results stream of a batch past its retention");
                let _ = ch.close(200, "done".into()).await;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::{BatchRetention, Retention};

    #[test]
    fn a_manifest_names_only_the_stream_its_route_allows() {
        let t = Topology {
            prefix: "p".into(),
            delivery_limit: 5,
            results_retention: Retention::DEFAULT,
            batch_retention: BatchRetention::DEFAULT,
        };
        let private = t.private_exchange();
        let tag = "0123456789abcdef0123456789abcdef";
        let tagged = format!("p.batch.alice.b1.{tag}");
        assert!(manifest_names_stream(
            &t, &private, "alice.b1", "b1", &tagged
        ));
        assert!(manifest_names_stream(
            &t,
            &private,
            "alice.b1",
            "b1",
            "p.batch.alice.b1"
        ));
        // Another tenant's stream, another batch, another queue altogether.
        assert!(!manifest_names_stream(
            &t,
            &private,
            "alice.b1",
            "b1",
            &tagged.replace("alice", "bob")
        ));
        assert!(!manifest_names_stream(
            &t,
            &private,
            "alice.b1",
            "b2",
            "p.batch.alice.b2"
        ));
        assert!(!manifest_names_stream(
            &t, &private, "alice.b1", "b1", "p.jobs"
        ));
        assert!(!manifest_names_stream(
            &t,
            &private,
            "alice.b1",
            "b1",
            "p.batch.alice.b1.x"
        ));
        // Straight to the index: the batch's shared stream only.
        assert!(manifest_names_stream(
            &t,
            "",
            "p.batches",
            "b1",
            "p.batch.b1"
        ));
        assert!(!manifest_names_stream(&t, "", "p.batches", "b1", "p.jobs"));
        assert!(!manifest_names_stream(
            &t,
            &t.results(),
            "b1",
            "b1",
            "p.batch.b1"
        ));
    }
}
