//! Read-only listings of the ESP demultiplexer for operators (`spimux
//! router show esp`): recorded outbound SPIs and inbound bindings, copied
//! out one shard at a time and joined without holding any lock.

use super::super::table::listing::Filter;
use super::super::Millis;
use super::EspDemux;
use serde::Serialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// An outbound SPI an inside host sent to a responder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedSpi {
    /// Inside host.
    pub inside: Ipv4Addr,
    /// Responder (outside) address.
    pub responder: Ipv4Addr,
    /// The responder's inbound SPI the host sends with.
    pub spi: String,
    /// The inbound SPI bound to this one, once the SA paired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paired_with: Option<String>,
    /// Seconds until it expires unless traffic refreshes it.
    pub expires_in: u32,
}

/// An inbound SPI from a responder bound to an inside host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// Responder (outside) address.
    pub responder: Ipv4Addr,
    /// The inbound SPI.
    pub spi: String,
    /// Inside host it is forwarded to.
    pub inside: Ipv4Addr,
    /// The recorded outbound SPI it paired with.
    pub outbound_spi: String,
    /// Seconds until it expires unless traffic refreshes it.
    pub expires_in: u32,
}

fn hex(spi: u32) -> String {
    format!("{spi:#010x}")
}

impl EspDemux {
    /// Recorded SPIs and bindings `filter` keeps (`host`: inside host,
    /// `remote`: responder), sorted, at `now`.
    pub fn listing(&self, filter: &Filter, now: Millis) -> (Vec<RecordedSpi>, Vec<Binding>) {
        let now_s = (now / 1000) as u32;
        let keep = |inside: Ipv4Addr, responder: Ipv4Addr| {
            filter.host.is_none_or(|h| h == inside) && filter.remote.is_none_or(|r| r == responder)
        };
        let recorded: Vec<_> = self
            .recorded
            .iter()
            .filter(|e| keep(e.inside, e.key().0))
            .map(|e| (*e.key(), *e.value()))
            .collect();
        let bound: Vec<_> = self
            .bindings
            .iter()
            .filter(|e| keep(e.inside, e.key().0))
            .map(|e| (*e.key(), *e.value()))
            .collect();
        let paired: HashMap<(Ipv4Addr, u32), u32> = bound
            .iter()
            .map(|((r, spi_in), b)| ((*r, b.out_spi), *spi_in))
            .collect();
        let mut spis: Vec<RecordedSpi> = recorded
            .into_iter()
            .map(|((responder, spi), r)| RecordedSpi {
                inside: r.inside,
                responder,
                spi: hex(spi),
                paired_with: paired.get(&(responder, spi)).map(|s| hex(*s)),
                expires_in: r.expires.saturating_sub(now_s),
            })
            .collect();
        spis.sort_by(|a, b| (a.inside, a.responder, &a.spi).cmp(&(b.inside, b.responder, &b.spi)));
        let mut bindings: Vec<Binding> = bound
            .into_iter()
            .map(|((responder, spi), b)| Binding {
                responder,
                spi: hex(spi),
                inside: b.inside,
                outbound_spi: hex(b.out_spi),
                expires_in: b.expires.saturating_sub(now_s),
            })
            .collect();
        bindings.sort_by(|a, b| (a.responder, &a.spi).cmp(&(b.responder, &b.spi)));
        (spis, bindings)
    }
}
