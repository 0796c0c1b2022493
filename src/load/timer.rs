//! A worker's wake-up for the next due message: a `timerfd` in the poll.
//!
//! `epoll_wait` takes its timeout in whole milliseconds (mio rounds up), so
//! a message due in 300 µs would go up to a millisecond late, and with
//! latency measured from the due time that lateness would be charged to the
//! server. A timerfd fires at nanosecond resolution and is just another
//! readable source in the poll.

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A one-shot timer that wakes the poll.
#[derive(Debug)]
pub struct Timer {
    fd: OwnedFd,
    /// The time it is set for, if set.
    armed: Option<Instant>,
}

impl Timer {
    /// A non-blocking monotonic timerfd, registered readable under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Timer> {
        // SAFETY: plain system call; the descriptor returned is owned here.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Timer { fd, armed: None })
    }

    /// Fire at `at` (as seen at `now`), unless already set for that time.
    pub fn arm(&mut self, at: Instant, now: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // An all-zero value would disarm: fire in a nanosecond instead.
        let wait = at.saturating_duration_since(now).max(Duration::from_nanos(1));
        self.set(wait)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Forget the expiry (after the timer's event was handled).
    pub fn fired(&mut self) {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`; EAGAIN when nothing
        // expired is fine, the read only resets the expiry count.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        self.armed = None;
    }

    fn set(&self, wait: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` lives across the call; no old value is asked for.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    #[test]
    fn wakes_the_poll_at_sub_millisecond_resolution() {
        let mut poll = Poll::new().unwrap();
        let mut timer = Timer::new(poll.registry(), Token(7)).unwrap();
        let mut events = Events::with_capacity(4);
        for _ in 0..5 {
            let start = Instant::now();
            let at = start + Duration::from_micros(300);
            timer.arm(at, start).unwrap();
            poll.poll(&mut events, Some(Duration::from_secs(1))).unwrap();
            let woke = Instant::now();
            assert!(events.iter().any(|e| e.token() == Token(7)));
            assert!(woke >= at);
            timer.fired();
            // Far sooner than the 1 s poll timeout; generous for a busy machine.
            assert!(woke - start < Duration::from_millis(200), "{:?}", woke - start);
        }
    }
}
