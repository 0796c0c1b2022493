//! Where the broker's Redis is: the one server a `redis://` URL names, or
//! the master the sentinels of a `redis+sentinel://` URL name, found again
//! after a failover.
//!
//! The Sentinel client follows Redis's guide for clients
//! (<https://redis.io/docs/latest/develop/reference/sentinel-clients/>):
//! ask the sentinels in turn for the master's address
//! (`SENTINEL get-master-addr-by-name`), connect to it, and check with
//! `ROLE` that it is a master (a sentinel may still name a demoted one). It
//! is asked again on every connect (a connection error), on a `READONLY`
//! answer, and when a sentinel announces `+switch-master`. It is written
//! here rather than taken from the redis crate's `sentinel` module because
//! that one's blocking client connects and reads without timeouts, and a
//! sentinel that stops answering would hold the command thread forever.

use super::{connect, lock};
use crate::pubsub::BrokerTopology;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The Redis the broker talks to.
pub(super) struct Target {
    kind: Kind,
    /// The master's address (`host:port`) as last found.
    master: Mutex<String>,
    /// Bumped whenever the master changes: a connection made under an
    /// older generation is to a server that is no longer the master.
    generation: AtomicU64,
    /// Masters that changed since the node started.
    failovers: AtomicU64,
}

enum Kind {
    /// One server.
    Direct(redis::Client),
    Sentinel(Sentinels),
}

/// A master known by name to a set of sentinels.
struct Sentinels {
    /// Each sentinel's address, as a connection to it.
    sentinels: Vec<redis::ConnectionInfo>,
    /// The name the sentinels monitor the master under.
    name: String,
    /// How to talk to the master once found: password, database, TLS (its
    /// address replaced).
    node: redis::ConnectionInfo,
    /// With TLS: the authority the servers' certificates are checked against.
    ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("master", &*lock(&self.master))
            .field("failovers", &self.failovers.load(Relaxed))
            .finish()
    }
}

impl Target {
    /// The Redis `url` names (`redis://`, `rediss://`, `redis+sentinel://`,
    /// `rediss+sentinel://`), its password from the environment if the URL
    /// has none (`password`), TLS checked against `ca_pem` if given.
    pub(super) fn new(
        url: &str,
        ca_pem: Option<Vec<u8>>,
        password: impl Fn(redis::ConnectionInfo) -> redis::RedisResult<redis::ConnectionInfo>,
    ) -> redis::RedisResult<Target> {
        let (kind, master) = match SentinelUrl::parse(url)? {
            None => {
                let info = password(redis::IntoConnectionInfo::into_connection_info(url)?)?;
                let master = address(info.addr());
                (Kind::Direct(client(info, ca_pem)?), master)
            }
            Some(s) => {
                let node = password(redis::IntoConnectionInfo::into_connection_info(s.node_url.as_str())?)?;
                let sentinels = s
                    .sentinels
                    .iter()
                    .map(|a| redis::IntoConnectionInfo::into_connection_info(format!("{}://{a}", s.scheme).as_str()))
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                let sentinels = Sentinels {
                    sentinels,
                    name: s.name,
                    node,
                    ca_pem,
                };
                (Kind::Sentinel(sentinels), String::new())
            }
        };
        Ok(Target {
            kind,
            master: Mutex::new(master),
            generation: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
        })
    }

    /// A connection to the master (found again through the sentinels),
    /// and the generation it was made under.
    pub(super) fn connect(&self) -> redis::RedisResult<(redis::Connection, u64)> {
        match &self.kind {
            Kind::Direct(client) => {
                let generation = self.generation();
                Ok((connect(client)?, generation))
            }
            Kind::Sentinel(s) => {
                let (mut con, at) = s.master()?;
                is_master(&mut con)?;
                self.found(&at);
                Ok((con, self.generation()))
            }
        }
    }

    /// The generation connections are to be of now.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// The master is at `at`: if that is news, a failover is counted and
    /// every connection made before is to be made again.
    fn found(&self, at: &str) {
        let mut master = lock(&self.master);
        if *master == at {
            return;
        }
        if !master.is_empty() {
            self.failovers.fetch_add(1, Relaxed);
            log::warn!("redis: the master is now {at} (was {master})");
        } else {
            log::info!("redis: the master is {at}");
        }
        *master = at.to_owned();
        self.generation.fetch_add(1, Relaxed);
    }

    /// What the broker's Redis is now.
    pub(super) fn topology(&self) -> BrokerTopology {
        let (kind, name) = match &self.kind {
            Kind::Direct(_) => ("redis", String::new()),
            Kind::Sentinel(s) => ("sentinel", s.name.clone()),
        };
        BrokerTopology {
            kind,
            name,
            masters: vec![lock(&self.master).clone()],
            failovers: self.failovers.load(Relaxed),
        }
    }

    /// Under Sentinel: a thread that listens to the sentinels' `+switch-master`
    /// announcements, so that a failover is followed as soon as it is done,
    /// not only when a connection fails. It ends with the broker (`target`
    /// no longer held).
    pub(super) fn watch(target: &Arc<Target>) -> std::io::Result<()> {
        if !matches!(target.kind, Kind::Sentinel(_)) {
            return Ok(());
        }
        let weak = Arc::downgrade(target);
        std::thread::Builder::new()
            .name("redis-sentinel".into())
            .spawn(move || watch_switches(&weak))
            .map(drop)
    }
}

/// How long the watcher blocks on a sentinel before it checks that the
/// broker still exists.
const WATCH_POLL: Duration = Duration::from_millis(500);

fn watch_switches(target: &Weak<Target>) {
    let mut next = 0usize;
    loop {
        let Some(t) = target.upgrade() else { return };
        let Kind::Sentinel(s) = &t.kind else { return };
        let info = s.sentinels[next % s.sentinels.len()].clone();
        let name = s.name.clone();
        let ca = s.ca_pem.clone();
        drop(t);
        next += 1;
        let listened = client(info, ca)
            .and_then(|c| connect(&c))
            .and_then(|mut con| listen_switches(&mut con, &name, target));
        if let Err(e) = listened {
            log::debug!("redis sentinel watch: {e}");
            std::thread::sleep(WATCH_POLL);
        } else {
            return;
        }
    }
}

/// `Ok` when the broker is gone; `Err` when the sentinel's connection failed.
fn listen_switches(con: &mut redis::Connection, name: &str, target: &Weak<Target>) -> redis::RedisResult<()> {
    let mut pubsub = con.as_pubsub();
    pubsub.set_read_timeout(Some(WATCH_POLL))?;
    pubsub.subscribe("+switch-master")?;
    loop {
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(e) if e.is_timeout() => {
                if target.strong_count() == 0 {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        // "<name> <old ip> <old port> <new ip> <new port>"
        let payload: String = msg.get_payload().unwrap_or_default();
        let words: Vec<&str> = payload.split(' ').collect();
        if let [master, _, _, ip, port] = words[..] {
            if master == name {
                match target.upgrade() {
                    Some(t) => t.found(&format!("{ip}:{port}")),
                    None => return Ok(()),
                }
            }
        }
    }
}

impl Sentinels {
    /// Ask each sentinel in turn for the master's address, and connect to
    /// it: the connection and the address.
    fn master(&self) -> redis::RedisResult<(redis::Connection, String)> {
        let mut last = None;
        for sentinel in &self.sentinels {
            let asked = client(sentinel.clone(), self.ca_pem.clone())
                .and_then(|c| connect(&c))
                .and_then(|mut con| {
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(&self.name)
                        .query::<Option<(String, u16)>>(&mut con)
                });
            match asked {
                Ok(Some((host, port))) => {
                    let addr = match self.node.addr() {
                        redis::ConnectionAddr::TcpTls { insecure, .. } => redis::ConnectionAddr::TcpTls {
                            host: host.clone(),
                            port,
                            insecure: *insecure,
                            tls_params: None,
                        },
                        _ => redis::ConnectionAddr::Tcp(host.clone(), port),
                    };
                    let info = self.node.clone().set_addr(addr);
                    let con = connect(&client(info, self.ca_pem.clone())?)?;
                    return Ok((con, format!("{host}:{port}")));
                }
                Ok(None) => {
                    last = Some(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "a sentinel does not know the master",
                        self.name.clone(),
                    )))
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no sentinel answered"))))
    }
}

/// `ROLE` says master: a sentinel may still name a server that was
/// demoted, or not yet the one it promotes.
fn is_master(con: &mut redis::Connection) -> redis::RedisResult<()> {
    let role: redis::Value = redis::cmd("ROLE").query(con)?;
    let first = match &role {
        redis::Value::Array(items) => items.first(),
        _ => None,
    };
    match first {
        Some(redis::Value::BulkString(b)) if b == b"master" => Ok(()),
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "the server the sentinels name is not a master (a failover under way)",
        ))),
    }
}

fn client(info: redis::ConnectionInfo, ca_pem: Option<Vec<u8>>) -> redis::RedisResult<redis::Client> {
    match ca_pem {
        Some(pem) if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) => {
            let roots = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(info, roots)
        }
        _ => redis::Client::open(info),
    }
}

fn address(addr: &redis::ConnectionAddr) -> String {
    match addr {
        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}

/// `redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`
/// (`rediss+sentinel://` for TLS, to the sentinels and the master), taken apart.
#[derive(Debug, PartialEq, Eq)]
struct SentinelUrl {
    /// `redis` or `rediss`: how the sentinels are spoken to.
    scheme: &'static str,
    sentinels: Vec<String>,
    name: String,
    /// The URL of the master but for its address (the first sentinel's
    /// stands in): its password, database and TLS.
    node_url: String,
}

impl SentinelUrl {
    /// `None` for a URL that is not a Sentinel one.
    fn parse(url: &str) -> redis::RedisResult<Option<SentinelUrl>> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            ("redis", rest)
        } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            ("rediss", rest)
        } else {
            return Ok(None);
        };
        let bad = |why: &'static str| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, why));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let sentinels: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        if sentinels.iter().any(|h| h.is_empty() || !h.contains(':')) {
            return Err(bad("redis+sentinel:// names its sentinels as HOST:PORT[,HOST:PORT...]"));
        }
        let (name, db) = path.split_once('/').unwrap_or((path, "0"));
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') {
            return Err(bad("redis+sentinel:// needs the master's name: /MASTER_NAME"));
        }
        if db.parse::<u32>().is_err() {
            return Err(bad("redis+sentinel://.../MASTER_NAME/DB: the database is a number"));
        }
        Ok(Some(SentinelUrl {
            scheme,
            node_url: format!("{scheme}://{user}{}/{db}", sentinels[0]),
            sentinels,
            name: name.to_owned(),
        }))
    }
}

/// Run by `Config::validate` on a `redis+sentinel://` broker URL: `Err`
/// says what is wrong with it.
pub fn check_url(url: &str) -> Result<(), String> {
    SentinelUrl::parse(url).map(drop).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::SentinelUrl;

    #[test]
    fn a_sentinel_url_names_its_sentinels_the_master_and_how_to_reach_it() {
        let u = SentinelUrl::parse("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26380/mymaster")
            .unwrap()
            .unwrap();
        assert_eq!(u.sentinels, ["10.0.0.1:26379", "10.0.0.2:26380"]);
        assert_eq!(u.name, "mymaster");
        assert_eq!(u.scheme, "redis");
        assert_eq!(u.node_url, "redis://:pw@10.0.0.1:26379/0");
        let tls = SentinelUrl::parse("rediss+sentinel://h:1/m/3").unwrap().unwrap();
        assert_eq!((tls.scheme, tls.node_url.as_str()), ("rediss", "rediss://h:1/3"));
        assert_eq!(SentinelUrl::parse("redis://h:1/0").unwrap(), None);
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h/m",
            "redis+sentinel://h:1,/m",
            "redis+sentinel://h:1/m/x",
        ] {
            assert!(SentinelUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
