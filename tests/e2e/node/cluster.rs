//! Nodes on a clustered mailbox: alice's address lists front-end A first, bob's B first
//! (one certificate, one pin for both). Messages and receipts flow both ways across the
//! front-ends; when A is killed (kill -9), alice's node fails over to B, and nothing is
//! lost or shown twice.

use super::*;
use tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_fail_over_between_front_ends_and_lose_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(&dir.path().join("cluster"), 3, 2)?;
    let (a, b) = (&cluster.front_ends[0], &cluster.front_ends[1]);
    let pin = &a.fingerprint;
    let alice = Node::start(
        &dir.path().join("alice"),
        &format!("{},{}#{pin}", a.addr, b.addr),
    )?;
    let bob = Node::start(
        &dir.path().join("bob"),
        &format!("{},{}#{pin}", b.addr, a.addr),
    )?;
    tokio::try_join!(alice.create_identity("alice"), bob.create_identity("bob"))?;
    alice.add_contact_from("alice", "bob", &bob, "bob").await?;
    bob.add_contact_from("bob", "alice", &alice, "alice")
        .await?;
    tokio::try_join!(
        forward_secret(&alice, "alice", "bob"),
        forward_secret(&bob, "bob", "alice")
    )?;

    for i in 0..3 {
        send(&alice, "alice", "bob", &format!("a{i}")).await?;
        send(&bob, "bob", "alice", &format!("b{i}")).await?;
    }
    all_delivered(&alice, "alice", "bob", 3, WAIT).await?;
    all_delivered(&bob, "bob", "alice", 3, WAIT).await?;

    // Front-end A goes (kill -9): alice's node moves to B.
    cluster.front_ends[0].proc.kill();
    for i in 3..6 {
        send(&alice, "alice", "bob", &format!("a{i}")).await?;
        send(&bob, "bob", "alice", &format!("b{i}")).await?;
    }
    let long = Duration::from_secs(60);
    all_delivered(&alice, "alice", "bob", 6, long).await?;
    all_delivered(&bob, "bob", "alice", 6, long).await?;
    for (node, id, contact, from) in [(&bob, "bob", "alice", 'a'), (&alice, "alice", "bob", 'b')] {
        let seen = transcript(node, id, contact).await?;
        let received: Vec<&str> = seen.iter().filter_map(|t| t.strip_prefix("< ")).collect();
        let sent: Vec<String> = (0..6).map(|i| format!("{from}{i}")).collect();
        assert_eq!(
            received, sent,
            "each message once, in order, at {id}: {seen:?}"
        );
    }
    assert!(all_forward_secret(&bob, "bob", "alice").await?);
    drop(cluster.front_ends.remove(0));
    Ok(())
}
