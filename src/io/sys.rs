//! Small libc helpers shared by the socket and device backends.

use std::io;
use std::mem;
use std::os::fd::RawFd;

/// `setsockopt` with an int value.
pub fn setopt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the receive buffer, above `rmem_max` when privileged (SO_RCVBUFFORCE).
pub fn set_rcvbuf(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
        .or_else(|_| setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v))
}

/// Waits up to `timeout_ms` for `fd` to become readable; false on timeout or EINTR.
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0)
}

/// `sendmmsg` bookkeeping reused across calls: one destination address
/// (`sockaddr_ll`, `sockaddr_in`, …) per datagram, optionally a prefix
/// (a virtio-net header) sent in front of it. The pointers are rebuilt on
/// every call and only used during it.
pub struct MmsgTx<A> {
    addrs: Vec<A>,
    iovs: Vec<[libc::iovec; 2]>,
    msgs: Vec<libc::mmsghdr>,
}

impl<A> Default for MmsgTx<A> {
    fn default() -> Self {
        MmsgTx {
            addrs: Vec::new(),
            iovs: Vec::new(),
            msgs: Vec::new(),
        }
    }
}

// SAFETY: the raw pointers inside are rebuilt on every call and never used outside it.
unsafe impl<A: Send> Send for MmsgTx<A> {}

fn iovec(b: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    }
}

impl<A> MmsgTx<A> {
    /// Sends every `(datagram, address)` on `fd` with as few `sendmmsg` calls
    /// as possible; returns how many were sent (an error only if none was).
    pub fn send<'a>(
        &mut self,
        fd: RawFd,
        datagrams: impl Iterator<Item = (&'a [u8], A)>,
    ) -> io::Result<usize> {
        self.send_prefixed(fd, datagrams.map(|(d, a)| (&[][..], d, a)))
    }

    /// Like [`MmsgTx::send`], each datagram sent as `prefix` followed by its bytes.
    pub fn send_prefixed<'a>(
        &mut self,
        fd: RawFd,
        datagrams: impl Iterator<Item = (&'a [u8], &'a [u8], A)>,
    ) -> io::Result<usize> {
        let MmsgTx { addrs, iovs, msgs } = self;
        addrs.clear();
        iovs.clear();
        for (p, d, a) in datagrams {
            addrs.push(a);
            iovs.push([iovec(p), iovec(d)]);
        }
        msgs.clear();
        for (addr, iov) in addrs.iter_mut().zip(iovs.iter_mut()) {
            // SAFETY: msghdr is plain old data; all-zero is valid.
            let mut h: libc::msghdr = unsafe { mem::zeroed() };
            h.msg_name = (addr as *mut A).cast();
            h.msg_namelen = mem::size_of::<A>() as u32;
            // An empty prefix is skipped rather than sent as a zero-length iovec.
            let skip = usize::from(iov[0].iov_len == 0);
            h.msg_iov = iov[skip..].as_mut_ptr();
            h.msg_iovlen = 2 - skip;
            msgs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        let mut sent = 0usize;
        while let Some(rest) = msgs.get_mut(sent..).filter(|r| !r.is_empty()) {
            // SAFETY: the headers point at datagrams, iovecs and addresses alive for this call.
            let rc = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if sent == 0 {
                    return Err(e);
                }
                break;
            }
            if rc == 0 {
                break;
            }
            sent += rc as usize;
        }
        Ok(sent)
    }
}
