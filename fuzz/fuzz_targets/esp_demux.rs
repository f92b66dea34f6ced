//! The ESP demultiplexer as a state machine: the input is a sequence of
//! outbound ESP from four inside hosts to three responders, inbound ESP from
//! those responders (SPIs that match by either relation, collide, repeat or
//! are random), a few UDP flows sharing the host entries, time steps and
//! expiry sweeps, under small caps (5 recorded SPIs, 4 bindings, 2 per
//! responder, 2 SPIs per host, 3 host entries, a 2-token resolve bucket).
//! Every 8 operations and after the last the invariants hold (counts match contents, an SA
//! pairs once, caps hold); after every timeout and a sweep nothing is left.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spimux::nat::config::{Limits, Relations};
use spimux::nat::{EspConfig, Millis, Nat, NatConfig, NatEvents};
use spimux::spi::Layout;
use spimux::wire::build;
use std::net::Ipv4Addr;

const G: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// Inside hosts' inbound SPIs the responders derive theirs from.
const INSIDE_SPIS: [u32; 4] = [0xD456_0CA1, 0xB728_5662, 0x0000_1000, 0x7777_1234];

fn host(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1 + i % 4)
}

fn responder(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 1 + i % 3)
}

fn esp_config(u: &mut Unstructured) -> Result<EspConfig> {
    Ok(EspConfig {
        layout: Layout::default(),
        relations: *u.choose(&[
            Relations::ResponderDerives,
            Relations::InsideDerives,
            Relations::Both,
        ])?,
        single_pending_fallback: u.arbitrary()?,
        idle_timeout: u.int_in_range(1..=60)?,
        max_spis: 5,
        max_bindings: 4,
        max_bindings_per_responder: 2,
        resolve_per_sec_per_responder: 1,
        resolve_burst: 2,
    })
}

fn nat_config() -> NatConfig {
    NatConfig {
        limits: Limits {
            max_sessions: 8,
            max_sessions_per_host: 4,
            new_sessions_per_sec_per_host: 2,
            new_sessions_burst: 4,
            max_esp_spis_per_host: 2,
            max_ports_per_host: 3,
            max_hosts: 3,
        },
        ..NatConfig::default()
    }
}

/// An SPI: derived from an inside SPI (responder-derives), an inside SPI
/// itself, derived from one (inside-derives against a recorded SPI), or raw.
fn spi(u: &mut Unstructured) -> Result<u32> {
    let l = Layout::default();
    let base = *u.choose(&INSIDE_SPIS)?;
    Ok(match u.int_in_range(0u8..=3)? {
        0 => l.derive_with(base, u.arbitrary::<u32>()? & 0xffff_0300),
        1 => base,
        2 => l.derive_with(l.derive_with(base, 0x1111_0000), u.arbitrary()?),
        _ => u.arbitrary()?,
    })
}

fn step(nat: &Nat, u: &mut Unstructured, now: &mut Millis, ev: &mut NatEvents) -> Result<()> {
    match u.int_in_range(0u8..=5)? {
        0 => {
            let (h, r): (u8, u8) = (u.arbitrary()?, u.arbitrary()?);
            let mut p = build::esp(host(h), responder(r), spi(u)?, 1, b"c");
            let _ = nat.outbound(&mut p, *now, ev);
        }
        1 => {
            let r: u8 = u.arbitrary()?;
            let mut p = build::esp(responder(r), G, spi(u)?, 1, b"c");
            let _ = nat.inbound(&mut p, *now, ev);
        }
        2 => {
            let (h, r): (u8, u8) = (u.arbitrary()?, u.arbitrary()?);
            let port = *u.choose(&[5000u16, 5001])?;
            let mut p = build::udp(host(h), port, responder(r), 53, b"u");
            let _ = nat.outbound(&mut p, *now, ev);
        }
        3 => *now = now.saturating_add(u64::from(u.arbitrary::<u16>()?)),
        4 => *now = now.saturating_add(1000 * u64::from(u.arbitrary::<u8>()?)),
        _ => nat.expire(*now, ev),
    }
    Ok(())
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(esp) = esp_config(&mut u) else {
        return;
    };
    let nat = Nat::new(nat_config(), esp, vec![G], 1).expect("fuzz config is valid");
    nat.check_run(|nat, now, ev| !u.is_empty() && step(nat, &mut u, now, ev).is_ok());
}

fuzz_target!(|data: &[u8]| run(data));
