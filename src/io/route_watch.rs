//! rtnetlink: notice address, route and link changes the moment the kernel
//! makes them, and ask the kernel which route (source address, interface,
//! next hop) it would use towards a destination — what `ip route get` shows.

use super::sys::wait_readable;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// rtnetlink multicast groups: links, IPv4 addresses, IPv4 routes.
const GROUPS: u32 =
    libc::RTMGRP_LINK as u32 | libc::RTMGRP_IPV4_IFADDR as u32 | libc::RTMGRP_IPV4_ROUTE as u32;

/// The kernel answers route queries at once; this only bounds a lost reply.
const QUERY_TIMEOUT_MS: i32 = 1000;

/// The kernel's route towards one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// Preferred source address.
    pub src: Ipv4Addr,
    /// Outgoing interface index.
    pub oif: u32,
    /// Next hop (`None`: on-link).
    pub via: Option<Ipv4Addr>,
}

/// A change feed plus a route query socket.
pub struct RouteWatch {
    events: Socket,
    query: Socket,
    buf: Vec<u8>,
}

impl RouteWatch {
    /// Subscribes to link, address and route changes.
    pub fn open() -> io::Result<RouteWatch> {
        let mut events = Socket::new(NETLINK_ROUTE)?;
        events.bind(&SocketAddr::new(0, GROUPS))?;
        events.set_non_blocking(true)?;
        let mut query = Socket::new(NETLINK_ROUTE)?;
        query.bind_auto()?;
        query.connect(&SocketAddr::new(0, 0))?;
        Ok(RouteWatch {
            events,
            query,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Waits up to `timeout_ms` for change notifications; true when at least
    /// one arrived (all pending ones are consumed: the caller re-reads state).
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<bool> {
        if !wait_readable(self.events.as_raw_fd(), timeout_ms)? {
            return Ok(false);
        }
        let mut any = false;
        loop {
            match self.events.recv(&mut &mut self.buf[..], 0) {
                Ok(0) => return Ok(any),
                Ok(_) => any = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                // The kernel dropped notifications (ENOBUFS): state changed, re-read it.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => any = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// The route towards `dst`; `None` when the kernel has none.
    pub fn route_to(&mut self, dst: Ipv4Addr) -> io::Result<Option<RouteInfo>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 32;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        let mut req = NetlinkMessage::new(
            header,
            NetlinkPayload::from(RouteNetlinkMessage::GetRoute(msg)),
        );
        req.finalize();
        let mut out = vec![0u8; req.buffer_len()];
        req.serialize(&mut out);
        self.query.send(&out, 0)?;
        if !wait_readable(self.query.as_raw_fd(), QUERY_TIMEOUT_MS)? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no rtnetlink reply",
            ));
        }
        let n = self.query.recv(&mut &mut self.buf[..], 0)?;
        let reply = self.buf.get(..n).unwrap_or_default();
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(reply)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        match parsed.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => Ok(route_info(&m)),
            // ENETUNREACH and friends: no route right now.
            NetlinkPayload::Error(_) => Ok(None),
            _ => Ok(None),
        }
    }
}

fn route_info(m: &RouteMessage) -> Option<RouteInfo> {
    let mut src = None;
    let mut oif = 0;
    let mut via = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::PrefSource(RouteAddress::Inet(a)) => src = Some(*a),
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(*g),
            _ => {}
        }
    }
    Some(RouteInfo {
        src: src?,
        oif,
        via,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_route_has_loopback_source() {
        let mut w = RouteWatch::open().unwrap();
        let r = w.route_to(Ipv4Addr::LOCALHOST).unwrap().unwrap();
        assert_eq!(r.src, Ipv4Addr::LOCALHOST);
        assert_ne!(r.oif, 0);
        assert_eq!(r.via, None);
    }
}
