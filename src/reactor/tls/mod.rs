//! TLS, the second transport, for both sides: rustls, sans-IO like our
//! protocol, between the socket and the unchanged session (rustls's
//! `tlsserver-mio` is the pattern). Ciphertext is read from the socket into
//! rustls and the plaintext into the session's buffer; the session's output
//! is written into rustls and its records to the socket. [`Tls`] is generic
//! over rustls's connection: the server's workers carry `wss://` and
//! `https://` over a [`ServerConnection`] (through the reactor's
//! `Transport`), the load generator its `wss://` clients over a
//! [`ClientConnection`]; neither the worker nor the session knows which
//! transport it drives.
//!
//! What the transport keeps to itself: the handshake (its records go out
//! from `read` and `flush_pending`), the records rustls holds while the
//! socket is full (at most `SEND_LIMIT` of plaintext on the server, so the
//! session's write-buffer limit and slow-consumer policy still see the
//! rest), and the close: `close_notify` is sent before the TCP write side
//! is shut, and only once every record before it has gone. RFC 8446 §6.1:
//! each party MUST send `close_notify` before closing its write side unless
//! it sent an error alert, so every other end (the peer's `close_notify` or
//! bare FIN, a timeout, the server stopping, a load client hanging up or
//! dropped at the end of a run) sends it too, when the connection is
//! dropped ([`Tls`]'s `Drop`) or [`finish`](Tls::finish)ed.

mod config;

use super::buffer::BufferPool;
use super::output::Output;
use super::transport::Transport;
pub use config::{client_config, crypto_provider, server_config, TlsTarget};
use mio::net::TcpStream;
use mio::Interest;
use rustls::client::ClientConnectionData;
use rustls::server::ServerConnectionData;
use rustls::{ClientConnection, ConnectionCommon, ServerConfig, ServerConnection};
use std::io::{self, Read};
use std::net::Shutdown;
use std::ops::DerefMut;
use std::sync::Arc;

/// Plaintext rustls takes from the session beyond what the socket has
/// taken: what is left waits in the session's output, where its limits
/// apply.
const SEND_LIMIT: usize = 64 * 1024;

/// Bytes through a socket, each way (TLS records included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// Read.
    pub read: u64,
    /// Written.
    pub written: u64,
}

/// Which side of a TLS connection we are: rustls's server or client
/// connection, both a `ConnectionCommon` over their side's data.
pub trait Side: DerefMut<Target = ConnectionCommon<<Self as Side>::Data>> {
    /// rustls's data for this side.
    type Data;
}

impl Side for ServerConnection {
    type Data = ServerConnectionData;
}

impl Side for ClientConnection {
    type Data = ClientConnectionData;
}

/// A TLS connection over a socket: the server's side by default, the
/// client's with [`ClientConnection`].
#[derive(Debug)]
pub struct Tls<C: Side = ServerConnection> {
    stream: TcpStream,
    conn: C,
    /// The peer's EOF or `close_notify` was seen after plaintext that was
    /// handed out: the next read says so.
    eof: bool,
    /// Our write side is to be shut: done once the records before
    /// `close_notify` have gone.
    closing: bool,
    /// [`finish`](Self::finish) has run.
    finished: bool,
    /// Bytes read from and written to the socket.
    wire: Counted,
}

impl Tls {
    /// Serve TLS over `stream` with `config`.
    pub fn new(stream: TcpStream, config: &Arc<ServerConfig>) -> io::Result<Tls> {
        let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(SEND_LIMIT));
        Ok(Tls::over(stream, conn))
    }
}

impl Tls<ClientConnection> {
    /// Connect with TLS over `stream` (its TCP connect may be in progress)
    /// to `target`.
    pub fn client(stream: TcpStream, (config, name): &TlsTarget) -> io::Result<Self> {
        let conn = ClientConnection::new(config.clone(), name.clone()).map_err(io::Error::other)?;
        Ok(Tls::over(stream, conn))
    }
}

impl<C: Side> Tls<C> {
    fn over(stream: TcpStream, conn: C) -> Self {
        Tls {
            stream,
            conn,
            eof: false,
            closing: false,
            finished: false,
            wire: Counted::default(),
        }
    }

    /// The socket.
    #[inline]
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Bytes through the socket so far.
    #[inline]
    pub fn wire(&self) -> Counted {
        self.wire
    }

    /// rustls holds records for the socket.
    #[inline]
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Plaintext into `buf`. When fewer bytes than `buf` holds come back,
    /// the socket has been read to `WouldBlock` (the caller may skip the
    /// read that would only say so), or to its end (then
    /// [`at_end`](Self::at_end) and the next read is `Ok(0)`). EOF, with or
    /// without the peer's `close_notify`, is `Ok(0)`; nothing to read yet
    /// is `WouldBlock`.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let mut n = 0;
        loop {
            match self.conn.reader().read(&mut buf[n..]) {
                // The peer's close_notify: the end of its data.
                Ok(0) if n < buf.len() => {
                    self.eof = true;
                    break;
                }
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        return Ok(n);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // EOF without close_notify (a truncation): the end too.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    break;
                }
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.stream) {
                // The socket's EOF, mid-record or not: never a spin
                // (CVE-2019-15541), the connection ends.
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => {
                    self.wire.read += k as u64;
                    if let Err(e) = self.conn.process_new_packets() {
                        // Not TLS (a plaintext request on this port), or
                        // broken: the alert goes out and the connection ends.
                        let _ = self.send_records();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    // Handshake records, answers rustls owes the peer, and
                    // plaintext it kept until the handshake was done.
                    self.send_some()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n > 0 {
            Ok(n)
        } else if self.eof {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// After a short read: the end is for the next read to say (`read`
    /// reads the socket to `WouldBlock` before a short return, unless it
    /// met the end), though the socket raises no new edge for it.
    #[inline]
    pub fn at_end(&self) -> bool {
        self.eof
    }

    /// Hand plaintext to rustls with `put` (given rustls's writer, it
    /// returns the bytes taken) and send the records: the bytes taken,
    /// `WouldBlock` when neither rustls nor the socket took any. Before the
    /// handshake is done rustls keeps the plaintext for after it.
    pub fn write_with(&mut self, put: impl FnOnce(&mut rustls::Writer<'_>) -> io::Result<usize>) -> io::Result<usize> {
        self.send_records()?;
        // Records gone: rustls takes plaintext up to its limit.
        let n = put(&mut self.conn.writer())?;
        self.send_some()?;
        if n == 0 {
            // rustls is full and the socket took what it could.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Send what rustls holds until the socket is full (no error).
    pub fn send_some(&mut self) -> io::Result<()> {
        match self.send_records() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    /// Our `close_notify`, then the write side is shut once it has gone.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.closing = true;
        self.send_some()
    }

    /// The connection ends, whatever the reason: after a completed
    /// handshake, our `close_notify` and the TCP write side's shutdown, as
    /// far as the socket takes them now (it is not waited for: a peer that
    /// reads nothing gets a truncation, as it would from a timeout anyway).
    /// rustls sends nothing after an error alert it sent, nor a second
    /// `close_notify`. Called again (a load client hung up, then dropped),
    /// it sends nothing more.
    pub fn finish(&mut self) {
        if self.finished || self.conn.is_handshaking() {
            return;
        }
        self.finished = true;
        self.conn.send_close_notify();
        self.closing = true;
        let _ = self.send_records();
        if self.closing {
            // The socket is full or broken: the FIN goes anyway.
            let _ = self.stream.shutdown(Shutdown::Write);
            self.closing = false;
        }
    }

    /// Send what rustls holds until the socket is full (`WouldBlock`).
    fn send_records(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => self.wire.written += k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.closing {
            self.stream.shutdown(Shutdown::Write)?;
            self.closing = false;
        }
        Ok(())
    }
}

impl<C: Side> Drop for Tls<C> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<C: Side> Transport for Tls<C> {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Tls::read(self, buf)
    }

    fn write(&mut self, out: &mut Output, pool: &mut BufferPool) -> io::Result<usize> {
        self.write_with(|w| out.write_to(w, pool))
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        self.send_some()
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        Tls::shutdown_write(self)
    }

    fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    fn interest(&self, wants_read: bool, has_output: bool) -> Interest {
        // The handshake reads whatever the session wants; records rustls
        // holds want the socket writable.
        let write = has_output || self.conn.wants_write();
        let read = wants_read || self.conn.is_handshaking();
        match (read, write) {
            (_, false) => Interest::READABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
        }
    }

    fn more_to_read(&self) -> bool {
        self.eof
    }
}
