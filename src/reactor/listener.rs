//! Listening sockets: one per worker, all bound to the same address with
//! SO_REUSEPORT, so the kernel spreads new connections over the workers by
//! hash and no accept lock or hand-off between threads is needed.
//!
//! SO_REUSEPORT would also let a second process of the same user join the
//! group, and the kernel would then split connections between two servers
//! that share no channels (publishes through one never reach the other's
//! subscribers). So before binding, the address is tried once without
//! SO_REUSEPORT: that bind conflicts with any socket listening there, ours
//! or not, and fails with "address in use". Only our own workers then join.

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Bind a non-blocking listener with SO_REUSEADDR and SO_REUSEPORT.
pub fn bind_reuseport(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Bind `count` listeners on `addr`. With port 0 the first one picks the
/// port and the others join it, so tests can ask for any free port. An
/// address another process listens on is refused (see the module's head),
/// and every error names the address.
pub fn bind_all(addr: SocketAddr, count: usize, backlog: u32) -> io::Result<Vec<TcpListener>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
    if addr.port() != 0 {
        ensure_unused(addr).map_err(named)?;
    }
    let first = bind_reuseport(addr, backlog).map_err(named)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind_reuseport(bound, backlog).map_err(named)?);
    }
    Ok(listeners)
}

/// Fail with `AddrInUse` if any socket listens on `addr`. SO_REUSEADDR
/// lets the probe bind past connections left in TIME_WAIT by a server that
/// stopped, but not past a listener; without SO_REUSEPORT it cannot join a
/// group. The probe is closed at once.
fn ensure_unused(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_group_on_a_bound_address_is_refused() {
        let ours = bind_all("127.0.0.1:0".parse().unwrap(), 2, 16).unwrap();
        let addr = ours[0].local_addr().unwrap();
        let err = bind_all(addr, 2, 16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        // The wildcard address overlaps it too.
        let any = SocketAddr::new("0.0.0.0".parse().unwrap(), addr.port());
        assert_eq!(bind_all(any, 1, 16).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        drop(ours);
        // Once ours are closed the address is free again.
        assert_eq!(bind_all(addr, 2, 16).unwrap().len(), 2);
    }
}
