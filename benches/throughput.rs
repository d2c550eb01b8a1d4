//! Criterion micro-benchmarks: chunk + hash throughput and compression throughput.
//! Run with `cargo bench --bench throughput`. Side-by-side comparisons with DVC, restic and
//! borg live in `benches/compare.sh`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use store::chunker::chunk_stream;
use store::pack::encode;
use store::{ChunkParams, Hash, ObjectKind};

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn csv(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while v.len() < len {
        v.extend_from_slice(
            format!(
                "{i},{:.4},{},sample_{}\n",
                (i as f64).sin(),
                i * 7 % 1000,
                i % 97
            )
            .as_bytes(),
        );
        i += 1;
    }
    v.truncate(len);
    v
}

fn chunk_and_hash(c: &mut Criterion) {
    let data = random(64 << 20, 7);
    let mut g = c.benchmark_group("chunk+hash");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for avg in [32 * 1024, 64 * 1024, 128 * 1024] {
        let p = ChunkParams::with_avg(avg).expect("params");
        g.bench_with_input(BenchmarkId::from_parameter(avg / 1024), &p, |b, p| {
            b.iter(|| {
                chunk_stream(&mut &data[..], *p, Path::new("mem"), |batch| {
                    use rayon::prelude::*;
                    Ok((0..batch.cuts.len())
                        .into_par_iter()
                        .map(|i| Hash::of(ObjectKind::Chunk, batch.chunk(i)))
                        .count())
                })
                .expect("chunk")
            })
        });
    }
    g.finish();
}

fn compress(c: &mut Criterion) {
    let mut g = c.benchmark_group("compress 64KiB chunk");
    for (name, data) in [("csv", csv(64 * 1024)), ("random", random(64 * 1024, 3))] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        for level in [1, 3] {
            g.bench_with_input(BenchmarkId::new(name, level), &data, |b, d| {
                b.iter(|| encode(d, level))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, chunk_and_hash, compress);
criterion_main!(benches);
