//! The gateway's registration check on arbitrary request sequences.
//! Invariants: the reply answers the request it was built for; only an
//! accepted request moves the peer and changes the registration; the last
//! accepted identification never goes back; a refused request leaves the
//! registration as it was (a refused copy must not consume the
//! identification); a stale reply names the last accepted identification.

#![no_main]

use core::net::Ipv4Addr;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spimux::mobility::gateway::{check, Outcome, Policy, Registration};
use spimux::mobility::{Code, Encap, EncapSet, OuterHeader, Rreq};

/// Few addresses, so that requests often agree.
fn addr(u: &mut Unstructured) -> Result<Ipv4Addr> {
    Ok(Ipv4Addr::new(10, 0, 0, u.int_in_range(1u8..=4)?))
}

fn outer(u: &mut Unstructured) -> Result<OuterHeader> {
    Ok(OuterHeader {
        encap: *u.choose(&Encap::ALL)?,
        src: addr(u)?,
        dst: addr(u)?,
        sport: *u.choose(&[0, 4500, 1024])?,
        dport: *u.choose(&[0, 4500])?,
    })
}

fn run(u: &mut Unstructured) -> Result<()> {
    let policy = Policy {
        keepalive_secs: u.arbitrary()?,
        allow_plain: u.arbitrary()?,
    };
    let owned = addr(u)?;
    let mut reg = Registration::default();
    let mut id = 0u64;
    while !u.is_empty() {
        // Identifications mostly near the last one, sometimes anything.
        id = match u.int_in_range(0u8..=3)? {
            0 => id.saturating_add(1),
            1 => id.saturating_sub(1),
            2 => id,
            _ => u.arbitrary()?,
        };
        let sent = outer(u)?;
        // Usually what was sent arrives, sometimes translated.
        let observed = if u.ratio(2u8, 3)? { sent } else { outer(u)? };
        let req = Rreq {
            id,
            inner: addr(u)?,
            sent,
            supported: EncapSet(u.arbitrary::<u8>()? & 7),
        };
        let inner_src = if u.arbitrary()? { req.inner } else { addr(u)? };
        let before = reg;
        let d = check(&mut reg, &req, observed, inner_src, |a| a == owned, policy);
        let r = d.reply;
        assert_eq!((r.id, r.observed), (req.id, observed));
        let accepted = matches!(d.outcome, Outcome::Accepted | Outcome::AcceptedCopy);
        assert_eq!(accepted, d.moved.is_some(), "{:?}", d.outcome);
        assert_eq!(accepted, r.code == Code::Accepted);
        assert_eq!(r.use_encap, d.moved.map(|m| m.encap));
        if let Some(m) = d.moved {
            assert_eq!(
                m.addr, observed.src,
                "moved elsewhere than the request came from"
            );
            assert!(req.supported.contains(observed.encap));
            assert!(m.encap != Encap::Plain || policy.allow_plain);
            assert_eq!(
                r.keepalive_secs != 0,
                m.encap == Encap::Udp && policy.keepalive_secs != 0
            );
        } else {
            assert_eq!(r.keepalive_secs, 0);
        }
        if !accepted {
            assert_eq!(reg, before, "{:?} changed the registration", d.outcome);
        }
        match d.outcome {
            Outcome::Accepted => {
                assert!(before.last_id.is_none_or(|l| l < id));
                assert_eq!(reg.last_id, Some(id));
            }
            Outcome::AcceptedCopy => {
                assert_eq!((before.last_id, reg.last_id), (Some(id), Some(id)))
            }
            Outcome::Stale => assert_eq!(r.last_id, before.last_id),
            Outcome::InnerMismatch => assert!(req.inner != inner_src || req.inner != owned),
            Outcome::EncapRefused | Outcome::BadRequest => {}
            // Decided by the caller for configured peers (`refuse_static`), never by `check`.
            Outcome::StaticPeer => panic!("check refused a registration as static"),
        }
        if !matches!(d.outcome, Outcome::Stale) {
            assert_eq!(r.last_id, None);
        }
        assert!(reg.last_id >= before.last_id, "identification went back");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
