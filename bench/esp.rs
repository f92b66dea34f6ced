//! ESP seal/open throughput per core: `cargo bench --bench esp`.
//! AES-128-GCM and AES-128-CBC + HMAC-SHA-256-128, both with ESN.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spimux::esp::{Hmac, Sa, SaParams, Transform};

const KEY: [u8; 16] = [7u8; 16];
const HMAC_KEY: [u8; 32] = [9u8; 32];

fn gcm() -> SaParams<'static> {
    SaParams {
        spi: 0x1234_abcd,
        transform: Transform::AesGcm {
            key: &KEY,
            salt: [1, 2, 3, 4],
        },
        esn: true,
        replay_window: 1024,
    }
}

fn cbc() -> SaParams<'static> {
    SaParams {
        spi: 0x1234_abcd,
        transform: Transform::AesCbcHmac {
            key: &KEY,
            hmac: Hmac::Sha256_128,
            hmac_key: &HMAC_KEY,
        },
        esn: true,
        replay_window: 1024,
    }
}

fn seal_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("esp");
    for (name, params) in [
        ("aes128gcm", gcm as fn() -> SaParams<'static>),
        ("aes128cbc_sha256", cbc),
    ] {
        for len in [64usize, 512, 1400] {
            let payload = vec![0xabu8; len];
            let mut tx = Sa::new(&params()).unwrap();
            let mut wire = vec![0u8; tx.sealed_len(len)];
            g.throughput(Throughput::Bytes(len as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("seal_{name}"), len),
                &len,
                |b, _| b.iter(|| tx.seal(black_box(&payload), 4, &mut wire).unwrap()),
            );
            // Open needs fresh sequence numbers: pre-seal a ring of packets far ahead of the window.
            let mut tx = Sa::new(&params()).unwrap();
            let pkts: Vec<Vec<u8>> = (0..4096)
                .map(|_| {
                    let mut w = vec![0u8; tx.sealed_len(len)];
                    let n = tx.seal(&payload, 4, &mut w).unwrap();
                    w.truncate(n);
                    w
                })
                .collect();
            let mut out = vec![0u8; wire.len()];
            g.throughput(Throughput::Bytes((len * pkts.len()) as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("open_{name}"), len),
                &len,
                |b, _| {
                    b.iter_batched_ref(
                        || Sa::new(&params()).unwrap(),
                        |rx| {
                            for p in &pkts {
                                black_box(rx.open(p, &mut out).unwrap());
                            }
                        },
                        criterion::BatchSize::LargeInput,
                    )
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
