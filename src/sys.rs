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

/// Let at most `bytes` of a TCP socket's output wait in the kernel unsent
/// (`TCP_NOTSENT_LOWAT`, Linux 3.12): a write past it is `EAGAIN`, so what
/// a peer does not read stays in the server's own queue, bounded by
/// `limits.write_buffer_limit`, instead of in a send buffer the kernel
/// grows to megabytes for a connection that was fast once.
pub fn set_notsent_lowat(socket: &impl std::os::fd::AsRawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `value`,
    // which lives for the whole call; the descriptor is borrowed.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Send `bufs` on a connected stream socket in one `sendmsg` (with
/// `MSG_NOSIGNAL`: a reset peer is an `EPIPE`, not a signal). The same
/// bytes as `writev`, without its file-position lock and VFS layer, which
/// on loopback cost several percent of a fan-out's CPU (issue 31).
pub fn send_vectored(socket: &impl std::os::fd::AsRawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid (no address, no control data); its
    // iovec array is `bufs`, whose `IoSlice`s are ABI-compatible with
    // `iovec` on Unix and live for the whole call, and sendmsg only reads
    // them. The descriptor is borrowed.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        // At most IOV_MAX (1024) slices are passed by our callers.
        msg.msg_iovlen = bufs.len() as _;
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
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

    #[test]
    fn several_slices_go_out_in_order_in_one_send() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let bufs = [io::IoSlice::new(b"ab"), io::IoSlice::new(b""), io::IoSlice::new(b"cde")];
        assert_eq!(send_vectored(&client, &bufs).unwrap(), 5);
        let mut got = [0; 5];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcde");
        // A peer gone: an error, not SIGPIPE.
        drop(server);
        drop(listener);
        let err = (0..100).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            send_vectored(&client, &bufs).err()
        });
        assert!(err.is_some());
    }

    #[test]
    fn a_socket_keeps_the_unsent_bound_it_is_given() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set_notsent_lowat(&stream, 128 << 10).unwrap();
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`.
        let r = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((r, value), (0, 128 << 10));
    }
}
