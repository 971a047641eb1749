//! Passphrase-encrypted private keys: round trips, refusals, file handling and OpenSSL interop.
//!
//! Every encryption or decryption runs scrypt (N = 2^14, r = 8, p = 1): tens of milliseconds
//! each with the workspace's dev-profile optimisation of `scrypt` and `salsa20`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crypto::rand::SeedableRng;
use crypto::rand::rngs::StdRng;
use crypto::{Error, Fingerprint, Identity, KeyError};

const PASSPHRASE: &str = "correct horse battery staple — ünïcödé";

fn alice() -> &'static Identity {
    static ALICE: OnceLock<Identity> = OnceLock::new();
    ALICE.get_or_init(|| Identity::generate_with_rng(&mut StdRng::seed_from_u64(11)).unwrap())
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

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn key_error(err: Error) -> KeyError {
    match err {
        Error::Key(key) => key,
        other => panic!("expected a key error, got {other:?}"),
    }
}

/// The bytes inside a single PEM block (a test-only base64 decoder, standard alphabet).
fn pem_bytes(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in body.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn encrypted_pem_round_trip_and_refusals() {
    let alice = alice();
    let pem = alice.to_encrypted_pem(PASSPHRASE).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
    assert!(
        pem.trim_end()
            .ends_with("-----END ENCRYPTED PRIVATE KEY-----")
    );

    // Nothing of the plain key shows, neither its PEM lines nor any 16 bytes of its DER past
    // the fixed algorithm header.
    let plain = alice.to_pkcs8_pem().unwrap();
    for line in plain.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !pem.contains(line),
            "plain PEM line {line} in the encrypted PEM"
        );
    }
    let (plain_der, encrypted_der) = (pem_bytes(&plain), pem_bytes(&pem));
    assert!(plain_der.len() > 1000);
    for window in plain_der[32..].windows(16) {
        assert!(
            !encrypted_der.windows(16).any(|w| w == window),
            "plain key bytes in the encrypted DER"
        );
    }

    let back = Identity::from_encrypted_pem(&pem, PASSPHRASE).unwrap();
    assert_eq!(back.fingerprint(), alice.fingerprint());
    assert_eq!(*back.to_pkcs8_pem().unwrap(), *plain);

    // Wrong passphrases, including a prefix and the empty one.
    for wrong in ["correct horse", ""] {
        assert_eq!(
            Identity::from_encrypted_pem(&pem, wrong).unwrap_err(),
            KeyError::WrongPassphrase
        );
    }
    assert_eq!(
        KeyError::WrongPassphrase.to_string(),
        "wrong passphrase, or the key file is damaged"
    );

    // Only ENCRYPTED PRIVATE KEY blocks; and garbage inside one is malformed, not a
    // passphrase problem.
    assert!(matches!(
        Identity::from_encrypted_pem(&plain, PASSPHRASE),
        Err(KeyError::WrongPemLabel {
            expected: "ENCRYPTED PRIVATE KEY",
            ..
        })
    ));
    assert_eq!(
        Identity::from_encrypted_pem("nope", PASSPHRASE).unwrap_err(),
        KeyError::NotPem
    );
    let garbage =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert!(matches!(
        Identity::from_encrypted_pem(garbage, PASSPHRASE),
        Err(KeyError::Malformed(_))
    ));
}

#[test]
fn fresh_salt_and_iv_every_time() {
    let alice = alice();
    let a = alice.to_encrypted_pem(PASSPHRASE).unwrap();
    let b = alice.to_encrypted_pem(PASSPHRASE).unwrap();
    assert_ne!(*a, *b);
}

#[test]
fn encrypted_file_is_0600_never_overwritten_and_needs_the_passphrase() {
    let alice = alice();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.enc.pem");
    alice.write_encrypted_pem_file(&path, PASSPHRASE).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let before = std::fs::read(&path).unwrap();
    assert!(before.starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let err = alice.write_encrypted_pem_file(&path, "other").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "file was overwritten"
    );

    let back = Identity::read_pem_file(&path, Some(PASSPHRASE)).unwrap();
    assert_eq!(back.fingerprint(), alice.fingerprint());
    let err = key_error(Identity::read_pem_file(&path, None).unwrap_err());
    assert_eq!(err, KeyError::PassphraseRequired);
    assert_eq!(
        err.to_string(),
        "this key is encrypted: a passphrase is needed"
    );
    assert_eq!(
        key_error(Identity::read_pem_file(&path, Some("wrong")).unwrap_err()),
        KeyError::WrongPassphrase
    );
    // The plain reader points at the label rather than failing obscurely.
    assert!(matches!(
        key_error(Identity::read_pkcs8_pem_file(&path).unwrap_err()),
        KeyError::WrongPemLabel {
            expected: "PRIVATE KEY",
            ..
        }
    ));
}

#[test]
fn read_pem_file_takes_plain_keys_with_or_without_a_passphrase() {
    let alice = alice();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.pem");
    alice.write_pkcs8_pem_file(&path).unwrap();
    for passphrase in [None, Some("ignored"), Some("")] {
        let back = Identity::read_pem_file(&path, passphrase).unwrap();
        assert_eq!(back.fingerprint(), alice.fingerprint());
    }

    let public = dir.path().join("alice.pub.pem");
    std::fs::write(&public, alice.public_key().to_pem()).unwrap();
    assert!(matches!(
        key_error(Identity::read_pem_file(&public, Some(PASSPHRASE)).unwrap_err()),
        KeyError::WrongPemLabel { .. }
    ));
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    assert_eq!(
        key_error(Identity::read_pem_file(&text, None).unwrap_err()),
        KeyError::NotPem
    );
    let missing = dir.path().join("missing.pem");
    assert!(matches!(
        Identity::read_pem_file(&missing, None),
        Err(Error::Io { .. })
    ));
}

#[test]
fn openssl_reads_our_encrypted_key() {
    let alice = alice();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.enc.pem");
    alice.write_encrypted_pem_file(&path, PASSPHRASE).unwrap();
    let pass = format!("pass:{PASSPHRASE}");

    openssl(&[
        "pkey",
        "-in",
        s(&path),
        "-passin",
        &pass,
        "-noout",
        "-check",
    ]);
    let out = openssl(&[
        "pkey",
        "-in",
        s(&path),
        "-passin",
        &pass,
        "-pubout",
        "-outform",
        "DER",
    ]);
    assert_eq!(out.stdout, alice.public_key().der());

    // What OpenSSL sees: PBES2, scrypt N = 16384, r = 8, p = 1, AES-256-CBC.
    let out = openssl(&["asn1parse", "-in", s(&path)]);
    let dump = String::from_utf8(out.stdout).unwrap();
    for expected in [":PBES2", ":scrypt", ":4000", ":aes-256-cbc"] {
        assert!(dump.contains(expected), "{expected} not in\n{dump}");
    }

    // And OpenSSL refuses it under a wrong passphrase.
    let wrong = Command::new("openssl")
        .args(["pkey", "-in", s(&path), "-passin", "pass:wrong", "-noout"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
}

#[test]
fn openssl_encrypted_keys_import_with_the_right_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("o.pem");
    let scrypt = dir.path().join("o.scrypt.pem");
    let pbkdf2 = dir.path().join("o.pbkdf2.pem");
    let pass = format!("pass:{PASSPHRASE}");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        s(&plain),
    ]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        s(&plain),
        "-v2",
        "aes-256-cbc",
        "-scrypt",
        "-passout",
        &pass,
        "-out",
        s(&scrypt),
    ]);
    // OpenSSL 3's default PKCS#8 encryption: PBKDF2-HMAC-SHA-256 with AES-256-CBC.
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        s(&plain),
        "-v2",
        "aes-256-cbc",
        "-passout",
        &pass,
        "-out",
        s(&pbkdf2),
    ]);
    let der = openssl(&["pkey", "-in", s(&plain), "-pubout", "-outform", "DER"]).stdout;
    let expected = Fingerprint::of_spki_der(&der);

    let scrypt_pem = std::fs::read_to_string(&scrypt).unwrap();
    assert!(scrypt_pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let id = Identity::from_encrypted_pem(&scrypt_pem, PASSPHRASE).unwrap();
    assert_eq!(id.fingerprint(), expected);
    assert_eq!(id.public_key().der(), der.as_slice());
    assert_eq!(
        Identity::from_encrypted_pem(&scrypt_pem, "wrong").unwrap_err(),
        KeyError::WrongPassphrase
    );

    let id = Identity::read_pem_file(&pbkdf2, Some(PASSPHRASE)).unwrap();
    assert_eq!(id.fingerprint(), expected);
    assert_eq!(
        key_error(Identity::read_pem_file(&scrypt, None).unwrap_err()),
        KeyError::PassphraseRequired
    );
}
