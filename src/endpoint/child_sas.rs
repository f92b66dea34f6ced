//! CHILD_SAs that IKE negotiated, applied to the core's tunnels and SA
//! table (the IKE thread calls these for the engine's events).

use super::core::Core;
use super::tunnel::{Encap, Peer};
use crate::esp::{Hmac, Sa, SaParams, Transform};
use crate::ike::crypto::{EspKeys, EspSuite, Integ};
use crate::ike::engine::ChildInstall;
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

/// An ESP SA from negotiated keys: AES-GCM takes key‖salt, AES-CBC the
/// key and the HMAC key (RFC 7296 §2.17 order, split by `EspSuite::derive`).
fn esp_sa(spi: u32, suite: &EspSuite, keys: &EspKeys, replay_window: u32) -> Option<Sa> {
    let transform = match suite.integ {
        None => {
            let split = keys.encr.len().checked_sub(4)?;
            let (key, salt) = keys.encr.split_at(split);
            Transform::AesGcm {
                key,
                salt: salt.try_into().ok()?,
            }
        }
        Some(i) => Transform::AesCbcHmac {
            key: &keys.encr,
            hmac: match i {
                Integ::HmacSha256_128 => Hmac::Sha256_128,
                Integ::HmacSha384_192 => Hmac::Sha384_192,
                Integ::HmacSha512_256 => Hmac::Sha512_256,
            },
            hmac_key: &keys.integ,
        },
    };
    Sa::new(&SaParams {
        spi,
        transform,
        esn: suite.esn,
        replay_window,
    })
    .ok()
}

impl Core {
    /// Installs a CHILD_SA on tunnel `i`: inbound at once; outbound at once,
    /// or for a gateway's rekey once the peer uses the new pair or the old
    /// one is deleted.
    pub fn install_child(&self, i: usize, c: &ChildInstall) {
        let Some(t) = self.tunnels.get(i) else {
            return;
        };
        let window = self.replay_windows.get(i).copied().unwrap_or(128);
        let (Some(rx), Some(tx)) = (
            esp_sa(c.inbound_spi, &c.suite, &c.key_in, window),
            esp_sa(c.outbound_spi, &c.suite, &c.key_out, window),
        ) else {
            crate::warn_limited!(peer = %t.name, "negotiated ESP suite cannot be installed");
            return;
        };
        if !self.table.add_spi(c.inbound_spi, i) {
            crate::warn_limited!(peer = %t.name, spi = format!("{:#010x}", c.inbound_spi), "inbound SPI already in use");
            return;
        }
        t.rx.lock().sas.push(rx);
        let encap = if c.udp { Encap::Udp } else { Encap::Plain };
        t.set_peer_by_ike(Peer::new(c.remote, encap));
        t.keepalive.store(c.keepalive, Ordering::Relaxed);
        t.ike_derived.store(c.derived, Ordering::Relaxed);
        {
            let mut x = t.tx.lock();
            if c.defer_outbound && x.sa.is_some() {
                x.next = Some(tx);
                t.promote_on.store(c.inbound_spi, Ordering::Relaxed);
            } else {
                x.sa = Some(tx);
                x.next = None;
            }
        }
        tracing::info!(
            peer = %t.name,
            inbound_spi = format!("{:#010x}", c.inbound_spi),
            outbound_spi = format!("{:#010x}", c.outbound_spi),
            derived = c.derived,
            rekey = c.replaces.is_some(),
            encap = encap.label(),
            remote = %c.remote,
            "CHILD_SA installed"
        );
    }

    /// Removes a CHILD_SA from tunnel `i` (deleted or replaced by a rekey).
    pub fn remove_child(&self, i: usize, inbound_spi: u32, outbound_spi: u32) {
        let Some(t) = self.tunnels.get(i) else {
            return;
        };
        self.table.remove_spi(inbound_spi);
        t.rx.lock().sas.retain(|s| s.spi() != inbound_spi);
        let mut tx = t.tx.lock();
        if tx.sa.as_ref().is_some_and(|s| s.spi() == outbound_spi) {
            // The replaced SA is gone: its successor carries the traffic now.
            tx.sa = tx.next.take();
            t.promote_on.store(0, Ordering::Relaxed);
        } else if tx.next.as_ref().is_some_and(|s| s.spi() == outbound_spi) {
            tx.next = None;
        }
        tracing::info!(
            peer = %t.name,
            inbound_spi = format!("{inbound_spi:#010x}"),
            outbound_spi = format!("{outbound_spi:#010x}"),
            "CHILD_SA removed"
        );
    }

    /// IKE followed the peer to a new address (a NAT rebinding seen on an
    /// authenticated IKE request): ESP follows.
    pub fn peer_moved_by_ike(&self, i: usize, remote: SocketAddrV4, udp: bool) {
        if let Some(t) = self.tunnels.get(i) {
            let encap = if udp { Encap::Udp } else { Encap::Plain };
            t.set_peer_by_ike(Peer::new(remote, encap));
            tracing::info!(peer = %t.name, %remote, "peer moved (IKE)");
        }
    }
}
