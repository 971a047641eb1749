//! Device keys on the real mailbox: published over QUIC into sled, claimed, and what a claim
//! took stays taken across kill -9.

#[allow(clippy::wildcard_imports)]
use super::*;
use crypto::{Device, SignedPrekey};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_keys_stay_claimed_across_kill_9() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut mailbox = Mailbox::start_with(dir.path(), &[], &[])?;
    let [alice, bob] = identities().await?;
    let mut device = Device::new(bob.fingerprint(), std::time::SystemTime::now());
    device.generate_one_time_keys(3);
    device.rotate_fallback_key();
    let certificate = device.certify(&bob)?;
    let prekeys = device.unpublished_prekeys();

    let bob_client = mailbox.connect_as(&[&bob]).await?;
    let published = bob_client
        .publish_keys(bob.public_key().der(), &certificate, &prekeys)
        .await?;
    assert_eq!(published, Some(3));
    let alice_client = mailbox.connect_as(&[&alice]).await?;
    let mut served: Vec<SignedPrekey> = Vec::new();
    for _ in 0..2 {
        let bundle = alice_client
            .claim_key(fp(&alice), fp(&bob))
            .await?
            .context("a key")?;
        assert!(!bundle.verify(bob.public_key())?.is_fallback());
        served.push(bundle.prekey);
    }

    mailbox.proc.kill();
    let again = mailbox.restart()?;
    let alice_client = again.connect_as(&[&alice]).await?;
    let third = alice_client
        .claim_key(fp(&alice), fp(&bob))
        .await?
        .context("the third key")?;
    assert!(!third.verify(bob.public_key())?.is_fallback());
    assert!(
        !served.contains(&third.prekey),
        "a claimed key served again"
    );
    let fourth = alice_client
        .claim_key(fp(&alice), fp(&bob))
        .await?
        .context("the fallback key")?;
    assert!(fourth.verify(bob.public_key())?.is_fallback());
    // Nobody published for alice: nothing to claim.
    assert!(
        alice_client
            .claim_key(fp(&alice), fp(&alice))
            .await?
            .is_none()
    );
    Ok(())
}
