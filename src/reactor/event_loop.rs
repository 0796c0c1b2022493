//! The mio mechanics every event loop of the crate shares: the server's
//! workers, the load generator's workers and its publisher.
//!
//! Each loop owns a [`Driver`]: its `Poll` and a slab of what it drives (a
//! server [`Connection`](super::connection::Connection), a load
//! [`Client`](crate::load::client::Client)). What an entry is to the loop
//! is the [`Driven`] trait: a socket in the poll and the interest last
//! registered for it. The driver keeps mio's rules once (see `mio::Poll`):
//!
//! - a slab key is the entry's token; tokens at the top of the range
//!   ([`RESERVED`]) are the loop's own (listener, waker, timerfd) and
//!   stale or unknown tokens are ignored;
//! - the interest is re-registered only when the state wants another one
//!   (interest from state, as rustls's `event_set`);
//! - a socket is deregistered before its slab entry is removed, so the
//!   descriptor is out of the poll before its key is reused, unless it is
//!   closed at once ([`Driver::remove_to_close`]: the close takes it out);
//! - a poll interrupted by a signal is an empty round.
//!
//! The loop itself is [`run`], once: wait, hand each event to its entry or
//! to the loop's own source, then let the loop do what is due and say how
//! long it may sleep. The server's workers, the load generator's workers and
//! its publisher are each an [`EventLoop`]; what readiness, deadlines and
//! time-outs *mean* stays with each of them and its entries. Both are
//! generic (no trait object, no allocation per event).

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use std::io;
use std::ops::{Index, IndexMut};
use std::time::Duration;

/// What [`run`] drives: a poll, the events of its entries and of its own
/// sources, and the work between two waits.
pub trait EventLoop {
    /// The poll this loop waits on.
    fn poll(&mut self) -> &mut Poll;
    /// Between two waits (and once before the first): do what is due, and
    /// say how long the next wait may last, or `None` when the loop is done.
    fn turn(&mut self) -> io::Result<Option<Duration>>;
    /// A wait is over, before its events are handed out (take the time).
    fn woke(&mut self) {}
    /// Readiness for entry `key`; a stale key (its entry gone) is ignored.
    fn ready(&mut self, key: usize, ready: Ready);
    /// An event for one of the loop's own tokens ([`RESERVED`] and above:
    /// a listener, a waker, a timerfd).
    fn own(&mut self, token: Token);
}

/// Run `event_loop` until its [`turn`](EventLoop::turn) says it is done,
/// taking at most `capacity` events per wait.
pub fn run(event_loop: &mut impl EventLoop, capacity: usize) -> io::Result<()> {
    let mut events = Events::with_capacity(capacity);
    while let Some(timeout) = event_loop.turn()? {
        wait(event_loop.poll(), &mut events, Some(timeout))?;
        event_loop.woke();
        for event in events.iter() {
            match key_of(event.token()) {
                Some(key) => event_loop.ready(key, Ready::of(event)),
                None => event_loop.own(event.token()),
            }
        }
    }
    Ok(())
}

/// Tokens at or above this are a loop's own sources, not slab keys.
pub const RESERVED: usize = usize::MAX - 16;

/// What a loop drives: a socket in the poll and the interest last
/// registered for it. The loop computes the interest it wants from the
/// entry's state and hands it to [`Driver::settle`].
pub trait Driven {
    /// The socket, for (de)registration.
    fn source(&mut self) -> &mut TcpStream;
    /// The interest last registered.
    fn registered(&self) -> Interest;
    /// Record what was registered.
    fn set_registered(&mut self, interest: Interest);
}

/// One event's readiness as the entries take it: errors and hang-ups
/// surface through read and write, so they count as readable (and a
/// closed write side as writable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// Read until `WouldBlock`.
    pub readable: bool,
    /// The peer closed its side, or the socket has an error.
    pub closed: bool,
    /// Write what is queued.
    pub writable: bool,
}

impl Ready {
    /// The readiness `event` reports.
    #[inline]
    pub fn of(event: &Event) -> Ready {
        let closed = event.is_read_closed() || event.is_error();
        Ready {
            readable: event.is_readable() || closed,
            closed,
            writable: event.is_writable() || event.is_write_closed(),
        }
    }

    /// Writable only: what a fresh connection with output is given.
    pub const WRITABLE: Ready = Ready {
        readable: false,
        closed: false,
        writable: true,
    };
}

/// Is `token` a slab key (rather than one of the loop's own sources)?
#[inline]
pub fn key_of(token: Token) -> Option<usize> {
    (token.0 < RESERVED).then_some(token.0)
}

/// Wait for events at most `timeout`; a signal ends the wait with none.
pub fn wait(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    match poll.poll(events, timeout) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            // mio clears the events before the wait: the round is empty.
            events.clear();
            Ok(())
        }
        other => other,
    }
}

/// Put `entry`'s socket in the poll under `token` with `want`.
pub fn register(registry: &Registry, entry: &mut impl Driven, token: Token, want: Interest) -> io::Result<()> {
    registry.register(entry.source(), token, want)?;
    entry.set_registered(want);
    Ok(())
}

/// Re-register `entry` under `token` if `want` is not what it has.
#[inline]
pub fn reregister(registry: &Registry, entry: &mut impl Driven, token: Token, want: Interest) -> io::Result<()> {
    if want != entry.registered() {
        registry.reregister(entry.source(), token, want)?;
        entry.set_registered(want);
    }
    Ok(())
}

/// Take `entry`'s socket out of the poll (before its descriptor closes).
pub fn deregister(registry: &Registry, entry: &mut impl Driven) {
    // Gone already (a failed register) is as good as taken out.
    let _ = registry.deregister(entry.source());
}

/// A loop's poll and the slab of what it drives.
#[derive(Debug)]
pub struct Driver<E> {
    poll: Poll,
    entries: Slab<E>,
}

impl<E: Driven> Driver<E> {
    /// A driver over `poll` (the loop's own sources may be in it already).
    pub fn new(poll: Poll) -> Self {
        Driver {
            poll,
            entries: Slab::new(),
        }
    }

    /// The poll's registry, for the loop's own sources.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// The poll, for [`EventLoop::poll`].
    pub fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    /// The key the next [`insert`](Self::insert) will use.
    pub fn vacant_key(&self) -> usize {
        self.entries.vacant_key()
    }

    /// Register `entry` with `want` and give it a slab entry; the entry
    /// comes back with the error if the poll refuses it.
    pub fn insert(&mut self, mut entry: E, want: Interest) -> Result<usize, (E, io::Error)> {
        let key = self.entries.vacant_key();
        match register(self.poll.registry(), &mut entry, Token(key), want) {
            Ok(()) => Ok(self.entries.insert(entry)),
            Err(e) => Err((entry, e)),
        }
    }

    /// Re-register entry `key` if `want` is not what it has; on error the
    /// entry is left for the caller to remove.
    #[inline]
    pub fn settle(&mut self, key: usize, want: Interest) -> io::Result<()> {
        reregister(self.poll.registry(), &mut self.entries[key], Token(key), want)
    }

    /// Deregister entry `key`, then take it out of the slab.
    pub fn remove(&mut self, key: usize) -> E {
        deregister(self.poll.registry(), &mut self.entries[key]);
        self.entries.remove(key)
    }

    /// Take entry `key` out of the slab for the caller to drop at once,
    /// without the `epoll_ctl` that deregisters it: epoll forgets a file
    /// when its last descriptor closes (epoll(7)), and the entry's socket
    /// is its only one (accepted with `SOCK_CLOEXEC`, never duplicated).
    /// One system call fewer per connection. Its key may be reused before
    /// the drop only by an entry inserted after it.
    pub fn remove_to_close(&mut self, key: usize) -> E {
        self.entries.remove(key)
    }

    /// Entry `key` and the registry together (to take its socket out and
    /// put a new one in, as a redial does).
    pub fn with_registry(&mut self, key: usize) -> Option<(&Registry, &mut E)> {
        let entry = self.entries.get_mut(key)?;
        Some((self.poll.registry(), entry))
    }

    /// Entry `key`, if it exists (a stale token finds none).
    #[inline]
    pub fn get(&self, key: usize) -> Option<&E> {
        self.entries.get(key)
    }

    /// Entry `key`, if it exists.
    #[inline]
    pub fn get_mut(&mut self, key: usize) -> Option<&mut E> {
        self.entries.get_mut(key)
    }

    /// Does entry `key` exist?
    pub fn contains(&self, key: usize) -> bool {
        self.entries.contains(key)
    }

    /// Every key is below this: a walk over `0..capacity()` may remove.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries and their keys.
    pub fn iter(&self) -> slab::Iter<'_, E> {
        self.entries.iter()
    }
}

impl<E> Index<usize> for Driver<E> {
    type Output = E;
    #[inline]
    fn index(&self, key: usize) -> &E {
        &self.entries[key]
    }
}

impl<E> IndexMut<usize> for Driver<E> {
    #[inline]
    fn index_mut(&mut self, key: usize) -> &mut E {
        &mut self.entries[key]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Sock {
        stream: TcpStream,
        registered: Interest,
    }

    impl Driven for Sock {
        fn source(&mut self) -> &mut TcpStream {
            &mut self.stream
        }
        fn registered(&self) -> Interest {
            self.registered
        }
        fn set_registered(&mut self, interest: Interest) {
            self.registered = interest;
        }
    }

    fn pair() -> (Sock, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let sock = Sock {
            stream: TcpStream::from_std(server),
            registered: Interest::READABLE,
        };
        (sock, client)
    }

    #[test]
    fn test_driver_routes_readiness_by_key_and_forgets_removed_entries() {
        let mut driver = Driver::new(Poll::new().unwrap());
        let mut events = Events::with_capacity(8);
        let (a, mut peer_a) = pair();
        let (b, _peer_b) = pair();
        let ka = driver.insert(a, Interest::READABLE).map_err(|(_, e)| e).unwrap();
        let kb = driver.insert(b, Interest::READABLE).map_err(|(_, e)| e).unwrap();
        assert_ne!(ka, kb);
        peer_a.write_all(b"x").unwrap();
        wait(driver.poll(), &mut events, Some(Duration::from_secs(5))).unwrap();
        let keys: Vec<_> = events.iter().filter_map(|e| key_of(e.token())).collect();
        assert_eq!(keys, [ka]);
        assert!(Ready::of(events.iter().next().unwrap()).readable);
        // Interest from state: registered again only when it changes.
        driver.settle(kb, Interest::READABLE | Interest::WRITABLE).unwrap();
        assert_eq!(driver[kb].registered(), Interest::READABLE | Interest::WRITABLE);
        driver.remove(ka);
        assert!(!driver.contains(ka));
        assert_eq!(driver.len(), 1);
        assert_eq!(key_of(Token(usize::MAX - 1)), None);
    }
}
