//! Publishing job messages: to the jobs queue (or a tenant's), with a window of
//! unconfirmed messages, publishing again what a lost connection left unconfirmed.

use std::collections::VecDeque;

use lapin::options::BasicPublishOptions;
use lapin::{Confirmation, PublisherConfirm};

use super::Client;
use crate::BrokerError;
use crate::amqp::{Topology, json_properties};
use crate::supervisor::Resume;

impl Client {
    /// Publishes job messages (id, JSON body) to the jobs queue, persistent, keeping up to
    /// `window` unconfirmed at once; `on_confirmed` is told how many were confirmed so far.
    /// Returns once every message is confirmed. Each carries the connection's user as its
    /// `user_id` ([`Client::user`]), its verified tenant.
    ///
    /// When the connection drops, every message not yet confirmed is published again on
    /// the next connection: some may then be queued twice, which is harmless, since a
    /// job's results are told apart by its id.
    pub async fn publish_jobs(
        &self,
        jobs: &[(String, Vec<u8>)],
        window: usize,
        mut on_confirmed: impl FnMut(u64),
    ) -> Result<u64, BrokerError> {
        let to = match self.tenant().await? {
            // A tenant's jobs go to its own jobs queue, through the submit exchange under
            // its name (which topic permissions can hold it to).
            Some(user) => (self.topology.submit_exchange(), Topology::user_word(user)),
            None => (String::new(), self.topology.jobs_queue()),
        };
        self.publish_many(to, jobs, window, &mut on_confirmed).await
    }

    /// Publishes job messages to (exchange, routing key).
    async fn publish_many(
        &self,
        (exchange, key): (String, String),
        jobs: &[(String, Vec<u8>)],
        window: usize,
        on_confirmed: &mut impl FnMut(u64),
    ) -> Result<u64, BrokerError> {
        let mut confirmed = 0usize;
        let mut sessions = Resume::new(&self.supervisor);
        while confirmed < jobs.len() {
            let s = sessions.session().await?.ok_or(BrokerError::Closed)?;
            let mut pending: VecDeque<PublisherConfirm> = VecDeque::new();
            let mut next = confirmed;
            // `None`: every message is confirmed.
            let failed = loop {
                if next < jobs.len() && pending.len() < window.max(1) {
                    let (id, body) = &jobs[next];
                    let mut props = json_properties().with_message_id(id.as_str().into());
                    if let Some(user) = &self.user {
                        props = props.with_user_id(user.clone());
                    }
                    match s
                        .ch
                        .basic_publish(
                            exchange.as_str().into(),
                            key.as_str().into(),
                            BasicPublishOptions::default(),
                            body,
                            props,
                        )
                        .await
                    {
                        Ok(c) => pending.push_back(c),
                        Err(e) => break Some(BrokerError::publish("publishing a job")(e)),
                    }
                    next += 1;
                    continue;
                }
                let Some(c) = pending.pop_front() else {
                    break None;
                };
                match check(c.await) {
                    Ok(()) => {
                        confirmed += 1;
                        on_confirmed(confirmed as u64);
                    }
                    Err(e) => break Some(e),
                }
            };
            let Some(failed) = failed else {
                break;
            };
            if still_connected(&s.ch, || s.connected()).await {
                // The broker refused a message on a healthy connection: not a reconnect.
                return Err(failed);
            }
            tracing::warn!(error = %failed, unconfirmed = jobs.len() - confirmed, "lost the broker connection while publishing; publishing what was not confirmed again");
            sessions.lost(&s, failed.to_string());
        }
        Ok(confirmed as u64)
    }
}

fn check(c: Result<Confirmation, lapin::Error>) -> Result<(), BrokerError> {
    match c.map_err(BrokerError::publish("waiting for a publish confirm"))? {
        Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
        Confirmation::Nack(_) => Err(BrokerError::Refused {
            what: "a job message",
        }),
    }
}

/// Whether a session still looks connected a moment after a publish failed. lapin hands
/// the caller an I/O error (a reset connection) before the connection's status and the
/// supervisor's view show the loss, so the failure is given up to a second to show there
/// before it is taken for the broker refusing a message on a healthy connection.
async fn still_connected(ch: &lapin::Channel, session_connected: impl Fn() -> bool) -> bool {
    for _ in 0..10 {
        if !(session_connected() && ch.status().connected()) {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    true
}
