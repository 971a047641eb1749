//! Mailbox micro-benchmarks: the cost of a refused login whatever the reason (it must not
//! tell them apart). Durable SENDs and the other system figures are measured by `sm-bench`
//! (tests/src/bin) against the real binary, from a process of its own.
//!
//! `cargo bench -p mailbox`

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use mailbox::core::ServerSession;
use mailbox::protocol::Response;
use rand::SeedableRng;

fn identity(seed: u64) -> crypto::Identity {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    crypto::Identity::generate_with_rng(&mut rng).unwrap()
}

/// Every refused login does the same work: a bad proof, a key that does not parse, and an
/// identity that is not admitted each cost one signature verification.
fn login(c: &mut Criterion) {
    let alice = identity(1);
    let dummy = identity(2).public_key().clone();
    let der = alice.public_key().der().to_vec();
    let (challenge, exporter) = ([1u8; 32], [2u8; 32]);
    let good = alice.sign_login(&challenge, &exporter).unwrap();
    let bad = alice.sign_login(&[9u8; 32], &exporter).unwrap();
    let session = || {
        let mut s = ServerSession::new(challenge, exporter);
        s.hello(&[1]);
        s
    };
    let mut g = c.benchmark_group("login");
    g.bench_function("accepted", |b| {
        b.iter(|| {
            assert!(matches!(
                session().login(&der, &good, &dummy),
                Response::LoggedIn { .. }
            ))
        })
    });
    g.bench_function("refused/bad-proof", |b| {
        b.iter(|| {
            assert!(matches!(
                session().login(&der, &bad, &dummy),
                Response::Error { .. }
            ))
        })
    });
    g.bench_function("refused/garbage-key", |b| {
        b.iter(|| {
            assert!(matches!(
                session().login(b"not a key", &good, &dummy),
                Response::Error { .. }
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, login);
criterion_main!(benches);
