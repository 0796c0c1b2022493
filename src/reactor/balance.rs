//! Evening out connections across workers.
//!
//! SO_REUSEPORT picks a worker's listener by a hash of the connection's
//! address and port pair: even on average, uneven in any one sample. With
//! 100 connections on two workers, one worker gets 57 or more (1.33x the
//! other) about one time in six. So a worker that accepts a connection while
//! it holds at least two more than the least loaded worker hands the
//! connection over: the socket goes into that worker's queue, its waker
//! wakes it, and it registers the socket with its own poll. Counts then stay
//! within two of each other (the slack of two keeps a worker one ahead from
//! handing over every other accept), at the cost of a wake-up for the
//! accepts that correct the hash; no bytes have been read yet, so nothing
//! else moves.

use super::per_ip::Hold;
use crate::stats::WorkerStats;
use mio::net::TcpStream;
use mio::Waker;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// An accepted connection not yet in a slab: its socket, whether it came
/// to the TLS listener, and how the per-address limits counted it.
#[derive(Debug)]
pub struct Accepted {
    pub stream: TcpStream,
    pub tls: bool,
    /// What it holds under the per-address limits.
    pub hold: Hold,
}

impl Accepted {
    /// A connection the limits do not count.
    pub fn new(stream: TcpStream, tls: bool) -> Accepted {
        Accepted {
            stream,
            tls,
            hold: Hold::Nothing,
        }
    }
}

/// Per-worker queues of accepted connections handed over by other workers.
#[derive(Debug)]
pub struct Handoff {
    queues: Vec<Mutex<Vec<Accepted>>>,
    /// Connections queued for each worker and not yet taken: part of its load.
    queued: Vec<AtomicUsize>,
    wakers: Vec<Arc<Waker>>,
}

impl Handoff {
    /// Queues for the workers woken by `wakers` (one per worker, in order).
    pub fn new(wakers: Vec<Arc<Waker>>) -> Self {
        Handoff {
            queues: wakers.iter().map(|_| Mutex::default()).collect(),
            queued: wakers.iter().map(|_| AtomicUsize::new(0)).collect(),
            wakers,
        }
    }

    /// The worker that should take a connection `me` just accepted, when
    /// that is not `me`: the least loaded one, if `me` has two or more
    /// connections over it (counting queued ones).
    pub fn target(&self, me: usize, stats: &[Arc<WorkerStats>]) -> Option<usize> {
        let load = |w: usize| stats[w].open.load(Relaxed) as usize + self.queued[w].load(Relaxed);
        let (least, min) = (0..self.queues.len()).map(|w| (w, load(w))).min_by_key(|&(_, l)| l)?;
        (least != me && load(me) >= min + 2).then_some(least)
    }

    /// Queue `stream` (from a TLS listener: `tls`) for worker `to` and wake it.
    pub fn send(&self, to: usize, accepted: Accepted) {
        self.queued[to].fetch_add(1, Relaxed);
        let was_empty = {
            let mut q = self.queues[to].lock().unwrap_or_else(|e| e.into_inner());
            q.push(accepted);
            q.len() == 1
        };
        // The worker takes the whole queue when woken: one wake per batch.
        if was_empty {
            let _ = self.wakers[to].wake();
        }
    }

    /// Take everything queued for worker `me`.
    pub fn take(&self, me: usize) -> Vec<Accepted> {
        let taken = std::mem::take(&mut *self.queues[me].lock().unwrap_or_else(|e| e.into_inner()));
        self.queued[me].fetch_sub(taken.len(), Relaxed);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Poll, Token};

    #[test]
    fn hands_over_only_two_or_more_above_the_least_loaded() {
        let polls: Vec<Poll> = (0..3).map(|_| Poll::new().unwrap()).collect();
        let wakers = polls
            .iter()
            .map(|p| Arc::new(Waker::new(p.registry(), Token(0)).unwrap()))
            .collect();
        let handoff = Handoff::new(wakers);
        let stats: Vec<Arc<WorkerStats>> = (0..3).map(|_| Arc::default()).collect();
        let set = |w: usize, n: u64| stats[w].open.store(n, Relaxed);
        set(0, 5);
        set(1, 4);
        set(2, 6);
        assert_eq!(handoff.target(0, &stats), None, "one above the least");
        assert_eq!(handoff.target(2, &stats), Some(1));
        assert_eq!(handoff.target(1, &stats), None, "the least itself");
        // Queued connections count: worker 1 at 4 + 2 queued is no longer the least.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for _ in 0..2 {
            let s = std::net::TcpStream::connect(addr).unwrap();
            handoff.send(1, Accepted::new(TcpStream::from_std(s), false));
        }
        assert_eq!(handoff.target(2, &stats), None);
        assert_eq!(handoff.take(1).len(), 2);
        assert!(handoff.take(1).is_empty());
        assert_eq!(handoff.target(2, &stats), Some(1));
    }
}
