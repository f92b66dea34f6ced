//! The endpoint's network side: a raw IP socket for plain ESP (protocol 50)
//! and a UDP socket for RFC 3948 encapsulation.

use super::sys::{set_rcvbuf, wait_readable, MmsgTx};
use super::udp_gso::{sockaddr_in, GsoTx, UDP_GRO};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// IP protocol number of ESP.
const IPPROTO_ESP: libc::c_int = 50;

/// Reusable `sendmmsg` state for batches to IPv4 destinations; one per sending thread.
pub type SendScratch = MmsgTx<libc::sockaddr_in>;

/// Raw socket for IP protocol 50. Received datagrams include the IPv4 header;
/// sent ones get it from the kernel.
pub struct RawEsp {
    fd: OwnedFd,
}

impl RawEsp {
    /// Opens the socket, bound to `local` (0.0.0.0 = any).
    pub fn open(local: Ipv4Addr, rcvbuf: usize) -> io::Result<RawEsp> {
        // SAFETY: plain socket() call; the fd is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                IPPROTO_ESP,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_rcvbuf(raw, rcvbuf)?;
        let sa = sockaddr_in(SocketAddrV4::new(local, 0));
        // SAFETY: sa is a valid sockaddr_in of the given size.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawEsp { fd })
    }

    /// Waits up to `timeout_ms` (0: not at all) and reads one datagram (IPv4 header included).
    pub fn recv(&self, buf: &mut [u8], timeout_ms: i32) -> io::Result<Option<usize>> {
        if timeout_ms != 0 && !wait_readable(self.fd.as_raw_fd(), timeout_ms)? {
            return Ok(None);
        }
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// Sends ESP packets (each starting at the SPI); the ports are ignored.
    pub fn send_batch<'a>(
        &self,
        scratch: &mut SendScratch,
        msgs: impl Iterator<Item = (&'a [u8], SocketAddrV4)>,
    ) -> io::Result<usize> {
        scratch.send(self.fd.as_raw_fd(), msgs.map(|(d, a)| (d, sockaddr_in(a))))
    }

    /// Sends one ESP packet (starting at the SPI) to `dst`.
    pub fn send_to(&self, esp: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
        let sa = sockaddr_in(SocketAddrV4::new(dst, 0));
        // SAFETY: esp and sa are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                esp.as_ptr().cast(),
                esp.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// One received UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram {
    /// Payload length.
    pub len: usize,
    /// Source address and port.
    pub from: SocketAddrV4,
    /// Local address it was sent to.
    pub to: Option<Ipv4Addr>,
    /// Set when the kernel coalesced a train of datagrams (UDP_GRO): `len`
    /// bytes hold datagrams of this size back to back, the last maybe shorter.
    pub segment: Option<usize>,
}

impl UdpDatagram {
    /// The datagrams in `buf` (one, or the coalesced train).
    pub fn datagrams<'a>(&self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        let data = buf.get(..self.len).unwrap_or_default();
        let size = self.segment.filter(|s| *s > 0).unwrap_or(data.len().max(1));
        // An empty datagram is still one datagram (to be classified and counted).
        data.chunks(size).chain(data.is_empty().then_some(data))
    }
}

/// UDP socket for ESP-in-UDP, keepalives and (refused) IKE on the NAT-T port.
pub struct UdpEncap {
    sock: UdpSocket,
}

impl UdpEncap {
    /// Binds `local:port`.
    pub fn open(local: Ipv4Addr, port: u16, rcvbuf: usize) -> io::Result<UdpEncap> {
        let sock = UdpSocket::bind(SocketAddrV4::new(local, port))?;
        set_rcvbuf(sock.as_raw_fd(), rcvbuf)?;
        super::sys::setopt(sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        // Trains of datagrams arrive coalesced (kernels without it deliver them one by one).
        let _ = super::sys::setopt(sock.as_raw_fd(), libc::IPPROTO_UDP, UDP_GRO, 1);
        sock.set_nonblocking(true)?;
        Ok(UdpEncap { sock })
    }

    /// Waits up to `timeout_ms` and reads one datagram with its source and
    /// the local address it was sent to (IP_PKTINFO; what a NAT detector compares).
    pub fn recv(&self, buf: &mut [u8], timeout_ms: i32) -> io::Result<Option<UdpDatagram>> {
        let fd = self.sock.as_raw_fd();
        if !wait_readable(fd, timeout_ms)? {
            return Ok(None);
        }
        // SAFETY: all-zero is a valid sockaddr_in.
        let mut from: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        // u64 elements keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr; the pointers are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: msg points at live buffers of the stated sizes.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let (mut dst, mut segment) = (None, None);
        // SAFETY: the CMSG macros walk the control buffer the kernel filled.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                    let info: libc::in_pktinfo =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    dst = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                }
                if (*c).cmsg_level == libc::IPPROTO_UDP && (*c).cmsg_type == UDP_GRO {
                    let size: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    segment = usize::try_from(size).ok();
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(Some(UdpDatagram {
            len: n as usize,
            from: SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
                u16::from_be(from.sin_port),
            ),
            to: dst,
            segment,
        }))
    }

    /// Sends datagrams, trains to one peer as UDP GSO messages.
    pub fn send_gso<'a>(
        &self,
        tx: &mut GsoTx,
        datagrams: impl Iterator<Item = (&'a [u8], SocketAddrV4)>,
    ) -> io::Result<usize> {
        tx.send(self.sock.as_raw_fd(), datagrams)
    }

    /// Sends one datagram.
    pub fn send_to(&self, payload: &[u8], dst: SocketAddrV4) -> io::Result<usize> {
        self.sock.send_to(payload, dst)
    }

    /// Bound local address.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.sock.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dgram(len: usize, segment: Option<usize>) -> UdpDatagram {
        UdpDatagram {
            len,
            from: SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 4500),
            to: None,
            segment,
        }
    }

    #[test]
    fn a_coalesced_train_splits_at_the_segment_size() {
        let buf = [7u8; 100];
        let sizes: Vec<usize> = dgram(100, Some(40))
            .datagrams(&buf)
            .map(<[u8]>::len)
            .collect();
        assert_eq!(sizes, vec![40, 40, 20]);
        let sizes: Vec<usize> = dgram(30, None).datagrams(&buf).map(<[u8]>::len).collect();
        assert_eq!(sizes, vec![30]);
    }

    #[test]
    fn an_empty_datagram_is_one_datagram() {
        assert_eq!(dgram(0, None).datagrams(&[]).count(), 1);
        assert_eq!(dgram(0, Some(0)).datagrams(&[1, 2]).count(), 1);
    }
}
