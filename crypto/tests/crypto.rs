//! Public-API tests of the crypto crate: keys, OpenSSL interop, envelopes, login proofs.
//!
//! Every test that does an RSA operation runs on every backend compiled in
//! ([`Backend::ALL`]), and the interop tests on every pair (sealed or signed on one, opened or
//! verified on the other). `cargo test -p crypto --no-default-features` runs them on the rsa
//! crate alone.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use crypto::rand::SeedableRng;
use crypto::rand::rngs::StdRng;
use crypto::{
    Backend, Draft, EnvelopeHeader, Fingerprint, Identity, KeyError, MessageKind, OpenError,
    PublicKey, safety_number, verify_login, verify_login_using,
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

/// Every (first, second) pair of compiled-in backends, both orders and each with itself.
fn pairs() -> impl Iterator<Item = (Backend, Backend)> {
    Backend::ALL
        .iter()
        .flat_map(|&a| Backend::ALL.iter().map(move |&b| (a, b)))
}

/// Each compiled-in backend once as the first and once as the second, paired with another
/// backend where there is one: (rsa, aws-lc-rs) and (aws-lc-rs, rsa). For the costly tamper
/// loops, where every pair would double the time and add little.
fn crossed() -> impl Iterator<Item = (Backend, Backend)> {
    let all = Backend::ALL;
    (0..all.len()).map(move |i| (all[i], all[(i + 1) % all.len()]))
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
    let out = Command::new("openssl").args(args).output().expect(
        "the `openssl` command is needed for interop tests (`cargo xtask test` installs it)",
    );
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

    // OpenSSL's PKCS#8 private key imports as an identity with the same fingerprint, and
    // works on every backend.
    let id = Identity::from_pkcs8_pem(&std::fs::read_to_string(&private).unwrap()).unwrap();
    assert_eq!(id.fingerprint(), key.fingerprint());
    let (alice, _, _) = people();
    for (sealer, opener) in pairs() {
        let sealed = alice
            .seal_using(sealer, &key, &text(b"to openssl"))
            .unwrap();
        let opened = id.open_using(opener, &sealed.bytes).unwrap();
        assert_eq!(opened.body(), b"to openssl");
        let back = id
            .seal_using(sealer, alice.public_key(), &text(b"back"))
            .unwrap();
        assert_eq!(
            alice.open_using(opener, &back.bytes).unwrap().sender(),
            &key
        );
    }

    // Our public PEM reads back in OpenSSL, byte for byte the same DER.
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
fn a_key_over_4096_bits_is_refused_naming_its_size() {
    use rsa::pkcs8::EncodePublicKey as _;
    // Any odd modulus of 8192 bits makes a well-formed public key; no primes are needed to
    // check that import refuses it (before any arithmetic on it).
    let mut modulus = vec![0u8; 1024];
    modulus[0] = 0x80;
    modulus[1023] = 0x01;
    let n = rsa::BoxedUint::from_be_slice(&modulus, 8192).unwrap();
    let e = rsa::BoxedUint::from(65_537u32);
    let pem = rsa::PublicKey::new_unchecked(n, e)
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let err = PublicKey::from_pem(&pem).unwrap_err();
    assert_eq!(
        err,
        KeyError::TooLarge {
            bits: 8192,
            max: 4096
        }
    );
    assert!(err.to_string().contains("8192 bits"), "{err}");
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
fn default_seal_and_open_use_the_default_backend() {
    let (alice, bob, _) = people();
    let sealed = alice.seal(bob.public_key(), &text(b"default")).unwrap();
    for &opener in Backend::ALL {
        assert_eq!(
            bob.open_using(opener, &sealed.bytes).unwrap().body(),
            b"default"
        );
    }
    let sealed = alice
        .seal_using(Backend::DEFAULT, bob.public_key(), &text(b"default"))
        .unwrap();
    assert_eq!(bob.open(&sealed.bytes).unwrap().body(), b"default");
    #[cfg(feature = "aws-lc")]
    assert_eq!(Backend::DEFAULT.name(), "aws-lc-rs");
    #[cfg(not(feature = "aws-lc"))]
    assert_eq!(Backend::DEFAULT.name(), "rsa");
}

/// Sealed on one backend, opened on another: every pair, each way.
#[test]
fn seal_open_round_trip_keeps_every_field() {
    for (sealer, opener) in pairs() {
        round_trip(sealer, opener);
    }
}

fn round_trip(sealer: Backend, opener: Backend) {
    let (alice, bob, _) = people();
    let first = alice
        .seal_using(sealer, bob.public_key(), &text(b"hello bob"))
        .unwrap();
    let opened = bob.open_using(opener, &first.bytes).unwrap();
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
        .open_using(
            opener,
            &alice
                .seal_using(sealer, bob.public_key(), &next)
                .unwrap()
                .bytes,
        )
        .unwrap();
    assert_eq!(second.prev(), Some(first.hash));
    assert_eq!(second.kind(), MessageKind::Receipt);
    assert_eq!(second.body(), b"");
    assert_ne!(second.id(), opened.id(), "fresh random ids");
}

#[test]
fn bodies_up_to_64_kib_and_beyond_the_old_190_bytes() {
    let (alice, bob, _) = people();
    for (sealer, opener) in pairs() {
        for len in [190, 191, 4096, crypto::DEFAULT_MAX_BODY] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = alice
                .seal_using(sealer, bob.public_key(), &text(&body))
                .unwrap();
            assert_eq!(
                bob.open_using(opener, &sealed.bytes).unwrap().body(),
                body.as_slice()
            );
        }
    }
    let too_big = vec![0u8; crypto::envelope::MAX_BODY + 1];
    for &sealer in Backend::ALL {
        assert!(matches!(
            alice.seal_using(sealer, bob.public_key(), &text(&too_big)),
            Err(crypto::Error::BodyTooLarge { .. })
        ));
    }
}

#[test]
fn wrong_recipient_unknown_version_truncation_and_trailing_bytes_are_refused() {
    for (sealer, opener) in pairs() {
        refusals(sealer, opener);
    }
}

fn refusals(sealer: Backend, opener: Backend) {
    let (alice, bob, carol) = people();
    let sealed = alice
        .seal_using(sealer, bob.public_key(), &text(b"for bob only"))
        .unwrap();
    assert_eq!(
        carol.open_using(opener, &sealed.bytes).unwrap_err(),
        OpenError::WrongRecipient
    );

    // Re-addressing to carol in the clear header does not help her: the key is bob's and
    // the header is authenticated.
    let mut readdressed = sealed.bytes.clone();
    readdressed[1..33].copy_from_slice(carol.fingerprint().as_bytes());
    assert_eq!(
        carol.open_using(opener, &readdressed).unwrap_err(),
        OpenError::KeyUnwrap
    );

    // The wrapped key altered: it does not decrypt, on either backend.
    let mut rewrapped = sealed.bytes.clone();
    rewrapped[crypto::HEADER_LEN + 2 + 100] ^= 0x40;
    assert_eq!(
        bob.open_using(opener, &rewrapped).unwrap_err(),
        OpenError::KeyUnwrap
    );
    // The ciphertext altered: the key unwraps, the AEAD tag does not verify.
    let mut altered = sealed.bytes.clone();
    *altered.last_mut().unwrap() ^= 0x01;
    assert_eq!(
        bob.open_using(opener, &altered).unwrap_err(),
        OpenError::Aead
    );

    // Version 2 is opened by a device, not by the RSA key; version 3 is unknown.
    let mut v2 = sealed.bytes.clone();
    v2[0] = 2;
    assert_eq!(
        bob.open_using(opener, &v2).unwrap_err(),
        OpenError::ForwardSecret
    );
    let mut future = sealed.bytes.clone();
    future[0] = 3;
    assert_eq!(
        bob.open_using(opener, &future).unwrap_err(),
        OpenError::UnknownVersion(3)
    );
    assert_eq!(
        EnvelopeHeader::parse(&future).unwrap_err(),
        OpenError::UnknownVersion(3)
    );

    for cut in (0..sealed.bytes.len())
        .step_by(7)
        .chain([sealed.bytes.len() - 1])
    {
        assert!(
            bob.open_using(opener, &sealed.bytes[..cut]).is_err(),
            "prefix of {cut} bytes opened"
        );
    }
    let mut longer = sealed.bytes.clone();
    longer.push(0);
    assert!(bob.open_using(opener, &longer).is_err());
}

#[test]
fn every_single_byte_of_a_small_envelope_is_protected() {
    let (alice, bob, _) = people();
    for (sealer, opener) in crossed() {
        let sealed = alice
            .seal_using(sealer, bob.public_key(), &text(b"hi"))
            .unwrap();
        for i in 0..sealed.bytes.len() {
            let mut bad = sealed.bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                bob.open_using(opener, &bad).is_err(),
                "flipping byte {i} went unnoticed (sealed on {sealer}, opened on {opener})"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_flipped_bit_is_refused(body in proptest::collection::vec(any::<u8>(), 0..256), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (alice, bob, _) = people();
        for (sealer, opener) in pairs() {
            let sealed = alice.seal_using(sealer, bob.public_key(), &text(&body)).unwrap();
            let mut bad = sealed.bytes.clone();
            let i = pos.index(bad.len());
            bad[i] ^= 1 << bit;
            prop_assert!(
                bob.open_using(opener, &bad).is_err(),
                "sealed on {}, opened on {}", sealer, opener
            );
            let opened = bob.open_using(opener, &sealed.bytes).unwrap();
            prop_assert_eq!(opened.body(), body.as_slice());
        }
    }

    #[test]
    fn sampled_bytes_of_a_large_envelope_are_protected(positions in proptest::collection::vec(any::<prop::sample::Index>(), 16), bit in 0u8..8) {
        // One large envelope per backend, in the order of `crossed()`.
        static LARGE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        let (alice, bob, _) = people();
        let envelopes = LARGE.get_or_init(|| {
            let body = text(&vec![0x5a; crypto::DEFAULT_MAX_BODY]);
            crossed()
                .map(|(sealer, _)| {
                    alice.seal_using(sealer, bob.public_key(), &body).unwrap().bytes
                })
                .collect()
        });
        for ((sealer, opener), bytes) in crossed().zip(envelopes) {
            for pos in &positions {
                let mut bad = bytes.clone();
                let i = pos.index(bad.len());
                bad[i] ^= 1 << bit;
                prop_assert!(
                    bob.open_using(opener, &bad).is_err(),
                    "flipping byte {} went unnoticed (sealed on {}, opened on {})",
                    i, sealer, opener
                );
            }
        }
    }
}

#[test]
fn login_proof_is_bound_to_challenge_and_connection() {
    let (alice, bob, _) = people();
    let challenge = [7u8; 32];
    let exporter = [9u8; 32];
    // The defaults agree with each other.
    let proof = alice.sign_login(&challenge, &exporter).unwrap();
    verify_login(alice.public_key(), &challenge, &exporter, &proof).unwrap();
    // Signed on one backend, verified on another: every pair. The rsa crate verifies PSS
    // only with a salt of exactly 32 bytes, so this also pins aws-lc-rs's salt length.
    for (signer, verifier) in pairs() {
        let proof = alice
            .sign_login_using(signer, &challenge, &exporter)
            .unwrap();
        assert_eq!(proof.len(), 256);
        let verify = |key: &PublicKey, c: &[u8; 32], e: &[u8; 32], p: &[u8]| {
            verify_login_using(verifier, key, c, e, p)
        };
        verify(alice.public_key(), &challenge, &exporter, &proof)
            .unwrap_or_else(|e| panic!("signed on {signer}, verified on {verifier}: {e}"));
        // Another connection (exporter), an older challenge, another key, a damaged or
        // truncated proof: all refused.
        let refused = Err(OpenError::BadSignature);
        assert_eq!(
            verify(alice.public_key(), &challenge, &[8u8; 32], &proof),
            refused
        );
        assert_eq!(
            verify(alice.public_key(), &[6u8; 32], &exporter, &proof),
            refused
        );
        assert_eq!(
            verify(bob.public_key(), &challenge, &exporter, &proof),
            refused
        );
        let mut damaged = proof.clone();
        damaged[100] ^= 0x08;
        assert_eq!(
            verify(alice.public_key(), &challenge, &exporter, &damaged),
            refused
        );
        assert_eq!(
            verify(alice.public_key(), &challenge, &exporter, &proof[..255]),
            refused
        );
        assert_eq!(
            verify(alice.public_key(), &challenge, &exporter, &[]),
            refused
        );
    }
}

/// An independent check of both backends' signatures: OpenSSL verifies them as
/// RSA-PSS-SHA256, MGF1-SHA256, with a salt of exactly 32 bytes.
#[test]
fn login_proofs_of_every_backend_verify_in_openssl_with_a_32_byte_salt() {
    let (alice, _, _) = people();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("alice.pub.pem");
    std::fs::write(&key, alice.public_key().to_pem()).unwrap();
    let challenge = [3u8; 32];
    let exporter = [4u8; 32];
    // What `sign_login` signs: its tag, the challenge, the exporter value.
    let signed = [
        b"secure-messenger/mailbox-login/v1\0".as_slice(),
        &challenge,
        &exporter,
    ]
    .concat();
    let message = dir.path().join("message");
    std::fs::write(&message, &signed).unwrap();
    for &signer in Backend::ALL {
        let proof = alice
            .sign_login_using(signer, &challenge, &exporter)
            .unwrap();
        let signature = dir.path().join(format!("{signer}.sig"));
        std::fs::write(&signature, &proof).unwrap();
        let out = openssl(&[
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
            "-verify",
            key.to_str().unwrap(),
            "-signature",
            signature.to_str().unwrap(),
            message.to_str().unwrap(),
        ]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
            "{signer}"
        );
    }
}

/// Identities read back from PKCS#8 PEM and from encrypted PEM work on every backend: the
/// aws-lc-rs key is loaded from the same key as the rsa crate's.
#[test]
fn restored_identities_work_on_every_backend() {
    let (alice, bob, _) = people();
    let plain = Identity::from_pkcs8_pem(&alice.to_pkcs8_pem().unwrap()).unwrap();
    let encrypted =
        Identity::from_encrypted_pem(&alice.to_encrypted_pem("pw").unwrap(), "pw").unwrap();
    for restored in [&plain, &encrypted] {
        assert_eq!(restored.fingerprint(), alice.fingerprint());
        for (first, second) in pairs() {
            let to_restored = bob
                .seal_using(first, restored.public_key(), &text(b"to you"))
                .unwrap();
            assert_eq!(
                restored
                    .open_using(second, &to_restored.bytes)
                    .unwrap()
                    .body(),
                b"to you"
            );
            // What the restored identity signs verifies as alice's.
            let from_restored = restored
                .seal_using(first, bob.public_key(), &text(b"from you"))
                .unwrap();
            assert_eq!(
                bob.open_using(second, &from_restored.bytes)
                    .unwrap()
                    .sender(),
                alice.public_key()
            );
            let proof = restored
                .sign_login_using(first, &[1; 32], &[2; 32])
                .unwrap();
            verify_login_using(second, alice.public_key(), &[1; 32], &[2; 32], &proof).unwrap();
        }
    }
}

/// A committed envelope made with a seeded RNG: a format change shows as a diff here.
/// Regenerate deliberately with `UPDATE_GOLDEN=1 cargo test -p crypto --test crypto golden`.
///
/// `seal_with_rng` always runs on the rsa crate (the only backend that takes the caller's
/// RNG for its PSS salt and OAEP seed), whatever the default; every backend opens it.
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

    for &opener in Backend::ALL {
        let opened = bob.open_using(opener, &golden).unwrap();
        assert_eq!(opened.body(), "hello bob — ünïcödé".as_bytes());
        assert_eq!(opened.seq(), 3);
        assert_eq!(opened.prev(), Some(crypto::MessageHash([0x11; 32])));
        assert_eq!(opened.sender().fingerprint(), alice.fingerprint());
        assert_eq!(opened.hash(), sealed.hash);
    }
    assert_eq!(bob.open(&golden).unwrap().hash(), sealed.hash);
}
