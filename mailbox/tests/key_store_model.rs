//! Model-based test of the device key store: random publications and claims applied to the
//! sled engine and to the in-memory one give the same answers after every step, across
//! reopens of the sled store.

#![allow(clippy::unwrap_used)]

use crypto::{DeviceId, Fingerprint, PREKEY_LEN};
use mailbox::store::{KeyLimits, KeyStore, MemoryKeys, Publication, SledKeys};
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

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let memory = MemoryKeys::default();
    let mut sled = Some(SledKeys::open(dir.path()).unwrap());
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
                sled = Some(SledKeys::open(dir.path()).unwrap());
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
        rt.block_on(run(ops));
    }
}
