//! Model-based test of the queue store: random sequences of operations applied to the sled
//! engine, or to the JetStream one, and to the in-memory one must give the same answers,
//! the same pulls and the same figures after every step, across reopens of the store. Small
//! partitions make the sled engine cross its partition and retention paths often, and two
//! sending addresses share a tight bound.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use crypto::{Fingerprint, MessageId};
use mailbox::store::jetstream::local::LocalNats;
use mailbox::store::{
    Incoming, JetStreamQueue, MemoryQueue, NatsOptions, Origin, QueueStore, Quota, SledOptions,
    SledQueue,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Store {
        recipient: u8,
        id: u8,
        after_ms: u16,
        len: u8,
    },
    Ack {
        recipient: u8,
        ids: Vec<u8>,
    },
    Pull {
        recipient: u8,
        max: u8,
    },
    Expire {
        back_ms: u16,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Often in the same millisecond as the last.
        6 => (0..3u8, 0..24u8, prop_oneof![Just(0u16), 0..700u16], 0..60u8).prop_map(
            |(recipient, id, after_ms, len)| Op::Store { recipient, id, after_ms, len }
        ),
        2 => (0..3u8, proptest::collection::vec(0..24u8, 0..5))
            .prop_map(|(recipient, ids)| Op::Ack { recipient, ids }),
        2 => (0..3u8, 1..6u8).prop_map(|(recipient, max)| Op::Pull { recipient, max }),
        1 => (0..3000u16).prop_map(|back_ms| Op::Expire { back_ms }),
        1 => Just(Op::Reopen),
    ]
}

const OPTIONS: SledOptions = SledOptions {
    bucket: Duration::from_secs(1),
    cache_bytes: 1 << 20,
};

const QUOTA: Quota = Quota {
    envelopes: 6,
    bytes: 200,
    origin_bytes: 300,
    origin_envelopes: 8,
};

/// Open the sled store, waiting for the previous instance's committer to let go of it.
fn open(dir: &Path) -> SledQueue {
    for _ in 0..400 {
        if let Ok(q) = SledQueue::open_with(dir, OPTIONS) {
            return q;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    SledQueue::open_with(dir, OPTIONS).unwrap()
}

/// Apply `ops` to the engine `open` gives (opened again at each `Reopen`) and to `memory`.
async fn run<S: QueueStore>(ops: Vec<Op>, open: impl AsyncFn() -> S, memory: MemoryQueue) {
    let mut sled = Some(open().await);
    let mut now = 1_000u64;
    for (step, op) in ops.into_iter().enumerate() {
        let s = sled.as_ref().unwrap();
        match &op {
            Op::Store {
                recipient,
                id,
                after_ms,
                len,
            } => {
                now += u64::from(*after_ms);
                let incoming = Incoming {
                    recipient: Fingerprint([*recipient; 32]),
                    id: MessageId([*id; 16]),
                    origin: Origin([*recipient % 2; 16]),
                    envelope: vec![*id; usize::from(*len) + 1],
                    now_ms: now,
                };
                let a = s.store(incoming.clone(), QUOTA).await.unwrap();
                let b = memory.store(incoming, QUOTA).await.unwrap();
                assert_eq!(a, b, "step {step}: {op:?}");
            }
            Op::Ack { recipient, ids } => {
                let ids: Vec<MessageId> = ids.iter().map(|i| MessageId([*i; 16])).collect();
                let a = s
                    .ack(Fingerprint([*recipient; 32]), ids.clone())
                    .await
                    .unwrap();
                let b = memory
                    .ack(Fingerprint([*recipient; 32]), ids)
                    .await
                    .unwrap();
                assert_eq!(a, b, "step {step}: {op:?}");
            }
            Op::Pull { recipient, max } => {
                let a = s
                    .pull(&Fingerprint([*recipient; 32]), usize::from(*max), 1 << 20)
                    .await
                    .unwrap();
                let b = memory
                    .pull(&Fingerprint([*recipient; 32]), usize::from(*max), 1 << 20)
                    .await
                    .unwrap();
                assert_eq!(a, b, "step {step}: {op:?}");
            }
            Op::Expire { back_ms } => {
                let cutoff = now.saturating_sub(u64::from(*back_ms));
                let a = s.expire(cutoff).await.unwrap();
                let b = memory.expire(cutoff).await.unwrap();
                assert_eq!(a, b, "step {step}: {op:?} at {now}");
            }
            Op::Reopen => {
                drop(sled.take());
                sled = Some(open().await);
                // A restart takes at least a millisecond: the sled engine's first sequence
                // after it is a millisecond after every earlier one (sequences never repeat),
                // which a store in the same millisecond as before the reopen would see.
                now += 1;
            }
        }
        assert_eq!(
            sled.as_ref().unwrap().stats(),
            memory.stats(),
            "step {step}: figures after {op:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sled_and_memory_stores_agree(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(run(ops, async || open(dir.path()), MemoryQueue::default()));
    }
}

/// The same against JetStream (one nats-server for every case, a stream of its own each;
/// a reopen is a front-end's restart, which reads its index back from the stream). Its
/// duplicate window outlasts the test: the model remembers every id.
#[test]
fn jetstream_and_memory_stores_agree() {
    let dir = tempfile::tempdir().unwrap();
    let nats = LocalNats::start(dir.path(), 1).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let case = std::sync::atomic::AtomicU64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    runner
        .run(&proptest::collection::vec(op(), 1..60), |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut options = NatsOptions::new(&nats.urls(), Duration::from_secs(3600));
            options.stream = format!("MODEL{n}");
            options.prefix = format!("model{n}");
            rt.block_on(run(
                ops,
                async || JetStreamQueue::open(&options).await.unwrap(),
                MemoryQueue::remembering_ids(),
            ));
            Ok(())
        })
        .unwrap();
}
