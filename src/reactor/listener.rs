//! Listening sockets: one per worker, all bound to the same address with
//! SO_REUSEPORT, so the kernel spreads new connections over the workers by
//! hash and no accept lock or hand-off between threads is needed.

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
/// port and the others join it, so tests can ask for any free port.
pub fn bind_all(addr: SocketAddr, count: usize, backlog: u32) -> io::Result<Vec<TcpListener>> {
    let first = bind_reuseport(addr, backlog)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind_reuseport(bound, backlog)?);
    }
    Ok(listeners)
}
