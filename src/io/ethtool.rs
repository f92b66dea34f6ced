//! Turns off receive/transmit offloads that would hand userspace frames
//! larger than the MTU (GRO, LRO) or with unfinished checksums (TX checksum,
//! TSO, GSO). Uses the legacy SIOCETHTOOL value commands.

use std::io;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Runs one ETHTOOL value command; returns the value the kernel left in it.
fn value(fd: libc::c_int, ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut v = EthtoolValue { cmd, data };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: (&mut v as *mut EthtoolValue).cast(),
        _pad: [0; 16],
    };
    for (d, s) in req
        .name
        .iter_mut()
        .zip(ifname.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    // SAFETY: req and v outlive the call; the kernel reads IFNAMSIZ name bytes and the value struct.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v.data)
}

fn set(fd: libc::c_int, ifname: &str, cmd: u32, on: bool) -> io::Result<()> {
    value(fd, ifname, cmd, u32::from(on)).map(|_| ())
}

/// The "get" command of each "set" command (one below it in ethtool.h).
fn get(fd: libc::c_int, ifname: &str, set_cmd: u32) -> io::Result<bool> {
    value(fd, ifname, set_cmd - 1, 0).map(|v| v != 0)
}

/// Which offloads were switched off and which the driver refused.
#[derive(Debug, Default)]
pub struct OffloadReport {
    /// Features now off.
    pub disabled: Vec<&'static str>,
    /// Features the driver would not change (often: not supported at all).
    pub refused: Vec<(&'static str, String)>,
    /// (set command, was on) for every feature switched off, to restore.
    previous: Vec<(u32, bool)>,
}

/// Disables GRO, GSO, TSO, scatter-gather and TX checksum offload on `ifname`.
pub fn disable_offloads(ifname: &str) -> io::Result<OffloadReport> {
    // SAFETY: plain socket creation; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut report = OffloadReport::default();
    for (name, cmd) in [
        ("gro", ETHTOOL_SGRO),
        ("gso", ETHTOOL_SGSO),
        ("tso", ETHTOOL_STSO),
        ("sg", ETHTOOL_SSG),
        ("tx-checksum", ETHTOOL_STXCSUM),
    ] {
        let was = get(fd, ifname, cmd).unwrap_or(false);
        match set(fd, ifname, cmd, false) {
            Ok(()) => {
                report.disabled.push(name);
                report.previous.push((cmd, was));
            }
            Err(e) => report.refused.push((name, e.to_string())),
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    Ok(report)
}

/// Puts back what `disable_offloads` changed on `ifname` (a start-up that
/// failed after changing offloads leaves the interface as it found it), in
/// reverse order because some features depend on others (TSO needs SG).
pub fn restore_offloads(ifname: &str, report: &OffloadReport) -> io::Result<()> {
    // SAFETY: plain socket creation; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut result = Ok(());
    for (cmd, on) in report.previous.iter().rev() {
        if *on {
            if let Err(e) = set(fd, ifname, *cmd, true) {
                result = Err(e);
            }
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}
