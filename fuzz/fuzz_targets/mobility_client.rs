//! The client's registration state machine on arbitrary path changes,
//! replies and time steps, with any configuration the endpoint's validation
//! lets through (1 <= initial_rto_ms <= max_rto_ms). Invariants: every
//! request carries the configured inner address and gateway and the current
//! path's source; each transmission has a fresh identification above every
//! earlier one; a deadline exists exactly while registering; nothing happens
//! before the deadline; `encap()` is what was last announced.

#![no_main]

use core::net::Ipv4Addr;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spimux::mobility::client::{Client, ClientConfig, Event, Path};
use spimux::mobility::{Code, Encap, NatFields, OuterHeader, Rrep};

const CODES: [Code; 5] = [
    Code::Accepted,
    Code::Stale,
    Code::InnerMismatch,
    Code::EncapRefused,
    Code::BadRequest,
];

fn big(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u64::MAX - u64::from(u.arbitrary::<u8>()?),
        1 => u.arbitrary()?,
        _ => u64::from(u.arbitrary::<u16>()?),
    })
}

fn run(u: &mut Unstructured) -> Result<()> {
    let initial_rto_ms = big(u)?.max(1);
    let cfg = ClientConfig {
        inner: Ipv4Addr::new(10, 98, 0, 5),
        gateway: Ipv4Addr::new(198, 51, 100, 69),
        udp_port: 4500,
        offer_plain: u.arbitrary()?,
        initial_rto_ms,
        max_rto_ms: initial_rto_ms.saturating_add(big(u)?),
        min_probe_wait_ms: big(u)?,
    };
    // The endpoint starts identifications at the clock in µs.
    let mut c = Client::new(cfg, u.int_in_range(0u64..=1 << 62)?);
    let mut now = 0u64;
    let mut last_sent: Option<OuterHeader> = None;
    let mut last_id: Option<u64> = None;
    let mut out = Vec::new();
    while !u.is_empty() {
        out.clear();
        now = now.saturating_add(big(u)? >> u.int_in_range(0u32..=63)?);
        let deadline = c.deadline();
        match u.int_in_range(0u8..=3)? {
            0 => {
                let path = u.arbitrary::<bool>()?.then(|| Path {
                    src: Ipv4Addr::new(10, 77, 0, 1 + u.arbitrary::<u8>().unwrap_or(0) % 3),
                    oif: 0,
                    via: None,
                });
                c.on_path(now, path, &mut out);
                assert_eq!(c.path(), path);
                if path.is_none() {
                    assert!(!c.registering());
                }
            }
            1 | 2 => {
                let id = match (u.int_in_range(0u8..=3)?, last_id) {
                    (0..=2, Some(id)) => id,
                    _ => u.arbitrary()?,
                };
                let observed = match last_sent {
                    Some(h) if u.arbitrary()? => h,
                    _ => OuterHeader {
                        encap: *u.choose(&Encap::ALL)?,
                        src: Ipv4Addr::from(u.arbitrary::<u32>()?),
                        dst: cfg.gateway,
                        sport: u.arbitrary()?,
                        dport: 4500,
                    },
                };
                let rrep = Rrep {
                    id,
                    code: *u.choose(&CODES)?,
                    observed,
                    nat: NatFields(u.arbitrary::<u8>()? & 15),
                    use_encap: u.arbitrary::<bool>()?.then_some(*u.choose(&Encap::ALL)?),
                    keepalive_secs: u.arbitrary()?,
                    last_id: u.arbitrary::<bool>()?.then_some(big(u)?),
                };
                c.on_reply(now, &rrep, *u.choose(&Encap::ALL)?, &mut out);
            }
            _ => {
                c.poll(now, &mut out);
                if deadline.is_none_or(|d| now < d) {
                    assert!(out.is_empty(), "events before the deadline: {out:?}");
                }
            }
        }
        assert_eq!(c.registering(), c.deadline().is_some());
        let mut batch = None;
        for e in &out {
            match *e {
                Event::Send(r) => {
                    assert_eq!((r.inner, r.sent.dst), (cfg.inner, cfg.gateway));
                    assert_eq!(Some(r.sent.src), c.path().map(|p| p.src));
                    let port = if r.sent.encap == Encap::Plain {
                        0
                    } else {
                        cfg.udp_port
                    };
                    assert_eq!((r.sent.sport, r.sent.dport), (port, port));
                    assert!(r.sent.encap != Encap::Tcp);
                    assert!(r.sent.encap == Encap::Udp || cfg.offer_plain);
                    assert!(r.supported.contains(r.sent.encap));
                    // Copies of one transmission share an identification; a
                    // new transmission uses a fresh, larger one.
                    match batch {
                        Some(id) => assert_eq!(r.id, id),
                        None => {
                            assert!(last_id.is_none_or(|l| r.id > l), "identification reused");
                            batch = Some(r.id);
                            last_id = Some(r.id);
                        }
                    }
                    last_sent = Some(r.sent);
                }
                Event::Registered { handover_ms, .. } => assert!(handover_ms <= now),
                _ => {}
            }
        }
        if let Some(Event::UseEncap { encap, .. }) = out
            .iter()
            .rev()
            .find(|e| matches!(e, Event::UseEncap { .. }))
        {
            assert_eq!(*encap, c.encap());
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
