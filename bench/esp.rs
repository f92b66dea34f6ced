//! ESP seal/open throughput per core: `cargo bench --bench esp`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spimux::esp::{Sa, SaParams};

fn params(key: &[u8]) -> SaParams<'_> {
    SaParams {
        spi: 0x1234_abcd,
        key,
        salt: [1, 2, 3, 4],
        esn: true,
        replay_window: 1024,
    }
}

fn seal_open(c: &mut Criterion) {
    let key = [7u8; 16];
    let mut g = c.benchmark_group("esp");
    for len in [64usize, 512, 1400] {
        let payload = vec![0xabu8; len];
        let mut wire = vec![0u8; Sa::sealed_len(len)];
        g.throughput(Throughput::Bytes(len as u64));
        let mut tx = Sa::new(&params(&key)).unwrap();
        g.bench_with_input(BenchmarkId::new("seal_aes128gcm", len), &len, |b, _| {
            b.iter(|| tx.seal(black_box(&payload), 4, &mut wire).unwrap())
        });
        // Open needs fresh sequence numbers: pre-seal a ring of packets far ahead of the window.
        let mut tx = Sa::new(&params(&key)).unwrap();
        let pkts: Vec<Vec<u8>> = (0..4096)
            .map(|_| {
                let mut w = vec![0u8; Sa::sealed_len(len)];
                let n = tx.seal(&payload, 4, &mut w).unwrap();
                w.truncate(n);
                w
            })
            .collect();
        let mut out = vec![0u8; wire.len()];
        g.throughput(Throughput::Bytes((len * pkts.len()) as u64));
        g.bench_with_input(BenchmarkId::new("open_aes128gcm", len), &len, |b, _| {
            b.iter_batched_ref(
                || Sa::new(&params(&key)).unwrap(),
                |rx| {
                    for p in &pkts {
                        black_box(rx.open(p, &mut out).unwrap());
                    }
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
