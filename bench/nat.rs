//! Criterion benchmarks of the NAT core (no I/O):
//! `cargo bench --bench nat`. Figures are recorded in docs/PERFORMANCE.md.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use spimux::nat::config::Limits;
use spimux::nat::{Endpoint, EspConfig, Nat, NatConfig, NatEvents};
use spimux::spi::Layout;
use spimux::wire::build;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const H1: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 2);
const R: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 69);

fn big_limits() -> NatConfig {
    NatConfig {
        limits: Limits {
            max_sessions: u32::MAX,
            max_sessions_per_host: u32::MAX,
            new_sessions_per_sec_per_host: u32::MAX / 2,
            new_sessions_burst: u32::MAX / 2,
            max_esp_spis_per_host: u32::MAX,
            max_ports_per_host: u32::MAX,
            max_hosts: u32::MAX,
        },
        ..NatConfig::default()
    }
}

fn externals(n: u32) -> Vec<Ipv4Addr> {
    (0..n)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(203, 0, 113, 10)) + i))
        .collect()
}

fn translate(c: &mut Criterion) {
    let nat = Nat::new(big_limits(), EspConfig::default(), externals(1), 1).unwrap();
    let mut ev = NatEvents::default();
    let template = build::udp(H1, 5000, R, 53, &[0u8; 18]);
    let mut p = template.clone();
    nat.outbound(&mut p, 0, &mut ev).unwrap();
    let gport = u16::from_be_bytes([p[20], p[21]]);
    c.bench_function("translate/outbound_udp_64B", |b| {
        let mut buf = template.clone();
        b.iter(|| {
            buf.copy_from_slice(&template);
            nat.outbound(black_box(&mut buf), 1000, &mut ev).unwrap();
        })
    });
    let reply = build::udp(R, 53, externals(1)[0], gport, &[0u8; 18]);
    c.bench_function("translate/inbound_udp_64B", |b| {
        let mut buf = reply.clone();
        b.iter(|| {
            buf.copy_from_slice(&reply);
            nat.inbound(black_box(&mut buf), 1000, &mut ev).unwrap();
        })
    });
    c.bench_function("table/lookup_existing_session", |b| {
        b.iter(|| {
            nat.table
                .outbound(
                    17,
                    Endpoint { ip: H1, port: 5000 },
                    Endpoint { ip: R, port: 53 },
                    0,
                    1000,
                    &mut ev,
                )
                .unwrap()
        })
    });
}

fn create(c: &mut Criterion) {
    c.bench_function("table/create_mapping", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let nat = Nat::new(big_limits(), EspConfig::default(), externals(1), 2).unwrap();
                let mut ev = NatEvents::default();
                let chunk = (iters - done).min(50_000);
                let t = Instant::now();
                for i in 0..chunk {
                    let host = Ipv4Addr::from(0x0a06_0000 + (i as u32 >> 10));
                    let port = 1024 + (i as u16 & 1023);
                    nat.table
                        .outbound(
                            17,
                            Endpoint { ip: host, port },
                            Endpoint { ip: R, port: 53 },
                            0,
                            0,
                            &mut ev,
                        )
                        .unwrap();
                }
                total += t.elapsed();
                done += chunk;
            }
            total
        })
    });
}

fn esp_match(c: &mut Criterion) {
    let l = Layout::default();
    let mut g = c.benchmark_group("esp/unknown_spi_match");
    for pending in [1u32, 1_000, 100_000] {
        let esp = EspConfig {
            max_spis: u32::MAX,
            ..EspConfig::default()
        };
        let nat = Nat::new(big_limits(), esp, externals(1), 3).unwrap();
        let mut ev = NatEvents::default();
        // `pending` recorded outbound SPIs toward R from many hosts, plus the one we look for.
        for i in 0..pending.saturating_sub(1) {
            let h = Ipv4Addr::from(0x0a07_0000 + i);
            let mut p = build::esp(h, R, 0x0100_0000 + i * 7, 1, b"x");
            nat.outbound(&mut p, 0, &mut ev).unwrap();
        }
        let s_o = 0xD456_0CA1u32;
        let mut p = build::esp(H1, R, l.derive_with(s_o, 0xABCD_0000), 1, b"x");
        nat.outbound(&mut p, 0, &mut ev).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(pending), &pending, |b, _| {
            b.iter(|| {
                let r = nat.esp.resolve(R, black_box(s_o), &mut ev);
                black_box(r.map(|(h, _)| h))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, translate, create, esp_match);
criterion_main!(benches);
