//! Public-API tests of the crypto crate: keys, OpenSSL interop, envelopes, login proofs.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use crypto::rand::SeedableRng;
use crypto::rand::rngs::StdRng;
use crypto::{
    Draft, EnvelopeHeader, Fingerprint, Identity, KeyError, MessageKind, OpenError, PublicKey,
    safety_number, verify_login,
};
use proptest::prelude::*;

/// Three identities shared by the tests (key generation takes a while).
fn people() -> &'static (Identity, Identity, Identity) {
    static PEOPLE: OnceLock<(Identity, Identity, Identity)> = OnceLock::new();
    PEOPLE.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(7);
        (
            Identity::generate_with_rng(&mut rng).unwrap(),
            Identity::generate_with_rng(&mut rng).unwrap(),
            Identity::generate_with_rng(&mut rng).unwrap(),
        )
    })
}

fn text(body: &[u8]) -> Draft {
    Draft {
        kind: MessageKind::Text,
        seq: 1,
        prev: None,
        sent_at: UNIX_EPOCH + Duration::from_millis(1_764_000_000_123),
        body: body.to_vec(),
    }
}

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the `openssl` command is needed for interop tests (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn generated_identity_is_rsa_2048_with_e_65537() {
    let id = Identity::generate().unwrap();
    assert_eq!(id.public_key().bits(), 2048);
    // The importer refuses any exponent but 65537, and the identity's key went through it.
    let again = PublicKey::from_pem(&id.public_key().to_pem()).unwrap();
    assert_eq!(again.fingerprint(), id.fingerprint());
}

#[test]
fn private_key_file_is_0600_pkcs8_and_reads_back() {
    let (alice, _, _) = people();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.pem");
    alice.write_pkcs8_pem_file(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    let back = Identity::read_pkcs8_pem_file(&path).unwrap();
    assert_eq!(back.fingerprint(), alice.fingerprint());
    // Never overwrites a key.
    assert!(alice.write_pkcs8_pem_file(&path).is_err());
    // OpenSSL reads our private key and finds it consistent.
    openssl(&["pkey", "-in", path.to_str().unwrap(), "-noout", "-check"]);
}

#[test]
fn openssl_public_key_imports_and_ours_reads_back_in_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("o.pem");
    let public = dir.path().join("o.pub.pem");
    let public_der = dir.path().join("o.pub.der");
    let p = |x: &std::path::Path| x.to_str().unwrap().to_owned();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &p(&private),
    ]);
    openssl(&["pkey", "-in", &p(&private), "-pubout", "-out", &p(&public)]);
    openssl(&[
        "pkey",
        "-in",
        &p(&private),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        &p(&public_der),
    ]);

    let key = PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap();
    assert_eq!(key.bits(), 2048);
    let der = std::fs::read(&public_der).unwrap();
    assert_eq!(key.fingerprint(), Fingerprint::of_spki_der(&der));
    assert_eq!(key.der(), der.as_slice());

    // OpenSSL's PKCS#8 private key imports as an identity with the same fingerprint.
    let id = Identity::from_pkcs8_pem(&std::fs::read_to_string(&private).unwrap()).unwrap();
    assert_eq!(id.fingerprint(), key.fingerprint());

    // Our public PEM reads back in OpenSSL, byte for byte the same DER.
    let (alice, _, _) = people();
    let ours = dir.path().join("alice.pub.pem");
    std::fs::write(&ours, alice.public_key().to_pem()).unwrap();
    let out = openssl(&["pkey", "-pubin", "-in", &p(&ours), "-outform", "DER"]);
    assert_eq!(out.stdout, alice.public_key().der());
}

#[test]
fn openssl_keys_of_other_sizes_and_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let gen_pub = |name: &str, args: &[&str]| -> String {
        let private = dir.path().join(format!("{name}.pem"));
        let mut full = vec!["genpkey"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-out", private.to_str().unwrap()]);
        openssl(&full);
        let out = openssl(&["pkey", "-in", private.to_str().unwrap(), "-pubout"]);
        String::from_utf8(out.stdout).unwrap()
    };
    let rsa4096 = gen_pub(
        "r4096",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
    );
    assert_eq!(PublicKey::from_pem(&rsa4096).unwrap().bits(), 4096);

    let rsa1024 = gen_pub(
        "r1024",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    );
    assert_eq!(
        PublicKey::from_pem(&rsa1024).unwrap_err(),
        KeyError::TooSmall {
            bits: 1024,
            min: 2048
        }
    );

    let ec = gen_pub(
        "ec",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    assert!(matches!(
        PublicKey::from_pem(&ec),
        Err(KeyError::NotRsa { .. })
    ));
    let ed = gen_pub("ed", &["-algorithm", "ED25519"]);
    let err = PublicKey::from_pem(&ed).unwrap_err();
    assert!(matches!(err, KeyError::NotRsa { .. }));
    assert!(err.to_string().contains("not an RSA key"), "{err}");
}

#[test]
fn refusals_say_which() {
    assert_eq!(PublicKey::from_pem("hello").unwrap_err(), KeyError::NotPem);
    assert_eq!(PublicKey::from_pem("").unwrap_err(), KeyError::NotPem);
    let (alice, _, _) = people();
    let private = alice.to_pkcs8_pem().unwrap();
    assert!(matches!(
        PublicKey::from_pem(&private),
        Err(KeyError::WrongPemLabel {
            expected: "PUBLIC KEY",
            ..
        })
    ));
    assert!(matches!(
        Identity::from_pkcs8_pem(&alice.public_key().to_pem()),
        Err(KeyError::WrongPemLabel {
            expected: "PRIVATE KEY",
            ..
        })
    ));
    let garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert!(matches!(
        PublicKey::from_pem(garbage),
        Err(KeyError::Malformed(_))
    ));
    for err in [
        KeyError::NotPem,
        KeyError::TooSmall {
            bits: 1024,
            min: 2048,
        },
        KeyError::TooLarge {
            bits: 8192,
            max: 4096,
        },
    ] {
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn safety_numbers_agree_between_the_two_sides() {
    let (alice, bob, carol) = people();
    let ab = safety_number(&alice.fingerprint(), &bob.fingerprint());
    assert_eq!(ab, safety_number(&bob.fingerprint(), &alice.fingerprint()));
    assert_ne!(
        ab,
        safety_number(&alice.fingerprint(), &carol.fingerprint())
    );
}

#[test]
fn seal_open_round_trip_keeps_every_field() {
    let (alice, bob, _) = people();
    let first = alice.seal(bob.public_key(), &text(b"hello bob")).unwrap();
    let opened = bob.open(&first.bytes).unwrap();
    assert_eq!(opened.body(), b"hello bob");
    assert_eq!(opened.sender(), alice.public_key());
    assert_eq!(opened.kind(), MessageKind::Text);
    assert_eq!(opened.seq(), 1);
    assert_eq!(opened.prev(), None);
    assert_eq!(opened.sent_at_ms(), 1_764_000_000_123);
    assert_eq!(opened.hash(), first.hash);
    assert_eq!(opened.id(), first.header.id);
    assert_eq!(EnvelopeHeader::parse(&first.bytes).unwrap(), first.header);
    assert_eq!(first.header.recipient, bob.fingerprint());

    // The chain: the second message names the first's hash, which bob computed too.
    let mut next = text(b"");
    next.kind = MessageKind::Receipt;
    next.seq = 2;
    next.prev = Some(opened.hash());
    let second = bob
        .open(&alice.seal(bob.public_key(), &next).unwrap().bytes)
        .unwrap();
    assert_eq!(second.prev(), Some(first.hash));
    assert_eq!(second.kind(), MessageKind::Receipt);
    assert_eq!(second.body(), b"");
    assert_ne!(second.id(), opened.id(), "fresh random ids");
}

#[test]
fn bodies_up_to_64_kib_and_beyond_the_old_190_bytes() {
    let (alice, bob, _) = people();
    for len in [190, 191, 4096, crypto::DEFAULT_MAX_BODY] {
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sealed = alice.seal(bob.public_key(), &text(&body)).unwrap();
        assert_eq!(bob.open(&sealed.bytes).unwrap().body(), body.as_slice());
    }
    let too_big = vec![0u8; crypto::envelope::MAX_BODY + 1];
    assert!(alice.seal(bob.public_key(), &text(&too_big)).is_err());
}

#[test]
fn wrong_recipient_unknown_version_truncation_and_trailing_bytes_are_refused() {
    let (alice, bob, carol) = people();
    let sealed = alice
        .seal(bob.public_key(), &text(b"for bob only"))
        .unwrap();
    assert_eq!(
        carol.open(&sealed.bytes).unwrap_err(),
        OpenError::WrongRecipient
    );

    // Re-addressing to carol in the clear header does not help her: the key is bob's and
    // the header is authenticated.
    let mut readdressed = sealed.bytes.clone();
    readdressed[1..33].copy_from_slice(carol.fingerprint().as_bytes());
    assert!(carol.open(&readdressed).is_err());

    let mut future = sealed.bytes.clone();
    future[0] = 2;
    assert_eq!(bob.open(&future).unwrap_err(), OpenError::UnknownVersion(2));
    assert_eq!(
        EnvelopeHeader::parse(&future).unwrap_err(),
        OpenError::UnknownVersion(2)
    );

    for cut in (0..sealed.bytes.len())
        .step_by(7)
        .chain([sealed.bytes.len() - 1])
    {
        assert!(
            bob.open(&sealed.bytes[..cut]).is_err(),
            "prefix of {cut} bytes opened"
        );
    }
    let mut longer = sealed.bytes.clone();
    longer.push(0);
    assert!(bob.open(&longer).is_err());
}

#[test]
fn every_single_byte_of_a_small_envelope_is_protected() {
    let (alice, bob, _) = people();
    let sealed = alice.seal(bob.public_key(), &text(b"hi")).unwrap();
    for i in 0..sealed.bytes.len() {
        let mut bad = sealed.bytes.clone();
        bad[i] ^= 0x01;
        assert!(bob.open(&bad).is_err(), "flipping byte {i} went unnoticed");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_flipped_bit_is_refused(body in proptest::collection::vec(any::<u8>(), 0..256), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (alice, bob, _) = people();
        let sealed = alice.seal(bob.public_key(), &text(&body)).unwrap();
        let mut bad = sealed.bytes.clone();
        let i = pos.index(bad.len());
        bad[i] ^= 1 << bit;
        prop_assert!(bob.open(&bad).is_err());
        let opened = bob.open(&sealed.bytes).unwrap();
        prop_assert_eq!(opened.body(), body.as_slice());
    }

    #[test]
    fn sampled_bytes_of_a_large_envelope_are_protected(positions in proptest::collection::vec(any::<prop::sample::Index>(), 16), bit in 0u8..8) {
        static LARGE: OnceLock<Vec<u8>> = OnceLock::new();
        let (alice, bob, _) = people();
        let bytes = LARGE.get_or_init(|| {
            alice.seal(bob.public_key(), &text(&vec![0x5a; crypto::DEFAULT_MAX_BODY])).unwrap().bytes
        });
        for pos in positions {
            let mut bad = bytes.clone();
            let i = pos.index(bad.len());
            bad[i] ^= 1 << bit;
            prop_assert!(bob.open(&bad).is_err(), "flipping byte {} went unnoticed", i);
        }
    }
}

#[test]
fn login_proof_is_bound_to_challenge_and_connection() {
    let (alice, bob, _) = people();
    let challenge = [7u8; 32];
    let exporter = [9u8; 32];
    let proof = alice.sign_login(&challenge, &exporter).unwrap();
    verify_login(alice.public_key(), &challenge, &exporter, &proof).unwrap();
    // Another connection (exporter), an older challenge, another key: all refused.
    assert!(verify_login(alice.public_key(), &challenge, &[8u8; 32], &proof).is_err());
    assert!(verify_login(alice.public_key(), &[6u8; 32], &exporter, &proof).is_err());
    assert!(verify_login(bob.public_key(), &challenge, &exporter, &proof).is_err());
}

/// A committed envelope made with a seeded RNG: a format change shows as a diff here.
/// Regenerate deliberately with `UPDATE_GOLDEN=1 cargo test -p crypto --test crypto golden`.
#[test]
fn golden_envelope_v1() {
    let mut rng = StdRng::seed_from_u64(0x5ec0_3e55);
    let alice = Identity::generate_with_rng(&mut rng).unwrap();
    let bob = Identity::generate_with_rng(&mut rng).unwrap();
    let mut draft = text("hello bob — ünïcödé".as_bytes());
    draft.seq = 3;
    draft.prev = Some(crypto::MessageHash([0x11; 32]));
    let sealed = alice
        .seal_with_rng(&mut rng, bob.public_key(), &draft)
        .unwrap();

    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-envelope-v1.hex");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, hex::encode(&sealed.bytes) + "\n").unwrap();
    }
    let golden = hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert_eq!(
        hex::encode(&sealed.bytes),
        hex::encode(&golden),
        "the envelope format changed"
    );

    let opened = bob.open(&golden).unwrap();
    assert_eq!(opened.body(), "hello bob — ünïcödé".as_bytes());
    assert_eq!(opened.seq(), 3);
    assert_eq!(opened.prev(), Some(crypto::MessageHash([0x11; 32])));
    assert_eq!(opened.sender().fingerprint(), alice.fingerprint());
}
