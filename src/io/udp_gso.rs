//! UDP segmentation offload (`UDP_SEGMENT`, Linux 4.18+) for batches of
//! datagrams, and its receive-side twin (`UDP_GRO`, 5.0+).
//!
//! A TSO read from the TUN device yields a train of equal-size segments to
//! one peer; sealed, they are equal-size ESP datagrams. Sent as one GSO
//! message, the train crosses the UDP/IP output path once and travels as one
//! super-frame for as long as every device on the way can carry it. Where a
//! device cannot (no checksum offload), the kernel refuses GSO with `EIO`
//! and the train is sent datagram by datagram instead.

use super::sys::{sendmmsg_all, SendFailures, SendStop};
use std::io;
use std::mem;
use std::net::SocketAddrV4;
use std::os::fd::RawFd;

const SOL_UDP: libc::c_int = 17;
/// `UDP_SEGMENT` socket option / control message.
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` socket option / control message.
pub const UDP_GRO: libc::c_int = 104;
/// Segments per send: the kernel's limit was 64 before 6.x (UDP_MAX_SEGMENTS).
pub const MAX_SEGMENTS: usize = 64;
/// Payload bytes per send (an IPv4 UDP datagram carries at most 65 507).
pub const MAX_BYTES: usize = 65_000;
/// Batches sent without GSO after the kernel refused it, before trying again
/// (the route or device may have changed).
const RETRY_AFTER: u32 = 4096;

/// A run of datagrams `start..start + count` sent as one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Index of the first datagram.
    pub start: usize,
    /// Datagrams in the run.
    pub count: usize,
    /// Segment size (the first datagram's length).
    pub segment: usize,
}

/// Splits datagrams (length, destination) into GSO runs: consecutive
/// datagrams to one destination, all as long as the first except a shorter
/// last one, within [`MAX_SEGMENTS`] and [`MAX_BYTES`].
pub fn runs(items: impl Iterator<Item = (usize, SocketAddrV4)>, out: &mut Vec<Run>) {
    out.clear();
    // The open run's destination and byte count.
    let mut open: Option<(SocketAddrV4, usize)> = None;
    for (i, (len, dst)) in items.enumerate() {
        if let (Some(run), Some((d, bytes))) = (out.last_mut(), open.as_mut()) {
            // A shorter datagram ends a run: only a run of full segments takes more.
            let all_full = run.segment > 0 && *bytes == run.segment * run.count;
            if *d == dst
                && all_full
                && len <= run.segment
                && run.count < MAX_SEGMENTS
                && *bytes + len <= MAX_BYTES
            {
                run.count += 1;
                *bytes += len;
                continue;
            }
        }
        out.push(Run {
            start: i,
            count: 1,
            segment: len,
        });
        open = Some((dst, len));
    }
}

/// Reusable state for GSO sends from one thread. The iovecs point at the
/// caller's datagrams and are only used during [`GsoTx::send`].
#[derive(Default)]
pub struct GsoTx {
    iovs: Vec<libc::iovec>,
    dsts: Vec<SocketAddrV4>,
    runs: Vec<Run>,
    addrs: Vec<libc::sockaddr_in>,
    cmsgs: Vec<[u64; 3]>,
    msgs: Vec<libc::mmsghdr>,
    /// Batches left before GSO is tried again after a refusal.
    off_for: u32,
    /// GSO messages (trains of more than one datagram) the kernel took so far.
    pub trains_sent: u64,
    /// Datagrams the kernel refused so far, by reason.
    pub failures: SendFailures,
}

// SAFETY: the raw pointers inside are rebuilt on every call and never used outside it.
unsafe impl Send for GsoTx {}

/// `sockaddr_in` for `a`.
pub fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

impl GsoTx {
    /// Sends `datagrams` on UDP socket `fd`, trains as GSO messages; returns
    /// how many datagrams the kernel took (an error only if none).
    pub fn send<'a>(
        &mut self,
        fd: RawFd,
        datagrams: impl Iterator<Item = (&'a [u8], SocketAddrV4)>,
    ) -> io::Result<usize> {
        self.iovs.clear();
        self.dsts.clear();
        for (d, a) in datagrams {
            self.iovs.push(libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            });
            self.dsts.push(a);
        }
        let mut gso = self.off_for == 0;
        self.off_for = self.off_for.saturating_sub(1);
        self.plan(0, gso);
        let mut done = 0usize;
        loop {
            let GsoTx {
                runs,
                msgs,
                failures,
                trains_sent,
                ..
            } = self;
            // No checksum offload on the way out, or no UDP_SEGMENT at all:
            // stop, and send the rest datagram by datagram.
            let refused = |e: &io::Error| {
                gso && matches!(
                    e.raw_os_error(),
                    Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT)
                )
            };
            let r = sendmmsg_all(
                fd,
                msgs,
                failures,
                |i| runs.get(i).map_or(1, |r| r.count),
                refused,
                |i, n| {
                    for r in runs.iter().skip(i).take(n) {
                        done += r.count;
                        *trains_sent += u64::from(r.count > 1);
                    }
                },
            );
            match r {
                Ok(()) => return Ok(done),
                Err(SendStop::Stopped { e, at }) => {
                    tracing::debug!(error = %e, "UDP GSO refused; sending datagram by datagram");
                    self.off_for = RETRY_AFTER;
                    gso = false;
                    // Every run before the refused one was taken or counted.
                    let from = self.runs.get(at).map_or(self.iovs.len(), |r| r.start);
                    self.plan(from, false);
                }
                Err(SendStop::Nothing(e)) => return Err(e),
            }
        }
    }

    /// Builds one message per run for the datagrams from `from` on: GSO runs,
    /// or one datagram per message.
    fn plan(&mut self, from: usize, gso: bool) {
        let lens = self.iovs.iter().map(|v| v.iov_len).skip(from);
        let items = lens.zip(self.dsts.iter().copied().skip(from));
        if gso {
            runs(items, &mut self.runs);
        } else {
            self.runs.clear();
            self.runs.extend(items.enumerate().map(|(i, (len, _))| Run {
                start: i,
                count: 1,
                segment: len,
            }));
        }
        let GsoTx {
            iovs,
            dsts,
            runs,
            addrs,
            cmsgs,
            msgs,
            ..
        } = self;
        addrs.clear();
        cmsgs.clear();
        for r in runs.iter_mut() {
            r.start += from;
            let dst = dsts.get(r.start).copied();
            addrs.push(sockaddr_in(
                dst.unwrap_or(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0)),
            ));
            cmsgs.push(segment_cmsg(r.segment as u16));
        }
        msgs.clear();
        for ((r, addr), cmsg) in runs.iter().zip(addrs.iter_mut()).zip(cmsgs.iter_mut()) {
            // SAFETY: msghdr is plain old data; all-zero is valid.
            let mut h: libc::msghdr = unsafe { mem::zeroed() };
            h.msg_name = (addr as *mut libc::sockaddr_in).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_in>() as u32;
            if let Some(v) = iovs.get_mut(r.start..r.start + r.count) {
                h.msg_iov = v.as_mut_ptr();
                h.msg_iovlen = v.len();
            }
            if r.count > 1 {
                h.msg_control = cmsg.as_mut_ptr().cast();
                h.msg_controllen = mem::size_of_val(cmsg);
            }
            msgs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
    }
}

/// A `cmsghdr` carrying UDP_SEGMENT = `size`, in a buffer aligned for it.
fn segment_cmsg(size: u16) -> [u64; 3] {
    let mut buf = [0u64; 3];
    // SAFETY: buf is 24 bytes, 8-aligned: room for a 16-byte cmsghdr and 2 data bytes.
    unsafe {
        let c = buf.as_mut_ptr().cast::<libc::cmsghdr>();
        (*c).cmsg_level = SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 69), 4500);
    const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 70), 4500);

    fn split(items: &[(usize, SocketAddrV4)]) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        runs(items.iter().copied(), &mut out);
        out.iter().map(|r| (r.start, r.count, r.segment)).collect()
    }

    #[test]
    fn a_tso_train_is_one_run_with_a_short_tail() {
        let mut v = vec![(1444, A); 44];
        v.push((300, A));
        assert_eq!(split(&v), vec![(0, 45, 1444)]);
    }

    #[test]
    fn runs_break_at_destination_size_and_after_a_short_datagram() {
        let v = [
            (1000, A),
            (1000, A),
            (1000, B),
            (500, B),
            (500, B),
            (800, B),
        ];
        // B: 1000 then a shorter 500 closes the run; the next 500 starts one; 800 is longer.
        assert_eq!(
            split(&v),
            vec![(0, 2, 1000), (2, 2, 1000), (4, 1, 500), (5, 1, 800)]
        );
    }

    #[test]
    fn runs_respect_the_segment_and_byte_limits() {
        let v = vec![(100, A); MAX_SEGMENTS + 3];
        assert_eq!(
            split(&v),
            vec![(0, MAX_SEGMENTS, 100), (MAX_SEGMENTS, 3, 100)]
        );
        let v = vec![(9000, A); 9];
        assert_eq!(split(&v), vec![(0, 7, 9000), (7, 2, 9000)]);
        assert_eq!(split(&[]), vec![]);
    }

    #[test]
    fn the_control_message_carries_the_segment_size() {
        let b = segment_cmsg(1444);
        // SAFETY: reads back the header written above.
        unsafe {
            let c = b.as_ptr().cast::<libc::cmsghdr>();
            assert_eq!(((*c).cmsg_level, (*c).cmsg_type), (SOL_UDP, UDP_SEGMENT));
            let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u16>());
            assert_eq!(v, 1444);
        }
    }
}
