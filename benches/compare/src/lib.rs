//! What the peer echo servers share: the command line and the runtime.
//!
//! Both servers take the same arguments, like `wsreactor serve`:
//! `[--port N | N] [--threads T] [--backlog B]`, listen on 127.0.0.1 with a
//! listen backlog of `B` (default 1024, wsreactor's default; tokio's own
//! `TcpListener::bind` asks for 128, which drops SYNs under a burst of
//! connections that wsreactor's queue holds), run a multi-threaded tokio
//! runtime with `T` workers (default 1), and set `TCP_NODELAY` on every
//! accepted socket, as wsreactor does.

use std::future::Future;
use tokio::net::{TcpSocket, TcpStream};

/// The command line: port and worker threads.
#[derive(Debug, Clone, Copy)]
pub struct Args {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Tokio worker threads.
    pub threads: usize,
    /// `listen(2)` backlog.
    pub backlog: u32,
}

impl Args {
    /// Parse `[--port N | N] [--threads T] [--backlog B]`; exit 2 with a usage line otherwise.
    pub fn parse() -> Args {
        let name = std::env::args().next().unwrap_or_default();
        let usage = || -> ! {
            eprintln!("usage: {name} [--port N | N] [--threads T] [--backlog B]");
            std::process::exit(2)
        };
        let mut args = Args {
            port: 9001,
            threads: 1,
            backlog: 1024,
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let value = |it: &mut dyn Iterator<Item = String>| it.next().unwrap_or_else(|| usage());
            match a.as_str() {
                "--port" => args.port = value(&mut it).parse().unwrap_or_else(|_| usage()),
                "--threads" => args.threads = value(&mut it).parse().unwrap_or_else(|_| usage()),
                "--backlog" => args.backlog = value(&mut it).parse().unwrap_or_else(|_| usage()),
                "-h" | "--help" => usage(),
                _ => args.port = a.parse().unwrap_or_else(|_| usage()),
            }
        }
        if args.threads == 0 {
            usage();
        }
        args
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
        eprintln!("listening on 127.0.0.1:{} with {} worker thread(s)", args.port, args.threads);
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
