//! How the broker reaches a Redis node: a client for its address with the
//! URL's password, database and TLS, the protocol its answers come in,
//! and whether it is a master.

/// `ROLE` says master: a sentinel may still name a server that was
/// demoted, and a cluster's slots a master that failed.
pub(super) fn is_master(con: &mut redis::Connection) -> redis::RedisResult<()> {
    let role: redis::Value = redis::cmd("ROLE").query(con)?;
    let first = match &role {
        redis::Value::Array(items) => items.first(),
        _ => None,
    };
    match first {
        Some(redis::Value::BulkString(b)) if b == b"master" => Ok(()),
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "the server named the master is not a master (a failover under way)",
        ))),
    }
}

/// A client for `info`; with TLS, its certificate checked against `ca_pem`.
pub(super) fn client(info: redis::ConnectionInfo, ca_pem: Option<Vec<u8>>) -> redis::RedisResult<redis::Client> {
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

/// How a connection's answers come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    /// RESP2: one reply per command.
    Replies,
    /// RESP3, for subscriptions: what is published, and the confirmations
    /// of subscribes, come as push messages. The redis crate's blocking
    /// connection counts a read that timed out as a reply to skip later,
    /// but never skips a push: a subscription connection can wait for
    /// messages a little at a time, and its sharded messages (`smessage`,
    /// which the crate's blocking `PubSub` does not read) are read too.
    Push,
}

/// `info` speaking `protocol`.
pub(super) fn with_protocol(info: redis::ConnectionInfo, protocol: Protocol) -> redis::ConnectionInfo {
    match protocol {
        Protocol::Replies => info,
        Protocol::Push => {
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3);
            info.set_redis_settings(settings)
        }
    }
}

/// `node` (a URL's password, database and TLS) at `host:port`.
pub(super) fn at(node: &redis::ConnectionInfo, host: &str, port: u16) -> redis::ConnectionInfo {
    let addr = match node.addr() {
        redis::ConnectionAddr::TcpTls { insecure, .. } => redis::ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: None,
        },
        _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
    };
    node.clone().set_addr(addr)
}

/// `addr` as `host:port`.
pub(super) fn address(addr: &redis::ConnectionAddr) -> String {
    match addr {
        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}
