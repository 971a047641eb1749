//! Model-based test of the device key store: random publications and claims applied to the
//! sled engine, or to the JetStream one, and to the in-memory one give the same answers
//! after every step, across reopens of the store.

#![allow(clippy::unwrap_used)]

use crypto::{DeviceId, Fingerprint, PREKEY_LEN};
use mailbox::store::jetstream::local::LocalNats;
use mailbox::store::{
    JetStreamKeys, KeyLimits, KeyStore, MemoryKeys, NatsOptions, Publication, SledKeys,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Publish {
        owner: u8,
        device: u8,
        one_time: Vec<u8>,
        fallback: Option<u8>,
    },
    Claim {
        owner: u8,
        one_time: bool,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4u8, 0..2u8, proptest::collection::vec(0..12u8, 0..5), proptest::option::of(0..3u8))
            .prop_map(|(owner, device, one_time, fallback)| Op::Publish { owner, device, one_time, fallback }),
        4 => (0..4u8, any::<bool>()).prop_map(|(owner, one_time)| Op::Claim { owner, one_time }),
        1 => Just(Op::Reopen),
    ]
}

const LIMITS: KeyLimits = KeyLimits {
    max_owners: 3,
    max_one_time: 4,
};

/// Apply `ops` to the engine `open` gives (opened again at each `Reopen`) and to a model.
async fn run<K: KeyStore>(ops: Vec<Op>, open: impl AsyncFn() -> K) {
    let memory = MemoryKeys::default();
    let mut sled = Some(open().await);
    for (step, op) in ops.into_iter().enumerate() {
        let store = sled.as_ref().unwrap();
        match &op {
            Op::Publish {
                owner,
                device,
                one_time,
                fallback,
            } => {
                let publication = Publication {
                    device: DeviceId([*device; 16]),
                    certificate: vec![*device; 30],
                    one_time: one_time.iter().map(|&k| [k; PREKEY_LEN]).collect(),
                    fallback: fallback.map(|k| [100 + k; PREKEY_LEN]),
                };
                let owner = Fingerprint([*owner; 32]);
                assert_eq!(
                    store
                        .publish(owner, publication.clone(), LIMITS)
                        .await
                        .unwrap(),
                    memory.publish(owner, publication, LIMITS).await.unwrap(),
                    "step {step}: {op:?}"
                );
            }
            Op::Claim { owner, one_time } => {
                let owner = Fingerprint([*owner; 32]);
                assert_eq!(
                    store.claim(owner, *one_time).await.unwrap(),
                    memory.claim(owner, *one_time).await.unwrap(),
                    "step {step}: {op:?}"
                );
            }
            Op::Reopen => {
                drop(sled.take());
                sled = Some(open().await);
            }
        }
        assert_eq!(
            sled.as_ref().unwrap().owners(),
            memory.owners(),
            "step {step}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn sled_and_memory_key_stores_agree(ops in proptest::collection::vec(op(), 1..50)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(run(ops, async || SledKeys::open(dir.path()).unwrap()));
    }
}

/// The same against JetStream: one nats-server for every case, a bucket of its own each.
#[test]
fn jetstream_and_memory_key_stores_agree() {
    let dir = tempfile::tempdir().unwrap();
    let nats = LocalNats::start(dir.path(), 1).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let case = std::sync::atomic::AtomicU64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(16));
    runner
        .run(&proptest::collection::vec(op(), 1..50), |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut options = NatsOptions::new(&nats.urls(), std::time::Duration::from_secs(3600));
            options.key_bucket = format!("model-keys-{n}");
            rt.block_on(run(ops, async || {
                JetStreamKeys::open(&options).await.unwrap()
            }));
            Ok(())
        })
        .unwrap();
}
