//! A worker's accept path: connections taken from its listeners until
//! `WouldBlock` (paused after EMFILE/ENFILE), from other workers' handoffs,
//! or after a per-address recheck; each admitted, or refused with its
//! answer, and registered with the poll.

use super::Worker;
use crate::protocol::http::Status;
use crate::pubsub::Address;
use crate::reactor::balance::Accepted;
use crate::reactor::connection::Connection;
use crate::reactor::event_loop::Ready;
use crate::reactor::per_ip::{Hold, Over};
use mio::net::TcpStream;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

/// After EMFILE/ENFILE, how long to wait before accepting again, unless a
/// connection closes first. Without the pause an edge-triggered listener
/// with a full backlog would be retried in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a connection over `per_ip_connections` waits for the closes
/// of its client's connections that came before it to be read (on this
/// worker or another) before it is refused. The accept loop drains the
/// backlog before it reads anything, so a connection the client closed
/// before opening this one may still be counted when this one is accepted.
const RECHECK_WITHIN: Duration = Duration::from_millis(20);

/// Connections one worker keeps waiting for a recheck; beyond that one
/// over its limit is refused at once (the list is kept by what peers do).
const MAX_DEFERRED: usize = 1024;

/// An accepted connection over its client's `per_ip_connections`, waiting
/// to be admitted or refused ([`RECHECK_WITHIN`]).
pub(super) struct Deferred {
    accepted: Accepted,
    client: IpAddr,
    pub(super) until: Instant,
}

impl Worker {
    /// Accept on every listener until WouldBlock.
    pub(super) fn accept(&mut self, now: Instant) {
        self.accept_from(now, false);
        self.accept_from(now, true);
    }

    /// Accept until WouldBlock on the main listener, or on the TLS one
    /// beside it (`side`).
    pub(super) fn accept_from(&mut self, now: Instant, side: bool) {
        // The main listener speaks TLS when it is the only one configured.
        let tls = side || (self.shared.tls.is_some() && !self.shared.tls_beside);
        loop {
            let listener = if side { &self.tls_listener } else { &self.listener };
            let Some(listener) = listener.as_ref() else {
                return;
            };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    self.accept_pauses += 1;
                    if self.accept_pauses.is_power_of_two() {
                        log::warn!(
                            "worker {}: accept paused for lack of descriptors ({e}), {} time(s) so far",
                            self.id,
                            self.accept_pauses
                        );
                    }
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and friends concern one connection only.
                Err(e) => {
                    log::debug!("worker {}: accept: {e}", self.id);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            if self.settings.tcp_notsent_lowat > 0 {
                let _ = crate::sys::set_notsent_lowat(&stream, self.settings.tcp_notsent_lowat);
            }
            self.stats.accepted.fetch_add(1, Relaxed);
            let mut accepted = Accepted::new(stream, tls);
            if !self.take_connection_slot() {
                self.stats.refused.fetch_add(1, Relaxed);
                self.refuse(
                    accepted.stream,
                    Status::SERVICE_UNAVAILABLE,
                    "too many connections",
                    now,
                );
                continue;
            }
            // A trusted proxy's requests name their clients; any other
            // peer is the client.
            let per_ip = &self.shared.per_ip;
            if per_ip.settings().is_trusted_proxy(peer.ip()) {
                accepted.hold = Hold::proxy(peer.ip());
            } else {
                match per_ip.admit(peer.ip(), now) {
                    Ok(slot) => accepted.hold = Hold::peer(slot),
                    // Maybe only until the closes queued behind this
                    // accept loop are read: look again after the poll.
                    Err(Over::Connections) if self.deferred.len() < MAX_DEFERRED => {
                        self.deferred.push_back(Deferred {
                            accepted,
                            client: peer.ip(),
                            until: now + RECHECK_WITHIN,
                        });
                        continue;
                    }
                    Err(over) => {
                        self.refuse_over(accepted.stream, over, peer.ip());
                        continue;
                    }
                }
            }
            self.place(accepted, now);
        }
    }

    /// An accepted connection that holds its slots goes to the least
    /// loaded worker ([`super::balance`]), maybe this one.
    fn place(&mut self, accepted: Accepted, now: Instant) {
        match self.shared.handoff.target(self.id, &self.all_stats) {
            Some(to) => self.shared.handoff.send(to, accepted),
            None => self.admit(accepted, now),
        }
    }

    /// The deferred connections, oldest first: each admitted if its client
    /// is under the limit now, refused if its time is up, else kept.
    pub(super) fn recheck_deferred(&mut self, now: Instant) {
        for _ in 0..self.deferred.len() {
            let Some(mut d) = self.deferred.pop_front() else {
                break;
            };
            match self.shared.per_ip.admit(d.client, now) {
                Ok(slot) => {
                    d.accepted.hold = Hold::peer(slot);
                    self.place(d.accepted, now);
                }
                Err(Over::Connections) if now < d.until => self.deferred.push_back(d),
                Err(over) => self.refuse_over(d.accepted.stream, over, d.client),
            }
        }
    }

    /// Refuse a connection from `client`, over its per-address limit, at
    /// once; its `max_connections` slot is given back.
    fn refuse_over(&mut self, stream: TcpStream, over: Over, client: IpAddr) {
        self.shared.connections.fetch_sub(1, SeqCst);
        self.shared.per_ip.refused(over, client);
        self.refuse_at_once(stream, over.reason());
    }

    /// Take the connections other workers handed over ([`super::balance`]).
    pub(super) fn take_handoffs(&mut self, now: Instant) {
        for accepted in self.shared.handoff.take(self.id) {
            if self.stop_deadline.is_some() {
                // Stopping: no new connections here either.
                self.shared.connections.fetch_sub(1, SeqCst);
                self.shared.per_ip.give_back(accepted.hold);
                continue;
            }
            self.admit(accepted, now);
        }
    }

    /// Register an accepted connection (holding a `max_connections` slot
    /// and its client's per-address hold) and add it to the slab.
    fn admit(&mut self, accepted: Accepted, now: Instant) {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        let config = self.shared.tls.as_ref().filter(|_| accepted.tls);
        match Connection::new(accepted, config, self.stamp, generation) {
            Ok(conn) => self.register(conn, now),
            Err((hold, e)) => {
                log::warn!("cannot serve a connection: {e}");
                self.shared.connections.fetch_sub(1, SeqCst);
                self.shared.per_ip.give_back(hold);
            }
        }
    }

    /// Answer `status` on a connection that is not served, then close it.
    fn refuse(&mut self, stream: TcpStream, status: Status, why: &str, now: Instant) {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        let me = Address {
            worker: self.id,
            key: self.conns.vacant_key(),
            generation,
        };
        let (_, mut env) = self.env(me);
        let conn = Connection::refused(stream, status, why, generation, &mut env);
        self.register(conn, now);
    }

    /// A client over its per-address limits: `429` written at once and the
    /// connection closed, so that it holds no descriptor and no slot while
    /// it takes its time to read (a refusal that lingered like an answer
    /// would give back what the limit takes). What it already sent is read
    /// first (at most 64 KiB), so that closing does not reset the answer
    /// away.
    fn refuse_at_once(&mut self, mut stream: TcpStream, why: &str) {
        use std::io::{Read, Write};
        let mut scratch = [0u8; 4096];
        for _ in 0..16 {
            match stream.read(&mut scratch) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
        let status = Status::TOO_MANY_REQUESTS;
        let body = format!("{} {}: {why}\n", status.0, status.reason());
        let mut answer = Vec::with_capacity(256);
        let headers = [("Content-Type", "text/plain"), ("Retry-After", "1")];
        crate::protocol::http::write_head(&mut answer, status, &headers, Some(body.len()), true, &self.date);
        answer.extend_from_slice(body.as_bytes());
        // A fresh socket's send buffer takes this whole; if not, the client
        // gets less of a refusal, never more of our time.
        let _ = stream.write(&answer);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        self.stats.count_http_error(status);
    }

    /// Put a connection in the slab and the poll; one that is not counted
    /// (refused) writes its answer at once, then drains and goes.
    fn register(&mut self, mut conn: Connection, now: Instant) {
        let counted = conn.counted();
        let interest = conn.interest(&self.settings);
        let deadline = conn.deadline(&self.settings);
        let kind = conn.kind();
        let key = match self.conns.insert(conn, interest) {
            Ok(key) => key,
            Err((conn, _)) => return self.unregistered(conn),
        };
        self.stats.moved(None, Some(kind));
        let scheduled = self.timers.insert(key, deadline);
        self.conns[key].set_scheduled(scheduled);
        self.stats.open.fetch_add(1, Relaxed);
        if !counted {
            self.on_event(key, Ready::WRITABLE, now);
        }
    }

    /// The poll refused a new connection: give back what it held.
    #[cold]
    fn unregistered(&mut self, mut conn: Connection) {
        conn.release(&mut self.pool);
        if conn.counted() {
            self.shared.connections.fetch_sub(1, SeqCst);
        }
        self.shared.per_ip.give_back(conn.take_hold());
    }

    /// Count a new connection against `max_connections` (process-wide);
    /// false if it is over the limit and must be refused.
    fn take_connection_slot(&mut self) -> bool {
        let max = self.settings.max_connections;
        let before = self.shared.connections.fetch_add(1, SeqCst);
        if max != 0 && before >= max {
            self.shared.connections.fetch_sub(1, SeqCst);
            return false;
        }
        true
    }
}
