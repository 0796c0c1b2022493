//! Process setup the server needs from the operating system.
//!
//! Every connection holds a file descriptor (its socket), and so does each
//! worker's listener, poll instance and waker. The soft `RLIMIT_NOFILE` most
//! shells hand a process is 1024, which would cap the server near a thousand
//! connections and make `accept` fail with `EMFILE` beyond that. The hard
//! limit is what an unprivileged process may raise itself to (20000 on the
//! machines this project runs on), so the server raises the soft limit to it
//! at start-up. `server.max_connections = 0` means this limit is the limit.

use std::io;

/// Raise the soft `RLIMIT_NOFILE` to the hard limit and return the new soft
/// limit. If the soft limit is already at the hard limit nothing changes.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the rlimit we pass, which lives
    // for the whole call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the rlimit we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // rlim_t is u64 on Linux but not on every unix.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(limit.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> libc::rlimit {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_fd_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        limit
    }

    #[test]
    fn soft_limit_ends_at_the_hard_limit() {
        let raised = raise_fd_limit().unwrap();
        let now = current();
        #[allow(clippy::useless_conversion)]
        let (soft, hard) = (u64::from(now.rlim_cur), u64::from(now.rlim_max));
        assert_eq!(raised, soft);
        assert_eq!(soft, hard);
        // A second call finds nothing to do and says the same.
        assert_eq!(raise_fd_limit().unwrap(), raised);
    }
}
