//! Criterion benchmarks: key generation, and sealing and opening envelopes and making and
//! checking login proofs on every RSA backend compiled in.
//! Run with `cargo bench -p crypto` (or `cargo xtask bench`).
//!
//! Ids: `keygen/rsa-2048`; `keys/public-key-from-der`; `envelope/<backend>/seal/<body bytes>`
//! (1024 and 65536) and `envelope/<backend>/open/1024`; `login/<backend>/sign` and
//! `login/<backend>/verify`, where `<backend>` is [`Backend::name`] (`aws-lc-rs`, `rsa`);
//! `envelope-v2/<backend>/seal/1024` and `envelope-v2/<backend>/open/1024`: a forward-secret
//! envelope as a node makes or takes one, session state read from its pickle, the RSA-PSS
//! signature (or its check), the Olm step, and the state pickled again to be stored.

#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use criterion::BatchSize;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crypto::{
    Backend, Bundle, Device, Draft, EnvelopeV2, Identity, MessageId, MessageKind, PickleKey,
    PublicKey, Session, verify_login_using,
};

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

    envelope_v2(c, &alice, &bob);

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

/// Version 2: alice's device has a session with bob's; each iteration is one message as a
/// node handles it (pickle in, crypto, pickle out).
fn envelope_v2(c: &mut Criterion, alice: &Identity, bob: &Identity) {
    let key = PickleKey::generate();
    let mut group = c.benchmark_group("envelope-v2");
    for &backend in Backend::ALL {
        let name = backend.name();
        let alice_device = Device::new(alice.fingerprint(), SystemTime::now());
        let mut bob_device = Device::new(bob.fingerprint(), SystemTime::now());
        bob_device.generate_one_time_keys(1);
        let bundle = Bundle {
            certificate: bob_device.certify(bob).unwrap(),
            prekey: bob_device.unpublished_prekeys().remove(0),
        };
        let mut to_bob = alice_device
            .outbound(&bundle.verify(bob.public_key()).unwrap())
            .unwrap();
        let d = draft(1024);
        let first = alice
            .seal_v2(
                alice_device.id(),
                &mut to_bob,
                bob.public_key(),
                &d,
                MessageId([1; 16]),
            )
            .unwrap();
        let (from_alice, _) = bob_device
            .accept(&EnvelopeV2::parse(&first.bytes).unwrap())
            .unwrap();
        group.throughput(Throughput::Bytes(1024));

        let mut stored = to_bob.pickle(&key);
        group.bench_function(format!("{name}/seal/1024"), |b| {
            b.iter(|| {
                let mut session = Session::from_pickle(&stored, &key).unwrap();
                let sealed = alice
                    .seal_v2_using(
                        backend,
                        alice_device.id(),
                        &mut session,
                        bob.public_key(),
                        &d,
                        MessageId([2; 16]),
                    )
                    .unwrap();
                stored = session.pickle(&key);
                sealed
            })
        });

        // Fresh envelopes in chain order, made outside the timing.
        let mut sender = Session::from_pickle(&to_bob.pickle(&key), &key).unwrap();
        let mut stored = from_alice.pickle(&key);
        group.bench_function(format!("{name}/open/1024"), |b| {
            b.iter_batched(
                || {
                    alice
                        .seal_v2(
                            alice_device.id(),
                            &mut sender,
                            bob.public_key(),
                            &d,
                            MessageId([3; 16]),
                        )
                        .unwrap()
                        .bytes
                },
                |bytes| {
                    let envelope = EnvelopeV2::parse(&bytes).unwrap();
                    let mut session = Session::from_pickle(&stored, &key).unwrap();
                    let opened = bob_device
                        .open_using(backend, &envelope, &mut session)
                        .unwrap();
                    stored = session.pickle(&key);
                    opened
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(crypto_benches, benches);
criterion_main!(crypto_benches);
