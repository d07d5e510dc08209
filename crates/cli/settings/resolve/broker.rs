//! The settings of the commands that talk to RabbitMQ: the broker URL and the queue
//! names, and the management API `wasmq status` reads.

use anyhow::bail;
use wasmq_broker::amqp::{BatchRetention, Retention, Topology};
use wasmq_broker::client::split_urls;
use wasmq_broker::management;

use crate::settings::args::BrokerArgs;
use crate::settings::defaults;
use crate::settings::sources::{Entries, Layers};

/// The settings of [`BrokerArgs`], checked.
pub struct BrokerSettings {
    /// The broker URL (node URLs, comma-separated).
    pub amqp_url: String,
    /// The queue and exchange names.
    pub topology: Topology,
    /// Every setting above, with its source; the URL's password redacted.
    pub entries: Entries,
}

impl BrokerSettings {
    /// Resolves and checks the broker's settings.
    pub fn resolve(layers: &Layers, args: &BrokerArgs) -> anyhow::Result<BrokerSettings> {
        let file = &layers.file;
        let mut entries = Entries::default();
        let amqp_url = entries.add(
            "amqp_url",
            layers.merge(
                "amqp_url",
                args.amqp_url.clone(),
                file.amqp_url.clone(),
                || defaults::AMQP_URL.to_owned(),
            ),
            |url| {
                url.split(',')
                    .map(|u| wasmq_broker::amqp::redact(u.trim()))
                    .collect::<Vec<_>>()
                    .join(",")
            },
        );
        let prefix = layers.merge(
            "queue_prefix",
            args.queue_prefix.clone(),
            file.queue_prefix.clone(),
            || defaults::QUEUE_PREFIX.to_owned(),
        );
        let p = &prefix.value;
        if p.is_empty()
            || p.len() > 100
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            bail!(
                "queue prefix {p:?} must be 1 to 100 characters of A-Z, a-z, 0-9, '.', '-', '_' or ':'"
            );
        }
        let delivery_limit = layers.merge(
            "delivery_limit",
            args.delivery_limit,
            file.delivery_limit,
            || defaults::DELIVERY_LIMIT,
        );
        if delivery_limit.value == 0 {
            bail!("the delivery limit must be at least 1");
        }
        let d = defaults::RESULTS_RETENTION;
        let ttl_secs = layers.merge(
            "results_queue_ttl_secs",
            args.results_queue_ttl_secs,
            file.results_queue_ttl_secs,
            || d.ttl_secs,
        );
        let max_length = layers.merge(
            "results_queue_max_length",
            args.results_queue_max_length,
            file.results_queue_max_length,
            || d.max_length,
        );
        if ttl_secs.value > u32::MAX / 1000 {
            bail!(
                "results_queue_ttl_secs = {} is above the most RabbitMQ takes ({})",
                ttl_secs.value,
                u32::MAX / 1000
            );
        }
        let b = defaults::BATCH_RETENTION;
        let max_age = layers.merge(
            "batch_results_max_age_secs",
            args.batch_results_max_age_secs,
            file.batch_results_max_age_secs,
            || b.max_age_secs,
        );
        if max_age.value == 0 || max_age.value > BatchRetention::MAX_AGE_SECS {
            bail!(
                "batch_results_max_age_secs = {} must be 1 to {} (30 days, what the batches index keeps)",
                max_age.value,
                BatchRetention::MAX_AGE_SECS
            );
        }
        let max_bytes = layers.merge(
            "batch_results_max_bytes",
            args.batch_results_max_bytes,
            file.batch_results_max_bytes,
            || b.max_bytes,
        );
        if max_bytes.value == 0 {
            bail!("batch_results_max_bytes must be at least 1");
        }
        let topology = Topology {
            prefix: entries.add("queue_prefix", prefix, String::clone),
            delivery_limit: entries.add("delivery_limit", delivery_limit, u32::to_string),
            results_retention: Retention {
                ttl_secs: entries.add("results_queue_ttl_secs", ttl_secs, u32::to_string),
                max_length: entries.add("results_queue_max_length", max_length, u32::to_string),
            },
            batch_retention: BatchRetention {
                max_age_secs: entries.add("batch_results_max_age_secs", max_age, u64::to_string),
                max_bytes: entries.add("batch_results_max_bytes", max_bytes, u64::to_string),
            },
        };
        Ok(BrokerSettings {
            amqp_url,
            topology,
            entries,
        })
    }

    /// The first node URL: the node whose management API `wasmq status` reads.
    pub fn first_url(&self) -> String {
        split_urls(&self.amqp_url)
            .into_iter()
            .next()
            .unwrap_or_default()
    }
}

/// The settings of `wasmq status`.
pub struct StatusSettings {
    /// RabbitMQ's management API, when one is given or can be told from the broker URL.
    pub management_url: Option<String>,
    /// The tenants of the config file, whose jobs queues are shown too.
    pub tenants: Vec<String>,
}

impl StatusSettings {
    /// `management_url` is the command's flag (or its env var); the file's value comes
    /// next, then `http://HOST:15672` of the first node URL.
    pub fn resolve(
        layers: &Layers,
        management_url: Option<String>,
        broker: &BrokerSettings,
    ) -> StatusSettings {
        let file = &layers.file;
        StatusSettings {
            management_url: management_url
                .or_else(|| file.management_url.clone())
                .or_else(|| management::default_url(&broker.first_url())),
            tenants: file.tenants.keys().cloned().collect(),
        }
    }
}

/// `wasmq dashboard`'s address: its flag (or env var), then the file's `dashboard_addr`,
/// then 127.0.0.1:8080.
pub fn dashboard_addr(
    layers: &Layers,
    flag: Option<std::net::SocketAddr>,
) -> anyhow::Result<std::net::SocketAddr> {
    Ok(match (flag, &layers.file.dashboard_addr) {
        (Some(a), _) => a,
        (None, Some(text)) => text.parse().map_err(|_| {
            anyhow::anyhow!("dashboard_addr {text:?} is not an address such as 127.0.0.1:8080")
        })?,
        (None, None) => std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
    })
}
