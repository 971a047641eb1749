//! People have names, not slugs (issue 16 item 4): contacts and profiles take any display
//! name; the node derives the key they are found under, and existing ASCII names keep theirs.

#![allow(clippy::unwrap_used)]

mod common;

use node::core::error::NodeError;
use node::core::service::url_key;

#[test]
fn keys_are_derived_from_names_in_any_script() {
    assert_eq!(url_key("bob", "contact"), "bob", "a key keeps itself");
    assert_eq!(url_key("Bob_2.x", "contact"), "Bob_2.x");
    assert_eq!(url_key("Zoë Müller", "contact"), "zoe-muller");
    assert_eq!(url_key("  Ana  María ", "contact"), "ana-maria");
    assert_eq!(url_key("李雷", "contact"), "li-lei");
    assert_eq!(url_key("Дмитрий", "contact"), "dmitrii");
    assert_eq!(url_key("😀", "contact"), "grinning");
    assert_eq!(
        url_key("!!!", "contact"),
        "contact",
        "nothing left: the fallback"
    );
    let long = url_key(&"Ünïcödé ".repeat(20), "contact");
    assert!(long.len() <= 48 && !long.ends_with('-'), "{long}");
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_take_display_names_and_get_free_keys() {
    let (node, _keys) = common::memory_node();
    node.create_identity("alice".into(), None).await.unwrap();
    let (other, _k) = common::memory_node();
    let mut pems = Vec::new();
    for n in 0..4 {
        let r = other.create_identity(format!("p{n}"), None).await.unwrap();
        pems.push(other.identity(&r.id).unwrap().public_key().to_pem());
    }
    let zoe = node
        .add_contact("alice".into(), "Zoë Müller".into(), pems[0].clone())
        .await
        .unwrap();
    assert_eq!(
        (zoe.name.as_str(), zoe.shown_name()),
        ("zoe-muller", "Zoë Müller")
    );
    // The same name again: its own key.
    let zoe2 = node
        .add_contact("alice".into(), "Zoë Müller".into(), pems[1].clone())
        .await
        .unwrap();
    assert_eq!(zoe2.name, "zoe-muller-2");
    // An ASCII name keeps it as its key, and a taken one is still refused.
    let bob = node
        .add_contact("alice".into(), "bob".into(), pems[2].clone())
        .await
        .unwrap();
    assert_eq!((bob.name.as_str(), bob.display_name), ("bob", None));
    let again = node
        .add_contact("alice".into(), "bob".into(), pems[3].clone())
        .await;
    assert!(matches!(again, Err(NodeError::Conflict(_))), "{again:?}");
    // Renamed: the key stays, the name changes; renamed to its key, no display name.
    let renamed = node
        .rename_contact("alice".into(), "bob".into(), "Bob Smith".into())
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.shown_name()),
        ("bob", "Bob Smith")
    );
    assert_eq!(
        node.contact("alice", "bob").unwrap().shown_name(),
        "Bob Smith"
    );
    let back = node
        .rename_contact("alice".into(), "bob".into(), "bob".into())
        .await
        .unwrap();
    assert_eq!(back.display_name, None);
    // Bad names are refused with words.
    for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
        let e = node
            .add_contact("alice".into(), bad.into(), pems[3].clone())
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                NodeError::Invalid {
                    code: "invalid_name",
                    ..
                }
            ),
            "{bad:?}: {e:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contact_from_an_invite_takes_its_name_unless_given_one() {
    let (a, _ka) = common::memory_node();
    let (b, _kb) = common::memory_node();
    a.create_identity(String::new(), Some("Ana María".into()))
        .await
        .unwrap();
    let ana = a.identities().unwrap().remove(0);
    assert_eq!(ana.id, "ana-maria", "a profile's id comes from its name");
    b.create_identity("bob".into(), None).await.unwrap();
    let invite = a.invite("ana-maria").unwrap();
    let c = b
        .add_contact_from_invite("bob".into(), None, &invite)
        .await
        .unwrap();
    assert_eq!(
        (c.name.as_str(), c.shown_name()),
        ("ana-maria", "Ana María")
    );
    b.delete_contact("bob".into(), c.name).await.unwrap();
    let c = b
        .add_contact_from_invite("bob".into(), Some("Ana from work".into()), &invite)
        .await
        .unwrap();
    assert_eq!(c.shown_name(), "Ana from work");
    // A second profile of the same name gets its own id.
    a.create_identity(String::new(), Some("Ana María".into()))
        .await
        .unwrap();
    let ids: Vec<String> = a.identities().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["ana-maria", "ana-maria-2"]);
    // Without an id, a name is needed.
    let e = a.create_identity(String::new(), None).await.unwrap_err();
    assert!(
        matches!(
            &e,
            NodeError::Invalid {
                code: "invalid_display_name",
                ..
            }
        ),
        "{e:?}"
    );
}

/// Issue 16 item 7: what a person reads is a sentence, with no field prefixes or byte counts.
#[tokio::test(flavor = "multi_thread")]
async fn errors_read_like_sentences() {
    let (node, _keys) = common::memory_node();
    node.create_identity("alice".into(), None).await.unwrap();
    let pem = node.identity("alice").unwrap().public_key().to_pem();
    let (other, _k) = common::memory_node();
    other.create_identity("bob".into(), None).await.unwrap();
    let bob_pem = other.identity("bob").unwrap().public_key().to_pem();
    node.add_contact("alice".into(), "bob".into(), bob_pem)
        .await
        .unwrap();
    let long = "x".repeat(195 * 1024 - 10);
    let cases = [
        (
            node.send_text("alice".into(), "bob".into(), long).await,
            "This message is too long: 195 KB of 64 KB.",
        ),
        (
            node.send_text("alice".into(), "bob".into(), "  ".into())
                .await,
            "This message is empty: write something first.",
        ),
    ];
    for (result, words) in cases {
        assert_eq!(result.unwrap_err().to_string(), words);
    }
    let e = node
        .add_contact("alice".into(), "me".into(), pem)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("This is your own key"), "{e}");
    let e = node
        .add_contact_from_invite("alice".into(), None, "hello")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(e, "Not an invite code (it should start with sm1-)");
    let e = node
        .add_contact(
            "alice".into(),
            "x".into(),
            "-----BEGIN PUBLIC KEY-----".into(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("This is not a public key we can use: "),
        "{e}"
    );
    assert!(!e.contains("public_key:"), "{e}");
}
