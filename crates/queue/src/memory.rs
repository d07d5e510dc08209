//! The in-process queue: a job channel and a result channel in one process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use wasmq_spec::JobResult;

use crate::{Delivery, Transport};

/// A failure of the in-process queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// [`MemoryQueue::close`] was called: no more jobs are taken.
    #[error("the in-process queue is closed")]
    Closed,
    /// The queue was closed and every job acked: the job stream has ended.
    #[error("the in-process queue is finished")]
    Finished,
    /// The worker's side of the queue is gone.
    #[error("the in-process queue has no consumer")]
    NoConsumer,
    /// The receiver of results is gone.
    #[error("nobody is reading results")]
    NoResultReader,
}

/// An in-process job queue with the same interface as a broker.
///
/// Producers call [`MemoryQueue::submit`] and then [`MemoryQueue::close`]; the worker
/// drains it; results arrive on the receiver returned by [`MemoryQueue::new`]. The job
/// stream ends only when the queue is closed and every delivered job has been acked, so a
/// job requeued after `close` is still delivered again.
pub struct MemoryQueue {
    shared: Arc<Shared>,
    jobs_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<MemoryDelivery>>,
    results_tx: mpsc::UnboundedSender<JobResult>,
}

struct Shared {
    /// Dropped once the queue is closed and nothing is pending, which ends the stream.
    jobs_tx: Mutex<Option<mpsc::UnboundedSender<MemoryDelivery>>>,
    /// Closed to new submissions.
    closed: std::sync::atomic::AtomicBool,
    /// Jobs submitted and not yet acked.
    pending: AtomicUsize,
}

impl Shared {
    fn finish_if_done(&self) {
        if self.closed.load(Ordering::SeqCst) && self.pending.load(Ordering::SeqCst) == 0 {
            self.jobs_tx.lock().expect("queue lock").take();
        }
    }

    fn send(&self, d: MemoryDelivery) -> Result<(), QueueError> {
        let guard = self.jobs_tx.lock().expect("queue lock");
        let tx = guard.as_ref().ok_or(QueueError::Finished)?;
        tx.send(d).map_err(|_| QueueError::NoConsumer)
    }
}

/// A job taken from a [`MemoryQueue`].
pub struct MemoryDelivery {
    body: Vec<u8>,
    attempt: u32,
    shared: Arc<Shared>,
}

impl MemoryQueue {
    /// A new queue and the receiver of its results.
    pub fn new() -> (MemoryQueue, mpsc::UnboundedReceiver<JobResult>) {
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let q = MemoryQueue {
            shared: Arc::new(Shared {
                jobs_tx: Mutex::new(Some(jobs_tx)),
                closed: Default::default(),
                pending: AtomicUsize::new(0),
            }),
            jobs_rx: tokio::sync::Mutex::new(jobs_rx),
            results_tx,
        };
        (q, results_rx)
    }

    /// Queues one job message.
    pub fn submit(&self, body: Vec<u8>) -> Result<(), QueueError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(QueueError::Closed);
        }
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        let sent = self.shared.send(MemoryDelivery {
            body,
            attempt: 1,
            shared: self.shared.clone(),
        });
        if sent.is_err() {
            self.shared.pending.fetch_sub(1, Ordering::SeqCst);
        }
        sent
    }

    /// No more jobs will be submitted; the stream ends once every job is acked.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.finish_if_done();
    }
}

impl Transport for MemoryQueue {
    type Error = QueueError;
    type Delivery = MemoryDelivery;

    async fn next(&self) -> Option<MemoryDelivery> {
        self.jobs_rx.lock().await.recv().await
    }

    async fn publish(
        &self,
        result: &JobResult,
        _delivery: &MemoryDelivery,
    ) -> Result<(), QueueError> {
        self.results_tx
            .send(result.clone())
            .map_err(|_| QueueError::NoResultReader)
    }
}

impl Delivery for MemoryDelivery {
    type Error = QueueError;

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    async fn ack(self) -> Result<(), QueueError> {
        self.shared.pending.fetch_sub(1, Ordering::SeqCst);
        self.shared.finish_if_done();
        Ok(())
    }

    async fn requeue(mut self) -> Result<(), QueueError> {
        self.attempt += 1;
        let shared = self.shared.clone();
        shared.send(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_then_ends_after_acks() {
        let (q, _results) = MemoryQueue::new();
        q.submit(b"a".to_vec()).unwrap();
        q.submit(b"b".to_vec()).unwrap();
        q.close();
        assert!(q.submit(b"c".to_vec()).is_err());
        let a = q.next().await.unwrap();
        let b = q.next().await.unwrap();
        assert_eq!((a.body(), b.body()), (&b"a"[..], &b"b"[..]));
        a.ack().await.unwrap();
        b.ack().await.unwrap();
        assert!(q.next().await.is_none());
    }

    #[tokio::test]
    async fn requeue_after_close_is_redelivered() {
        let (q, _results) = MemoryQueue::new();
        q.submit(b"x".to_vec()).unwrap();
        q.close();
        let d = q.next().await.unwrap();
        d.requeue().await.unwrap();
        let again = q.next().await.unwrap();
        assert_eq!((again.body(), again.attempt()), (&b"x"[..], 2));
        again.ack().await.unwrap();
        assert!(q.next().await.is_none());
    }
}
