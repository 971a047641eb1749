//! The key store contract, on both engines.

#![allow(clippy::unwrap_used)]

use super::*;

fn key(n: u8) -> [u8; PREKEY_LEN] {
    [n; PREKEY_LEN]
}

fn publication(device: u8, one_time: &[u8], fallback: Option<u8>) -> Publication {
    Publication {
        device: DeviceId([device; 16]),
        certificate: vec![device; 40],
        one_time: one_time.iter().map(|&n| key(n)).collect(),
        fallback: fallback.map(key),
    }
}

const LIMITS: KeyLimits = KeyLimits {
    max_owners: 2,
    max_one_time: 3,
};

/// The contract every engine keeps.
pub(crate) async fn contract<K: KeyStore>(store: K) {
    let (bob, carol, dave) = (
        Fingerprint([2; 32]),
        Fingerprint([3; 32]),
        Fingerprint([4; 32]),
    );
    assert_eq!(store.claim(bob, true).await.unwrap(), None);
    assert_eq!(
        store
            .publish(bob, publication(1, &[10, 11], Some(20)), LIMITS)
            .await
            .unwrap(),
        Published::Stored { one_time: 2 }
    );
    assert_eq!(store.owners(), 1);
    // A retried publication adds nothing; the cap holds.
    assert_eq!(
        store
            .publish(bob, publication(1, &[10, 11, 12, 13], None), LIMITS)
            .await
            .unwrap(),
        Published::Stored { one_time: 3 }
    );
    // Oldest first, each once, then the fallback key, which stays.
    let claim = |one_time| store.claim(bob, one_time);
    for expected in [10, 11, 12] {
        let claimed = claim(true).await.unwrap().unwrap();
        assert_eq!(
            (claimed.prekey, claimed.certificate),
            (key(expected), vec![1; 40])
        );
    }
    assert_eq!(claim(true).await.unwrap().unwrap().prekey, key(20));
    assert_eq!(claim(true).await.unwrap().unwrap().prekey, key(20));
    // A claimer held back gets the fallback key while one-time keys are left.
    store
        .publish(bob, publication(1, &[14], None), LIMITS)
        .await
        .unwrap();
    assert_eq!(claim(false).await.unwrap().unwrap().prekey, key(20));
    assert_eq!(claim(true).await.unwrap().unwrap().prekey, key(14));

    // A new device replaces everything.
    store
        .publish(bob, publication(1, &[15], None), LIMITS)
        .await
        .unwrap();
    assert_eq!(
        store
            .publish(bob, publication(2, &[30], None), LIMITS)
            .await
            .unwrap(),
        Published::Stored { one_time: 1 }
    );
    let claimed = claim(true).await.unwrap().unwrap();
    assert_eq!(
        (claimed.prekey, claimed.certificate),
        (key(30), vec![2; 40])
    );
    assert_eq!(claim(true).await.unwrap(), None, "no fallback key yet");
    assert_eq!(store.owners(), 1);

    // Owners are bounded; a known one may always publish again.
    store
        .publish(carol, publication(3, &[], Some(40)), LIMITS)
        .await
        .unwrap();
    assert_eq!(
        store
            .publish(dave, publication(4, &[50], None), LIMITS)
            .await
            .unwrap(),
        Published::Full
    );
    assert_eq!(store.claim(dave, true).await.unwrap(), None);
    assert_eq!(store.owners(), 2);
    assert!(matches!(
        store
            .publish(carol, publication(3, &[41], None), LIMITS)
            .await
            .unwrap(),
        Published::Stored { one_time: 1 }
    ));
}

#[tokio::test]
async fn memory_keys_keep_the_contract() {
    contract(MemoryKeys::default()).await;
}

#[cfg(feature = "server")]
#[tokio::test]
async fn sled_keys_keep_the_contract_and_reopen_with_it() {
    let dir = tempfile::tempdir().unwrap();
    contract(SledKeys::open(dir.path()).unwrap()).await;
    // Reopened: the same owners and keys.
    let store = SledKeys::open(dir.path()).unwrap();
    assert_eq!(store.owners(), 2);
    let carol = Fingerprint([3; 32]);
    assert_eq!(
        store.claim(carol, true).await.unwrap().unwrap().prekey,
        key(41)
    );
    assert_eq!(
        store.claim(carol, true).await.unwrap().unwrap().prekey,
        key(40)
    );
}
