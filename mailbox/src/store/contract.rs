//! The queue store's contract, which every engine keeps (run on each by its tests).

#![allow(clippy::unwrap_used)]

use crypto::{Fingerprint, MessageId};

use super::{Incoming, Origin, QueueStats, QueueStore, Quota, Stored};

/// When an engine forgets an acknowledged (or expired) id, so that a SEND of it is stored
/// again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forgets {
    /// At once (sled, memory).
    AtOnce,
    /// After a duplicate window longer than the test (JetStream: two minutes).
    AfterWindow,
}

pub(crate) fn env(recipient: Fingerprint, id: u8, now_ms: u64, body: &[u8]) -> Incoming {
    Incoming {
        recipient,
        id: MessageId([id; 16]),
        origin: Origin([9; 16]),
        envelope: body.to_vec(),
        now_ms,
    }
}

/// The contract every engine keeps.
pub(crate) async fn semantics<S: QueueStore>(q: S, forgets: Forgets) {
    let window = forgets == Forgets::AfterWindow;
    let bob = Fingerprint([2u8; 32]);
    let carol = Fingerprint([3u8; 32]);
    let open = Quota::UNLIMITED;
    assert_eq!(
        q.store(env(bob, 1, 100, b"one"), open).await.unwrap(),
        Stored::New
    );
    assert_eq!(
        q.store(env(bob, 2, 200, b"two"), open).await.unwrap(),
        Stored::New
    );
    assert_eq!(
        q.store(env(bob, 1, 300, b"one"), open).await.unwrap(),
        Stored::Duplicate
    );
    assert_eq!(
        q.stats(),
        QueueStats {
            envelopes: 2,
            bytes: 6
        }
    );
    assert_eq!(
        q.pull(&bob, 10, 1 << 20).await.unwrap(),
        (vec![b"one".to_vec(), b"two".to_vec()], false)
    );
    assert_eq!(
        q.pull(&bob, 1, 1 << 20).await.unwrap(),
        (vec![b"one".to_vec()], true)
    );
    assert_eq!(
        q.pull(&bob, 10, 4).await.unwrap(),
        (vec![b"one".to_vec()], true),
        "byte bound"
    );
    assert_eq!(
        q.pull(&bob, 10, 1).await.unwrap(),
        (vec![b"one".to_vec()], true),
        "at least one"
    );
    assert_eq!(q.pull(&carol, 10, 1 << 20).await.unwrap(), (vec![], false));
    // carol cannot ack bob's envelopes
    assert_eq!(q.ack(carol, vec![MessageId([1; 16])]).await.unwrap(), 0);
    assert_eq!(
        q.ack(bob, vec![MessageId([1; 16]), MessageId([1; 16])])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        q.ack(bob, vec![MessageId([1; 16])]).await.unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(
        q.pull(&bob, 10, 1 << 20).await.unwrap(),
        (vec![b"two".to_vec()], false)
    );
    // forgotten once acknowledged: a late retry is stored again (and acknowledged again),
    // or within an engine's duplicate window answered as a duplicate
    assert_eq!(
        q.store(env(bob, 1, 400, b"one"), open).await.unwrap(),
        if window {
            Stored::Duplicate
        } else {
            Stored::New
        }
    );
    assert_eq!(
        q.ack(bob, vec![MessageId([1; 16])]).await.unwrap(),
        u64::from(!window)
    );
    // quota: two envelopes at most, counting what is queued (one now)
    let quota = Quota {
        envelopes: 2,
        ..Quota::UNLIMITED
    };
    assert_eq!(
        q.store(env(bob, 3, 500, b"three"), quota).await.unwrap(),
        Stored::New
    );
    assert_eq!(
        q.store(env(bob, 4, 500, b"four"), quota).await.unwrap(),
        Stored::OverQuota
    );
    let tight = Quota {
        envelopes: 100,
        bytes: 10,
        ..Quota::UNLIMITED
    };
    assert_eq!(
        q.store(env(carol, 5, 500, b"0123456789x"), tight)
            .await
            .unwrap(),
        Stored::OverQuota
    );
    assert_eq!(
        q.store(env(carol, 5, 500, b"0123456789"), tight)
            .await
            .unwrap(),
        Stored::New
    );
    // one sending address: 18 bytes queued now, at most 20 from it; another address is
    // not held back
    let from_origin = Quota {
        origin_bytes: 20,
        ..Quota::UNLIMITED
    };
    assert_eq!(
        q.store(env(carol, 6, 500, b"abc"), from_origin)
            .await
            .unwrap(),
        Stored::OriginFull
    );
    let mut elsewhere = env(carol, 6, 500, b"abc");
    elsewhere.origin = Origin([8; 16]);
    assert_eq!(
        q.store(elsewhere.clone(), from_origin).await.unwrap(),
        Stored::New
    );
    // and in envelopes: this address has 3 queued
    let three = Quota {
        origin_envelopes: 3,
        ..Quota::UNLIMITED
    };
    assert_eq!(
        q.store(env(carol, 7, 500, b"a"), three).await.unwrap(),
        Stored::OriginFull
    );
    assert_eq!(q.ack(carol, vec![MessageId([6; 16])]).await.unwrap(), 1);
    // retention: everything stored before 250 goes, and its id is forgotten
    assert_eq!(
        q.expire(250).await.unwrap(),
        1,
        "only 'two' was still queued"
    );
    assert_eq!(
        q.pull(&bob, 10, 1 << 20).await.unwrap(),
        (vec![b"three".to_vec()], false)
    );
    assert_eq!(
        q.store(env(bob, 1, 600, b"one"), open).await.unwrap(),
        if window {
            Stored::Duplicate
        } else {
            Stored::New
        }
    );
    assert_eq!(
        q.stats(),
        if window {
            QueueStats {
                envelopes: 2,
                bytes: 15,
            }
        } else {
            QueueStats {
                envelopes: 3,
                bytes: 18,
            }
        }
    );
}
