//! The TUN device that carries inner IPv4 packets between the kernel and an
//! ESP endpoint (tun-rs), plus the routes that send protected networks into it.

use super::sys::wait_readable;
use ipnet::Ipv4Net;
use std::io;
use std::os::fd::AsRawFd;

/// An opened TUN device (layer 3, no packet-information header).
pub struct Tun {
    dev: tun_rs::SyncDevice,
    name: String,
}

impl Tun {
    /// Creates device `name` with `address` and `mtu`, and brings it up.
    pub fn open(name: &str, address: Ipv4Net, mtu: u16) -> io::Result<Tun> {
        let dev = tun_rs::DeviceBuilder::new()
            .name(name)
            .ipv4(address.addr(), address.prefix_len(), None)
            .mtu(mtu)
            .build_sync()?;
        let name = dev.name()?;
        Ok(Tun { dev, name })
    }

    /// Device name as the kernel knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `timeout_ms` and reads one packet; `Ok(None)` on timeout.
    pub fn recv(&self, buf: &mut [u8], timeout_ms: i32) -> io::Result<Option<usize>> {
        if !wait_readable(self.dev.as_raw_fd(), timeout_ms)? {
            return Ok(None);
        }
        match self.dev.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one packet to the kernel.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        self.dev.send(pkt)
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
