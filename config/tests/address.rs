//! `MailboxAddress`: parsing, display, serde, and its error messages.
#![allow(clippy::unwrap_used)]

use config::{AddressError, MailboxAddress};

const FP_LOWER: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn fp_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&FP_LOWER[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn parses_valid_addresses() {
    // (input, host, port, has fingerprint, canonical display)
    let fp_upper = FP_LOWER.to_uppercase();
    let with_fp = format!("127.0.0.1:50000#{FP_LOWER}");
    let with_upper_fp = format!("mail.example.org:443#{fp_upper}");
    let v6_with_fp = format!("[::1]:50000#{FP_LOWER}");
    let cases: Vec<(&str, &str, u16, bool, String)> = vec![
        (
            "127.0.0.1:50000",
            "127.0.0.1",
            50000,
            false,
            "127.0.0.1:50000".into(),
        ),
        ("localhost:1", "localhost", 1, false, "localhost:1".into()),
        (
            "mail.example.org:65535",
            "mail.example.org",
            65535,
            false,
            "mail.example.org:65535".into(),
        ),
        (
            "  127.0.0.1:50000 ",
            "127.0.0.1",
            50000,
            false,
            "127.0.0.1:50000".into(),
        ),
        ("[::1]:50000", "::1", 50000, false, "[::1]:50000".into()),
        (
            "[2001:db8::7]:8443",
            "2001:db8::7",
            8443,
            false,
            "[2001:db8::7]:8443".into(),
        ),
        (&with_fp, "127.0.0.1", 50000, true, with_fp.clone()),
        (
            &with_upper_fp,
            "mail.example.org",
            443,
            true,
            format!("mail.example.org:443#{FP_LOWER}"),
        ),
        (&v6_with_fp, "::1", 50000, true, v6_with_fp.clone()),
    ];
    for (input, host, port, has_fp, display) in cases {
        let addr: MailboxAddress = input.parse().unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(addr.host, host, "{input:?}");
        assert_eq!(addr.port, port, "{input:?}");
        assert_eq!(addr.fingerprint, has_fp.then(fp_bytes), "{input:?}");
        assert_eq!(addr.to_string(), display, "{input:?}");
        // Display output parses back to the same address.
        assert_eq!(
            display.parse::<MailboxAddress>().unwrap(),
            addr,
            "{input:?}"
        );
        assert_eq!(addr.fingerprint_hex().is_some(), has_fp);
    }
}

/// Whether an error is the expected variant.
type IsExpected = fn(&AddressError) -> bool;

#[test]
fn rejects_bad_addresses_with_a_reason() {
    // (input, matches the expected variant, words the message must contain)
    let short_fp = "127.0.0.1:50000#abcd".to_owned();
    let long_fp = format!("127.0.0.1:50000#{FP_LOWER}00");
    let non_hex_fp = format!("127.0.0.1:50000#{}", "g".repeat(64));
    let cases: Vec<(&str, IsExpected, &[&str])> = vec![
        ("", |e| matches!(e, AddressError::Empty), &["empty"]),
        ("   ", |e| matches!(e, AddressError::Empty), &["empty"]),
        (
            "127.0.0.1",
            |e| matches!(e, AddressError::MissingPort(_)),
            &["missing the port"],
        ),
        (
            "example.org",
            |e| matches!(e, AddressError::MissingPort(_)),
            &["missing the port"],
        ),
        (
            "[::1]",
            |e| matches!(e, AddressError::MissingPort(_)),
            &["missing the port"],
        ),
        (
            "127.0.0.1:",
            |e| matches!(e, AddressError::BadPort { .. }),
            &["bad port", "1 to 65535"],
        ),
        (
            "127.0.0.1:http",
            |e| matches!(e, AddressError::BadPort { .. }),
            &["bad port `http`"],
        ),
        (
            "127.0.0.1:65536",
            |e| matches!(e, AddressError::BadPort { .. }),
            &["bad port `65536`"],
        ),
        (
            "127.0.0.1:0",
            |e| matches!(e, AddressError::BadPort { .. }),
            &["bad port `0`"],
        ),
        (
            "127.0.0.1:+80",
            |e| matches!(e, AddressError::BadPort { .. }),
            &["bad port `+80`"],
        ),
        (
            "127.0.0.1:-1",
            |e| matches!(e, AddressError::BadPort { .. }),
            &["bad port `-1`"],
        ),
        (
            ":50000",
            |e| matches!(e, AddressError::BadHost { .. }),
            &["bad host", "empty"],
        ),
        (
            "::1:50000",
            |e| matches!(e, AddressError::BadHost { .. }),
            &["brackets"],
        ),
        (
            "[::1:50000",
            |e| matches!(e, AddressError::BadHost { .. }),
            &["closing `]`"],
        ),
        (
            "[nope]:50000",
            |e| matches!(e, AddressError::BadHost { .. }),
            &["not an IPv6 address"],
        ),
        (
            "[::1]x:50000",
            |e| matches!(e, AddressError::BadHost { .. }),
            &["after `]`"],
        ),
        (
            "my host:50000",
            |e| matches!(e, AddressError::BadHost { .. }),
            &["whitespace"],
        ),
        (
            &short_fp,
            |e| matches!(e, AddressError::BadFingerprint { len: 4, .. }),
            &["64 hex", "4 characters"],
        ),
        (
            &long_fp,
            |e| matches!(e, AddressError::BadFingerprint { len: 66, .. }),
            &["64 hex", "66 characters"],
        ),
        (
            &non_hex_fp,
            |e| matches!(e, AddressError::BadFingerprint { len: 64, .. }),
            &["64 hex"],
        ),
        (
            "127.0.0.1:50000#",
            |e| matches!(e, AddressError::BadFingerprint { len: 0, .. }),
            &["64 hex"],
        ),
    ];
    for (input, is_expected, words) in cases {
        let err = input
            .parse::<MailboxAddress>()
            .expect_err(&format!("{input:?} should not parse"));
        assert!(is_expected(&err), "{input:?}: unexpected error {err:?}");
        let msg = err.to_string();
        for word in words {
            assert!(
                msg.contains(word),
                "{input:?}: {msg:?} should contain {word:?}"
            );
        }
    }
}

#[test]
fn without_fingerprint_and_hex() {
    let addr: MailboxAddress = format!("[::1]:50000#{}", FP_LOWER.to_uppercase())
        .parse()
        .unwrap();
    assert_eq!(addr.fingerprint_hex().as_deref(), Some(FP_LOWER));
    let bare = addr.without_fingerprint();
    assert_eq!(bare.fingerprint, None);
    assert_eq!(bare.fingerprint_hex(), None);
    assert_eq!((bare.host.as_str(), bare.port), ("::1", 50000));
    assert_eq!(bare.to_string(), "[::1]:50000");
}

#[test]
fn serde_uses_the_string_form() {
    let text = format!("127.0.0.1:50000#{FP_LOWER}");
    let addr: MailboxAddress = text.parse().unwrap();
    let yaml = serde_norway::to_string(&addr).unwrap();
    assert_eq!(yaml.trim(), text);
    let back: MailboxAddress = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(back, addr);

    let err = serde_norway::from_str::<MailboxAddress>("127.0.0.1").unwrap_err();
    assert!(err.to_string().contains("missing the port"), "{err}");
    let err = serde_norway::from_str::<MailboxAddress>("50000").unwrap_err();
    assert!(err.to_string().contains("mailbox address"), "{err}");
}

#[test]
fn a_clustered_mailbox_lists_its_front_ends_under_one_pin() {
    let text = format!("a.example.org:50000, [::1]:50001,10.0.0.3:50002#{FP_LOWER}");
    let address: MailboxAddress = text.parse().unwrap();
    assert_eq!(
        address.endpoints().collect::<Vec<_>>(),
        [
            ("a.example.org", 50000),
            ("::1", 50001),
            ("10.0.0.3", 50002)
        ]
    );
    assert_eq!(address.fingerprint, Some(fp_bytes()));
    assert_eq!(
        address.to_string(),
        format!("a.example.org:50000,[::1]:50001,10.0.0.3:50002#{FP_LOWER}")
    );
    assert_eq!(
        address.to_string().parse::<MailboxAddress>().unwrap(),
        address
    );
    // Each front-end is checked like a single address.
    assert!(matches!(
        "a.example.org:50000,b.example.org".parse::<MailboxAddress>(),
        Err(AddressError::MissingPort(_))
    ));
    assert!(matches!(
        "a.example.org:50000,".parse::<MailboxAddress>(),
        Err(AddressError::MissingPort(_))
    ));
}
