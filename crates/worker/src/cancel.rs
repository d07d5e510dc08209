//! Cancellations: which jobs were cancelled, by whom, until when; and the cancel token of
//! every job running on this worker.
//!
//! A cancel names a batch or job ids, and holds only for jobs published by the same broker
//! user as the cancel itself (both without a `user_id`, or both with the same verified
//! one), so a tenant cannot cancel another tenant's jobs. It is kept until
//! [`Cancels::RETENTION`] after it was sent: a job delivered later, or redelivered after a
//! worker restart (workers read past cancels again at start), still ends `cancelled`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use wasmq_spec::control::{CancelRequest, CancelTarget};

/// Who published a job or a cancel: the verified `user_id`, or none.
type Publisher = Option<String>;

/// The cancellations this worker knows of, and the jobs it is running.
#[derive(Debug, Default)]
pub struct Cancels {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (publisher, batch) -> held until.
    batches: HashMap<(Publisher, String), SystemTime>,
    /// (publisher, job id) -> held until.
    ids: HashMap<(Publisher, String), SystemTime>,
    running: HashMap<u64, Running>,
    /// The jobs each cancel (publisher, what it names, when it was sent) stopped, so that
    /// its second copy (the live message and the control log's arrive in either order)
    /// answers with them too, though they ended in between.
    stopped: HashMap<(Publisher, CancelTarget, u64), (Vec<String>, SystemTime)>,
    next: u64,
    /// Cancels recorded since the last sweep of expired ones.
    since_sweep: usize,
}

#[derive(Debug)]
struct Running {
    publisher: Publisher,
    id: String,
    batch: Option<String>,
    token: CancellationToken,
}

/// A running job's registration: its cancel token, removed from the registry on drop.
#[derive(Debug)]
pub struct RunGuard<'a> {
    cancels: &'a Cancels,
    key: u64,
    token: CancellationToken,
}

impl RunGuard<'_> {
    /// Cancelled when a cancel for this job arrives (already, if it had arrived before).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.cancels.state.lock().expect("the cancel registry lock");
        s.running.remove(&self.key);
    }
}

impl Cancels {
    /// How long a cancel is kept after it was sent.
    pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

    /// An empty registry.
    pub fn new() -> Self {
        Cancels::default()
    }

    /// Records `request`, sent by `publisher`, and stops the matching jobs running now;
    /// returns the ids of every matching job running now. A cancel older than [`Cancels::RETENTION`] is ignored.
    pub fn apply(
        &self,
        publisher: Option<&str>,
        request: &CancelRequest,
        now: SystemTime,
    ) -> Vec<String> {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_millis(request.sent_at_ms);
        let until = sent + Self::RETENTION;
        if until <= now {
            return Vec::new();
        }
        let publisher = publisher.map(str::to_owned);
        let mut s = self.state.lock().expect("the cancel registry lock");
        if let Some(b) = &request.cancel.batch {
            let e = s
                .batches
                .entry((publisher.clone(), b.clone()))
                .or_insert(until);
            *e = (*e).max(until);
        }
        for id in &request.cancel.ids {
            let e = s
                .ids
                .entry((publisher.clone(), id.clone()))
                .or_insert(until);
            *e = (*e).max(until);
        }
        s.since_sweep += 1;
        if s.since_sweep >= 1024 {
            s.since_sweep = 0;
            s.batches.retain(|_, until| *until > now);
            s.ids.retain(|_, until| *until > now);
            s.stopped.retain(|_, (_, until)| *until > now);
        }
        let mut stopped = Vec::new();
        for r in s.running.values() {
            let same_batch = request.cancel.batch.is_some() && r.batch == request.cancel.batch;
            if r.publisher == publisher && (same_batch || request.cancel.ids.contains(&r.id)) {
                r.token.cancel();
                stopped.push(r.id.clone());
            }
        }
        // Those this cancel's other copy stopped count too, whether or not they are still
        // running: the live copy and the control log's may arrive in either order, and a
        // job stopped by the first may be gone before the second.
        let key = (publisher, request.cancel.clone(), request.sent_at_ms);
        let (all, _) = s.stopped.entry(key).or_insert_with(|| (Vec::new(), until));
        for id in stopped {
            if !all.contains(&id) {
                all.push(id);
            }
        }
        all.clone()
    }

    /// Registers a job about to run; its token is already cancelled when a cancel for it
    /// is held.
    pub fn start(
        &self,
        publisher: Option<&str>,
        id: &str,
        batch: Option<&str>,
        now: SystemTime,
    ) -> RunGuard<'_> {
        let token = CancellationToken::new();
        let mut s = self.state.lock().expect("the cancel registry lock");
        if !(s.batches.is_empty() && s.ids.is_empty()) {
            let publisher = publisher.map(str::to_owned);
            let held = |map: &HashMap<(Publisher, String), SystemTime>, name: &str| {
                map.get(&(publisher.clone(), name.to_owned()))
                    .is_some_and(|until| *until > now)
            };
            if held(&s.ids, id) || batch.is_some_and(|b| held(&s.batches, b)) {
                token.cancel();
            }
        }
        let key = s.next;
        s.next += 1;
        s.running.insert(
            key,
            Running {
                publisher: publisher.map(str::to_owned),
                id: id.to_owned(),
                batch: batch.map(str::to_owned),
                token: token.clone(),
            },
        );
        RunGuard {
            cancels: self,
            key,
            token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmq_spec::control::CancelTarget;

    fn request(batch: Option<&str>, ids: &[&str], sent: SystemTime) -> CancelRequest {
        CancelRequest {
            cancel: CancelTarget {
                batch: batch.map(str::to_owned),
                ids: ids.iter().map(|s| s.to_string()).collect(),
            },
            sent_at_ms: sent
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        }
    }

    #[test]
    fn a_cancel_stops_its_publishers_running_jobs_only() {
        let (c, now) = (Cancels::new(), SystemTime::now());
        let a1 = c.start(Some("a"), "j1", Some("b"), now);
        let a2 = c.start(Some("a"), "j2", Some("other"), now);
        let b1 = c.start(Some("b"), "j1", Some("b"), now);
        let anon = c.start(None, "j1", Some("b"), now);
        let stopped = c.apply(Some("a"), &request(Some("b"), &[], now), now);
        assert_eq!(stopped, ["j1"]);
        assert!(a1.token().is_cancelled());
        assert!(!a2.token().is_cancelled());
        assert!(
            !b1.token().is_cancelled(),
            "another tenant's job of that name"
        );
        assert!(!anon.token().is_cancelled(), "a job without a user");
        assert_eq!(c.apply(None, &request(None, &["j1"], now), now), ["j1"]);
        assert!(anon.token().is_cancelled());
        assert!(!b1.token().is_cancelled());
        drop((a1, a2, b1, anon));
        assert!(c.state.lock().unwrap().running.is_empty());
    }

    #[test]
    fn both_copies_of_a_cancel_answer_with_the_jobs_it_stopped() {
        let (c, now) = (Cancels::new(), SystemTime::now());
        let req = request(Some("b"), &[], now);
        let spin = c.start(Some("a"), "spin", Some("b"), now);
        let sleep = c.start(Some("a"), "sleep", Some("b"), now);
        let mut first = c.apply(Some("a"), &req, now);
        first.sort();
        assert_eq!(first, ["sleep", "spin"]);
        // The stopped job that was blocked in a host call ends at once; the other copy of
        // the cancel arrives after it is gone, and still names it.
        drop(sleep);
        let mut second = c.apply(Some("a"), &req, now);
        second.sort();
        assert_eq!(second, ["sleep", "spin"]);
        assert!(spin.token().is_cancelled());
        // Another cancel (sent later) names only what it stops itself.
        drop(spin);
        let later = request(Some("b"), &[], now + Duration::from_millis(1));
        assert!(c.apply(Some("a"), &later, now).is_empty());
    }

    #[test]
    fn a_cancel_holds_for_jobs_that_start_later_until_it_expires() {
        let (c, now) = (Cancels::new(), SystemTime::now());
        c.apply(Some("a"), &request(Some("b"), &["x"], now), now);
        assert!(
            c.start(Some("a"), "j", Some("b"), now)
                .token()
                .is_cancelled()
        );
        assert!(c.start(Some("a"), "x", None, now).token().is_cancelled());
        assert!(
            !c.start(Some("a"), "y", Some("c"), now)
                .token()
                .is_cancelled()
        );
        assert!(
            !c.start(Some("z"), "x", Some("b"), now)
                .token()
                .is_cancelled()
        );
        let later = now + Cancels::RETENTION + Duration::from_secs(1);
        assert!(
            !c.start(Some("a"), "j", Some("b"), later)
                .token()
                .is_cancelled()
        );
        // One sent longer ago than the retention is not kept at all.
        let old = now - Cancels::RETENTION - Duration::from_secs(1);
        c.apply(Some("a"), &request(Some("old"), &[], old), now);
        assert!(
            !c.start(Some("a"), "j", Some("old"), now)
                .token()
                .is_cancelled()
        );
    }
}
