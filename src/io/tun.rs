//! The TUN device that carries inner IPv4 packets between the kernel and an
//! ESP endpoint (tun-rs), plus the routes that send protected networks into it.

mod split;

use super::sys::wait_readable;
use ipnet::Ipv4Net;
use split::Segments;
use std::io;
use std::os::fd::AsRawFd;

/// Bytes to leave in front of every packet handed to `send_batch` (room for
/// the virtio-net header when offloads are on).
pub const HEADROOM: usize = tun_rs::VIRTIO_NET_HDR_LEN;

/// Largest packet segment read or written (inner MTU is at most 9000).
const SEGMENT: usize = 9216;

/// An opened TUN device (layer 3, no packet-information header).
///
/// With offloads on (IFF_VNET_HDR + TSO), the kernel hands over TCP
/// super-packets of up to 64 KiB that are split into MTU-sized segments here,
/// and segments written back are coalesced (GRO) before they enter the
/// kernel: far fewer syscalls and far less per-packet stack work.
pub struct Tun {
    dev: tun_rs::SyncDevice,
    name: String,
    offload: bool,
}

/// Reusable buffers for reading a batch of segments from the device.
pub struct RxSegments {
    original: Vec<u8>,
    seg: Segments,
    count: usize,
}

impl RxSegments {
    /// Room for `n` segments per read to start with; a super-packet of
    /// more segments gets more buffers.
    pub fn new(n: usize) -> Self {
        RxSegments {
            original: vec![0; HEADROOM + 65536],
            seg: Segments::new(n, SEGMENT),
            count: 0,
        }
    }

    /// The segments of the last read.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.seg
            .bufs
            .iter()
            .zip(&self.seg.sizes)
            .take(self.count)
            .filter_map(|(b, n)| b.get(..*n))
    }
}

/// Reusable buffers for writing a batch of packets to the device.
pub struct TxPackets {
    bufs: Vec<Vec<u8>>,
    count: usize,
    gro: tun_rs::GROTable,
}

impl TxPackets {
    /// Room for `n` packets per write.
    pub fn new(n: usize) -> Self {
        TxPackets {
            bufs: (0..n.max(1))
                .map(|_| Vec::with_capacity(HEADROOM + 65536))
                .collect(),
            count: 0,
            gro: tun_rs::GROTable::default(),
        }
    }

    /// True when no more packets fit.
    pub fn is_full(&self) -> bool {
        self.count == self.bufs.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Queues a copy of `pkt`; false when the batch is full.
    pub fn push(&mut self, pkt: &[u8]) -> bool {
        let Some(b) = self.bufs.get_mut(self.count) else {
            return false;
        };
        // Copy the packet behind the headroom: no re-zeroing of the 64 KiB
        // capacity that GRO may coalesce into.
        b.clear();
        b.resize(HEADROOM, 0);
        b.extend_from_slice(pkt);
        self.count += 1;
        true
    }
}

impl Tun {
    /// Creates device `name` with `address` and `mtu`, optionally with
    /// offloads, and brings it up.
    pub fn open(name: &str, address: Ipv4Net, mtu: u16, offload: bool) -> io::Result<Tun> {
        let dev = tun_rs::DeviceBuilder::new()
            .name(name)
            .ipv4(address.addr(), address.prefix_len(), None)
            .mtu(mtu)
            .offload(offload)
            .build_sync()?;
        let name = dev.name()?;
        // Reads carry a virtio-net header exactly when the device has one.
        let offload = dev.tcp_gso();
        Ok(Tun { dev, name, offload })
    }

    /// Waits up to `timeout_ms`, then reads one packet (split into segments
    /// when it is a super-packet); returns the number of segments, 0 on timeout.
    pub fn recv_segments(&self, rx: &mut RxSegments, timeout_ms: i32) -> io::Result<usize> {
        rx.count = 0;
        if !wait_readable(self.dev.as_raw_fd(), timeout_ms)? {
            return Ok(0);
        }
        match self.dev.recv(&mut rx.original) {
            Ok(n) => {
                let read = rx.original.get_mut(..n).unwrap_or_default();
                rx.count = if self.offload {
                    split::split(read, &mut rx.seg)?
                } else {
                    split::single(read, &mut rx.seg)
                };
                Ok(rx.count)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the queued packets (coalesced when offloads are on) and empties the queue.
    pub fn send_packets(&self, tx: &mut TxPackets) -> io::Result<usize> {
        let n = tx.count;
        tx.count = 0;
        let bufs = tx.bufs.get_mut(..n).unwrap_or_default();
        self.dev
            .send_multiple(&mut tx.gro, bufs, HEADROOM)
            .map(|_| n)
    }

    /// Device name as the kernel knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Routes `net` into this device (existing identical routes are kept).
    pub fn add_route(&self, net: Ipv4Net) -> io::Result<()> {
        add_route(&self.name, net)
    }
}

/// `struct rtentry` of `<linux/route.h>` (the libc crate has it for musl only).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn sockaddr_v4(a: std::net::Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Adds a device route for `net` via the legacy SIOCADDRT ioctl.
fn add_route(dev: &str, net: Ipv4Net) -> io::Result<()> {
    let mut name = std::ffi::CString::new(dev)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in device name"))?
        .into_bytes_with_nul();
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr_v4(net.network()),
        rt_gateway: sockaddr_v4(std::net::Ipv4Addr::UNSPECIFIED),
        rt_genmask: sockaddr_v4(net.netmask()),
        rt_flags: libc::RTF_UP
            | if net.prefix_len() == 32 {
                libc::RTF_HOST
            } else {
                0
            },
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: name.as_mut_ptr().cast(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: plain datagram socket, closed by OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket().
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: rt is a valid rtentry whose rt_dev points at `name`, alive for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCADDRT, &mut rt as *mut RtEntry) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}
