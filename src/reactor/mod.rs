//! The reactor: worker threads, each a mio event loop over its own
//! SO_REUSEPORT listener and slab of connection state machines.
//!
//! ```text
//!            ┌──────────── kernel: SO_REUSEPORT hash over listeners ───────────┐
//!            ▼                                 ▼                               ▼
//!  worker 0: Poll + listener + Slab<Connection> + BufferPool + Waker + Inbox   worker 1: ...
//!            └── Connection = Transport (Tcp) + Session (sans-IO: Request → Open / Body / Waiting / Poll / Sse → Closing)
//! ```
//!
//! A `Connection` (`connection.rs`) is where I/O meets the sans-IO
//! `Session` (`session/`): its `Transport` (`transport.rs`) reads into the
//! session's buffer and writes its output; the session's broker `Action`s
//! are carried out by the `Worker` (`worker.rs`), whose poll, slab and
//! (de)registration are the `Driver` of `event_loop.rs`, the load
//! generator's too; the broker's answers
//! come back through the worker's inbox, addressed by slab key and
//! generation. These are the crate's own; a library user starts a server
//! with a [`Builder`] and an [`App`].
//!
//! Workers share the shutdown flag, the process-wide connection count, the
//! queues that even out connections between them (`balance.rs`), and
//! the push server's broker ([`crate::pubsub`]), which reaches each worker
//! through its inbox and waker. [`start`] returns a handle (tests run servers in-process with it);
//! [`crate::server::serve`] runs until SIGINT or SIGTERM and then shuts down gracefully:
//! no new connections, a 1001 close to every WebSocket, at most the close
//! timeout to finish, exit status 0.

// The public API is the settings, the builder and the handle; the event
// loop's parts are the crate's own (the load generator borrows the buffers).
mod balance;
pub(crate) mod buffer;
mod connection;
pub(crate) mod event_loop;
mod listener;
pub(crate) mod output;
pub mod per_ip;
mod server_info;
pub(crate) mod session;
pub mod settings;
pub(crate) mod stamp;
mod subscribers;
mod timers;
pub mod tls;
mod transport;
mod worker;

use crate::app::{App, Sender};
use crate::config::Config;
use crate::pubsub::{Broker, Inbox, LocalHub};
use crate::stats::WorkerStats;
use balance::Handoff;
use mio::{Poll, Waker};
use settings::Settings;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use worker::{Worker, WAKER};

/// State shared by all workers.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Set once to stop: workers stop accepting and close their connections.
    pub shutdown: AtomicBool,
    /// Connections open in the whole process (for `max_connections`).
    pub connections: AtomicUsize,
    /// Accepted connections moving to a less loaded worker.
    pub handoff: Handoff,
    /// Each worker's inbox (by worker index): published messages for its
    /// subscribers. The reactor owns them; the broker pushes into them.
    pub inboxes: Arc<[Inbox]>,
    /// What runs on the connections.
    pub app: Arc<App>,
    /// TLS, when configured: on the main listener, or (`tls_beside`) on
    /// a listener of its own beside the plain one.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub tls_beside: bool,
    /// Per-address connection limits, over every worker.
    pub per_ip: per_ip::PerIp,
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    stats: Vec<Arc<WorkerStats>>,
}

impl ServerHandle {
    /// The address the workers listen on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the TLS listener beside the plain one, if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Each worker's counters, by worker index.
    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// Reaches the server's connections and topics from any thread.
    pub fn sender(&self) -> Sender {
        Sender::new(self.shared.inboxes.clone())
    }

    /// Begin a graceful shutdown (returns at once; see [`join`](Self::join)).
    pub fn shutdown(&self) {
        signal_shutdown(&self.shared, &self.wakers);
    }

    /// A function that begins the shutdown, for a signal thread.
    pub fn shutdown_trigger(&self) -> impl Fn() + Send + 'static {
        let shared = self.shared.clone();
        let wakers = self.wakers.clone();
        move || signal_shutdown(&shared, &wakers)
    }

    /// Wait for every worker to finish.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("worker thread panicked")),
            }
        }
        result
    }
}

fn signal_shutdown(shared: &Shared, wakers: &[Arc<Waker>]) {
    shared.shutdown.store(true, SeqCst);
    for w in wakers {
        let _ = w.wake();
    }
}

/// What a broker is made from: the workers' inboxes, which the reactor
/// owns (each wakes its worker). A broker that cannot start (its server
/// unreachable) keeps the server from starting.
pub type MakeBroker = Box<dyn FnOnce(Arc<[Inbox]>) -> io::Result<Arc<dyn Broker>>>;

/// How to start a server: its settings, what it runs ([`App`]), where its
/// channels live ([`Broker`]), its threads and listen backlog.
pub struct Builder {
    settings: Settings,
    app: App,
    threads: usize,
    backlog: u32,
    broker: Option<MakeBroker>,
    tls: Option<Arc<rustls::ServerConfig>>,
    tls_bind: Option<SocketAddr>,
}

impl Builder {
    /// `wsreactor serve`'s application ([`crate::push::standard`]) with channels in
    /// this process ([`LocalHub`]), and `serve`'s defaults: one worker per
    /// core, the configuration's backlog.
    pub fn new(settings: Settings) -> Self {
        let defaults = Config::default();
        Builder {
            settings,
            app: crate::push::standard(),
            threads: defaults.worker_threads(),
            backlog: defaults.server.backlog,
            broker: None,
            tls: None,
            tls_bind: None,
        }
    }

    /// Speak TLS on the listeners (`wss://`, `https://`) with `config`
    /// (see [`tls::server_config`]).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self.tls_bind = None;
        self
    }

    /// Keep the main listener plain and speak TLS with `config` on listeners
    /// of their own on `addr` (`[tls] bind`), on the same workers.
    pub fn tls_listener(mut self, addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self.tls_bind = Some(addr);
        self
    }

    /// Run `app` instead.
    pub fn app(mut self, app: App) -> Self {
        self.app = app;
        self
    }

    /// Worker threads, each with its own listener (at least one).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// The listen backlog of each listener.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Keep channels in the broker `make` builds from the workers'
    /// inboxes: the seam for a broker across nodes, and for tests that put
    /// their own between the workers and the hub.
    pub fn broker(self, make: impl FnOnce(Arc<[Inbox]>) -> Arc<dyn Broker> + 'static) -> Self {
        self.try_broker(Box::new(move |inboxes| Ok(make(inboxes))))
    }

    /// [`broker`](Self::broker) for a broker that may fail to start.
    pub fn try_broker(mut self, make: MakeBroker) -> Self {
        self.broker = Some(make);
        self
    }

    /// Bind the listeners on `addr` and start one worker on each.
    pub fn start(self, addr: SocketAddr) -> io::Result<ServerHandle> {
        let Builder {
            settings,
            app,
            threads,
            backlog,
            broker,
            tls,
            tls_bind,
        } = self;
        let hub_settings = settings.pubsub.hub.clone();
        let make = broker.unwrap_or_else(|| {
            Box::new(move |inboxes| Ok(Arc::new(LocalHub::new(hub_settings, inboxes)) as Arc<dyn Broker>))
        });
        let tls = tls.map(|config| (config, tls_bind));
        launch(addr, threads, backlog, settings, Arc::new(app), make, tls)
    }
}

/// Bind `threads` listeners on `addr` and start one worker on each, with
/// [`crate::push::standard`] and channels in this process ([`LocalHub`]).
pub fn start(addr: SocketAddr, threads: usize, backlog: u32, settings: Settings) -> io::Result<ServerHandle> {
    Builder::new(settings).threads(threads).backlog(backlog).start(addr)
}

/// [`start`] with the broker `make_broker` builds (see [`Builder::broker`]).
pub fn start_with_broker(
    addr: SocketAddr,
    threads: usize,
    backlog: u32,
    settings: Settings,
    make_broker: impl FnOnce(Arc<[Inbox]>) -> Arc<dyn Broker> + 'static,
) -> io::Result<ServerHandle> {
    Builder::new(settings)
        .threads(threads)
        .backlog(backlog)
        .broker(make_broker)
        .start(addr)
}

fn launch(
    addr: SocketAddr,
    threads: usize,
    backlog: u32,
    settings: Settings,
    app: Arc<App>,
    make_broker: MakeBroker,
    tls: Option<(Arc<rustls::ServerConfig>, Option<SocketAddr>)>,
) -> io::Result<ServerHandle> {
    let threads = threads.max(1);
    let listeners = listener::bind_all(addr, threads, backlog)?;
    let addr = listeners[0].local_addr()?;
    let (tls, tls_bind) = match tls {
        Some((config, bind)) => (Some(config), bind),
        None => (None, None),
    };
    let mut tls_listeners: Vec<Option<mio::net::TcpListener>> = match tls_bind {
        Some(bind) => listener::bind_all(bind, threads, backlog)?
            .into_iter()
            .map(Some)
            .collect(),
        None => (0..threads).map(|_| None).collect(),
    };
    let tls_addr = match tls_listeners.first() {
        Some(Some(l)) => Some(l.local_addr()?),
        _ => None,
    };
    let settings = Arc::new(settings);
    let mut polls = Vec::new();
    let mut wakers = Vec::new();
    for _ in 0..listeners.len() {
        let poll = Poll::new()?;
        wakers.push(Arc::new(Waker::new(poll.registry(), WAKER)?));
        polls.push(poll);
    }
    let inboxes: Arc<[Inbox]> = wakers.iter().map(|w| Inbox::new(w.clone())).collect();
    let hub = make_broker(inboxes.clone())?;
    let shared = Arc::new(Shared {
        shutdown: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        handoff: Handoff::new(wakers.clone()),
        inboxes,
        app,
        tls,
        tls_beside: tls_addr.is_some(),
        per_ip: per_ip::PerIp::new(settings.per_ip.clone()),
    });
    let stats: Vec<Arc<WorkerStats>> = (0..listeners.len()).map(|_| Arc::default()).collect();
    let all_stats: Arc<[Arc<WorkerStats>]> = stats.clone().into();
    let mut workers = Vec::new();
    for (id, (listener, poll)) in listeners.into_iter().zip(polls).enumerate() {
        workers.push(Worker::new(
            id,
            poll,
            (listener, tls_listeners[id].take()),
            settings.clone(),
            shared.clone(),
            all_stats.clone(),
            hub.clone(),
        )?);
    }
    let mut handles = Vec::new();
    for (id, worker) in workers.into_iter().enumerate() {
        let t = std::thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || worker.run())?;
        handles.push(t);
    }
    Ok(ServerHandle {
        addr,
        tls_addr,
        shared,
        wakers,
        threads: handles,
        stats,
    })
}
