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

/// The uid of the process at the other end of a Unix socket (SO_PEERCRED).
pub fn peer_uid(s: &impl std::os::fd::AsRawFd) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are live and sized for SO_PEERCRED.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// This process's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why the kernel refused a message of a `sendmmsg` batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// Socket buffer or queue full (EAGAIN, ENOBUFS): the rest of the batch
    /// is counted as failed too, it would only fail the same way.
    Full,
    /// Message too long for the path (EMSGSIZE).
    TooBig,
    /// No route or host (ENETUNREACH, EHOSTUNREACH, ENETDOWN).
    Unreachable,
    /// Refused by policy or by the destination (EPERM, EACCES, ECONNREFUSED).
    Refused,
    /// Anything else (EINVAL, …).
    Other,
}

impl SendFailure {
    /// Every reason, in counter order.
    pub const ALL: [SendFailure; 5] = [
        SendFailure::Full,
        SendFailure::TooBig,
        SendFailure::Unreachable,
        SendFailure::Refused,
        SendFailure::Other,
    ];

    /// Classifies an error.
    pub fn of(e: &io::Error) -> SendFailure {
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::ENOBUFS) => SendFailure::Full,
            Some(libc::EMSGSIZE) => SendFailure::TooBig,
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN) => {
                SendFailure::Unreachable
            }
            Some(libc::EPERM | libc::EACCES | libc::ECONNREFUSED) => SendFailure::Refused,
            _ => SendFailure::Other,
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            SendFailure::Full => "full",
            SendFailure::TooBig => "too_big",
            SendFailure::Unreachable => "unreachable",
            SendFailure::Refused => "refused",
            SendFailure::Other => "other",
        }
    }
}

/// Messages the kernel refused, by [`SendFailure::ALL`] order (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendFailures(pub [u64; 5]);

impl SendFailures {
    /// Counts `n` messages refused with `e`.
    pub fn count(&mut self, e: &io::Error, n: usize) {
        let kind = SendFailure::of(e);
        if let Some(c) = SendFailure::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.0.get_mut(i))
        {
            *c = c.saturating_add(n as u64);
        }
    }

    /// Adds `o` (merging per-thread tallies).
    pub fn add(&mut self, o: &SendFailures) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a = a.saturating_add(b);
        }
    }
}

/// Why [`sendmmsg_all`] ended early.
#[derive(Debug)]
pub enum SendStop {
    /// Nothing was taken; the first error.
    Nothing(io::Error),
    /// `stop_on` matched this error on message `at` (not counted).
    Stopped {
        /// The error.
        e: io::Error,
        /// Index of the message it ended on; every one before was taken or counted.
        at: usize,
    },
}

/// Drives `sendmmsg` over `msgs` until every message was tried: a message
/// the kernel refuses is counted in `failures` (as `weight(i)` datagrams)
/// and skipped, the ones after it still go; a full buffer ends the batch.
/// Calls `taken(i, n)` for each run of `n` messages from index `i` the
/// kernel took. An error `stop_on` matches ends the call uncounted, so the
/// caller can change the messages and retry.
pub fn sendmmsg_all(
    fd: RawFd,
    msgs: &mut [libc::mmsghdr],
    failures: &mut SendFailures,
    weight: impl Fn(usize) -> usize,
    stop_on: impl Fn(&io::Error) -> bool,
    mut taken: impl FnMut(usize, usize),
) -> Result<(), SendStop> {
    let mut next = 0usize;
    let mut any = false;
    let mut first_err = None;
    while let Some(rest) = msgs.get_mut(next..).filter(|r| !r.is_empty()) {
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        // SAFETY: the headers point at buffers, iovecs and addresses the
        // caller keeps alive for this call.
        let rc = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), len, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if stop_on(&e) {
                return Err(SendStop::Stopped { e, at: next });
            }
            // sendmmsg reports an error only for the first message it tried.
            if SendFailure::of(&e) == SendFailure::Full {
                let rest: usize = (next..msgs.len()).map(&weight).sum();
                failures.count(&e, rest);
                first_err.get_or_insert(e);
                break;
            }
            failures.count(&e, weight(next));
            first_err.get_or_insert(e);
            next += 1;
            continue;
        }
        let n = usize::try_from(rc).unwrap_or(0);
        if n == 0 {
            break;
        }
        taken(next, n);
        any = true;
        next += n;
    }
    match first_err {
        Some(e) if !any => Err(SendStop::Nothing(e)),
        _ => Ok(()),
    }
}

/// `sendmmsg` bookkeeping reused across calls: one destination address
/// (`sockaddr_ll`, `sockaddr_in`, …) per datagram, optionally a prefix
/// (a virtio-net header) sent in front of it. The pointers are rebuilt on
/// every call and only used during it.
pub struct MmsgTx<A> {
    addrs: Vec<A>,
    iovs: Vec<[libc::iovec; 2]>,
    msgs: Vec<libc::mmsghdr>,
    /// Messages the kernel refused so far, by reason.
    pub failures: SendFailures,
}

impl<A> Default for MmsgTx<A> {
    fn default() -> Self {
        MmsgTx {
            addrs: Vec::new(),
            iovs: Vec::new(),
            msgs: Vec::new(),
            failures: SendFailures::default(),
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
    /// A refused datagram is counted in `failures` and the rest still go.
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
        let MmsgTx {
            addrs,
            iovs,
            msgs,
            failures,
        } = self;
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
        match sendmmsg_all(fd, msgs, failures, |_| 1, |_| false, |_, n| sent += n) {
            Ok(()) => Ok(sent),
            Err(SendStop::Nothing(e) | SendStop::Stopped { e, .. }) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
