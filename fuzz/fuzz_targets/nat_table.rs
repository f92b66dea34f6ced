//! The NAT translation table as a state machine: the input is a sequence of
//! outbound and inbound TCP/UDP/ICMP packets between four inside hosts and
//! three remotes, inbound ICMP errors, time steps and expiry sweeps, under
//! small caps (16 ports, 3 host entries, 5 ports per host, 4-token bursts).
//! Every 8 operations and after the last the table's invariants hold (counts match contents,
//! caps hold); after time passes every timeout and a sweep, nothing is left.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spimux::nat::config::{Limits, Timeouts};
use spimux::nat::{Endpoint, EspConfig, Filtering, Millis, Nat, NatConfig, NatEvents};
use spimux::wire::build;
use std::net::Ipv4Addr;

const G: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const PROTOS: [u8; 3] = [6, 17, 1];

fn host(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1 + i % 4)
}

fn remote(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 1 + i % 3)
}

fn config(u: &mut Unstructured) -> Result<NatConfig> {
    let filtering = *u.choose(&[
        Filtering::EndpointIndependent,
        Filtering::AddressDependent,
        Filtering::AddressAndPortDependent,
    ])?;
    Ok(NatConfig {
        filtering,
        // 500 sits outside the range, so preserved IKE ports use the reserve.
        port_min: 1024,
        port_max: 1024 + 15,
        preserve_ike_port: u.arbitrary()?,
        timeouts: Timeouts::default(),
        limits: Limits {
            max_sessions: 12,
            max_sessions_per_host: 6,
            new_sessions_per_sec_per_host: 2,
            new_sessions_burst: 4,
            max_esp_spis_per_host: 2,
            max_ports_per_host: 5,
            max_hosts: 3,
        },
    })
}

/// A packet of `proto` from `src:sport` to `dst:dport`.
fn packet(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    match proto {
        6 => build::tcp(src, sport, dst, dport, flags, b"t"),
        17 => build::udp(src, sport, dst, dport, b"u"),
        _ => build::echo(src, dst, sport == 0, dport, 1),
    }
}

fn step(nat: &Nat, u: &mut Unstructured, now: &mut Millis, ev: &mut NatEvents) -> Result<()> {
    let proto = *u.choose(&PROTOS)?;
    match u.int_in_range(0u8..=5)? {
        0 => {
            let (h, r): (u8, u8) = (u.arbitrary()?, u.arbitrary()?);
            let sport = *u.choose(&[500u16, 4500, 5000, 5001])?;
            let dport = *u.choose(&[53u16, 80])?;
            let mut p = packet(proto, host(h), sport, remote(r), dport, u.arbitrary()?);
            let _ = nat.outbound(&mut p, *now, ev);
        }
        1 => {
            // Inbound to an inside endpoint's external port, if it has one.
            let (h, r): (u8, u8) = (u.arbitrary()?, u.arbitrary()?);
            let sport = *u.choose(&[500u16, 4500, 5000, 5001])?;
            let inside = Endpoint { ip: host(h), port: sport };
            let ext = nat.table.lookup_outbound(proto, inside);
            let port = match ext {
                Some(e) => e.port,
                None => u.int_in_range(1020u16..=1045)?,
            };
            let rport = *u.choose(&[53u16, 80, 81])?;
            let mut p = if proto == 1 {
                build::echo(remote(r), G, true, port, 1)
            } else {
                packet(proto, remote(r), rport, G, port, u.arbitrary()?)
            };
            let _ = nat.inbound(&mut p, *now, ev);
        }
        2 => {
            // An ICMP error from a remote quoting what an inside host sent.
            let (h, r): (u8, u8) = (u.arbitrary()?, u.arbitrary()?);
            let sport = *u.choose(&[500u16, 5000])?;
            let mut sent = packet(proto, host(h), sport, remote(r), 53, 0x02);
            if nat.outbound(&mut sent, *now, ev).is_ok() {
                let mut err = build::icmp_error(remote(r), G, 3, 3, &sent);
                let _ = nat.inbound(&mut err, *now, ev);
            }
        }
        3 => *now = now.saturating_add(u64::from(u.arbitrary::<u16>()?)),
        4 => *now = now.saturating_add(1000 * u64::from(u.arbitrary::<u16>()?)),
        _ => nat.expire(*now, ev),
    }
    Ok(())
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(cfg) = config(&mut u) else {
        return;
    };
    let nat = Nat::new(cfg, EspConfig::default(), vec![G], 1).expect("fuzz config is valid");
    nat.check_run(|nat, now, ev| !u.is_empty() && step(nat, &mut u, now, ev).is_ok());
}

fuzz_target!(|data: &[u8]| run(data));
