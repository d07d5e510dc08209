//! The worker's session: its channels, and how a new connection is set up for them.

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, Consumer};

use super::control::{replay_control_log, subscribe_private};
use super::publish::{json_properties, publish_confirmed};
use super::topology::Topology;
use crate::BrokerError;
use crate::supervisor::Setup;

/// The channels of one worker session.
pub struct WorkerChannels {
    /// Consumes the jobs queue (the consumer is started by
    /// [`AmqpTransport::next`](crate::Transport::next)).
    pub consume: Channel,
    /// In confirm mode: every result publish waits for the broker's ack.
    pub publish: Channel,
    /// Messages of the control exchange, from this session's private queue. It is
    /// subscribed before the jobs consumer starts, so a worker counted among the jobs
    /// queue's consumers always answers a broadcast.
    pub control: tokio::sync::Mutex<Consumer>,
    /// The control log from [`CONTROL_LOG_REPLAY`](super::CONTROL_LOG_REPLAY) ago on: the messages this worker was
    /// not connected for, then every new one again.
    pub control_log: tokio::sync::Mutex<Consumer>,
    /// The body of the marker this session appended to the control log: once it is read
    /// back, every earlier message (every cancel) has been applied.
    pub(super) log_marker: Vec<u8>,
    /// Set once the marker is read back; the jobs consumer starts after it.
    pub(super) caught_up: tokio::sync::watch::Sender<bool>,
}

/// How long a worker waits to read the control log up to its marker before it takes jobs
/// anyway.
pub(super) const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets up a worker session: the topology, the channels, the control subscription.
pub struct WorkerSetup {
    pub(super) topology: Topology,
    pub(super) tenants: BTreeSet<String>,
}

impl Setup for WorkerSetup {
    type Channels = WorkerChannels;

    async fn setup(
        &self,
        conn: &Connection,
        _generation: u64,
    ) -> Result<WorkerChannels, BrokerError> {
        let consume = conn
            .create_channel()
            .await
            .map_err(BrokerError::channel("opening a channel"))?;
        self.topology.declare(&consume).await?;
        for t in &self.tenants {
            self.topology.declare_tenant_queue(&consume, t).await?;
        }
        let publish = conn
            .create_channel()
            .await
            .map_err(BrokerError::channel("opening a channel"))?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(BrokerError::channel("enabling publisher confirms"))?;
        let control = conn
            .create_channel()
            .await
            .map_err(BrokerError::channel("opening a channel"))?;
        let log = conn
            .create_channel()
            .await
            .map_err(BrokerError::channel("opening a channel"))?;
        let control_log = replay_control_log(&log, &self.topology.control_log()).await?;
        let control = subscribe_private(&control, Some(&self.topology.control_exchange())).await?;
        // Appended after the replay started, so it is read back after every older message.
        let log_marker = serde_json::to_vec(&serde_json::json!({
            "marker": format!("{}-{}", std::process::id(), uuid::Uuid::new_v4())
        }))
        .expect("a marker serializes");
        publish_confirmed(
            &publish,
            "",
            &self.topology.control_log(),
            true,
            &log_marker,
            json_properties(),
        )
        .await?;
        Ok(WorkerChannels {
            consume,
            publish,
            control: tokio::sync::Mutex::new(control.1),
            control_log: tokio::sync::Mutex::new(control_log),
            log_marker,
            caught_up: tokio::sync::watch::Sender::new(false),
        })
    }
}
