//! Mailbox benchmarks: the cost of a refused login whatever the reason (it must not tell
//! them apart), and durable SENDs per second over real QUIC on loopback.
//!
//! `cargo bench -p mailbox`

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailbox::client::Client;
use mailbox::protocol::{Response, ServerSession};
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
                session().login(&der, &good, &dummy, |_| true),
                Response::LoggedIn { .. }
            ))
        })
    });
    g.bench_function("refused/bad-proof", |b| {
        b.iter(|| {
            assert!(matches!(
                session().login(&der, &bad, &dummy, |_| true),
                Response::Error { .. }
            ))
        })
    });
    g.bench_function("refused/garbage-key", |b| {
        b.iter(|| {
            assert!(matches!(
                session().login(b"not a key", &good, &dummy, |_| true),
                Response::Error { .. }
            ))
        })
    });
    g.bench_function("refused/not-admitted", |b| {
        b.iter(|| {
            assert!(matches!(
                session().login(&der, &good, &dummy, |_| false),
                Response::Error { .. }
            ))
        })
    });
    g.finish();
}

/// Durable SENDs per second: 64 connections on loopback, 1 KiB envelopes, group commit.
fn durable_sends(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config::MailboxConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        dashboard: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        quota_envelopes: u64::MAX,
        quota_bytes: u64::MAX,
        rate_per_second: 1e9,
        rate_burst: 1e9,
        address_rate_per_second: 1e9,
        address_rate_burst: 1e9,
        max_connections_per_address: 1000,
        ..config::MailboxConfig::default()
    };
    let running = rt
        .block_on(mailbox::start(&config, Arc::default()))
        .unwrap();
    let address = config::MailboxAddress {
        host: "127.0.0.1".into(),
        port: running.quic_addr.port(),
        fingerprint: Some(running.fingerprint),
    };
    let sender = Arc::new(identity(3));
    let recipient = identity(4);
    let template = sender
        .seal(
            recipient.public_key(),
            &crypto::Draft {
                kind: crypto::MessageKind::Text,
                seq: 1,
                prev: None,
                sent_at: std::time::SystemTime::now(),
                body: vec![b'x'; 1024 - 700],
            },
        )
        .unwrap()
        .bytes;
    let clients: Vec<Arc<Client>> = rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..64 {
            let client = Client::connect(&address).await.unwrap();
            let (challenge, exporter) = client.login_material();
            let proof = sender.sign_login(&challenge, &exporter).unwrap();
            client
                .login(sender.public_key().der(), proof)
                .await
                .unwrap();
            clients.push(Arc::new(client));
        }
        clients
    });
    let counter = Arc::new(AtomicU64::new(0));
    let fp = sender.fingerprint().0;
    let mut g = c.benchmark_group("mailbox");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("durable-send-1KiB-64-connections", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for (i, client) in clients.iter().enumerate() {
                    let share = iters / 64 + u64::from((i as u64) < iters % 64);
                    let client = client.clone();
                    let counter = counter.clone();
                    let template = template.clone();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..share {
                            let mut envelope = template.clone();
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            // A fresh message id per SEND (bytes 33..49 of the clear header).
                            envelope[33..41].copy_from_slice(&n.to_be_bytes());
                            assert!(client.send(fp, envelope).await.unwrap());
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(running.shutdown());
}

criterion_group!(benches, login, durable_sends);
criterion_main!(benches);
