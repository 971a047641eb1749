//! PublishKeys and ClaimKey, stepped in memory: who may publish what, what claimers get,
//! and the bounds on both.

use crypto::{Bundle, Device, DeviceCertificate, SignedPrekey};

use super::*;

/// An identity's device with `n` one-time keys and a fallback key, not yet published.
fn device(who: &Identity, n: usize) -> (Device, DeviceCertificate, Vec<SignedPrekey>) {
    let mut device = Device::new(who.fingerprint(), std::time::UNIX_EPOCH);
    device.generate_one_time_keys(n);
    device.rotate_fallback_key();
    let certificate = device.certify(who).unwrap();
    let prekeys = device.unpublished_prekeys();
    device.mark_published();
    (device, certificate, prekeys)
}

impl World {
    fn publish(
        &self,
        peer: &Peer,
        who: &Identity,
        certificate: &DeviceCertificate,
        prekeys: &[SignedPrekey],
    ) -> Result<Option<u32>, SessionError> {
        let request = ClientSession::publish_keys(who.public_key().der(), certificate, prekeys);
        ClientSession::keys_published(self.request(peer, &request))
    }

    fn claim(
        &self,
        peer: &Peer,
        claimer: &Identity,
        owner: &Identity,
    ) -> Result<Option<Bundle>, SessionError> {
        let request = ClientSession::claim_key(claimer.fingerprint(), owner.fingerprint());
        ClientSession::key_claimed(self.request(peer, &request))
    }
}

fn refused(result: Result<impl std::fmt::Debug, SessionError>) -> ErrorCode {
    match result {
        Err(SessionError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn published_keys_are_claimed_each_once_then_the_fallback() {
    let [alice, bob, ..] = people();
    let mut world = World::new(policy());
    let bob_peer = world.connect_as(&[bob]);
    let alice_peer = world.connect_as(&[alice]);
    assert_eq!(
        world.claim(&alice_peer, alice, bob).unwrap(),
        None,
        "nothing yet"
    );

    let (_, certificate, prekeys) = device(bob, 3);
    assert_eq!(
        world.publish(&bob_peer, bob, &certificate, &prekeys),
        Ok(Some(3))
    );
    // Asking again with no keys says how many are left, and changes nothing.
    assert_eq!(
        world.publish(&bob_peer, bob, &certificate, &[]),
        Ok(Some(3))
    );

    let mut served = Vec::new();
    for _ in 0..3 {
        let bundle = world.claim(&alice_peer, alice, bob).unwrap().unwrap();
        let verified = bundle.verify(bob.public_key()).unwrap();
        assert!(!verified.is_fallback());
        served.push(bundle.prekey);
    }
    served.sort_by_key(SignedPrekey::to_bytes);
    served.dedup();
    assert_eq!(served.len(), 3, "each one-time key is served once");
    for _ in 0..2 {
        let bundle = world.claim(&alice_peer, alice, bob).unwrap().unwrap();
        assert!(bundle.verify(bob.public_key()).unwrap().is_fallback());
    }
    assert_eq!(
        world.publish(&bob_peer, bob, &certificate, &[]),
        Ok(Some(0))
    );
}

#[test]
fn only_checked_keys_of_a_logged_in_member_are_published() {
    let [alice, bob, carol, _] = people();
    let mut world = World::new(policy());
    let bob_peer = world.connect_as(&[bob]);
    let (_, certificate, prekeys) = device(bob, 2);
    let (_, carol_certificate, carol_prekeys) = device(carol, 1);

    // For someone not logged in on this connection.
    let as_carol = ClientSession::publish_keys(carol.public_key().der(), &carol_certificate, &[]);
    assert_eq!(
        refused(ClientSession::keys_published(
            world.request(&bob_peer, &as_carol)
        )),
        ErrorCode::NotLoggedIn
    );
    // Carol's certificate under bob's key; carol's prekeys with bob's certificate.
    assert_eq!(
        refused(world.publish(&bob_peer, bob, &carol_certificate, &[])),
        ErrorCode::Malformed
    );
    assert_eq!(
        refused(world.publish(&bob_peer, bob, &certificate, &carol_prekeys)),
        ErrorCode::Malformed
    );
    // A fallback key sent as a one-time key.
    let fallback = prekeys.iter().find(|k| k.is_fallback()).unwrap().clone();
    let request = Request::PublishKeys {
        owner_key: bob.public_key().der().to_vec(),
        certificate: certificate.to_bytes(),
        one_time: vec![fallback.to_bytes().to_vec()],
        fallback: None,
    };
    assert_eq!(
        refused(ClientSession::keys_published(
            world.request(&bob_peer, &request)
        )),
        ErrorCode::Malformed
    );
    // Garbage, and too many at once.
    let request = Request::PublishKeys {
        owner_key: bob.public_key().der().to_vec(),
        certificate: certificate.to_bytes(),
        one_time: vec![vec![1; 3]; protocol::MAX_PUBLISHED_KEYS + 1],
        fallback: None,
    };
    assert_eq!(
        refused(ClientSession::keys_published(
            world.request(&bob_peer, &request)
        )),
        ErrorCode::TooLarge
    );
    let request = Request::PublishKeys {
        owner_key: vec![1, 2, 3],
        certificate: certificate.to_bytes(),
        one_time: vec![],
        fallback: None,
    };
    assert_eq!(
        refused(ClientSession::keys_published(
            world.request(&bob_peer, &request)
        )),
        ErrorCode::Malformed
    );
    // None of it stored anything.
    let alice_peer = world.connect_as(&[alice]);
    assert_eq!(world.claim(&alice_peer, alice, bob).unwrap(), None);
    assert_eq!(world.mailbox.keys().owners(), 0);
    // A claim needs its claimer logged in.
    assert_eq!(
        refused(world.claim(&alice_peer, carol, bob)),
        ErrorCode::NotLoggedIn
    );
}

#[test]
fn with_an_allowlist_only_members_publish_and_are_claimed() {
    let [alice, bob, ..] = people();
    let mut policy = policy();
    policy.allowlist = [bob.fingerprint()].into();
    let mut world = World::new(policy);
    let alice_peer = world.connect_as(&[alice]);
    let (_, certificate, prekeys) = device(alice, 1);
    assert_eq!(
        refused(world.publish(&alice_peer, alice, &certificate, &prekeys)),
        ErrorCode::NotAllowed
    );
    assert_eq!(
        refused(world.claim(&alice_peer, alice, alice)),
        ErrorCode::NotAllowed
    );
    let bob_peer = world.connect_as(&[bob]);
    let (_, certificate, prekeys) = device(bob, 1);
    world
        .publish(&bob_peer, bob, &certificate, &prekeys)
        .unwrap();
    // A non-member may claim a member's key (to write to them), as it may SEND to them.
    assert!(world.claim(&alice_peer, alice, bob).unwrap().is_some());
}

/// Past the per-claimer or the per-owner limit a claim gets the fallback key, so neither
/// one claimer nor many can drain an identity's one-time keys; an hour later, one-time keys
/// again.
#[test]
fn claims_past_their_limits_get_the_fallback_key() {
    let [alice, bob, carol, dave] = people();
    let mut policy = policy();
    policy.key_claims_per_hour = 2.0;
    let mut world = World::new(policy);
    let bob_peer = world.connect_as(&[bob]);
    let (_, certificate, prekeys) = device(bob, 10);
    world
        .publish(&bob_peer, bob, &certificate, &prekeys)
        .unwrap();
    let peer = world.connect_as(&[alice, carol, dave]);
    let fallback_of = |world: &World, claimer: &Identity| {
        let bundle = world.claim(&peer, claimer, bob).unwrap().unwrap();
        bundle.verify(bob.public_key()).unwrap().is_fallback()
    };
    // One claimer: two one-time keys, then the fallback.
    assert!(!fallback_of(&world, alice));
    assert!(!fallback_of(&world, alice));
    assert!(fallback_of(&world, alice));
    // Another claimer: bob's own limit (2 an hour) is spent too.
    assert!(fallback_of(&world, carol));
    assert_eq!(
        world.publish(&bob_peer, bob, &certificate, &[]),
        Ok(Some(8))
    );
    world.advance(Duration::from_secs(3600));
    assert!(!fallback_of(&world, dave));
}

#[test]
fn key_owners_one_time_keys_and_publications_are_bounded() {
    let [alice, bob, ..] = people();
    let mut policy = policy();
    policy.max_key_owners = 1;
    policy.max_one_time_keys = 4;
    policy.key_publishes_per_hour = 3.0;
    let mut world = World::new(policy);
    let peer = world.connect_as(&[alice, bob]);
    let (_, certificate, prekeys) = device(bob, 6);
    assert_eq!(
        world.publish(&peer, bob, &certificate, &prekeys),
        Ok(Some(4))
    );
    let (_, alice_certificate, alice_prekeys) = device(alice, 1);
    assert_eq!(
        refused(world.publish(&peer, alice, &alice_certificate, &alice_prekeys)),
        ErrorCode::MailboxFull
    );
    assert_eq!(world.publish(&peer, bob, &certificate, &[]), Ok(Some(4)));
    assert_eq!(world.publish(&peer, bob, &certificate, &[]), Ok(Some(4)));
    assert_eq!(
        refused(world.publish(&peer, bob, &certificate, &[])),
        ErrorCode::RateLimited,
        "the fourth publication within the hour"
    );
}
