//! A client's TCP side: the socket, bound to a source address and
//! connecting without blocking, its read and write buffers, and TLS for
//! `wss://` (the server's transport, [`Tls`], on rustls's client side:
//! plaintext in the buffers, records on the socket). It knows nothing of
//! WebSocket; [`super::client`] decides what the bytes mean.
//!
//! Buffers come from the worker's [`BufferPool`] only while bytes are in
//! flight, as in the server, so thousands of idle connections hold none.

use crate::reactor::buffer::{BufferPool, ReadBuf, WriteBuf};
use crate::reactor::event_loop::Driven;
use crate::reactor::tls::Tls;
pub use crate::reactor::tls::{Counted, TlsTarget};
use mio::net::TcpStream;
use mio::Interest;
use rustls::ClientConnection;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

/// What one [`Transport::read_some`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Bytes; `short`: fewer than there was room for, so the socket's queue
    /// is empty and later bytes raise a new readiness edge.
    Bytes {
        /// The read did not fill the room offered.
        short: bool,
    },
    /// Nothing to read (WouldBlock).
    Blocked,
}

/// A socket and the bytes in flight on it.
#[derive(Debug)]
pub struct Transport {
    link: Link,
    /// What was read and what is to be written: the sans-IO side's.
    pub bufs: Bufs,
    registered: Interest,
}

/// A connection's bytes in flight, where the sans-IO side meets the
/// socket: input read and not yet consumed, output queued and not yet
/// written. Each buffer comes from the pool when first needed.
#[derive(Debug, Default)]
pub struct Bufs {
    rbuf: Option<ReadBuf>,
    wbuf: Option<WriteBuf>,
    /// Bytes needed together at the front of the read buffer (the frame
    /// or head in progress), so the buffer can make room for them.
    pub want: usize,
}

/// What carries the bytes: the socket itself, or TLS over it (boxed:
/// rustls's state is large). `Tls`'s `Drop` sends our `close_notify`.
#[derive(Debug)]
enum Link {
    Tcp { stream: TcpStream, wire: Counted },
    Tls(Box<Tls<ClientConnection>>),
}

impl Transport {
    /// Start a non-blocking connect to `addr`, from `source` if given.
    /// `connect()` returns EINPROGRESS; [`connected`](Self::connected) says
    /// when it is done.
    pub fn connect(addr: SocketAddr, source: Option<IpAddr>, tls: Option<&TlsTarget>) -> io::Result<Transport> {
        Transport::connect_with(addr, source, tls, None)
    }

    /// As [`connect`](Self::connect); with `rcvbuf`, the socket is a slow
    /// reader's ([`Transport::slow_path`]).
    pub fn connect_with(
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: Option<&TlsTarget>,
        rcvbuf: Option<usize>,
    ) -> io::Result<Transport> {
        // Non-blocking from birth (SOCK_NONBLOCK): two fcntl calls fewer per
        // connection, which churn mode opens by the thousand a second.
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        socket.set_nodelay(true)?;
        if let Some(bytes) = rcvbuf {
            Transport::slow_path(&socket, bytes)?;
        }
        if let Some(ip) = source {
            #[cfg(target_os = "linux")]
            set_bind_address_no_port(&socket);
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::from_std(socket.into());
        Ok(Transport {
            link: match tls {
                Some(target) => Link::Tls(Box::new(Tls::client(stream, target)?)),
                None => Link::Tcp {
                    stream,
                    wire: Counted::default(),
                },
            },
            bufs: Bufs::default(),
            registered: Interest::READABLE | Interest::WRITABLE,
        })
    }

    /// Has the connect finished? `peer_addr` succeeds once it has; while it
    /// fails with `NotConnected` the connect is in progress or failed, and
    /// the pending error tells which (mio's recipe, in the other order, so
    /// that a connect that succeeded costs one system call, not two).
    pub fn connected(&mut self) -> io::Result<bool> {
        let stream = self.stream();
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => match stream.take_error()? {
                Some(e) => Err(e),
                None => Ok(false),
            },
            Err(e) => Err(e),
        }
    }

    /// A slow reader's socket, before its SYN: at most about `bytes`
    /// unread in the kernel (SO_RCVBUF; Linux doubles it for its own
    /// bookkeeping), what a client's network path would hold rather than a
    /// loopback's autotuned megabytes; and an Ethernet path's segments
    /// (TCP_MAXSEG 1448), since a buffer below loopback's 64 KiB segment
    /// would have the server probe a zero window with backoff instead of
    /// sending what fits.
    pub fn slow_path(socket: &Socket, bytes: usize) -> io::Result<()> {
        socket.set_recv_buffer_size(bytes)?;
        socket.set_mss(1448)
    }

    /// The socket, for (de)registration.
    pub fn stream(&mut self) -> &mut TcpStream {
        match &mut self.link {
            Link::Tcp { stream, .. } => stream,
            Link::Tls(tls) => tls.stream(),
        }
    }

    /// Bytes read from and written to the socket (TLS records included).
    pub fn wire(&self) -> Counted {
        match &self.link {
            Link::Tcp { wire, .. } => *wire,
            Link::Tls(tls) => tls.wire(),
        }
    }

    /// The interest registered with the poll.
    pub fn registered(&self) -> Interest {
        self.registered
    }

    /// Record what was registered.
    pub fn set_registered(&mut self, interest: Interest) {
        self.registered = interest;
    }

    /// Bytes are waiting to be written (TLS records too).
    pub fn has_output(&self) -> bool {
        self.bufs.has_output() || matches!(&self.link, Link::Tls(t) if t.wants_write())
    }

    /// Read once. EOF is an `UnexpectedEof` error. Over TLS, records are
    /// read until the socket says WouldBlock, so a short read means what it
    /// means over plain TCP (no edge is owed).
    pub fn read_some(&mut self, pool: &mut BufferPool) -> io::Result<Received> {
        loop {
            let spare = self.bufs.spare(pool);
            let room = spare.len();
            let (got, end) = match &mut self.link {
                Link::Tcp { stream, wire } => {
                    let got = stream.read(spare);
                    if let Ok(n) = got {
                        wire.read += n as u64;
                    }
                    (got, false)
                }
                // The end after bytes: the next read (which a full read
                // promises) finds it.
                Link::Tls(tls) => (tls.read(spare), tls.at_end()),
            };
            match got {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.bufs.filled_by(n);
                    return Ok(Received::Bytes {
                        short: n < room && !end,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Received::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// End the TCP connection both ways now (the descriptor stays until
    /// the transport is dropped); over TLS, our `close_notify` first
    /// (RFC 8446 §6.1, as every end: the drop after a close handshake or
    /// at the end of a run sends it too, [`Tls`]'s `Drop`).
    pub fn hang_up(&mut self) {
        if let Link::Tls(tls) = &mut self.link {
            tls.finish();
        }
        let _ = self.stream().shutdown(std::net::Shutdown::Both);
    }

    /// Write until WouldBlock or done.
    pub fn flush(&mut self) -> io::Result<()> {
        let wbuf = self.bufs.wbuf.as_mut().filter(|w| !w.is_empty());
        let (stream, wire) = match &mut self.link {
            Link::Tls(tls) => {
                let Some(wbuf) = wbuf else {
                    return tls.send_some();
                };
                return match tls.write_with(|w| w.write(wbuf.pending())) {
                    Ok(n) => {
                        wbuf.advance(n);
                        Ok(())
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                    Err(e) => Err(e),
                };
            }
            Link::Tcp { stream, wire } => (stream, wire),
        };
        let Some(wbuf) = wbuf else {
            return Ok(());
        };
        while !wbuf.is_empty() {
            match stream.write(wbuf.pending()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    wbuf.advance(n);
                    wire.written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Driven for Transport {
    fn source(&mut self) -> &mut TcpStream {
        self.stream()
    }
    fn registered(&self) -> Interest {
        self.registered
    }
    fn set_registered(&mut self, interest: Interest) {
        self.registered = interest;
    }
}

impl Bufs {
    /// Output is queued.
    pub fn has_output(&self) -> bool {
        self.wbuf.as_ref().is_some_and(|w| !w.is_empty())
    }

    /// Bytes have been read and not consumed.
    pub fn has_input(&self) -> bool {
        self.rbuf.as_ref().is_some_and(|r| !r.is_empty())
    }

    /// Where output is queued.
    pub fn out(&mut self, pool: &mut BufferPool) -> &mut Vec<u8> {
        self.wbuf.get_or_insert_with(|| WriteBuf::take(pool)).out()
    }

    /// The unconsumed input and the output queue together, if there is input.
    pub fn buffers(&mut self, pool: &mut BufferPool) -> Option<(&mut ReadBuf, &mut Vec<u8>)> {
        let rbuf = self.rbuf.as_mut().filter(|r| !r.is_empty())?;
        Some((rbuf, self.wbuf.get_or_insert_with(|| WriteBuf::take(pool)).out()))
    }

    /// Where the next bytes read go (room for `want` at the front).
    pub fn spare(&mut self, pool: &mut BufferPool) -> &mut [u8] {
        self.rbuf.get_or_insert_with(|| ReadBuf::take(pool)).spare(self.want)
    }

    /// `n` bytes were read into [`spare`](Self::spare).
    pub fn filled_by(&mut self, n: usize) {
        if let Some(r) = self.rbuf.as_mut() {
            r.filled_by(n);
        }
    }

    /// Drop all unconsumed input.
    pub fn discard_input(&mut self) {
        if let Some(r) = self.rbuf.as_mut() {
            r.consume(r.len());
        }
    }

    /// Give drained buffers back to the pool.
    pub fn tidy(&mut self, pool: &mut BufferPool) {
        if let Some(r) = self.rbuf.take_if(|r| r.is_empty()) {
            r.give(pool);
        }
        if let Some(w) = self.wbuf.take_if(|w| w.is_empty()) {
            w.give(pool);
        }
    }

    /// Give every buffer back (the connection is going away).
    pub fn release(&mut self, pool: &mut BufferPool) {
        if let Some(r) = self.rbuf.take() {
            r.give(pool);
        }
        if let Some(w) = self.wbuf.take() {
            w.give(pool);
        }
    }
}

/// With `IP_BIND_ADDRESS_NO_PORT` the port is picked at connect time from
/// the whole 4-tuple instead of at bind time, so each source address has
/// its full range of ephemeral ports towards the destination.
#[cfg(target_os = "linux")]
fn set_bind_address_no_port(socket: &Socket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `on` (an int that lives across the call)
    // for the size given; the descriptor is the socket's own. A kernel
    // without the option refuses it, and bind then picks the port instead.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Poll `t` until connected (or fail the test after a second).
    fn wait_connected(t: &mut Transport) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(1);
        while !t.connected()? {
            assert!(Instant::now() < deadline, "connect did not finish");
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    #[test]
    fn connects_from_the_source_address_given() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let source: IpAddr = "127.0.0.7".parse().unwrap();
        let mut t = Transport::connect(listener.local_addr().unwrap(), Some(source), None).unwrap();
        wait_connected(&mut t).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), source);
        assert_eq!(t.stream().local_addr().unwrap().ip(), source);
    }

    #[test]
    fn every_end_of_a_tls_connection_sends_close_notify() {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::io::{Read, Write};
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let server = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(crate::reactor::tls::crypto_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let target = crate::reactor::tls::client_config("127.0.0.1", true).unwrap();
        for hang_up in [true, false] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let config = server.clone();
            // The server: the handshake, a byte to show it is done, then
            // read to the end, which must be a close_notify, not a bare FIN.
            let peer = std::thread::spawn(move || {
                let (sock, _) = listener.accept().unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), sock);
                tls.write_all(b"!").unwrap();
                let mut rest = Vec::new();
                tls.read_to_end(&mut rest).map(|_| rest)
            });
            let mut t = Transport::connect(addr, None, Some(&target)).unwrap();
            wait_connected(&mut t).unwrap();
            let mut pool = BufferPool::new(4096, 4);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.bufs.has_input() {
                assert!(Instant::now() < deadline, "no TLS handshake");
                t.flush().unwrap();
                let _ = t.read_some(&mut pool).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            if hang_up {
                t.hang_up();
            } else {
                drop(t);
            }
            let end = peer.join().unwrap();
            assert!(
                end.is_ok(),
                "hang_up {hang_up}: the server read {end:?}, a FIN without close_notify"
            );
        }
    }

    #[test]
    fn a_closed_port_is_refused() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = Transport::connect(addr, None, None).and_then(|mut t| wait_connected(&mut t));
        assert_eq!(err.unwrap_err().raw_os_error(), Some(libc::ECONNREFUSED));
    }
}
