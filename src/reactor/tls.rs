//! TLS, the second transport (`Transport`): rustls, sans-IO like our protocol,
//! between the socket and the unchanged session (rustls's `tlsserver-mio`
//! is the pattern). Ciphertext is read from the socket into rustls and the
//! plaintext into the session's buffer; the session's output is written
//! into rustls and its records to the socket. The worker and the session
//! do not know which transport they drive.
//!
//! What the transport keeps to itself: the handshake (its records go out
//! from `read` and `flush_pending`), the records rustls holds while the
//! socket is full (at most `SEND_LIMIT` of plaintext, so the session's
//! write-buffer limit and slow-consumer policy still see the rest), and
//! the close: `close_notify` is sent before the TCP write side is shut,
//! and only once every record before it has gone. RFC 8446 §6.1: each
//! party MUST send `close_notify` before closing its write side unless it
//! sent an error alert, so every other end (the peer's `close_notify` or
//! bare FIN, a timeout, the server stopping) sends it too, when the
//! connection is dropped ([`Tls`]'s `Drop`).

use super::buffer::BufferPool;
use super::output::Output;
use super::transport::Transport;
use mio::net::TcpStream;
use mio::Interest;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read};
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;

/// Plaintext rustls takes from the session beyond what the socket has
/// taken: what is left waits in the session's output, where its limits
/// apply.
const SEND_LIMIT: usize = 64 * 1024;

/// The cryptography of every TLS connection, the server's and the load
/// generator's: rustls's *ring* provider (TLS 1.3 and 1.2, X25519, P-256,
/// P-384, AES-GCM and ChaCha20-Poly1305).
///
/// rustls 0.23.48 deprecates it because it offers no post-quantum key
/// exchange; its replacement, aws-lc-rs, is a C library whose build adds
/// minutes to every profile built (five here, each of CI's four builds),
/// and changes the crypto under the measured TLS figures. We keep *ring*
/// deliberately, in this one place, until rustls drops it or post-quantum
/// key exchange is asked for; a library user's build shows no warning.
#[allow(deprecated)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A server configuration from a PEM certificate chain and key; ALPN
/// `http/1.1` (RFC 7301; a WebSocket handshake is HTTP/1.1, RFC 6455 §4.1).
/// Errors name the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(crypto_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS connection over a socket.
#[derive(Debug)]
pub struct Tls {
    stream: TcpStream,
    conn: ServerConnection,
    /// The peer's EOF or `close_notify` was seen after plaintext that was
    /// handed out: the next read says so.
    eof: bool,
    /// The session asked for the write side to be shut: done once the
    /// records before `close_notify` have gone.
    closing: bool,
}

impl Tls {
    /// Serve TLS over `stream` with `config`.
    pub fn new(stream: TcpStream, config: &Arc<ServerConfig>) -> io::Result<Tls> {
        let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(SEND_LIMIT));
        Ok(Tls {
            stream,
            conn,
            eof: false,
            closing: false,
        })
    }

    /// Send what rustls holds until the socket is full.
    fn send_records(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
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

    /// The connection ends (dropped by the worker, whatever the reason):
    /// after a completed handshake, our `close_notify` and the TCP write
    /// side's shutdown, as far as the socket takes them now (it is not
    /// waited for: a peer that reads nothing gets a truncation, as it would
    /// from a timeout anyway). rustls sends nothing after an error alert it
    /// sent, nor a second `close_notify`.
    fn finish(&mut self) {
        if self.conn.is_handshaking() {
            return;
        }
        self.conn.send_close_notify();
        self.closing = true;
        let _ = self.send_records();
        if self.closing {
            // The socket is full or broken: the FIN goes anyway.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }

    /// `send_records`, where a full socket is no error.
    fn send_some(&mut self) -> io::Result<()> {
        match self.send_records() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Transport for Tls {
    /// Plaintext into `buf`. When fewer bytes than `buf` holds come back,
    /// the socket has been read to `WouldBlock` (the connection skips the
    /// read that would only say so), or to its end (then the next read is
    /// `Ok(0)`).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        // Not TLS (a plaintext request on this port), or
                        // broken: the alert goes out and the connection ends.
                        let _ = self.send_records();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    // Handshake records, and answers rustls owes the peer.
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

    fn write(&mut self, out: &mut Output, pool: &mut BufferPool) -> io::Result<usize> {
        self.send_records()?;
        // Records gone: rustls takes plaintext up to its limit.
        let n = out.write_to(&mut self.conn.writer(), pool)?;
        self.send_some()?;
        if n == 0 {
            // rustls is full and the socket took what it could.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        self.send_some()
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.closing = true;
        self.send_some()
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
        // `read` reads the socket to WouldBlock before a short return,
        // unless it met the end: that is for the next read to say.
        self.eof
    }
}
