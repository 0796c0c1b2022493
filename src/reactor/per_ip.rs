//! Per-address limits: how many connections one client may hold open
//! (`[limits] per_ip_connections`) and how many it may open per second
//! (`per_ip_connect_rate`, a token bucket whose burst is one second's
//! worth), shared by every worker, since `SO_REUSEPORT` spreads one
//! client's connections over all of them.
//!
//! The table is keyed by what a peer chooses, so it is bounded: an address
//! is in it while it holds a connection (bounded by the connections
//! themselves) or while its bucket is refilling, and at most
//! [`IDLE_ENTRIES`] of the latter are kept; beyond that the one idle
//! longest is forgotten (its bucket starts full again). An IPv6 client is
//! counted by its /64, since one host commonly holds a whole /64.
//!
//! Behind a trusted proxy each request is counted for the client the
//! proxy's own header names; one whose client cannot be read is counted
//! against the proxy's address, exempt or not ([`PerIp::admit_unnamed`]):
//! hiding one's address buys a share of one address's limit, never none.

use crate::stats::PerIpStats;
use ipnet::IpNet;
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

/// Addresses kept without an open connection, for their buckets.
pub const IDLE_ENTRIES: usize = 65_536;

/// The limits, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PerIpSettings {
    /// Open connections per client; 0: no limit.
    pub connections: u32,
    /// New connections per second per client; 0: no limit.
    pub connect_rate: u32,
    /// Clients the limits do not apply to.
    pub exempt: Vec<IpNet>,
    /// Peers whose [`forwarded_header`](Self::forwarded_header) names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// The one header those proxies set; the other is the client's.
    pub forwarded_header: ForwardedHeader,
}

/// Which header a trusted proxy names the client in (`[limits] forwarded_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, as nginx's `$proxy_add_x_forwarded_for` appends it.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

impl PerIpSettings {
    /// Is either limit on?
    pub fn enabled(&self) -> bool {
        self.connections != 0 || self.connect_rate != 0
    }

    /// Does the limit apply to `client`?
    pub fn applies(&self, client: IpAddr) -> bool {
        self.enabled() && !self.exempt.iter().any(|n| n.contains(&canonical(client)))
    }

    /// Is `peer` a proxy whose forwarding headers are believed?
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&canonical(peer)))
    }
}

/// An IPv4 address mapped into IPv6 (a dual-stack socket's) as itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Which limit a client is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// `per_ip_connections`.
    Connections,
    /// `per_ip_connect_rate`.
    Rate,
}

impl Over {
    /// What the refused client is told.
    pub fn reason(self) -> &'static str {
        match self {
            Over::Connections => "too many connections from your address",
            Over::Rate => "too many new connections from your address",
        }
    }
}

/// A client's hold on one open connection; given back with
/// [`PerIp::give_back`] (in its connection's [`Hold`]) when the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(NonZeroU32);

/// What one connection holds under the limits, from its accept to its
/// close. It moves with the connection (to the worker it is handed to,
/// into its session) and is given back once, with [`PerIp::give_back`]:
/// admission and release are both here, whoever holds it.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use = "a hold is given back with PerIp::give_back"]
pub enum Hold {
    /// Nothing is counted: the limits are off or the peer is exempt.
    #[default]
    Nothing,
    /// The peer's own count, taken at accept.
    Peer(Slot),
    /// The peer is a trusted proxy: each request counts the client it
    /// names ([`PerIp::recount`]). Boxed: every connection carries a
    /// `Hold`, few come from a proxy, and an address is 17 bytes.
    Proxy(Box<Proxied>),
}

/// A trusted proxy's connection under the limits.
#[derive(Debug, PartialEq, Eq)]
pub struct Proxied {
    /// The proxy: what a request naming no readable client counts against.
    pub proxy: IpAddr,
    /// The last request's client's hold.
    pub client: Option<Slot>,
}

impl Hold {
    /// The connection's peer is the trusted proxy `proxy`.
    pub fn proxy(proxy: IpAddr) -> Hold {
        Hold::Proxy(Box::new(Proxied { proxy, client: None }))
    }

    /// The peer's count, if one was taken.
    pub fn peer(slot: Option<Slot>) -> Hold {
        slot.map_or(Hold::Nothing, Hold::Peer)
    }

    /// Is the peer a trusted proxy (whose requests name their clients)?
    pub fn is_proxy(&self) -> bool {
        matches!(self, Hold::Proxy { .. })
    }
}

/// The key of a client: its IPv4 address, or its IPv6 /64.
type Key = u128;

fn key(ip: IpAddr) -> Key {
    match canonical(ip) {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64 << 64) | 1,
    }
}

#[derive(Debug)]
struct Entry {
    key: Key,
    /// Open connections.
    open: u32,
    /// Tokens in the bucket, as of `at`.
    tokens: f32,
    at: Instant,
    /// In `Table::idle` (at most once, so that it is no longer than the table).
    queued: bool,
}

#[derive(Debug, Default)]
struct Table {
    entries: Slab<Entry>,
    index: HashMap<Key, usize>,
    /// Entries that went idle (no connection), oldest first, each at most
    /// once; one may have become busy since: checked when popped.
    idle: VecDeque<usize>,
    idle_count: usize,
}

/// The shared table of clients and the refusals counted.
#[derive(Debug)]
pub struct PerIp {
    settings: PerIpSettings,
    table: Mutex<Table>,
    /// Refused for `per_ip_connections`.
    pub refused_connections: AtomicU64,
    /// Refused for `per_ip_connect_rate`.
    pub refused_rate: AtomicU64,
}

impl PerIp {
    /// An empty table for these limits.
    pub fn new(settings: PerIpSettings) -> PerIp {
        PerIp {
            settings,
            table: Mutex::default(),
            refused_connections: AtomicU64::new(0),
            refused_rate: AtomicU64::new(0),
        }
    }

    /// The limits.
    pub fn settings(&self) -> &PerIpSettings {
        &self.settings
    }

    /// Addresses in the table.
    pub fn addresses(&self) -> usize {
        self.lock().entries.len()
    }

    /// The counters, for `/metrics`.
    pub fn stats(&self) -> PerIpStats {
        PerIpStats {
            refused_connections: self.refused_connections.load(Relaxed),
            refused_rate: self.refused_rate.load(Relaxed),
            addresses: self.addresses(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection from `client` at `now`: `Ok(None)` if no limit
    /// applies, `Ok(Some(slot))` if it is counted, or the limit it is over
    /// (nothing taken; the caller counts a refusal with [`refused`](Self::refused)
    /// once it decides to refuse).
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<Option<Slot>, Over> {
        if !self.settings.applies(client) {
            return Ok(None);
        }
        self.count(client, now)
    }

    /// A request trusted `proxy` forwarded without a client that can be
    /// read (no header, `unknown`, `_hidden`, junk): counted against the
    /// proxy's own address even if `per_ip_exempt` covers it (fail closed;
    /// the exemption is for the clients the proxy names and for direct
    /// peers, not for a client that hides).
    pub fn admit_unnamed(&self, proxy: IpAddr, now: Instant) -> Result<Option<Slot>, Over> {
        if !self.settings.enabled() {
            return Ok(None);
        }
        self.count(proxy, now)
    }

    fn count(&self, client: IpAddr, now: Instant) -> Result<Option<Slot>, Over> {
        let (max_open, rate) = (self.settings.connections, self.settings.connect_rate);
        let mut guard = self.lock();
        let t = &mut *guard;
        let k = key(client);
        let at = match t.index.get(&k) {
            Some(&at) => at,
            None => {
                t.make_room(now, rate);
                let at = t.entries.insert(Entry {
                    key: k,
                    open: 0,
                    tokens: rate as f32,
                    at: now,
                    queued: true,
                });
                t.index.insert(k, at);
                t.idle.push_back(at);
                t.idle_count += 1;
                at
            }
        };
        let e = &mut t.entries[at];
        if rate != 0 {
            let elapsed = now.saturating_duration_since(e.at).as_secs_f32();
            e.tokens = (e.tokens + elapsed * rate as f32).min(rate as f32);
            e.at = now;
        }
        if max_open != 0 && e.open >= max_open {
            return Err(Over::Connections);
        }
        if rate != 0 {
            if e.tokens < 1.0 {
                return Err(Over::Rate);
            }
            e.tokens -= 1.0;
        }
        e.open += 1;
        if e.open == 1 {
            t.idle_count -= 1;
        }
        let id = u32::try_from(at + 1)
            .ok()
            .and_then(NonZeroU32::new)
            .expect("fewer than 4e9 clients");
        Ok(Some(Slot(id)))
    }

    /// A connection from `client` is refused for being `over`: counted for
    /// `/metrics`, and told to the log now and then.
    pub fn refused(&self, over: Over, client: IpAddr) {
        let (counter, limit) = match over {
            Over::Connections => (&self.refused_connections, "per_ip_connections"),
            Over::Rate => (&self.refused_rate, "per_ip_connect_rate"),
        };
        warn_refused(counter.fetch_add(1, Relaxed) + 1, limit, client);
    }

    /// A request on a connection from a trusted proxy, naming `client`
    /// (`None`: no client can be read, so the proxy's own address is
    /// counted, [`admit_unnamed`](Self::admit_unnamed)). The hold of the
    /// connection's previous request is given back first, so a client's
    /// next request on the same connection is not refused for it; then the
    /// client is counted and its hold kept in `hold`, or it is over a limit:
    /// the refusal is counted and the address it was counted under given.
    /// Other holds (a direct peer) are not touched.
    pub fn recount(&self, hold: &mut Hold, client: Option<IpAddr>, now: Instant) -> Result<(), (Over, IpAddr)> {
        let Hold::Proxy(proxied) = hold else {
            return Ok(());
        };
        let Proxied { proxy, client: held } = &mut **proxied;
        if let Some(slot) = held.take() {
            self.release(slot);
        }
        let (address, counted) = match client {
            Some(client) => (client, self.admit(client, now)),
            None => (*proxy, self.admit_unnamed(*proxy, now)),
        };
        match counted {
            Ok(slot) => {
                *held = slot;
                Ok(())
            }
            Err(over) => {
                self.refused(over, address);
                Err((over, address))
            }
        }
    }

    /// The connection holding `hold` ended (or was never served).
    pub fn give_back(&self, hold: Hold) {
        match hold {
            Hold::Peer(slot) => self.release(slot),
            Hold::Proxy(proxied) => {
                if let Some(slot) = proxied.client {
                    self.release(slot);
                }
            }
            Hold::Nothing => {}
        }
    }

    /// The connection holding `slot` ended.
    fn release(&self, slot: Slot) {
        let mut guard = self.lock();
        let t = &mut *guard;
        let at = slot.0.get() as usize - 1;
        let Some(e) = t.entries.get_mut(at) else {
            return;
        };
        e.open = e.open.saturating_sub(1);
        if e.open == 0 {
            t.idle_count += 1;
            if !std::mem::replace(&mut e.queued, true) {
                t.idle.push_back(at);
            }
        }
    }
}

/// At the 1st, 2nd, 4th, 8th... refusal: an operator hears of it, and a
/// flood of refusals cannot flood the log.
fn warn_refused(n: u64, limit: &str, client: IpAddr) {
    if n.is_power_of_two() {
        log::warn!("{n} connection(s) refused over limits.{limit} so far, the last from {client}");
    }
}

impl Table {
    /// Before adding an entry: forget idle entries whose bucket is full
    /// again (they are as good as absent), and the oldest idle ones while
    /// more than [`IDLE_ENTRIES`] are kept.
    fn make_room(&mut self, now: Instant, rate: u32) {
        while let Some(&at) = self.idle.front() {
            let e = &mut self.entries[at];
            if e.open != 0 {
                // Busy again since it was queued; queued anew when idle.
                e.queued = false;
                self.idle.pop_front();
                continue;
            }
            let refilled =
                rate == 0 || e.tokens + now.saturating_duration_since(e.at).as_secs_f32() * rate as f32 >= rate as f32;
            if !refilled && self.idle_count < IDLE_ENTRIES {
                return;
            }
            self.idle.pop_front();
            let e = self.entries.remove(at);
            self.index.remove(&e.key);
            self.idle_count -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(connections: u32, connect_rate: u32) -> PerIp {
        PerIp::new(PerIpSettings {
            connections,
            connect_rate,
            exempt: vec!["127.0.0.0/8".parse().unwrap()],
            trusted_proxies: vec![],
            forwarded_header: ForwardedHeader::default(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_proxied_hold_is_recounted_per_request_and_given_back_once() {
        let p = limits(1, 0);
        let now = Instant::now();
        let mut hold = Hold::proxy(ip("10.0.0.1"));
        assert_eq!(p.recount(&mut hold, Some(ip("192.0.2.1")), now), Ok(()));
        // The same client's next request on the same connection: its own
        // previous hold is given back first, so it is not over the limit.
        assert_eq!(p.recount(&mut hold, Some(ip("192.0.2.1")), now), Ok(()));
        // Another connection for that client is.
        let mut other = Hold::proxy(ip("10.0.0.1"));
        assert_eq!(
            p.recount(&mut other, Some(ip("192.0.2.1")), now),
            Err((Over::Connections, ip("192.0.2.1")))
        );
        assert_eq!(other, Hold::proxy(ip("10.0.0.1")));
        // No readable client: the proxy's own address is counted.
        assert_eq!(p.recount(&mut other, None, now), Ok(()));
        assert_eq!(
            p.recount(&mut Hold::proxy(ip("10.0.0.1")), None, now),
            Err((Over::Connections, ip("10.0.0.1")))
        );
        p.give_back(hold);
        assert_eq!(p.recount(&mut other, Some(ip("192.0.2.1")), now), Ok(()));
        // A direct peer's hold is not a proxy's: a request does not touch it.
        let mut peer = Hold::peer(p.admit(ip("192.0.2.9"), now).unwrap());
        assert!(matches!(peer, Hold::Peer(_)));
        assert_eq!(p.recount(&mut peer, Some(ip("192.0.2.1")), now), Ok(()));
        assert!(matches!(peer, Hold::Peer(_)));
        p.give_back(peer);
        assert!(p.admit(ip("192.0.2.9"), now).unwrap().is_some());
        assert_eq!(p.refused_connections.load(Relaxed), 2);
    }

    #[test]
    fn open_connections_are_capped_and_released() {
        let p = limits(2, 0);
        let now = Instant::now();
        let a = p.admit(ip("192.0.2.1"), now).unwrap().unwrap();
        p.admit(ip("192.0.2.1"), now).unwrap().unwrap();
        assert_eq!(p.admit(ip("192.0.2.1"), now), Err(Over::Connections));
        // A refusal counts once the caller refuses.
        assert_eq!(p.refused_connections.load(Relaxed), 0);
        p.refused(Over::Connections, ip("192.0.2.1"));
        assert!(p.admit(ip("192.0.2.2"), now).unwrap().is_some());
        p.release(a);
        assert!(p.admit(ip("192.0.2.1"), now).is_ok());
        assert_eq!(p.refused_connections.load(Relaxed), 1);
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let p = limits(0, 2);
        let t0 = Instant::now();
        let c = ip("198.51.100.7");
        for _ in 0..2 {
            p.release(p.admit(c, t0).unwrap().unwrap());
        }
        assert_eq!(p.admit(c, t0), Err(Over::Rate));
        assert_eq!(p.admit(c, t0 + Duration::from_millis(400)), Err(Over::Rate));
        assert!(p.admit(c, t0 + Duration::from_millis(600)).is_ok());
    }

    #[test]
    fn exempt_and_disabled_count_nothing() {
        let p = limits(1, 1);
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(p.admit(ip("127.0.0.1"), now), Ok(None));
            assert_eq!(p.admit(ip("::ffff:127.0.0.9"), now), Ok(None));
        }
        let off = limits(0, 0);
        assert_eq!(off.admit(ip("192.0.2.1"), now), Ok(None));
        assert_eq!(off.addresses(), 0);
    }

    #[test]
    fn an_unnamed_client_counts_against_the_proxy_even_when_exempt() {
        let p = limits(1, 0);
        let now = Instant::now();
        assert_eq!(p.admit(ip("127.0.0.1"), now), Ok(None));
        p.admit_unnamed(ip("127.0.0.1"), now).unwrap().unwrap();
        assert_eq!(p.admit_unnamed(ip("127.0.0.1"), now), Err(Over::Connections));
        assert_eq!(limits(0, 0).admit_unnamed(ip("127.0.0.1"), now), Ok(None));
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let p = limits(1, 0);
        let now = Instant::now();
        p.admit(ip("2001:db8:1:2::1"), now).unwrap().unwrap();
        assert_eq!(p.admit(ip("2001:db8:1:2:ffff::9"), now), Err(Over::Connections));
        assert!(p.admit(ip("2001:db8:1:3::1"), now).unwrap().is_some());
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood_of_addresses() {
        let p = limits(0, 1);
        let now = Instant::now();
        for i in 0..(IDLE_ENTRIES as u32 + 10_000) {
            let slot = p.admit(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()), now).unwrap();
            p.release(slot.unwrap());
        }
        assert!(p.addresses() <= IDLE_ENTRIES + 1, "{}", p.addresses());
        // Refilled entries are forgotten first.
        p.admit(ip("192.0.2.1"), now + Duration::from_secs(2)).unwrap();
        assert!(p.addresses() <= 2, "{}", p.addresses());
    }

    #[test]
    fn one_churning_client_is_queued_once() {
        let p = limits(0, 0);
        let p = PerIp::new(PerIpSettings {
            connections: 5,
            ..p.settings.clone()
        });
        let now = Instant::now();
        for _ in 0..10_000 {
            p.release(p.admit(ip("192.0.2.1"), now).unwrap().unwrap());
        }
        assert_eq!(p.lock().idle.len(), 1);
        assert_eq!(p.addresses(), 1);
    }

    proptest::proptest! {
        /// Any order of admits and releases over a few clients (and a
        /// churn of one-off ones that makes room in the table) keeps each
        /// client's count what a plain model says: admitted while below
        /// the limit, one freed per release.
        #[test]
        fn counts_follow_a_model_under_any_order(
            ops in proptest::collection::vec((0u8..6, proptest::bool::ANY), 1..400),
        ) {
            let p = limits(3, 0);
            let now = Instant::now();
            let mut held: Vec<Vec<Slot>> = vec![Vec::new(); 6];
            for (n, (client, admit)) in ops.into_iter().enumerate() {
                let c = usize::from(client);
                // Clients 4 and 5 are a new address each time: entries come and go.
                let addr = if c >= 4 {
                    IpAddr::from((0xc633_6400u32 + n as u32).to_be_bytes())
                } else {
                    IpAddr::from([192, 0, 2, client + 1])
                };
                if admit {
                    match p.admit(addr, now) {
                        Ok(slot) => {
                            proptest::prop_assert!(c >= 4 || held[c].len() < 3);
                            held[c].push(slot.unwrap());
                        }
                        Err(over) => {
                            proptest::prop_assert_eq!(over, Over::Connections);
                            proptest::prop_assert!(c < 4 && held[c].len() == 3);
                        }
                    }
                } else if let Some(slot) = held[c].pop() {
                    p.release(slot);
                }
            }
            // Each client still holds exactly what the model says.
            for c in 0..4u8 {
                let addr = IpAddr::from([192, 0, 2, c + 1]);
                let room = (0..3).take_while(|_| p.admit(addr, now).is_ok()).count();
                proptest::prop_assert_eq!(room + held[usize::from(c)].len(), 3);
            }
        }
    }
}
