//! A fixed number of permits shared fairly among clients: when one is
//! freed it goes to the next client in turn, not to the longest waiter, so
//! a client with many requests queued waits behind its own, and one with
//! a single request waits behind at most one request of each other client
//! with work queued. A client is whatever key the caller counts by (an
//! address, an IPv6 /64).
//!
//! Clients come in two classes ([`Class`]). Waiting clients of the
//! `Preferred` class are served first, in turn among themselves; the
//! `Other` class gets every [`OTHER_SHARE`]th freed permit while both
//! wait (and every permit while no preferred client waits), so it is
//! slowed, never starved. Each request waits in the class it asks with: a
//! client's requests of each class form a line of their own.
//!
//! A waiter that gives up (its future dropped) leaves the line; a permit
//! handed to it on the way is passed on, never lost.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// While clients of both classes wait, one freed permit in this many goes
/// to the `Other` class.
pub const OTHER_SHARE: u32 = 4;

/// Which clients are served first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Preferred,
    Other,
}

impl Class {
    fn index(self) -> usize {
        match self {
            Class::Preferred => 0,
            Class::Other => 1,
        }
    }
}

pub struct FairPermits<K: Eq + Hash + Clone> {
    state: Mutex<State<K>>,
}

struct State<K: Eq + Hash + Clone> {
    free: usize,
    /// By [`Class::index`]: clients with someone waiting, in the order
    /// they are served, and their lines.
    turn: [VecDeque<K>; 2],
    waiting: [HashMap<K, VecDeque<oneshot::Sender<Permit<K>>>>; 2],
    /// Permits handed to the preferred class since the other class last
    /// had one.
    preferred_run: u32,
}

impl<K: Eq + Hash + Clone> State<K> {
    /// The class the next freed permit goes to, if anyone waits.
    fn next_class(&mut self) -> Option<Class> {
        let [preferred, other] = [&self.turn[0], &self.turn[1]].map(|t| !t.is_empty());
        let class = match (preferred, other) {
            (false, false) => return None,
            (true, false) => Class::Preferred,
            (false, true) => Class::Other,
            (true, true) if self.preferred_run + 1 >= OTHER_SHARE => Class::Other,
            (true, true) => Class::Preferred,
        };
        self.preferred_run = match class {
            Class::Preferred => self.preferred_run + 1,
            Class::Other => 0,
        };
        Some(class)
    }
}

/// One permit; dropping it hands it to the next client in turn.
pub struct Permit<K: Eq + Hash + Clone> {
    owner: Option<Arc<FairPermits<K>>>,
}

impl<K: Eq + Hash + Clone> FairPermits<K> {
    pub fn new(permits: usize) -> Arc<Self> {
        Arc::new(FairPermits {
            state: Mutex::new(State {
                free: permits,
                turn: [VecDeque::new(), VecDeque::new()],
                waiting: [HashMap::new(), HashMap::new()],
                preferred_run: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit for `client`, of `class`, once its turn comes.
    pub async fn acquire(self: &Arc<Self>, client: K, class: Class) -> Permit<K> {
        let waiting = {
            let mut state = self.lock();
            if state.free > 0 {
                // Free permits mean nobody waits (a freed permit goes to
                // a waiter first).
                state.free -= 1;
                return Permit {
                    owner: Some(self.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            let line = state.waiting[class.index()]
                .entry(client.clone())
                .or_default();
            let first = line.is_empty();
            line.push_back(tx);
            if first {
                state.turn[class.index()].push_back(client);
            }
            rx
        };
        // The sender lives in `waiting` until it is handed a permit; it is
        // dropped unsent only with `self`, which this call holds.
        waiting.await.expect("the permits outlive their waiters")
    }

    /// How many are waiting, for tests.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        let state = self.lock();
        state
            .waiting
            .iter()
            .flat_map(HashMap::values)
            .map(VecDeque::len)
            .sum()
    }

    /// Gives a freed permit to the next client in turn, or back to the
    /// free count when nobody waits.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self.lock();
                let Some(class) = state.next_class() else {
                    state.free += 1;
                    return;
                };
                let i = class.index();
                let client = state.turn[i]
                    .pop_front()
                    .expect("next_class names a class with clients in turn");
                let line = state.waiting[i]
                    .get_mut(&client)
                    .expect("a client in turn waits");
                let next = line.pop_front().expect("a line in turn is not empty");
                if line.is_empty() {
                    state.waiting[i].remove(&client);
                } else {
                    state.turn[i].push_back(client);
                }
                next
            };
            let permit = Permit {
                owner: Some(self.clone()),
            };
            match next.send(permit) {
                Ok(()) => return,
                // That waiter gave up: the next one gets it.
                Err(mut unsent) => unsent.owner = None,
            }
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Permit<K> {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            owner.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use Class::{Other, Preferred};

    /// With the only permit held, queues `requests` (client, number,
    /// class) in this order, then lets the permit go: the order they were
    /// served in, as `client` followed by `number`.
    async fn served(requests: &[(&'static str, u32, Class)]) -> Vec<String> {
        let permits = FairPermits::new(1);
        let held = permits.acquire("x", Preferred).await;
        let (done, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for &(client, n, class) in requests {
            let (shared, done) = (permits.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = shared.acquire(client, class).await;
                done.send(format!("{client}{n}")).unwrap();
                tokio::task::yield_now().await;
            }));
            // Queue them in this order.
            while permits.waiting() < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        drop(done);
        let mut served = Vec::new();
        while let Some(s) = order.recv().await {
            served.push(s);
        }
        served
    }

    /// Five requests from `a` then one from `b`: `b` is served second,
    /// not sixth.
    #[tokio::test]
    async fn a_client_with_one_request_waits_behind_one_of_each_other_client() {
        let a = |n| ("a", n, Preferred);
        let order = served(&[a(1), a(2), a(3), a(4), a(5), ("b", 1, Preferred)]).await;
        assert_eq!(order, ["a1", "b1", "a2", "a3", "a4", "a5"]);
    }

    /// A waiter that gives up leaves the line; the permit it would have
    /// had goes on to the next, and all come back free at the end.
    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_no_permit() {
        let permits = FairPermits::new(2);
        let one = permits.acquire("a", Preferred).await;
        let two = permits.acquire("a", Other).await;
        let gives_up =
            tokio::time::timeout(Duration::from_millis(10), permits.acquire("b", Other)).await;
        assert!(gives_up.is_err(), "no permit was free");
        let waits = {
            let permits = permits.clone();
            tokio::spawn(async move { permits.acquire("c", Other).await })
        };
        while permits.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        drop(one);
        let three = waits.await.unwrap();
        drop((two, three));
        assert_eq!(permits.lock().free, 2);
        assert_eq!(permits.waiting(), 0);
    }

    /// Four requests of `o` (the other class) queued before five of `p`
    /// and one of `q` (preferred): the preferred go first, in turn, and
    /// `o` gets one permit in every `OTHER_SHARE`.
    #[tokio::test]
    async fn the_preferred_class_goes_first_and_the_other_is_not_starved() {
        let (o, p) = (|n| ("o", n, Other), |n| ("p", n, Preferred));
        let requests = [o(1), o(2), o(3), o(4), p(1), p(2), p(3), p(4), p(5)];
        let order = served(&[&requests[..], &[("q", 1, Preferred)]].concat()).await;
        assert_eq!(
            order,
            ["p1", "q1", "p2", "o1", "p3", "p4", "p5", "o2", "o3", "o4"]
        );
    }

    /// A client's requests wait in the class each asked with: `a`'s
    /// requests of the other class wait behind `b`'s preferred one, even
    /// though `a` already had a preferred line.
    #[tokio::test]
    async fn each_request_waits_in_its_own_class() {
        let requests = [
            ("a", 1, Preferred),
            ("a", 2, Other),
            ("a", 3, Other),
            ("b", 1, Preferred),
            ("a", 4, Preferred),
        ];
        assert_eq!(served(&requests).await, ["a1", "b1", "a4", "a2", "a3"]);
    }
}
