//! Raw AF_PACKET backend: batched `recvmmsg`/`sendmmsg`, PACKET_FANOUT,
//! PACKET_IGNORE_OUTGOING, PACKET_VNET_HDR (offload state in both directions,
//! see [`super::offload`]), PACKET_AUXDATA (stripped VLAN tags) and
//! SO_RCVBUFFORCE. Transmit sockets are bound with protocol 0 so they never
//! receive, which keeps the fanout group the only reader of each interface.

use super::offload::{Offload, VNET_HDR_LEN};
use super::sys::{set_rcvbuf, setopt, wait_readable, MmsgTx};
use super::{Backend, FrameRx, FrameTx, RxBatch, RxFlags};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_OUTGOING: u8 = 4;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const ETH_P_ALL: u16 = 0x0003;
const RCVBUF_BYTES: usize = 8 << 20;

#[repr(C)]
#[derive(Clone, Copy)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

fn ifindex(name: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: c is a valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {name:?} not found"),
        ));
    }
    Ok(idx as i32)
}

fn sockaddr(ifindex: i32, protocol: u16) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut a: libc::sockaddr_ll = unsafe { mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = protocol.to_be();
    a.sll_ifindex = ifindex;
    a
}

fn open_socket(ifindex: i32, protocol: u16, nonblock: bool) -> io::Result<OwnedFd> {
    let ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: plain socket call; ownership goes to OwnedFd.
    let raw = unsafe { libc::socket(libc::AF_PACKET, ty, libc::c_int::from(protocol.to_be())) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let addr = sockaddr(ifindex, protocol);
    // SAFETY: addr is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The raw AF_PACKET backend.
pub struct AfPacket {
    /// Frames per `recvmmsg`.
    pub batch: usize,
}

impl Backend for AfPacket {
    fn open_rx(&self, ifname: &str, group: u16) -> io::Result<Box<dyn FrameRx>> {
        let idx = ifindex(ifname)?;
        let fd = open_socket(idx, ETH_P_ALL, true)?;
        let raw = fd.as_raw_fd();
        // Our own transmissions must not come back to us (kernels >= 4.20);
        // the pkttype check in recv_batch covers older kernels.
        let _ = setopt(raw, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
        setopt(raw, SOL_PACKET, PACKET_AUXDATA, 1)?;
        setopt(raw, SOL_PACKET, PACKET_VNET_HDR, 1)?;
        set_rcvbuf(raw, RCVBUF_BYTES)?;
        let arg = u32::from(group) | (PACKET_FANOUT_HASH << 16);
        setopt(raw, SOL_PACKET, PACKET_FANOUT, arg as libc::c_int)?;
        let mut rx = AfPacketRx {
            fd,
            batch: self.batch.max(1),
            scratch: RxScratch::default(),
        };
        // Frames queued before the fanout join were not load-balanced; drop them.
        let mut scratch = RxBatch::new(1);
        while rx.recv_now(&mut scratch)? > 0 {}
        Ok(Box::new(rx))
    }

    fn open_tx(&self, ifname: &str) -> io::Result<Box<dyn FrameTx>> {
        let idx = ifindex(ifname)?;
        let fd = open_socket(idx, 0, false)?;
        let _ = setopt(fd.as_raw_fd(), SOL_PACKET, PACKET_QDISC_BYPASS, 1);
        setopt(fd.as_raw_fd(), SOL_PACKET, PACKET_VNET_HDR, 1)?;
        Ok(Box::new(AfPacketTx {
            fd,
            ifindex: idx,
            scratch: MmsgTx::default(),
            vnet: Vec::new(),
        }))
    }

    fn name(&self) -> &'static str {
        "afpacket"
    }

    fn carries_offloads(&self) -> bool {
        true
    }
}

struct AfPacketRx {
    fd: OwnedFd,
    batch: usize,
    scratch: RxScratch,
}

/// recvmmsg bookkeeping reused across calls, so receiving allocates nothing.
/// `msgs` holds pointers into the other vectors and the caller's batch; they
/// are rewritten before every call and used only during it.
#[derive(Default)]
struct RxScratch {
    names: Vec<libc::sockaddr_ll>,
    cmsgs: Vec<[u64; CMSG_SPACE / 8]>,
    vnet: Vec<[u8; VNET_HDR_LEN]>,
    /// Two per frame: its virtio-net header, then its buffer.
    iovs: Vec<[libc::iovec; 2]>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside are rebuilt on every call and never
// dereferenced outside it, so moving the scratch to another thread is sound.
unsafe impl Send for RxScratch {}

const CMSG_SPACE: usize = 64;

impl AfPacketRx {
    fn recv_now(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        let n = self.batch.min(batch.capacity());
        let (bufs, lens, flags) = batch.parts_mut();
        let RxScratch {
            names,
            cmsgs,
            vnet,
            iovs,
            msgs,
        } = &mut self.scratch;
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        names.resize(n, unsafe { mem::zeroed() });
        cmsgs.resize(n, [0; CMSG_SPACE / 8]);
        vnet.resize(n, [0; VNET_HDR_LEN]);
        iovs.clear();
        iovs.extend(bufs.iter_mut().zip(vnet.iter_mut()).take(n).map(|(b, h)| {
            [
                libc::iovec {
                    iov_base: h.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                },
            ]
        }));
        msgs.clear();
        for ((name, cmsg), iov) in names.iter_mut().zip(cmsgs.iter_mut()).zip(iovs.iter_mut()) {
            // SAFETY: msghdr is plain old data; all-zero is valid.
            let mut h: libc::msghdr = unsafe { mem::zeroed() };
            h.msg_name = (name as *mut libc::sockaddr_ll).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
            h.msg_iov = iov.as_mut_ptr();
            h.msg_iovlen = 2;
            h.msg_control = cmsg.as_mut_ptr().cast();
            h.msg_controllen = CMSG_SPACE;
            msgs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        let n = msgs.len();
        // SAFETY: every pointer in msgs refers to vectors alive for this call.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let mut out = 0;
        for i in 0..got as usize {
            if names[i].sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            let m = &msgs[i];
            let mut f = RxFlags {
                truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                ..RxFlags::default()
            };
            match Offload::parse(&vnet[i]) {
                Ok(o) => f.offload = o,
                Err(_) => f.offload_unusable = true,
            }
            // msg_len counts the virtio-net header too; tp_len is the frame alone.
            let len = (m.msg_len as usize).saturating_sub(VNET_HDR_LEN);
            // SAFETY: walks the control buffer the kernel filled, within msg_controllen.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                while !c.is_null() {
                    if (*c).cmsg_level == SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        let aux: TpacketAuxdata =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        f.vlan = aux.tp_status & TP_STATUS_VLAN_VALID != 0;
                        if aux.tp_len as usize > len {
                            f.truncated = true;
                        }
                    }
                    c = libc::CMSG_NXTHDR(&m.msg_hdr, c);
                }
            }
            if out != i {
                bufs.swap(out, i);
            }
            lens[out] = len;
            flags[out] = f;
            out += 1;
        }
        batch.set_len(out);
        Ok(out)
    }
}

impl FrameRx for AfPacketRx {
    fn recv_batch(&mut self, batch: &mut RxBatch, timeout_ms: i32) -> io::Result<usize> {
        let got = self.recv_now(batch)?;
        if got > 0 {
            return Ok(got);
        }
        if !wait_readable(self.fd.as_raw_fd(), timeout_ms)? {
            batch.set_len(0);
            return Ok(0);
        }
        self.recv_now(batch)
    }
}

struct AfPacketTx {
    fd: OwnedFd,
    ifindex: i32,
    scratch: MmsgTx<libc::sockaddr_ll>,
    vnet: Vec<[u8; VNET_HDR_LEN]>,
}

impl FrameTx for AfPacketTx {
    fn send_batch(&mut self, frames: &[(&[u8], Offload)]) -> io::Result<usize> {
        if frames.is_empty() {
            return Ok(0);
        }
        let ifindex = self.ifindex;
        self.vnet.clear();
        self.vnet.extend(frames.iter().map(|(_, o)| o.emit()));
        self.scratch.send_prefixed(
            self.fd.as_raw_fd(),
            frames.iter().zip(&self.vnet).map(|((f, _), h)| {
                let et = f
                    .get(12..14)
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                (&h[..], *f, sockaddr(ifindex, et))
            }),
        )
    }
}
