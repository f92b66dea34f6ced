//! Caps on what the outside can create, the pairing-once rule and expiry
//! of everything (issue 10, part 3).

use super::{esp_in, esp_in_from, esp_out, esp_out_to, nat_with, H1, H2, L, R, R2, SEC};
use crate::nat::config::{EspConfig, NatConfig};
use crate::nat::events::{NatDrop, NatEvents};
use crate::nat::{Millis, Nat};
use crate::wire::build;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;

const UDP: u8 = 17;

fn ok(n: &Nat) {
    if let Err(e) = n.check_invariants() {
        panic!("{e}");
    }
}

fn drops(ev: &NatEvents, r: NatDrop) -> u64 {
    ev.drops[r as usize]
}

/// An inbound SPI, other than `not`, whose digest tag equals `tag`: what a
/// spoofer hitting a recorded SPI's tag sends.
fn spi_with_digest_tag(tag: u32, not: &[u32], rng: &mut SmallRng) -> u32 {
    loop {
        let s: u32 = rng.gen();
        if L.digest_tag(s) == tag && !not.contains(&s) {
            return s;
        }
    }
}

/// `count` inbound ESP packets with random SPIs "from" `r` at `now`.
fn flood(n: &Nat, r: Ipv4Addr, count: u32, seed: u64, now: Millis, ev: &mut NatEvents) {
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..count {
        let _ = esp_in_from(n, r, rng.gen(), now, ev);
    }
}

/// H2's honest pair with R, bound; then `unpaired` SPIs of H1 toward R.
/// Returns H2's inbound SPI.
fn honest_pair_and_pending(n: &Nat, unpaired: u32, ev: &mut NatEvents) -> u32 {
    let s_o = 0xB728_5662u32;
    esp_out(n, H2, L.derive_with(s_o, 0x4444_0000), 0, ev).unwrap();
    assert_eq!(esp_in(n, s_o, 0, ev), Ok(H2));
    for i in 0..unpaired {
        esp_out(n, H1, 0x0100_0000 + i * 0x0101, 0, ev).unwrap();
    }
    s_o
}

fn udp_out(
    n: &Nat,
    h: Ipv4Addr,
    port: u16,
    r: Ipv4Addr,
    now: Millis,
    ev: &mut NatEvents,
) -> Result<(), NatDrop> {
    let mut p = build::udp(h, port, r, 53, b"q");
    n.outbound(&mut p, now, ev)
}

#[test]
fn an_sa_pairs_once_and_pairs_again_after_its_binding_expires() {
    let esp = EspConfig {
        idle_timeout: 100,
        ..EspConfig::default()
    };
    let n = nat_with(NatConfig::default(), esp);
    let mut ev = NatEvents::default();
    let mut rng = SmallRng::seed_from_u64(1);
    let s_o1 = 0xD456_0CA1u32;
    let s_r1 = L.derive_with(s_o1, 0x1111_0000);
    let tag = L.spi_tag(s_r1);
    esp_out(&n, H1, s_r1, 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o1, 0, &mut ev), Ok(H1));
    // An unrelated pending SA keeps R past the pre-filter.
    esp_out(&n, H2, 0x4242_0042, 0, &mut ev).unwrap();
    // A second inbound SPI with the same tag: the SA already paired.
    let spoof = spi_with_digest_tag(tag, &[s_o1], &mut rng);
    assert_eq!(
        esp_in(&n, spoof, 0, &mut ev),
        Err(NatDrop::EspAlreadyPaired)
    );
    assert_eq!(drops(&ev, NatDrop::EspAlreadyPaired), 1);
    assert_eq!(n.esp.binding_count(), 1);
    // H2's SA whose responder SPI happens to carry the same tag: H1's paired
    // SPI is no candidate, so this is no collision.
    let s_r2 = L.derive_with(s_o1, 0x2222_0000);
    assert_eq!(L.spi_tag(s_r2), tag);
    esp_out(&n, H2, s_r2, 0, &mut ev).unwrap();
    let s_o2 = spi_with_digest_tag(tag, &[s_o1, spoof], &mut rng);
    assert_eq!(esp_in(&n, s_o2, 0, &mut ev), Ok(H2));
    assert_eq!(drops(&ev, NatDrop::EspCollision), 0);
    ok(&n);
    // H1's inbound SPI goes idle while its outbound SPI keeps being used:
    // when the binding expires the outbound SPI is a candidate again.
    esp_out(&n, H1, s_r1, 60 * SEC, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o2, 60 * SEC, &mut ev), Ok(H2));
    n.expire(100 * SEC, &mut ev);
    assert_eq!(n.esp.binding_count(), 1, "only H2's binding is left");
    ok(&n);
    let next = spi_with_digest_tag(tag, &[s_o1, spoof, s_o2], &mut rng);
    assert_eq!(esp_in(&n, next, 100 * SEC, &mut ev), Ok(H1));
    ok(&n);
}

#[test]
fn fallback_binds_once_per_unpaired_spi() {
    let esp = EspConfig {
        single_pending_fallback: true,
        ..EspConfig::default()
    };
    let n = nat_with(NatConfig::default(), esp);
    let mut ev = NatEvents::default();
    esp_out(&n, H1, 0x1234_5678, 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, 0x0BAD_0BAD, 0, &mut ev), Ok(H1));
    // Nothing unpaired is left: dropped before any lookup.
    assert_eq!(
        esp_in(&n, 0x0BAD_0BAE, 0, &mut ev),
        Err(NatDrop::EspNoPending)
    );
    assert_eq!(n.esp.binding_count(), 1);
    // A rekey brings a new outbound SPI: one more fallback binding.
    esp_out(&n, H1, 0x1234_0001, 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, 0x0BAD_0BAF, 0, &mut ev), Ok(H1));
    assert_eq!(ev.esp.fallback_binds, 2);
    ok(&n);
}

#[test]
fn random_spi_flood_binds_at_most_the_configured_bindings() {
    let mut cfg = NatConfig::default();
    cfg.limits.max_esp_spis_per_host = 1000;
    let esp = EspConfig {
        max_bindings_per_responder: 50,
        // No rate limit here: the binding caps are what must hold.
        resolve_per_sec_per_responder: u32::MAX,
        resolve_burst: u32::MAX,
        ..EspConfig::default()
    };
    let n = nat_with(cfg, esp);
    let mut ev = NatEvents::default();
    // An honest pair bound before the flood; 200 unpaired SPIs of H1 give
    // 400 tags a random SPI can hit.
    let s_o = honest_pair_and_pending(&n, 200, &mut ev);
    flood(&n, R, 100_000, 2, SEC, &mut ev);
    assert!(n.esp.binding_count() <= 50, "{}", n.esp.binding_count());
    assert!(drops(&ev, NatDrop::EspResponderBindingLimit) > 0);
    ok(&n);
    // The honest pair still reaches its host.
    assert_eq!(esp_in(&n, s_o, 2 * SEC, &mut ev), Ok(H2));
}

#[test]
fn random_spi_flood_at_default_settings_is_rate_limited_and_bounded() {
    let n = nat_with(NatConfig::default(), EspConfig::default());
    let mut ev = NatEvents::default();
    let s_o = honest_pair_and_pending(&n, 64, &mut ev);
    flood(&n, R, 100_000, 3, SEC, &mut ev);
    // Each recorded SPI pairs at most once; the bucket let ~256 through.
    assert!(n.esp.binding_count() <= 65, "{}", n.esp.binding_count());
    let limited = drops(&ev, NatDrop::EspResolveRateLimited);
    assert!(limited >= 100_000 - 1_300, "{limited}");
    ok(&n);
    assert_eq!(esp_in(&n, s_o, 2 * SEC, &mut ev), Ok(H2));
}

#[test]
fn flood_on_one_responder_leaves_another_resolvable() {
    let n = nat_with(NatConfig::default(), EspConfig::default());
    let mut ev = NatEvents::default();
    esp_out_to(&n, H1, R, 0x0100_0000, 0, &mut ev).unwrap();
    flood(&n, R, 100_000, 4, 0, &mut ev);
    assert!(drops(&ev, NatDrop::EspResolveRateLimited) > 90_000);
    // A new SA with R2 at the same instant: R2's bucket is untouched.
    let s_o = 0xD456_0CA1u32;
    esp_out_to(&n, H2, R2, L.derive_with(s_o, 0x1111_0000), 0, &mut ev).unwrap();
    assert_eq!(esp_in_from(&n, R2, s_o, 0, &mut ev), Ok(H2));
    ok(&n);
}

#[test]
fn repeated_unmatched_spi_is_remembered_until_the_index_changes() {
    let esp = EspConfig {
        resolve_burst: 1,
        ..EspConfig::default()
    };
    let n = nat_with(NatConfig::default(), esp);
    let mut ev = NatEvents::default();
    esp_out(&n, H1, 0x1234_5678, 0, &mut ev).unwrap();
    // A non-cooperating SA's SPI, over and over: one token, then the cache.
    let s_o = 0xD456_0CA1u32;
    for _ in 0..10_000 {
        assert_eq!(esp_in(&n, s_o, 0, &mut ev), Err(NatDrop::EspUnmatched));
    }
    assert_eq!(drops(&ev, NatDrop::EspResolveRateLimited), 0);
    // A fresh SPI finds the bucket empty: the repeats did not drain it...
    assert_eq!(
        esp_in(&n, 0x0BAD_0BAD, 0, &mut ev),
        Err(NatDrop::EspResolveRateLimited)
    );
    // ...and once an SPI that matches is recorded, the miss is forgotten.
    esp_out(&n, H2, L.derive_with(s_o, 0x2222_0000), 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o, SEC, &mut ev), Ok(H2));
    ok(&n);
}

#[test]
fn unknown_spi_from_responder_without_pending_spis_is_dropped_early() {
    let n = nat_with(NatConfig::default(), EspConfig::default());
    let mut ev = NatEvents::default();
    assert_eq!(
        esp_in(&n, 0x1234_5678, 0, &mut ev),
        Err(NatDrop::EspNoPending)
    );
    let s_o = 0xD456_0CA1u32;
    esp_out(&n, H1, L.derive_with(s_o, 0x1111_0000), 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o, 0, &mut ev), Ok(H1));
    // Everything R has is paired: nothing left to hash against.
    assert_eq!(
        esp_in(&n, 0x1234_5678, 0, &mut ev),
        Err(NatDrop::EspNoPending)
    );
    assert_eq!(drops(&ev, NatDrop::EspNoPending), 2);
    assert_eq!(n.esp.responder_count(), 1);
}

#[test]
fn global_spi_and_binding_caps() {
    let esp = EspConfig {
        max_spis: 2,
        max_bindings: 1,
        ..EspConfig::default()
    };
    let n = nat_with(NatConfig::default(), esp);
    let mut ev = NatEvents::default();
    let (s_o1, s_o2) = (0xD456_0CA1u32, 0xB728_5662u32);
    esp_out(&n, H1, L.derive_with(s_o1, 0x1111_0000), 0, &mut ev).unwrap();
    esp_out_to(&n, H2, R2, L.derive_with(s_o2, 0x2222_0000), 0, &mut ev).unwrap();
    assert_eq!(
        esp_out(&n, H2, 0x3333_3333, 0, &mut ev),
        Err(NatDrop::EspSpisFull)
    );
    assert_eq!(n.esp.recorded_count(), 2);
    assert_eq!(esp_in(&n, s_o1, 0, &mut ev), Ok(H1));
    assert_eq!(
        esp_in_from(&n, R2, s_o2, 0, &mut ev),
        Err(NatDrop::EspBindingsFull)
    );
    ok(&n);
    // The refused SPI did not keep a per-host slot.
    assert_eq!(n.table.esp_spis_by_host().get(&H2), Some(&1));
}

#[test]
fn host_entries_are_reclaimed_only_once_their_bucket_refilled() {
    let mut cfg = NatConfig::default();
    cfg.limits.new_sessions_per_sec_per_host = 1;
    cfg.limits.new_sessions_burst = 1000;
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    for port in 0..1000u16 {
        udp_out(&n, H1, 10_000 + port, R, 0, &mut ev).unwrap();
    }
    assert_eq!(
        udp_out(&n, H1, 20_000, R, 0, &mut ev),
        Err(NatDrop::RateLimited)
    );
    for i in 0..100u32 {
        udp_out(&n, Ipv4Addr::from(0x0a06_0200 + i), 5000, R, 0, &mut ev).unwrap();
    }
    assert_eq!(n.table.host_count(), 101);
    n.expire(300 * SEC, &mut ev);
    assert_eq!(n.table.session_count(), 0);
    // The 100 light hosts are gone; H1 has not refilled and keeps its entry,
    // so idling did not reset its rate limit.
    assert_eq!(n.table.host_count(), 1);
    ok(&n);
    let mut made = 0;
    for port in 0..1000u16 {
        made += u32::from(udp_out(&n, H1, 30_000 + port, R, 300 * SEC, &mut ev).is_ok());
    }
    assert_eq!(made, 300, "300 s at 1/s refilled 300 tokens");
    n.expire(2000 * SEC, &mut ev);
    assert_eq!(n.table.host_count(), 0);
    assert!(n.is_empty());
}

#[test]
fn host_entries_are_capped() {
    let mut cfg = NatConfig::default();
    cfg.limits.max_hosts = 2;
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    udp_out(&n, H1, 5000, R, 0, &mut ev).unwrap();
    esp_out(&n, H2, 0x1000, 0, &mut ev).unwrap();
    let h3 = Ipv4Addr::new(10, 6, 1, 4);
    assert_eq!(
        udp_out(&n, h3, 5000, R, 0, &mut ev),
        Err(NatDrop::HostsFull)
    );
    assert_eq!(esp_out(&n, h3, 0x2000, 0, &mut ev), Err(NatDrop::HostsFull));
    assert_eq!(drops(&ev, NatDrop::HostsFull), 2);
    // Known hosts keep working.
    udp_out(&n, H2, 5000, R, 0, &mut ev).unwrap();
    ok(&n);
}

#[test]
fn per_host_port_quota() {
    let mut cfg = NatConfig::default();
    cfg.limits.max_ports_per_host = 3;
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    for port in 5000..5003 {
        udp_out(&n, H1, port, R, 0, &mut ev).unwrap();
    }
    assert_eq!(
        udp_out(&n, H1, 5003, R, 0, &mut ev),
        Err(NatDrop::PortQuota)
    );
    assert_eq!(drops(&ev, NatDrop::PortQuota), 1);
    // An existing mapping still takes new sessions; another protocol and
    // another host have their own quota.
    udp_out(&n, H1, 5000, R2, 0, &mut ev).unwrap();
    let mut t = build::tcp(H1, 5003, R, 80, crate::wire::tcp::flags::SYN, b"");
    n.outbound(&mut t, 0, &mut ev).unwrap();
    udp_out(&n, H2, 5003, R, 0, &mut ev).unwrap();
    assert_eq!(n.table.max_host_ports(), 3);
    ok(&n);
    // Once a mapping expires its port counts no more.
    n.expire(300 * SEC, &mut ev);
    udp_out(&n, H1, 5003, R, 300 * SEC, &mut ev).unwrap();
    let ep = crate::nat::Endpoint { ip: H1, port: 5003 };
    assert!(n.table.lookup_outbound(UDP, ep).is_some());
    ok(&n);
}

#[test]
fn everything_drains_after_the_timeouts() {
    let n = nat_with(NatConfig::default(), EspConfig::default());
    let mut ev = NatEvents::default();
    let s_o = 0xD456_0CA1u32;
    esp_out(&n, H1, L.derive_with(s_o, 0x1111_0000), 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o, 0, &mut ev), Ok(H1));
    esp_out_to(&n, H2, R2, 0x4242_4242, 0, &mut ev).unwrap();
    udp_out(&n, H1, 5000, R, 0, &mut ev).unwrap();
    let mut t = build::tcp(H2, 6000, R, 80, crate::wire::tcp::flags::SYN, b"");
    n.outbound(&mut t, 0, &mut ev).unwrap();
    ok(&n);
    // One sweep past every timeout removes the SPIs, then the hosts.
    n.drain_check(0, &mut ev).unwrap();
    assert_eq!(n.esp.responder_count(), 0);
}

#[test]
fn concurrent_workers_and_sweeps_keep_counts_consistent() {
    let mut cfg = NatConfig::default();
    cfg.limits.max_ports_per_host = 8;
    cfg.limits.max_hosts = 6;
    cfg.limits.max_esp_spis_per_host = 3;
    let esp = EspConfig {
        max_spis: 10,
        max_bindings: 6,
        max_bindings_per_responder: 4,
        single_pending_fallback: true,
        idle_timeout: 5,
        ..EspConfig::default()
    };
    let n = nat_with(cfg, esp);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let n = &n;
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(10 + t);
                let mut ev = NatEvents::default();
                for i in 0..20_000u64 {
                    let now = i * 10;
                    let h = Ipv4Addr::new(10, 6, 1, rng.gen_range(1..9));
                    let r = if rng.gen() { R } else { R2 };
                    match rng.gen_range(0..5) {
                        0 => {
                            let _ = udp_out(n, h, rng.gen_range(5000..5012), r, now, &mut ev);
                        }
                        1 => {
                            let spi = L.derive_with(rng.gen_range(0..8), rng.gen());
                            let _ = esp_out_to(n, h, r, spi, now, &mut ev);
                        }
                        2 => {
                            let _ = esp_in_from(n, r, rng.gen_range(0..8), now, &mut ev);
                        }
                        3 => {
                            let _ = esp_in_from(n, r, rng.gen(), now, &mut ev);
                        }
                        _ if t == 0 && i % 50 == 0 => n.expire(now, &mut ev),
                        _ => {}
                    }
                }
            });
        }
    });
    ok(&n);
    n.drain_check(200 * SEC, &mut NatEvents::default()).unwrap();
}
