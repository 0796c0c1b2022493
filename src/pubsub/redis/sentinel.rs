//! Redis Sentinel: the master of a name, found through its sentinels.
//!
//! The client follows Redis's guide for Sentinel clients
//! (<https://redis.io/docs/latest/develop/reference/sentinel-clients/>):
//! ask the sentinels in turn, the one that answered last first, for the
//! master's address (`SENTINEL get-master-addr-by-name`), connect to it,
//! and check with `ROLE` that it is a master (a sentinel cut off from the
//! others may still name a demoted or dead one: then the next sentinel is
//! asked). It is asked again on every connect (a connection error), on a
//! `READONLY` answer, and when a sentinel announces `+switch-master`. It is
//! written here rather than taken from the redis crate's `sentinel` module
//! because that one's blocking client connects and reads without
//! timeouts, and a sentinel that stops answering would hold the command
//! thread forever. Sentinels are spoken to without a password.

use super::connect;
use super::nodes::{at, client, is_master, with_protocol, Protocol};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A master known by name to a set of sentinels.
pub(super) struct Sentinels {
    /// Each sentinel's address, as a connection to it.
    sentinels: Vec<redis::ConnectionInfo>,
    /// The name the sentinels monitor the master under.
    name: String,
    /// How to talk to the master once found: password, database, TLS (its
    /// address replaced).
    node: redis::ConnectionInfo,
    /// With TLS: the authority the servers' certificates are checked against.
    ca_pem: Option<Vec<u8>>,
    /// The sentinel that answered last: asked first next time.
    last: AtomicUsize,
}

impl Clone for Sentinels {
    fn clone(&self) -> Sentinels {
        Sentinels {
            sentinels: self.sentinels.clone(),
            name: self.name.clone(),
            node: self.node.clone(),
            ca_pem: self.ca_pem.clone(),
            last: AtomicUsize::new(self.last.load(Relaxed)),
        }
    }
}

impl Sentinels {
    pub(super) fn new(
        sentinels: Vec<redis::ConnectionInfo>,
        name: String,
        node: redis::ConnectionInfo,
        ca_pem: Option<Vec<u8>>,
    ) -> Sentinels {
        Sentinels {
            sentinels,
            name,
            node,
            ca_pem,
            last: AtomicUsize::new(0),
        }
    }

    /// The name the sentinels know the master by.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Ask each sentinel in turn for the master's address, connect to it
    /// and check that it is a master: the connection and the address. A
    /// sentinel whose master cannot be reached, or is none, passes the
    /// question to the next.
    pub(super) fn master(&self, protocol: Protocol) -> redis::RedisResult<(redis::Connection, String)> {
        let n = self.sentinels.len();
        let first = self.last.load(Relaxed) % n;
        let mut last_error = None;
        for i in (0..n).map(|k| (first + k) % n) {
            match self.ask(i, protocol) {
                Ok(found) => {
                    self.last.store(i, Relaxed);
                    return Ok(found);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no sentinel answered"))))
    }

    fn ask(&self, i: usize, protocol: Protocol) -> redis::RedisResult<(redis::Connection, String)> {
        let mut sentinel = connect(&client(self.sentinels[i].clone(), self.ca_pem.clone())?)?;
        let named: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.name)
            .query(&mut sentinel)?;
        let Some((host, port)) = named else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a sentinel does not know the master",
                self.name.clone(),
            )));
        };
        let info = with_protocol(at(&self.node, &host, port), protocol);
        let mut con = connect(&client(info, self.ca_pem.clone())?)?;
        is_master(&mut con)?;
        Ok((con, format!("{host}:{port}")))
    }
}

/// How long the watcher blocks on a sentinel before it checks that the
/// broker still exists.
const WATCH_POLL: Duration = Duration::from_millis(500);

/// A sentinel silent this long is asked for a `PING`: one that stopped
/// answering without closing the connection is left for another.
const WATCH_PING: Duration = Duration::from_secs(5);

impl Sentinels {
    /// Listen to the sentinels' `+switch-master` in turn (the next when
    /// one fails), telling `found` of each new master of the name, until
    /// `alive` says the broker is gone.
    pub(super) fn watch_switches(&self, alive: impl Fn() -> bool, found: impl Fn(&str)) {
        let mut next = 0usize;
        while alive() {
            let info = self.sentinels[next % self.sentinels.len()].clone();
            next += 1;
            let listened = client(info, self.ca_pem.clone())
                .and_then(|c| connect(&c))
                .and_then(|mut con| listen_switches(&mut con, &self.name, &alive, &found));
            match listened {
                Ok(()) => return,
                Err(e) => {
                    log::debug!("redis sentinel watch: {e}");
                    std::thread::sleep(WATCH_POLL);
                }
            }
        }
    }
}

/// `Ok` when the broker is gone; `Err` when the sentinel's connection failed.
fn listen_switches(
    con: &mut redis::Connection,
    name: &str,
    alive: &impl Fn() -> bool,
    found: &impl Fn(&str),
) -> redis::RedisResult<()> {
    let mut pubsub = con.as_pubsub();
    pubsub.set_read_timeout(Some(WATCH_POLL))?;
    pubsub.subscribe("+switch-master")?;
    let mut heard = Instant::now();
    loop {
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(e) if e.is_timeout() => {
                if !alive() {
                    return Ok(());
                }
                if heard.elapsed() >= WATCH_PING {
                    pubsub.ping::<()>()?;
                    heard = Instant::now();
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        heard = Instant::now();
        // "<name> <old ip> <old port> <new ip> <new port>"
        let payload: String = msg.get_payload().unwrap_or_default();
        let words: Vec<&str> = payload.split(' ').collect();
        if let [master, _, _, ip, port] = words[..] {
            if master == name {
                found(&format!("{ip}:{port}"));
            }
        }
    }
}
