//! What one tunnel looks like from outside, copied under its two locks
//! once: for `spimux responder|client show tunnels|child` and the
//! per-peer metrics alike.

use super::tunnel::Tunnel;
use serde::Serialize;
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

/// One ESP SA installed in the datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SaSeq {
    /// Its SPI.
    pub spi: u32,
    /// Highest sequence number received (inbound) or last sent (outbound).
    pub seq: u64,
}

/// A tunnel's state and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelStatus {
    /// Peer name.
    pub peer: String,
    /// `ike` or `manual`.
    pub keying: &'static str,
    /// Inner networks of the peer.
    pub inner: Vec<ipnet::Ipv4Net>,
    /// The peer's outer address (`None`: not known yet; port 0 with plain ESP).
    #[serde(skip)]
    pub remote: Option<SocketAddrV4>,
    /// As shown: `ip:port` with UDP encapsulation, the address alone with
    /// plain ESP (which has no port).
    #[serde(rename = "remote")]
    pub shown_remote: Option<String>,
    /// Encapsulation toward it: `esp`, `udp`, `none` while unknown.
    pub encap: &'static str,
    /// The address comes from the configuration (never learned or moved).
    pub static_peer: bool,
    /// A registration moved the peer and the new address is not proven yet.
    pub unproven: bool,
    /// Our inbound SPI in use (the newest inbound SA), hex.
    pub local_spi: String,
    /// The peer's SPI we send with, hex.
    pub remote_spi: String,
    /// Our inbound SPI was derived from the peer's (SPI-hash relation).
    pub derived: bool,
    /// Inner packets sealed and sent.
    pub tx_packets: u64,
    /// Inner bytes sealed and sent.
    pub tx_bytes: u64,
    /// ESP packets authenticated and delivered.
    pub rx_packets: u64,
    /// Inner bytes delivered.
    pub rx_bytes: u64,
    /// Packets whose ICV did not verify.
    pub auth_failures: u64,
    /// Packets refused by the anti-replay window.
    pub replay_drops: u64,
    /// Authenticated packets from an address other than the peer's.
    pub unexpected_source: u64,
    /// Packets not sent to an unproven address (budget spent).
    pub unproven_capped: u64,
    /// Inbound SAs (two while a rekey overlaps).
    #[serde(skip)]
    pub inbound: Vec<SaSeq>,
    /// Outbound SA in use, then one waiting to take over after a rekey.
    #[serde(skip)]
    pub outbound: Vec<SaSeq>,
}

impl TunnelStatus {
    /// Highest sequence number received on any inbound SA.
    pub fn rx_seq(&self) -> u64 {
        self.inbound.iter().map(|s| s.seq).max().unwrap_or(0)
    }

    /// Last sequence number sent on the outbound SA in use.
    pub fn tx_seq(&self) -> u64 {
        self.outbound.first().map_or(0, |s| s.seq)
    }
}

impl Tunnel {
    /// Copies the tunnel's state (each lock taken once, briefly).
    pub fn status(&self) -> TunnelStatus {
        let peer = *self.peer.read();
        let (tx_packets, tx_bytes, unproven_capped, outbound) = {
            let tx = self.tx.lock();
            let sas = tx.sa.iter().chain(tx.next.iter());
            let outbound = sas
                .map(|s| SaSeq {
                    spi: s.spi(),
                    seq: s.tx_seq(),
                })
                .collect::<Vec<_>>();
            (tx.packets, tx.bytes, tx.unproven_capped, outbound)
        };
        let rx = self.rx.lock();
        let inbound: Vec<SaSeq> = rx
            .sas
            .iter()
            .map(|s| SaSeq {
                spi: s.spi(),
                seq: s.rx_seq(),
            })
            .collect();
        // IKE tunnels: the newest inbound SA and the outbound SA in use.
        let local = inbound.last().map_or(self.local_spi, |s| s.spi);
        let remote = outbound.first().map_or(self.remote_spi, |s| s.spi);
        TunnelStatus {
            peer: self.name.clone(),
            keying: if self.ike { "ike" } else { "manual" },
            inner: self.allowed.0.clone(),
            remote: peer.map(|p| p.addr),
            shown_remote: peer.map(|p| match p.encap {
                super::tunnel::Encap::Plain => p.addr.ip().to_string(),
                _ => p.addr.to_string(),
            }),
            encap: peer.map_or("none", |p| p.encap.label()),
            static_peer: self.static_peer,
            unproven: self.proving.load(Ordering::Relaxed),
            local_spi: format!("{local:#010x}"),
            remote_spi: format!("{remote:#010x}"),
            derived: self.derived || self.ike_derived.load(Ordering::Relaxed),
            tx_packets,
            tx_bytes,
            rx_packets: rx.packets,
            rx_bytes: rx.bytes,
            auth_failures: rx.auth_failures,
            replay_drops: rx.replay_drops,
            unexpected_source: rx.unexpected_source,
            unproven_capped,
            inbound,
            outbound,
        }
    }
}
