//! Model-based test of the node's key-value engines: random batches, reads, scans (both
//! directions, with bounds and limits) and reopens applied to the sled engine and to the
//! in-memory one must agree at every step.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use node::core::store::{Kv, MemoryKv, SledKv};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Apply(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    ApplyLazily(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Get(Vec<u8>),
    Scan(Vec<u8>),
    ScanRev {
        prefix: Vec<u8>,
        before: Option<Vec<u8>>,
        limit: usize,
    },
    NextSeq,
    Reopen,
}

/// Short keys over a tiny alphabet, so that prefixes, bounds and overwrites collide often.
fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0xff)], 0..4)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(
            (key(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6))),
            0..5
        )
        .prop_map(Op::Apply),
        2 => proptest::collection::vec(
            (key(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6))),
            0..5
        )
        .prop_map(Op::ApplyLazily),
        2 => key().prop_map(Op::Get),
        2 => key().prop_map(Op::Scan),
        2 => (key(), proptest::option::of(key()), 0..5usize)
            .prop_map(|(prefix, before, limit)| Op::ScanRev { prefix, before, limit }),
        1 => Just(Op::NextSeq),
        1 => Just(Op::Reopen),
    ]
}

fn open(dir: &Path) -> SledKv {
    for _ in 0..400 {
        if let Ok(kv) = SledKv::open(dir) {
            return kv;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    SledKv::open(dir).unwrap()
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut sled = Some(open(dir.path()));
    let memory = MemoryKv::default();
    let (mut last_seq, mut last_memory_seq) = (0, 0);
    for (step, op) in ops.into_iter().enumerate() {
        let s = sled.as_ref().unwrap();
        match &op {
            Op::Apply(batch) => {
                s.apply(batch.clone()).unwrap();
                memory.apply(batch.clone()).unwrap();
            }
            Op::ApplyLazily(batch) => {
                s.apply_lazily(batch.clone()).unwrap();
                memory.apply_lazily(batch.clone()).unwrap();
            }
            Op::Get(k) => assert_eq!(s.get(k).unwrap(), memory.get(k).unwrap(), "step {step}"),
            Op::Scan(p) => assert_eq!(s.scan(p).unwrap(), memory.scan(p).unwrap(), "step {step}"),
            Op::ScanRev {
                prefix,
                before,
                limit,
            } => assert_eq!(
                s.scan_rev(prefix, before.as_deref(), *limit).unwrap(),
                memory.scan_rev(prefix, before.as_deref(), *limit).unwrap(),
                "step {step}: {op:?}"
            ),
            Op::NextSeq => {
                // Numbers differ between engines; both only promise to increase.
                let n = s.next_seq().unwrap();
                assert!(
                    n > last_seq || last_seq == 0,
                    "step {step}: {n} after {last_seq}"
                );
                last_seq = n;
                let m = memory.next_seq().unwrap();
                assert!(
                    m > last_memory_seq,
                    "step {step}: memory {m} after {last_memory_seq}"
                );
                last_memory_seq = m;
            }
            Op::Reopen => {
                drop(sled.take());
                sled = Some(open(dir.path()));
            }
        }
    }
    // Everything, at the end.
    assert_eq!(
        sled.as_ref().unwrap().scan(&[]).unwrap(),
        memory.scan(&[]).unwrap()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sled_and_memory_engines_agree(ops in proptest::collection::vec(op(), 1..50)) {
        run(ops);
    }
}

/// A lazy write is not synced by itself; the next durable write carries it, in order.
#[test]
fn a_lazy_write_waits_for_no_sync_and_the_next_durable_write_carries_it() {
    let dir = tempfile::tempdir().unwrap();
    let kv = open(dir.path());
    let before = kv.syncs();
    kv.apply_lazily(vec![(b"lazy".to_vec(), Some(vec![1]))])
        .unwrap();
    assert_eq!(kv.syncs(), before, "no fdatasync for a lazy write");
    assert_eq!(
        kv.get(b"lazy").unwrap(),
        Some(vec![1]),
        "but readable at once"
    );
    kv.apply(vec![(b"durable".to_vec(), Some(vec![2]))])
        .unwrap();
    assert_eq!(kv.syncs(), before + 1);
    drop(kv);
    let kv = open(dir.path());
    assert_eq!(kv.get(b"lazy").unwrap(), Some(vec![1]));
    assert_eq!(kv.get(b"durable").unwrap(), Some(vec![2]));
}

/// Every write is fdatasynced before it returns (sled's flush alone does not survive a power
/// loss); writers waiting together share one sync.
#[test]
fn every_write_is_synced_to_the_disk_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let kv = Arc::new(open(dir.path()));
    for i in 0..3u64 {
        let before = kv.syncs();
        kv.apply(vec![(i.to_be_bytes().to_vec(), Some(vec![1]))])
            .unwrap();
        assert_eq!(kv.syncs(), before + 1, "write {i}");
    }
    let before = kv.syncs();
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    let key = [w.to_be_bytes(), i.to_be_bytes()].concat();
                    kv.apply(vec![(key, Some(vec![2]))]).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let syncs = kv.syncs() - before;
    assert!((1..=200).contains(&syncs), "{syncs} syncs for 200 writes");
    assert_eq!(kv.scan(&[]).unwrap().len(), 203);
}
