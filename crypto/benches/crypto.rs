//! Criterion benchmarks: key generation, and sealing and opening envelopes and making and
//! checking login proofs on every RSA backend compiled in.
//! Run with `cargo bench -p crypto` (or `cargo xtask bench`).
//!
//! Ids: `keygen/rsa-2048`; `keys/public-key-from-der`; `envelope/<backend>/seal/<body bytes>`
//! (1024 and 65536) and `envelope/<backend>/open/1024`; `login/<backend>/sign` and
//! `login/<backend>/verify`, where `<backend>` is [`Backend::name`] (`aws-lc-rs`, `rsa`).

#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crypto::{Backend, Draft, Identity, MessageKind, PublicKey, verify_login_using};

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

    // Opening an envelope imports the sender's key from the DER inside it.
    let der = alice.public_key().der().to_vec();
    c.bench_function("keys/public-key-from-der", |b| {
        b.iter(|| PublicKey::from_der(&der).unwrap())
    });
    let mut group = c.benchmark_group("envelope");
    for &backend in Backend::ALL {
        let name = backend.name();
        for len in [1024, 64 * 1024] {
            group.throughput(Throughput::Bytes(len as u64));
            let d = draft(len);
            group.bench_with_input(BenchmarkId::new(format!("{name}/seal"), len), &d, |b, d| {
                b.iter(|| alice.seal_using(backend, bob.public_key(), d).unwrap())
            });
        }
        let len = 1024;
        group.throughput(Throughput::Bytes(len as u64));
        let sealed = alice
            .seal_using(backend, bob.public_key(), &draft(len))
            .unwrap();
        group.bench_with_input(
            BenchmarkId::new(format!("{name}/open"), len),
            &sealed.bytes,
            |b, env| b.iter(|| bob.open_using(backend, env).unwrap()),
        );
    }
    group.finish();

    let challenge = [1u8; 32];
    let exporter = [2u8; 32];
    let mut login = c.benchmark_group("login");
    for &backend in Backend::ALL {
        let name = backend.name();
        let proof = alice
            .sign_login_using(backend, &challenge, &exporter)
            .unwrap();
        login.bench_function(format!("{name}/sign"), |b| {
            b.iter(|| {
                alice
                    .sign_login_using(backend, &challenge, &exporter)
                    .unwrap()
            })
        });
        login.bench_function(format!("{name}/verify"), |b| {
            b.iter(|| {
                verify_login_using(backend, alice.public_key(), &challenge, &exporter, &proof)
                    .unwrap()
            })
        });
    }
    login.finish();
}

criterion_group!(crypto_benches, benches);
criterion_main!(crypto_benches);
