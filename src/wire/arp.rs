//! ARP for IPv4 over Ethernet (RFC 826).

use super::ethernet::Mac;
use super::{be16, Result, WireError};
use core::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Who-has.
    Request,
    /// Is-at.
    Reply,
}

/// Checked view of an Ethernet/IPv4 ARP packet. Other hardware or protocol
/// types are refused as `Malformed` because spimux has no use for them.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks length, hardware type 1, protocol 0x0800, address sizes 6/4 and the opcode.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if be16(b, 0) != 1 || be16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(WireError::Malformed);
        }
        if !matches!(be16(b, 6), 1 | 2) {
            return Err(WireError::Malformed);
        }
        Ok(Packet { buf })
    }

    /// Request or reply.
    pub fn operation(&self) -> Operation {
        if be16(self.buf.as_ref(), 6) == 1 {
            Operation::Request
        } else {
            Operation::Reply
        }
    }

    fn mac_at(&self, at: usize) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[at..at + 6]);
        Mac(m)
    }

    fn ip_at(&self, at: usize) -> Ipv4Addr {
        let b = self.buf.as_ref();
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> Mac {
        self.mac_at(8)
    }
    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        self.ip_at(14)
    }
    /// Target hardware address.
    pub fn target_mac(&self) -> Mac {
        self.mac_at(18)
    }
    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        self.ip_at(24)
    }
}

/// High-level representation of an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Request or reply.
    pub operation: Operation,
    /// Sender MAC.
    pub sender_mac: Mac,
    /// Sender IPv4.
    pub sender_ip: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_mac: Mac,
    /// Target IPv4.
    pub target_ip: Ipv4Addr,
}

impl Repr {
    /// Parses a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        }
    }

    /// Writes the 28-byte packet into `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b = buf.get_mut(..PACKET_LEN).ok_or(WireError::Truncated)?;
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        b[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        let op: u16 = match self.operation {
            Operation::Request => 1,
            Operation::Reply => 2,
        };
        b[6..8].copy_from_slice(&op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 10.6.1.1 tell 10.6.1.2 (captured from the testbed).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 10, 6,
        1, 2, 0, 0, 0, 0, 0, 0, 10, 6, 1, 1,
    ];

    #[test]
    fn parses_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        let r = Repr::parse(&p);
        assert_eq!(r.operation, Operation::Request);
        assert_eq!(r.sender_ip, Ipv4Addr::new(10, 6, 1, 2));
        assert_eq!(r.target_ip, Ipv4Addr::new(10, 6, 1, 1));
        assert_eq!(r.sender_mac, Mac([2, 0, 0, 0, 0, 2]));
        assert_eq!(r.target_mac, Mac::ZERO);
    }

    #[test]
    fn round_trips() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        let mut out = [0u8; 28];
        Repr::parse(&p).emit(&mut out).unwrap();
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            WireError::Truncated
        );
        let mut bad = REQUEST;
        bad[5] = 16; // IPv6-sized protocol address
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut bad_op = REQUEST;
        bad_op[7] = 9;
        assert_eq!(
            Packet::new_checked(&bad_op[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut out = [0u8; 10];
        let r = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap());
        assert_eq!(r.emit(&mut out).unwrap_err(), WireError::Truncated);
    }
}
