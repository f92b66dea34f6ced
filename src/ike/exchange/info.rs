//! INFORMATIONAL (RFC 7296 §1.4): DELETE of CHILD_SAs and IKE SAs, and
//! liveness checks (an empty request).

use super::super::engine::{DownReason, Engine, Event, Fate};
use super::super::sa::IkeSa;
use crate::wire::ike::{Delete, ExchangeType, Payload, ProtocolId};

impl Engine {
    /// Answers an INFORMATIONAL request.
    pub(super) fn info_request(
        &mut self,
        _now: u64,
        sa: &mut IkeSa,
        id: u32,
        payloads: &[Payload],
    ) -> Fate {
        let exchange = ExchangeType::INFORMATIONAL;
        let mut ours = Vec::new();
        let mut delete_ike = false;
        for p in payloads {
            let Payload::Delete(d) = p else { continue };
            if d.protocol == ProtocolId::IKE {
                delete_ike = true;
            } else if d.protocol == ProtocolId::ESP && d.spi_size == 4 {
                for spi in &d.spis {
                    let Some(s) = spi
                        .get(..4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    else {
                        continue;
                    };
                    if let Some(i) = sa.children.iter().position(|c| c.outbound_spi == s) {
                        let c = sa.children.remove(i);
                        // RFC 7296 §1.4.1: answer with our half of each pair,
                        // unless we are deleting it ourselves already.
                        if c.state != super::super::sa::ChildState::Deleting {
                            ours.push(c.inbound_spi.to_be_bytes().to_vec());
                        }
                        self.child_gone(sa, c.inbound_spi, c.outbound_spi);
                    }
                }
            }
        }
        if delete_ike {
            self.respond(sa, exchange, id, &[]);
            return Fate::Down(if sa.rekeyed {
                DownReason::Rekeyed
            } else {
                DownReason::DeletedByPeer
            });
        }
        let out: Vec<Payload> = if ours.is_empty() {
            Vec::new()
        } else {
            vec![Payload::Delete(Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: ours,
            })]
        };
        self.respond(sa, exchange, id, &out);
        Fate::Keep
    }

    /// Reports a CHILD_SA removed and frees its SPI.
    pub(super) fn child_gone(&mut self, sa: &IkeSa, inbound_spi: u32, outbound_spi: u32) {
        self.spis.release(inbound_spi);
        if let Some(peer) = sa.peer {
            self.events.push_back(Event::ChildDown {
                peer,
                inbound_spi,
                outbound_spi,
            });
        }
    }

    /// Our DELETE of CHILD_SAs was answered (or they are gone anyway).
    pub(super) fn children_deleted(&mut self, sa: &mut IkeSa, spis: &[u32]) {
        for spi in spis {
            if let Some(i) = sa.children.iter().position(|c| c.inbound_spi == *spi) {
                let c = sa.children.remove(i);
                self.child_gone(sa, c.inbound_spi, c.outbound_spi);
            }
        }
    }
}
