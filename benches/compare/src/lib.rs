//! What the peer echo servers share: the command line and the runtime.
//!
//! Both servers take the same arguments, like `wsreactor serve`:
//! `[--port N | N] [--threads T] [--backlog B]`, listen on 127.0.0.1 with a
//! listen backlog of `B` (default 1024, wsreactor's default; tokio's own
//! `TcpListener::bind` asks for 128, which drops SYNs under a burst of
//! connections that wsreactor's queue holds), run a multi-threaded tokio
//! runtime with `T` workers (default 1), and set `TCP_NODELAY` on every
//! accepted socket, as wsreactor does.
//!
//! With `--tls-cert PEM --tls-key PEM` (both or neither) the listener speaks
//! TLS (wss://) instead, like `wsreactor serve --tls-cert --tls-key`: rustls
//! with the ring provider through tokio-rustls, configured as wsreactor's
//! `reactor/tls/` does (TLS 1.3 and 1.2, rustls's default cipher suites,
//! key exchange groups and session cache, no client authentication, ALPN
//! `http/1.1`). The TLS handshake runs in the connection's own task, then the
//! same echo code serves the decrypted stream.

/// The floors' shared parts (`floor_echo`, `floor_pubsub`).
pub mod floor;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A TLS connection as the peers serve it.
pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The command line: port and worker threads.
#[derive(Debug, Clone)]
pub struct Args {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Tokio worker threads.
    pub threads: usize,
    /// `listen(2)` backlog.
    pub backlog: u32,
    /// PEM certificate chain: with `tls_key`, serve TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Args {
    /// Parse `[--port N | N] [--threads T] [--backlog B] [--tls-cert PEM --tls-key PEM]`;
    /// exit 2 with a usage line otherwise.
    pub fn parse() -> Args {
        let name = std::env::args().next().unwrap_or_default();
        let usage = || -> ! {
            eprintln!("usage: {name} [--port N | N] [--threads T] [--backlog B] [--tls-cert PEM --tls-key PEM]");
            std::process::exit(2)
        };
        let mut args = Args {
            port: 9001,
            threads: 1,
            backlog: 1024,
            tls_cert: None,
            tls_key: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let value = |it: &mut dyn Iterator<Item = String>| it.next().unwrap_or_else(|| usage());
            match a.as_str() {
                "--port" => args.port = value(&mut it).parse().unwrap_or_else(|_| usage()),
                "--threads" => args.threads = value(&mut it).parse().unwrap_or_else(|_| usage()),
                "--backlog" => args.backlog = value(&mut it).parse().unwrap_or_else(|_| usage()),
                "--tls-cert" => args.tls_cert = Some(value(&mut it).into()),
                "--tls-key" => args.tls_key = Some(value(&mut it).into()),
                "-h" | "--help" => usage(),
                _ => args.port = a.parse().unwrap_or_else(|_| usage()),
            }
        }
        if args.threads == 0 || args.tls_cert.is_some() != args.tls_key.is_some() {
            usage();
        }
        args
    }
}

/// The TLS configuration of `--tls-cert` and `--tls-key`, as wsreactor's
/// `reactor::tls::server_config` builds it; exit 2 on a bad file.
fn tls_config(cert: &PathBuf, key: &PathBuf) -> Arc<rustls::ServerConfig> {
    let fail = |what: &PathBuf, e: &dyn std::fmt::Display| -> ! {
        eprintln!("{}: {e}", what.display());
        std::process::exit(2)
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap_or_else(|e| fail(cert, &e))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| fail(cert, &e));
    if chain.is_empty() {
        fail(cert, &"no certificate in it");
    }
    let private = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| fail(key, &e));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(cert, &e))
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .unwrap_or_else(|e| fail(key, &e));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// `serve` with `plain` for each connection, or, with `--tls-cert` and
/// `--tls-key`, a TLS handshake in the connection's task and then `tls` on
/// the TLS stream (a failed handshake just drops the connection). The two
/// are the same echo code instantiated for the two stream types, so the
/// plain path is what it was without TLS.
pub fn serve_maybe_tls<P, PFut, T, TFut>(args: Args, plain: P, tls: T)
where
    P: Fn(TcpStream) -> PFut + Send + 'static,
    PFut: Future<Output = ()> + Send + 'static,
    T: Fn(TlsStream) -> TFut + Send + Sync + 'static,
    TFut: Future<Output = ()> + Send + 'static,
{
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let acceptor = TlsAcceptor::from(tls_config(cert, key));
            let tls = Arc::new(tls);
            eprintln!("TLS with {} and {}", cert.display(), key.display());
            serve(args, move |stream| {
                let acceptor = acceptor.clone();
                let tls = tls.clone();
                async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        (*tls)(stream).await;
                    }
                }
            })
        }
        _ => serve(args, plain),
    }
}

/// Accept on 127.0.0.1:`port` forever, each connection in its own task,
/// everything (the accept loop included) on the runtime's worker threads.
pub fn serve<F, Fut>(args: Args, handle: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(([127, 0, 0, 1], args.port).into()).expect("bind");
        let listener = socket.listen(args.backlog).expect("listen");
        eprintln!(
            "listening on 127.0.0.1:{} with {} worker thread(s)",
            args.port, args.threads
        );
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(handle(stream));
                    }
                    // EMFILE and the like: back off instead of spinning.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            }
        });
        let _ = accept.await;
    });
}
