//! Criterion benchmarks: key generation, sealing and opening envelopes, login proofs.
//! Run with `cargo bench -p crypto` (or `cargo xtask bench` once it exists).

#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crypto::{Draft, Identity, MessageKind, verify_login};

fn draft(len: usize) -> Draft {
    Draft {
        kind: MessageKind::Text,
        seq: 1,
        prev: None,
        sent_at: SystemTime::now(),
        body: vec![b'x'; len],
    }
}

fn benches(c: &mut Criterion) {
    let mut keygen = c.benchmark_group("keygen");
    keygen.sample_size(10);
    keygen.bench_function("rsa-2048", |b| b.iter(|| Identity::generate().unwrap()));
    keygen.finish();

    let alice = Identity::generate().unwrap();
    let bob = Identity::generate().unwrap();
    let mut group = c.benchmark_group("envelope");
    for len in [1024, 64 * 1024] {
        group.throughput(Throughput::Bytes(len as u64));
        let d = draft(len);
        group.bench_with_input(BenchmarkId::new("seal", len), &d, |b, d| {
            b.iter(|| alice.seal(bob.public_key(), d).unwrap())
        });
        let sealed = alice.seal(bob.public_key(), &d).unwrap();
        group.bench_with_input(BenchmarkId::new("open", len), &sealed.bytes, |b, env| {
            b.iter(|| bob.open(env).unwrap())
        });
    }
    group.finish();

    let challenge = [1u8; 32];
    let exporter = [2u8; 32];
    let proof = alice.sign_login(&challenge, &exporter).unwrap();
    c.bench_function("login/sign", |b| {
        b.iter(|| alice.sign_login(&challenge, &exporter).unwrap())
    });
    c.bench_function("login/verify", |b| {
        b.iter(|| verify_login(alice.public_key(), &challenge, &exporter, &proof).unwrap())
    });
}

criterion_group!(crypto_benches, benches);
criterion_main!(crypto_benches);
