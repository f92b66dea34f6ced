//! Interface facts (index, MAC, MTU) via pnet's interface list.

use crate::wire::ethernet::Mac;
use std::io;

/// What the router needs to know about a data interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceInfo {
    /// Kernel name.
    pub name: String,
    /// ifindex.
    pub index: u32,
    /// Hardware address.
    pub mac: Mac,
    /// Interface is administratively up.
    pub up: bool,
    /// Largest IP packet the interface sends (bytes).
    pub mtu: u32,
}

/// The MTU of `name` (SIOCGIFMTU).
fn mtu(name: &str) -> io::Result<u32> {
    #[repr(C)]
    struct IfReqMtu {
        name: [libc::c_char; libc::IFNAMSIZ],
        mtu: libc::c_int,
        _pad: [u8; 20],
    }
    let mut req = IfReqMtu {
        name: [0; libc::IFNAMSIZ],
        mtu: 0,
        _pad: [0; 20],
    };
    for (d, s) in req
        .name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    // SAFETY: plain socket creation; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: req outlives the call and is as large as a struct ifreq.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU as _, &mut req as *mut IfReqMtu) };
    let e = io::Error::last_os_error();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(e);
    }
    Ok(req.mtu.max(0) as u32)
}

/// Looks up `name`; a clear error when it does not exist or has no MAC.
pub fn lookup(name: &str) -> io::Result<IfaceInfo> {
    let i = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {name:?} not found"),
            )
        })?;
    let mac = i
        .mac
        .map(|m| Mac([m.0, m.1, m.2, m.3, m.4, m.5]))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface {name:?} has no MAC address"),
            )
        })?;
    Ok(IfaceInfo {
        name: i.name.clone(),
        index: i.index,
        mac,
        up: i.is_up(),
        mtu: mtu(name)?,
    })
}
