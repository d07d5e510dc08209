//! The wasmq run loop: take a job from a transport, run it in the sandbox with bounded
//! concurrency, publish its result, then acknowledge it.
//!
//! The loop is the same for the in-process queue (`wasmq run`) and a broker
//! (`wasmq worker`). A job's own fault is a result and an ack; a host fault (the result
//! could not be published, the runner panicked, the disk failed) is a requeue, so the job
//! is tried again, until the transport's redelivery limit.
//!
//! # Layout
//! - [`Worker`]: the loop, its [`WorkerConfig`], and graceful shutdown: on cancellation it
//!   stops taking jobs, lets every job in flight finish, publish and ack, then returns. A
//!   job's result is published and acked; a [`wasmq_sandbox::HostFault`] is requeued.
//! - [`fair`]: [`fair::Fair`], the queue of taken deliveries per tenant, and the weighted
//!   turns ([`fair::Shares`]) by which free sandbox slots go to tenants.
//! - [`cancel`]: [`cancel::Cancels`], the cancellations a worker has heard of, and the
//!   registry of running jobs they stop.
//! - [`metrics`]: [`metrics::Metrics`] (Prometheus counters, gauges and histograms, and the
//!   worker's readiness) and the HTTP server of `/metrics`, `/healthz` and `/readyz`.

pub mod cancel;
pub mod fair;
pub mod metrics;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};
use wasmq_queue::{Delivery, Transport};
use wasmq_sandbox::{HostFault, Sandbox};
use wasmq_spec::{JobResult, Rejection, codes, decode_job};

use crate::cancel::Cancels;
use crate::fair::{Fair, InFlight, Shares};
use crate::metrics::Metrics;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at once. (Jobs whose results are being published do not count: a
    /// transport should let more deliveries be unacked than this, see the broker's
    /// prefetch.)
    pub concurrency: usize,
    /// Name written into every result.
    pub worker_id: String,
    /// Largest job message accepted, in bytes.
    pub max_message_bytes: usize,
}

/// The run loop over one transport.
pub struct Worker<T: Transport> {
    sandbox: Sandbox,
    transport: Arc<T>,
    config: Arc<WorkerConfig>,
    metrics: Option<Arc<Metrics>>,
    cancels: Arc<Cancels>,
    shares: Shares,
}

impl<T: Transport> Worker<T> {
    /// A worker that runs jobs from `transport` in `sandbox`.
    pub fn new(sandbox: Sandbox, transport: Arc<T>, config: WorkerConfig) -> Self {
        Worker {
            sandbox,
            transport,
            config: Arc::new(config),
            metrics: None,
            cancels: Arc::new(Cancels::new()),
            shares: Shares::default(),
        }
    }

    /// Divides the worker's slots between tenants by these shares.
    pub fn with_shares(mut self, shares: Shares) -> Self {
        self.shares = shares;
        self
    }

    /// Takes cancellations from `cancels` (which the control loop fills).
    pub fn with_cancels(mut self, cancels: Arc<Cancels>) -> Self {
        self.cancels = cancels;
        self
    }

    /// Counts every job in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs until the transport has no more jobs or `shutdown` is cancelled; either way,
    /// every job already started is finished, published and acked before this returns.
    ///
    /// Deliveries are taken from the transport as they come (the broker's prefetch bounds
    /// how many) into a [`Fair`] queue per tenant, and each free sandbox slot goes to the
    /// tenant whose turn it is ([`fair`]). Jobs taken but not started when the loop stops
    /// are given back to the transport by dropping them.
    pub async fn run(&self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let tracker = TaskTracker::new();
        let fair: Arc<Fair<T::Delivery>> = Fair::new(self.shares.clone());
        let closed = Arc::new(AtomicBool::new(false));
        let room = Arc::new(Notify::new());
        let pump = tokio::spawn(pump(
            self.transport.clone(),
            fair.clone(),
            closed.clone(),
            room.clone(),
            shutdown.clone(),
        ));
        loop {
            // A permit first, so no job is started that has no slot.
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("the permit semaphore is never closed"),
                _ = shutdown.cancelled() => break,
            };
            let next = loop {
                if let Some(next) = fair.pop() {
                    break Some(next);
                }
                if closed.load(Ordering::SeqCst) && fair.waiting() == 0 {
                    break None;
                }
                tokio::select! {
                    () = fair.changed() => {}
                    _ = shutdown.cancelled() => break None,
                }
            };
            let Some((delivery, slot)) = next else { break };
            room.notify_one();
            let sandbox = self.sandbox.clone();
            let transport = self.transport.clone();
            let config = self.config.clone();
            let metrics = self.metrics.clone();
            let cancels = self.cancels.clone();
            tracker.spawn(async move {
                if let Some(m) = &metrics {
                    m.job_taken(delivery.attempt());
                }
                handle(
                    &sandbox,
                    &*transport,
                    &config,
                    &cancels,
                    delivery,
                    (permit, slot),
                    metrics.as_deref(),
                )
                .await;
                if let Some(m) = &metrics {
                    m.job_left();
                }
            });
        }
        pump.abort();
        let _ = pump.await;
        self.transport.stop_consuming().await;
        drop(fair.drain());
        tracker.close();
        tracker.wait().await;
    }
}

/// Takes deliveries from `transport` into `fair` until the transport has no more or
/// `shutdown`, then sets `closed`. With a local bound ([`Transport::local_buffer`]) it
/// waits for `room` when that many wait already.
async fn pump<T: Transport>(
    transport: Arc<T>,
    fair: Arc<Fair<T::Delivery>>,
    closed: Arc<AtomicBool>,
    room: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let bound = transport.local_buffer();
    loop {
        while bound.is_some_and(|b| fair.waiting() >= b) {
            tokio::select! {
                () = room.notified() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let delivery = tokio::select! {
            d = transport.next() => d,
            _ = shutdown.cancelled() => None,
        };
        match delivery {
            Some(d) => {
                let tenant = d.tenant().map(str::to_owned);
                fair.push(tenant, d);
            }
            None => break,
        }
    }
    closed.store(true, Ordering::SeqCst);
    // Wakes the loop if it waits for a job that will not come.
    fair.push_wake();
}

/// Runs one delivery to its end: published and acked, or requeued.
///
/// `permit` is a sandbox slot and the tenant's place among its jobs in flight: both are
/// released as soon as the job has run, so the next job starts while this result waits for
/// the broker's confirm.
async fn handle<T: Transport>(
    sandbox: &Sandbox,
    transport: &T,
    config: &WorkerConfig,
    cancels: &Cancels,
    delivery: T::Delivery,
    permit: (OwnedSemaphorePermit, InFlight<T::Delivery>),
    metrics: Option<&Metrics>,
) {
    let attempt = delivery.attempt();
    let tenant = delivery.tenant().map(str::to_owned);
    let ran = match decode(delivery.body(), config.max_message_bytes) {
        Err(rejected) => Ok(*rejected),
        Ok(job) => {
            // The sandbox records the module digest once it knows it.
            let span = info_span!(
                "job",
                id = job.id(),
                batch = job.batch.as_deref().unwrap_or(""),
                attempt,
                module = tracing::field::Empty
            );
            // A panic in the runner is caught here, and is a host fault. (Caught in this
            // task rather than by running the job in a task of its own: that cost a task
            // and a wake-up per job.)
            let guard = cancels.start(
                tenant.as_deref(),
                job.id(),
                job.batch.as_deref(),
                std::time::SystemTime::now(),
            );
            let run = sandbox.run_cancellable(&job, tenant.as_deref(), guard.token());
            let run = AssertUnwindSafe(run.instrument(span)).catch_unwind();
            match run.await {
                Ok(ran) => ran,
                Err(panic) => Err(HostFault::panicked(&job, panic_message(&*panic))),
            }
        }
    };
    drop(permit);
    let mut result = match ran {
        Ok(result) => result,
        // A host fault is retried: the job was not at fault, another attempt may succeed.
        Err(fault) => match transport.redelivery_limit() {
            Some(max) if attempt >= max => {
                let mut result = fault.into_result();
                result.message =
                    format!("{} (attempt {attempt} of {max}; giving up)", result.message);
                result
            }
            _ => {
                warn!(job = %fault.job_id(), attempt, error = %fault, "host fault; requeueing the job");
                if let Err(e) = delivery.requeue().await {
                    warn!(error = %e, "could not requeue the job; the broker will redeliver it");
                }
                return;
            }
        },
    };
    result.attempt = attempt;
    result.worker = Some(config.worker_id.clone());
    // Every result of a tenant's job names it, messages that are not jobs included.
    result.tenant = sandbox.result_tenant(tenant.as_deref());
    info!(
        job = %result.id,
        batch = result.batch.as_deref().unwrap_or(""),
        module = result.module.as_deref().unwrap_or(""),
        status = %result.status,
        tenant = result.tenant.as_deref().unwrap_or(""),
        attempt,
        total_us = result.timings.total_us,
        "job done"
    );
    match transport.publish(&result, &delivery).await {
        Ok(()) => {
            if let Some(m) = metrics {
                m.job_published(&result);
            }
            if let Err(e) = delivery.ack().await {
                warn!(job = %result.id, error = %e, "could not ack a published job; it may run again");
            }
        }
        Err(e) => {
            warn!(job = %result.id, error = %e, "could not publish the result; requeueing the job");
            if let Err(e) = delivery.requeue().await {
                warn!(error = %e, "could not requeue the job; the broker will redeliver it");
            }
        }
    }
}

/// The message a panic carried, when it is text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A job from a message body, or the `rejected` result that says why it is not one.
fn decode(body: &[u8], max: usize) -> Result<wasmq_spec::Job, Box<JobResult>> {
    if body.len() > max {
        let r = Rejection::new(
            codes::INVALID_JOB,
            format!(
                "the job message is {} bytes, above this worker's maximum of {max}",
                body.len()
            ),
        );
        return Err(Box::new(JobResult::rejected("", None, &r)));
    }
    decode_job(body)
        .map_err(|(r, id, batch)| Box::new(JobResult::rejected(id.unwrap_or_default(), batch, &r)))
}
