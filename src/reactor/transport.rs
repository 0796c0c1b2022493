//! What carries a connection's bytes: the reactor's side of the seam
//! between the socket and the sans-IO session: plain TCP ([`Tcp`]) or TLS
//! ([`super::tls::Tls`]), which decrypts into the session's read buffer
//! and encrypts its output. A worker's slab holds either
//! ([`super::connection::Stream`]).

use super::buffer::BufferPool;
use super::output::Output;
use mio::net::TcpStream;
use mio::Interest;
use std::io::{self, Read};
use std::net::Shutdown;

/// Moves bytes between a socket and a session's buffers.
pub trait Transport {
    /// Read into `buf`: `Ok(0)` is the peer's EOF.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Write from the front of `out` (segments it has written are given
    /// back to `pool`); the bytes taken from `out`.
    fn write(&mut self, out: &mut Output, pool: &mut BufferPool) -> io::Result<usize>;
    /// Shut the write side (after the last bytes, RFC 6455 §7.1.1).
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// After a complete closing handshake, the connection may close as soon
    /// as the session's bytes are out: the transport has nothing of its own
    /// left for the peer. TLS says no: its `close_notify` goes out first,
    /// and it keeps the lingering close.
    fn closes_at_once(&self) -> bool {
        false
    }
    /// Send what the transport holds of its own (TLS records the socket
    /// could not take yet).
    fn flush_pending(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// After a short read: the transport has more to say (its end) though
    /// the socket raises no new edge for it.
    fn more_to_read(&self) -> bool {
        false
    }
    /// The socket, to (de)register with the poll.
    fn socket(&mut self) -> &mut TcpStream;
    /// Interest from what the session wants (rustls's `event_set`):
    /// readable while input is wanted, writable only while output is
    /// pending. A transport with state of its own (a TLS handshake) adds
    /// what it needs.
    fn interest(&self, wants_read: bool, has_output: bool) -> Interest {
        match (wants_read, has_output) {
            (_, false) => Interest::READABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
        }
    }
}

/// A TCP socket written with `send` (one slice, as std's `write` does)
/// or `sendmsg` (several, [`crate::sys::send_vectored`]), never `writev`.
struct SendMsg<'s>(&'s TcpStream);

impl io::Write for SendMsg<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut &*self.0, buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        crate::sys::send_vectored(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plain TCP: the session's bytes are the socket's. Output goes out with
/// one `sendmsg` over its segments, shared fan-out bytes and in-place echo
/// buffers included, without a copy.
#[derive(Debug)]
pub struct Tcp(TcpStream);

impl Tcp {
    /// Carry a connection over `stream`.
    pub fn new(stream: TcpStream) -> Self {
        Tcp(stream)
    }
}

impl Transport for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    fn write(&mut self, out: &mut Output, pool: &mut BufferPool) -> io::Result<usize> {
        out.write_to(&mut SendMsg(&self.0), pool)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }

    fn closes_at_once(&self) -> bool {
        true
    }

    fn socket(&mut self) -> &mut TcpStream {
        &mut self.0
    }
}
