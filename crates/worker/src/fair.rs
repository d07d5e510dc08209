//! Fair share between tenants: the jobs a worker has taken from its queues wait here, one
//! queue per tenant, and each free slot goes to the tenant whose turn it is.
//!
//! Turns follow stride scheduling: every tenant has a *pass*, and the tenant with jobs
//! waiting, below its cap on jobs in flight, and with the lowest pass goes next; its pass
//! then grows by `1 / weight`, so a tenant of weight 2 starts two jobs for each of
//! a tenant of weight 1 while both have jobs waiting. A tenant that had nothing waiting
//! starts again at the lowest pass of those that did, so idling banks no credit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A tenant's share of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Its weight against the others (at least 1).
    pub weight: u32,
    /// The most of its jobs running at once on this worker; `None`: no cap but the
    /// worker's concurrency.
    pub max_in_flight: Option<u32>,
}

impl Share {
    /// Weight 1, no cap.
    pub const EQUAL: Share = Share {
        weight: 1,
        max_in_flight: None,
    };
}

/// The share of each tenant (by verified broker user), and of everyone else.
#[derive(Debug, Clone)]
pub struct Shares {
    /// Tenants with a share of their own.
    pub tenants: HashMap<String, Share>,
    /// Jobs without a `user_id`, and users without a share of their own: each such user
    /// (and the jobs without one, together) has this share.
    pub default: Share,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            tenants: HashMap::new(),
            default: Share::EQUAL,
        }
    }
}

impl Shares {
    fn of(&self, tenant: Option<&str>) -> Share {
        tenant
            .and_then(|t| self.tenants.get(t))
            .copied()
            .unwrap_or(self.default)
    }
}

type Key = Option<String>;

/// Jobs taken and not yet started, by tenant.
#[derive(Debug)]
pub struct Fair<D> {
    shares: Shares,
    state: Mutex<State<D>>,
    /// Told when a job arrives or a slot is given back: a job may be ready to start.
    wake: Notify,
}

#[derive(Debug)]
struct State<D> {
    queues: HashMap<Key, Lane<D>>,
    waiting: usize,
    /// Turns given so far: stamps which lane was served last.
    turns: u64,
}

#[derive(Debug)]
struct Lane<D> {
    pending: VecDeque<D>,
    running: u32,
    pass: f64,
    share: Share,
    /// The turn this lane was last served (0: not yet): of equal passes, the one served
    /// longest ago goes first.
    last: u64,
}

/// A started job's place in its tenant's count of jobs in flight; given back on drop.
#[derive(Debug)]
pub struct InFlight<D> {
    fair: Arc<Fair<D>>,
    key: Key,
}

impl<D> Drop for InFlight<D> {
    fn drop(&mut self) {
        let mut s = self.fair.state.lock().expect("the fair queue lock");
        if let Some(lane) = s.queues.get_mut(&self.key) {
            lane.running -= 1;
            let capped = lane.share.max_in_flight.is_some() && !lane.pending.is_empty();
            if lane.running == 0 && lane.pending.is_empty() {
                s.queues.remove(&self.key);
            }
            drop(s);
            if capped {
                self.fair.wake.notify_one();
            }
        }
    }
}

impl<D> Fair<D> {
    /// An empty queue with these shares.
    pub fn new(shares: Shares) -> Arc<Self> {
        Arc::new(Fair {
            shares,
            state: Mutex::new(State {
                queues: HashMap::new(),
                waiting: 0,
                turns: 0,
            }),
            wake: Notify::new(),
        })
    }

    /// Resolves once a job may have become ready to start (one arrived, or a tenant at
    /// its cap gave a slot back); a wake-up given while nobody waited is kept.
    pub async fn changed(&self) {
        self.wake.notified().await
    }

    /// Jobs waiting, of every tenant.
    pub fn waiting(&self) -> usize {
        self.state.lock().expect("the fair queue lock").waiting
    }

    /// Wakes whoever waits in [`Fair::changed`], with nothing new to start: the source
    /// of jobs has ended.
    pub fn push_wake(&self) {
        self.wake.notify_one();
    }

    /// Adds a job of `tenant`.
    pub fn push(&self, key: Option<String>, job: D) {
        self.add(key, job);
        self.wake.notify_one();
    }

    fn add(&self, key: Option<String>, job: D) {
        let mut s = self.state.lock().expect("the fair queue lock");
        if !s.queues.contains_key(&key) {
            // A tenant that had nothing here starts at the front of the others, not
            // ahead of them by the time it was away.
            let floor = s
                .queues
                .values()
                .map(|l| l.pass)
                .fold(f64::INFINITY, f64::min);
            let lane = Lane {
                pending: VecDeque::new(),
                running: 0,
                pass: if floor.is_finite() { floor } else { 0.0 },
                share: self.shares.of(key.as_deref()),
                last: 0,
            };
            s.queues.insert(key.clone(), lane);
        }
        s.queues
            .get_mut(&key)
            .expect("inserted above")
            .pending
            .push_back(job);
        s.waiting += 1;
    }

    /// The next job to start, and its slot; `None` when every tenant with jobs waiting is
    /// at its cap (or nothing waits).
    pub fn pop(self: &Arc<Self>) -> Option<(D, InFlight<D>)> {
        let mut guard = self.state.lock().expect("the fair queue lock");
        let s = &mut *guard;
        s.turns += 1;
        let (key, lane) = s
            .queues
            .iter_mut()
            .filter(|(_, l)| {
                !l.pending.is_empty() && l.share.max_in_flight.is_none_or(|cap| l.running < cap)
            })
            .min_by(|a, b| a.1.pass.total_cmp(&b.1.pass).then(a.1.last.cmp(&b.1.last)))?;
        let job = lane.pending.pop_front().expect("not empty");
        lane.running += 1;
        lane.pass += 1.0 / f64::from(lane.share.weight.max(1));
        lane.last = s.turns;
        let key = key.clone();
        s.waiting -= 1;
        Some((
            job,
            InFlight {
                fair: self.clone(),
                key,
            },
        ))
    }

    /// Every job still waiting, to hand back.
    pub fn drain(&self) -> Vec<D> {
        let mut s = self.state.lock().expect("the fair queue lock");
        s.waiting = 0;
        s.queues
            .values_mut()
            .flat_map(|l| l.pending.drain(..))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(list: &[(&str, u32, Option<u32>)]) -> Shares {
        Shares {
            tenants: list
                .iter()
                .map(|(n, weight, max_in_flight)| {
                    (
                        n.to_string(),
                        Share {
                            weight: *weight,
                            max_in_flight: *max_in_flight,
                        },
                    )
                })
                .collect(),
            default: Share::EQUAL,
        }
    }

    /// Starts and finishes `n` jobs one at a time; the tenants they belonged to.
    fn order(f: &Arc<Fair<(String, u32)>>, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let ((t, _), slot) = f.pop().expect("a job");
                drop(slot);
                t
            })
            .collect()
    }

    #[test]
    fn a_backlog_does_not_starve_a_tenant_that_comes_later() {
        let f = Fair::new(Shares::default());
        for i in 0..1000 {
            f.push(Some("a".into()), ("a".to_owned(), i));
        }
        assert_eq!(order(&f, 10), vec!["a"; 10]);
        for i in 0..3 {
            f.push(Some("b".into()), ("b".to_owned(), i));
        }
        // B's three go at once, alternating with A.
        let next = order(&f, 6);
        assert_eq!(next, ["b", "a", "b", "a", "b", "a"].map(str::to_owned));
        assert_eq!(f.waiting(), 1000 - 13);
    }

    #[test]
    fn weights_divide_the_turns() {
        let f = Fair::new(shares(&[("heavy", 3, None)]));
        for i in 0..400 {
            f.push(Some("heavy".into()), ("heavy".to_owned(), i));
            f.push(None, ("anon".to_owned(), i));
        }
        let first = order(&f, 400);
        let heavy = first.iter().filter(|t| *t == "heavy").count();
        assert!(
            (299..=301).contains(&heavy),
            "weight 3 against 1: three quarters of the turns, not {heavy}"
        );
    }

    #[test]
    fn a_tenant_at_its_cap_waits_and_others_go_on() {
        let f = Fair::new(shares(&[("capped", 1, Some(2))]));
        for i in 0..10 {
            f.push(Some("capped".into()), ("capped".to_owned(), i));
        }
        let s1 = f.pop().unwrap();
        let s2 = f.pop().unwrap();
        assert!(f.pop().is_none(), "two in flight: the cap");
        f.push(None, ("anon".to_owned(), 0));
        let ((t, _), _s3) = f.pop().unwrap();
        assert_eq!(t, "anon", "another tenant takes the free slot");
        drop(s1);
        let ((t, i), _s4) = f.pop().unwrap();
        assert_eq!((t.as_str(), i), ("capped", 2));
        drop(s2);
        assert_eq!(f.drain().len(), 7);
        assert_eq!(f.waiting(), 0);
    }

    #[test]
    fn an_idle_tenant_banks_no_credit() {
        let f = Fair::new(Shares::default());
        f.push(Some("b".into()), ("b".to_owned(), 0));
        assert_eq!(order(&f, 1), ["b"]);
        for i in 0..100 {
            f.push(Some("a".into()), ("a".to_owned(), i));
        }
        assert_eq!(order(&f, 50), vec!["a"; 50]);
        for i in 0..10 {
            f.push(Some("b".into()), ("b".to_owned(), i));
        }
        let next = order(&f, 10);
        assert_eq!(
            next.iter().filter(|t| *t == "b").count(),
            5,
            "b alternates with a rather than taking 10 turns in a row: {next:?}"
        );
    }
}
