//! SA payload negotiation (RFC 7296 §3.3): our suites as proposals, and
//! choosing one suite from a peer's proposals.

use super::crypto::{Encr, EspSuite, Group, IkeSuite, Integ, Prf};
use crate::wire::ike::{transform_id, Proposal, ProtocolId, Transform, TransformType};

fn transform(ty: TransformType, id: u16, key_length: Option<u16>) -> Transform {
    Transform {
        ty,
        id,
        key_length,
        unknown_attribute: false,
    }
}

fn encr_transform(e: Encr) -> Transform {
    transform(TransformType::ENCR, e.id(), Some(e.key_bits()))
}

/// Our IKE suites as proposals numbered from 1 (one suite each).
pub fn ike_offer(suites: &[IkeSuite], spi: Option<u64>) -> Vec<Proposal> {
    suites
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut t = vec![encr_transform(s.encr)];
            t.push(transform(TransformType::PRF, s.prf.id(), None));
            if let Some(i) = s.integ {
                t.push(transform(TransformType::INTEG, i.id(), None));
            }
            t.push(transform(TransformType::KE, s.group.id(), None));
            Proposal {
                number: u8::try_from(i + 1).unwrap_or(u8::MAX),
                protocol: ProtocolId::IKE,
                spi: spi.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(),
                transforms: t,
            }
        })
        .collect()
}

/// Our ESP suites as proposals carrying our inbound `spi`; `pfs` adds a KE
/// transform (CREATE_CHILD_SA with a new key exchange).
pub fn esp_offer(suites: &[EspSuite], spi: u32, pfs: Option<Group>) -> Vec<Proposal> {
    suites
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut t = vec![encr_transform(s.encr)];
            if let Some(i) = s.integ {
                t.push(transform(TransformType::INTEG, i.id(), None));
            }
            if let Some(g) = pfs {
                t.push(transform(TransformType::KE, g.id(), None));
            }
            let esn = if s.esn {
                transform_id::ESN_YES
            } else {
                transform_id::ESN_NO
            };
            t.push(transform(TransformType::ESN, esn, None));
            Proposal {
                number: u8::try_from(i + 1).unwrap_or(u8::MAX),
                protocol: ProtocolId::ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: t,
            }
        })
        .collect()
}

/// Transforms of one type in a proposal that carry no unknown attribute.
fn of_type(p: &Proposal, ty: TransformType) -> impl Iterator<Item = &Transform> {
    p.transforms
        .iter()
        .filter(move |t| t.ty == ty && !t.unknown_attribute)
}

fn offers_encr(p: &Proposal, e: Encr) -> bool {
    of_type(p, TransformType::ENCR).any(|t| Encr::from_transform(t.id, t.key_length) == Some(e))
}

/// AEAD suites need no INTEG transform (or only INTEG NONE); others need ours.
fn offers_integ(p: &Proposal, i: Option<Integ>) -> bool {
    match i {
        Some(i) => of_type(p, TransformType::INTEG).any(|t| t.id == i.id()),
        None => of_type(p, TransformType::INTEG).all(|t| t.id == 0),
    }
}

fn offers_prf(p: &Proposal, f: Prf) -> bool {
    of_type(p, TransformType::PRF).any(|t| t.id == f.id())
}

fn offered_groups(p: &Proposal) -> impl Iterator<Item = u16> + '_ {
    of_type(p, TransformType::KE).map(|t| t.id)
}

/// A chosen IKE suite, the peer's proposal it came from, and whether the
/// peer's KE payload already uses its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeChoice {
    /// The suite both sides will use.
    pub suite: IkeSuite,
    /// The peer's proposal, reduced to the chosen transforms (for our reply).
    pub reply: Proposal,
}

/// Chooses the first of the peer's proposals (their preference order) that
/// one of our suites satisfies, preferring one whose group is `ke_group`
/// (the group of the peer's KE payload) so no INVALID_KE_PAYLOAD round trip
/// is needed. `None` when nothing matches (NO_PROPOSAL_CHOSEN).
pub fn choose_ike(
    offers: &[Proposal],
    ours: &[IkeSuite],
    ke_group: Option<u16>,
) -> Option<IkeChoice> {
    let matches = || {
        offers
            .iter()
            .filter(|p| p.protocol == ProtocolId::IKE)
            .flat_map(move |p| {
                ours.iter().filter_map(move |s| {
                    let ok = offers_encr(p, s.encr)
                        && offers_integ(p, s.integ)
                        && offers_prf(p, s.prf)
                        && offered_groups(p).any(|g| g == s.group.id());
                    ok.then_some((p, *s))
                })
            })
    };
    let (p, suite) = matches()
        .find(|(_, s)| Some(s.group.id()) == ke_group)
        .or_else(|| matches().next())?;
    let mut t = vec![encr_transform(suite.encr)];
    t.push(transform(TransformType::PRF, suite.prf.id(), None));
    if let Some(i) = suite.integ {
        t.push(transform(TransformType::INTEG, i.id(), None));
    }
    t.push(transform(TransformType::KE, suite.group.id(), None));
    Some(IkeChoice {
        suite,
        reply: Proposal {
            number: p.number,
            protocol: ProtocolId::IKE,
            spi: p.spi.clone(),
            transforms: t,
        },
    })
}

/// A chosen ESP suite with the peer's SPI and the key exchange group, if
/// the proposal asked for one (PFS in CREATE_CHILD_SA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspChoice {
    /// The suite (ESN as the peer offered it).
    pub suite: EspSuite,
    /// The peer's inbound SPI.
    pub peer_spi: u32,
    /// Proposal number to answer with.
    pub number: u8,
    /// Key exchange group, when the proposal has one other than NONE.
    pub group: Option<Group>,
}

/// Chooses an ESP proposal. ESN follows the peer's offer (our preference
/// when it offers both). `allow_ke`: key exchange groups acceptable for PFS
/// (empty in IKE_AUTH, where a KE transform is ignored per RFC 7296 §1.2).
pub fn choose_esp(offers: &[Proposal], ours: &[EspSuite], allow_ke: &[Group]) -> Option<EspChoice> {
    for p in offers.iter().filter(|p| p.protocol == ProtocolId::ESP) {
        let Some(peer_spi) = p.spi_u32() else {
            continue;
        };
        if peer_spi < crate::spi::MIN_SPI {
            continue;
        }
        // KE transform id 0 is NONE: no key exchange.
        let group = if allow_ke.is_empty() {
            Some(None)
        } else {
            let groups: Vec<u16> = offered_groups(p).collect();
            if groups.is_empty() || groups.contains(&0) {
                Some(None)
            } else {
                allow_ke
                    .iter()
                    .find(|g| groups.contains(&g.id()))
                    .map(|g| Some(*g))
            }
        };
        let Some(group) = group else { continue };
        for s in ours {
            if !offers_encr(p, s.encr) || !offers_integ(p, s.integ) {
                continue;
            }
            let esn: Vec<u16> = of_type(p, TransformType::ESN).map(|t| t.id).collect();
            let pick = |v: bool| {
                let id = if v {
                    transform_id::ESN_YES
                } else {
                    transform_id::ESN_NO
                };
                esn.contains(&id)
            };
            // Only an ESN setting we were configured with: no ESN transform
            // offered means none (RFC 7296 §3.3.2).
            let acceptable = if esn.is_empty() { !s.esn } else { pick(s.esn) };
            if acceptable {
                return Some(EspChoice {
                    suite: *s,
                    peer_spi,
                    number: p.number,
                    group,
                });
            }
        }
    }
    None
}

/// Our reply proposal for an ESP choice, carrying our inbound SPI.
pub fn esp_reply(c: &EspChoice, our_spi: u32) -> Proposal {
    let mut t = vec![encr_transform(c.suite.encr)];
    if let Some(i) = c.suite.integ {
        t.push(transform(TransformType::INTEG, i.id(), None));
    }
    if let Some(g) = c.group {
        t.push(transform(TransformType::KE, g.id(), None));
    }
    let esn = if c.suite.esn {
        transform_id::ESN_YES
    } else {
        transform_id::ESN_NO
    };
    t.push(transform(TransformType::ESN, esn, None));
    Proposal {
        number: c.number,
        protocol: ProtocolId::ESP,
        spi: our_spi.to_be_bytes().to_vec(),
        transforms: t,
    }
}

/// Reads the suite back from the single proposal a responder returned; it
/// must be one we offered.
pub fn accepted_ike(reply: &[Proposal], ours: &[IkeSuite]) -> Option<IkeSuite> {
    let [p] = reply else { return None };
    let c = choose_ike(std::slice::from_ref(p), ours, None)?;
    let exact = |ty| of_type(p, ty).count() == 1;
    (exact(TransformType::ENCR) && exact(TransformType::PRF) && exact(TransformType::KE))
        .then_some(c.suite)
}

/// Reads the ESP suite and the responder's SPI from its single proposal.
pub fn accepted_esp(
    reply: &[Proposal],
    ours: &[EspSuite],
    pfs: Option<Group>,
) -> Option<EspChoice> {
    let [p] = reply else { return None };
    let allow: Vec<Group> = pfs.into_iter().collect();
    let c = choose_esp(std::slice::from_ref(p), ours, &allow)?;
    (c.group == pfs && of_type(p, TransformType::ENCR).count() == 1).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcm() -> IkeSuite {
        IkeSuite {
            encr: Encr::AesGcm16 { key_bits: 128 },
            integ: None,
            prf: Prf::HmacSha256,
            group: Group::Curve25519,
        }
    }

    fn cbc() -> IkeSuite {
        IkeSuite {
            encr: Encr::AesCbc { key_bits: 256 },
            integ: Some(Integ::HmacSha256_128),
            prf: Prf::HmacSha256,
            group: Group::Ecp256,
        }
    }

    #[test]
    fn ike_choice_prefers_the_ke_group_already_sent() {
        let offers = ike_offer(&[gcm(), cbc()], None);
        let c = choose_ike(&offers, &[cbc(), gcm()], Some(19)).unwrap();
        assert_eq!(c.suite, cbc());
        assert_eq!(c.reply.number, 2);
        let c = choose_ike(&offers, &[cbc(), gcm()], Some(31)).unwrap();
        assert_eq!(c.suite, gcm());
        // A group nobody sent: the first match, and the caller asks for its group.
        let c = choose_ike(&offers, &[cbc()], Some(31)).unwrap();
        assert_eq!(c.suite.group, Group::Ecp256);
        assert!(choose_ike(&ike_offer(&[gcm()], None), &[cbc()], None).is_none());
        assert_eq!(accepted_ike(&[c.reply], &[cbc()]), Some(cbc()));
    }

    #[test]
    fn transforms_with_unknown_attributes_are_not_chosen() {
        let mut offers = ike_offer(&[gcm()], None);
        for t in &mut offers[0].transforms {
            t.unknown_attribute = true;
        }
        assert!(choose_ike(&offers, &[gcm()], Some(31)).is_none());
    }

    #[test]
    fn esp_choice_follows_the_offered_esn_and_pfs() {
        let ours = EspSuite {
            encr: Encr::AesGcm16 { key_bits: 128 },
            integ: None,
            esn: true,
        };
        let mut plain = ours;
        plain.esn = false;
        let offers = esp_offer(&[plain], 0x1234_5678, Some(Group::Curve25519));
        // ESN configured alone is not silently traded for no ESN.
        assert!(choose_esp(&offers, &[ours], &[Group::Curve25519]).is_none());
        let ours = [ours, plain];
        let c = choose_esp(&offers, &ours, &[Group::Curve25519]).unwrap();
        assert!(!c.suite.esn);
        assert_eq!(c.peer_spi, 0x1234_5678);
        assert_eq!(c.group, Some(Group::Curve25519));
        assert!(choose_esp(&offers, &ours, &[Group::Ecp256]).is_none());
        // In IKE_AUTH a KE transform is ignored.
        assert_eq!(choose_esp(&offers, &ours, &[]).unwrap().group, None);
        let reply = esp_reply(&c, 0xabcd_0001);
        let back = accepted_esp(&[reply], &ours, Some(Group::Curve25519)).unwrap();
        assert_eq!(back.peer_spi, 0xabcd_0001);
        // Reserved SPIs are never accepted.
        let offers = esp_offer(&[plain], 5, None);
        assert!(choose_esp(&offers, &ours, &[]).is_none());
    }
}
