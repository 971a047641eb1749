//! The fuzz targets' bodies: what each target feeds its input to, and what must hold.
//!
//! The cargo-fuzz crate in `tests/fuzz` compiles this file into its libFuzzer targets
//! (`cargo xtask fuzz`); the test suite compiles it as `tests::fuzz` and runs every committed
//! seed and a few thousand proptest inputs through the same functions
//! (`tests/e2e/fuzz.rs`), so a regression shows on stable Rust, without nightly.
//!
//! Every function takes untrusted bytes and panics only when an invariant breaks: a parser
//! that panics, a value that does not survive a round trip, two RSA backends that disagree,
//! or an envelope that opens although nobody with a key made it.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use config::{MailboxConfig, NodeConfig};
use crypto::rand::SeedableRng as _;
use crypto::rand::rngs::StdRng;
use crypto::{Backend, Draft, Identity, MessageHash, MessageKind, PublicKey};
use mailbox::protocol::{self, ErrorCode, Event, Request, Response};
use node::core::invite::Invite;

/// A fuzz target's body: it takes any bytes and panics only on a broken invariant.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: the names of `tests/fuzz/fuzz_targets/*.rs` and of the seed
/// directories `tests/fuzz/seeds/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame),
    ("envelope", envelope),
    ("envelope_v2", envelope_v2),
    ("invite", invite),
    ("config", config),
    ("pem", pem),
];

/// The mailbox's frame decoder: request, response and event frames. Whatever decodes must
/// encode to a frame that decodes to the same value; a SEND's envelope header is checked the
/// way the server checks it.
pub fn frame(data: &[u8]) {
    if let Ok(request) = protocol::decode_request(data) {
        let again = protocol::decode_request(&protocol::encode(&request));
        assert_eq!(again.as_ref(), Ok(&request), "request round trip");
        if let Request::Send {
            recipient,
            id,
            envelope,
            ..
        } = &request
        {
            let _ = mailbox::core::check_send(recipient, id, envelope);
        }
    }
    if let Ok(response) = protocol::decode_response(data) {
        let again = protocol::decode_response(&protocol::encode(&response));
        assert_eq!(again.as_ref(), Ok(&response), "response round trip");
    }
    if let Ok(event) = protocol::decode_event(data) {
        let again = protocol::decode_event(&protocol::encode(&event));
        assert_eq!(again.as_ref(), Ok(&event), "event round trip");
    }
}

/// Two identities made from a fixed seed: `alice` seals the envelope seeds to `bob`, and the
/// envelope target opens its input as `bob`.
pub fn identities() -> &'static (Identity, Identity) {
    static KEYS: OnceLock<(Identity, Identity)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(0xf022_5eed);
        let make = |rng: &mut StdRng| match Identity::generate_with_rng(rng) {
            Ok(identity) => identity,
            Err(e) => panic!("key generation failed: {e}"),
        };
        let alice = make(&mut rng);
        let bob = make(&mut rng);
        (alice, bob)
    })
}

/// The envelope opener, on every RSA backend: they must agree, and an envelope that opens
/// must be one alice sealed (the fuzzer holds no private key, so it cannot make one).
pub fn envelope(data: &[u8]) {
    open_on(Backend::ALL, data);
}

/// [`envelope`] on the given backends. The libFuzzer target opens on [`Backend::DEFAULT`]
/// alone: the pure-Rust backend under AddressSanitizer runs ~45 inputs a second, aws-lc-rs
/// (C, not instrumented) thousands. The stable tests compare the backends.
///
/// What a fuzzer without the key reaches: the clear header, the length checks and the OAEP
/// unwrap. A changed byte after that fails the AES-GCM tag, so the inner decoding and the
/// signature check are beyond it (crypto's own tests flip every byte of sealed envelopes).
pub fn open_on(backends: &[Backend], data: &[u8]) {
    let (alice, bob) = identities();
    let mut results = backends.iter().map(|&b| bob.open_using(b, data));
    let Some(first) = results.next() else {
        return;
    };
    for other in results {
        match (&first, &other) {
            (Ok(a), Ok(b)) => assert_eq!(a.hash(), b.hash(), "backends opened differently"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "backends disagree"),
            _ => panic!("one backend opened what another refused: {first:?} / {other:?}"),
        }
    }
    if let Ok(message) = first {
        assert_eq!(message.sender(), alice.public_key(), "a forged sender");
        assert_eq!(message.header().recipient, bob.fingerprint());
    }
}

/// The committed golden version 2 envelope and the device it is sealed to (crypto's
/// `golden_envelope_v2` test data: a throwaway device, pickled under a fixed test key).
const GOLDEN_V2: &str = include_str!("../../crypto/tests/data/golden-envelope-v2.hex");
const GOLDEN_V2_DEVICE: &str =
    include_str!("../../crypto/tests/data/golden-envelope-v2-device.hex");
/// The fingerprint of the golden envelope's sender (crypto's seeded test alice).
const GOLDEN_V2_SENDER: &str = "8ec644c19c1802890091d6628d692a261eaee5b145597f607d4d01968c4ba1d9";

fn golden_v2_device() -> Option<crypto::Device> {
    let pickle = hex::decode(GOLDEN_V2_DEVICE.trim()).ok()?;
    crypto::Device::from_pickle(&pickle, &crypto::PickleKey::from_bytes([0x42; 32])).ok()
}

/// The version 2 opener: the clear part's parser, then the golden device accepting the
/// input as a session's first message. Whatever opens must be signed by the golden sender
/// and start a session with it; whatever fails must leave the device as it was (a second
/// attempt gives the same answer). Under libFuzzer vodozemac skips its MAC checks
/// (`cfg(fuzzing)`), so mutated Olm messages reach the inner decoding and the RSA signature,
/// which must then refuse them.
pub fn envelope_v2(data: &[u8]) {
    let Ok(envelope) = crypto::EnvelopeV2::parse(data) else {
        return;
    };
    let Some(mut device) = golden_v2_device() else {
        panic!("the golden device does not load");
    };
    let first = device.accept(&envelope);
    match &first {
        Ok((session, message)) => {
            assert_eq!(message.sender().fingerprint().to_string(), GOLDEN_V2_SENDER);
            assert_eq!(session.peer(), message.sender().fingerprint());
            assert_eq!(session.id(), envelope.session_id());
        }
        Err(_) => {
            let again = device.accept(&envelope);
            assert_eq!(
                again.err(),
                first.as_ref().err().cloned(),
                "a failed accept changed the device"
            );
        }
    }
}

/// The invite parser: whatever decodes, encodes to an invite that decodes to the same.
pub fn invite(data: &[u8]) {
    let Ok(code) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(invite) = Invite::decode(code) {
        assert_eq!(
            Invite::decode(&invite.encode()),
            Ok(invite),
            "invite round trip"
        );
    }
}

/// The config file parser, for both configurations: whatever loads, renders (as
/// `config show` does) to YAML that loads to the same.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    roundtrip::<MailboxConfig>(text);
    roundtrip::<NodeConfig>(text);
}

fn roundtrip<T: config::Layered + PartialEq + std::fmt::Debug>(text: &str) {
    if let Ok(loaded) = config::from_yaml::<T>(text) {
        let yaml = match config::to_yaml(&loaded) {
            Ok(yaml) => yaml,
            Err(e) => panic!("a loaded config does not render: {e}"),
        };
        assert_eq!(
            config::from_yaml::<T>(&yaml),
            Ok(loaded),
            "config round trip:\n{yaml}"
        );
    }
}

/// Key import: public keys (PEM and DER), PKCS#8 private keys and passphrase-encrypted ones
/// (passphrase `fuzz`). An imported key keeps its fingerprint through export and import.
pub fn pem(data: &[u8]) {
    if let Ok(key) = PublicKey::from_der(data) {
        assert_eq!(PublicKey::from_der(key.der()).as_ref(), Ok(&key));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = PublicKey::from_pem(text) {
        assert_eq!(PublicKey::from_pem(&key.to_pem()).as_ref(), Ok(&key));
    }
    if let Ok(identity) = Identity::from_pkcs8_pem(text) {
        keeps_its_fingerprint(&identity, "private key");
    }
    if let Ok(identity) = Identity::from_encrypted_pem(text, SEED_PASSPHRASE) {
        // What decrypts is a key that passes the same checks as a plain one.
        keeps_its_fingerprint(&identity, "encrypted key");
    }
}

/// An imported private key exports to PKCS#8 and imports again with the same fingerprint.
fn keeps_its_fingerprint(identity: &Identity, what: &str) {
    let again = identity
        .to_pkcs8_pem()
        .ok()
        .and_then(|pem| Identity::from_pkcs8_pem(&pem).ok());
    assert_eq!(
        again.map(|i| i.fingerprint()),
        Some(identity.fingerprint()),
        "{what} round trip"
    );
}

/// The passphrase of the encrypted key seeds.
pub const SEED_PASSPHRASE: &str = "fuzz";

/// The seed inputs of every target, as `(target, file name, bytes)`: valid inputs of each
/// kind, so the fuzzer starts from the accepted paths. `tests/fuzz/seeds/` holds them
/// (`sm-fuzz-seeds tests/fuzz/seeds` rewrites it); none holds a private key.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let (alice, bob) = identities();
    let mut out = Vec::new();

    let sealed = |body: &[u8], seq: u64| {
        let draft = Draft {
            kind: MessageKind::Text,
            seq,
            prev: (seq > 1).then_some(MessageHash([7; 32])),
            sent_at: UNIX_EPOCH + Duration::from_millis(1_764_000_000_000 + seq),
            body: body.to_vec(),
        };
        let mut rng = StdRng::seed_from_u64(seq);
        match alice.seal_with_rng(&mut rng, bob.public_key(), &draft) {
            Ok(sealed) => sealed,
            Err(e) => panic!("sealing a seed failed: {e}"),
        }
    };
    let short = sealed(b"hi bob", 1);
    let long = sealed("ünïcödé ".repeat(40).as_bytes(), 2);
    out.push(("envelope", "short".to_owned(), short.bytes.clone()));
    out.push(("envelope", "long".to_owned(), long.bytes.clone()));
    if let Some(golden) = GOLDEN_V2.lines().next().and_then(|l| hex::decode(l).ok()) {
        let mut other_id = golden.clone();
        if let Some(id) = other_id.get_mut(33..49) {
            id.fill(0x5a);
        }
        out.push(("envelope_v2", "golden".to_owned(), golden));
        out.push(("envelope_v2", "other-envelope-id".to_owned(), other_id));
    }

    let recipient = bob.fingerprint();
    let requests = [
        ("hello", Request::Hello { versions: vec![1] }),
        (
            "login",
            Request::Login {
                public_key: alice.public_key().der().to_vec(),
                signature: vec![0x5a; 256],
            },
        ),
        (
            "send",
            Request::Send {
                sender: alice.fingerprint(),
                recipient,
                id: short.header.id,
                envelope: short.bytes.clone(),
            },
        ),
        (
            "pull",
            Request::Pull {
                recipient,
                max_count: 64,
            },
        ),
        (
            "ack",
            Request::Ack {
                recipient,
                ids: vec![short.header.id, long.header.id],
            },
        ),
    ];
    for (name, request) in requests {
        out.push((
            "frame",
            format!("request-{name}"),
            protocol::encode(&request),
        ));
    }
    let responses = [
        (
            "welcome",
            Response::Welcome {
                version: 1,
                challenge: [3; protocol::CHALLENGE_LEN],
            },
        ),
        (
            "batch",
            Response::Batch {
                envelopes: vec![short.bytes.clone(), long.bytes.clone()],
                more: true,
            },
        ),
        (
            "stored",
            Response::Stored {
                id: short.header.id,
                duplicate: false,
            },
        ),
        ("acked", Response::Acked { deleted: 2 }),
        (
            "error",
            Response::error(ErrorCode::RateLimited, "slow down: 10 SENDs a second"),
        ),
    ];
    for (name, response) in responses {
        out.push((
            "frame",
            format!("response-{name}"),
            protocol::encode(&response),
        ));
    }
    out.push((
        "frame",
        "event-arrived".to_owned(),
        protocol::encode(&Event::Arrived { recipient }),
    ));

    let with_mailbox = Invite {
        display_name: Some("Alice Ünïcödé".to_owned()),
        public_key: alice.public_key().clone(),
        mailbox: "mailbox.example.org:50000#2f1c6a0e9b4d7f3a2f1c6a0e9b4d7f3a2f1c6a0e9b4d7f3a2f1c6a0e9b4d7f3a"
            .parse()
            .ok(),
    };
    let bare = Invite {
        display_name: None,
        public_key: bob.public_key().clone(),
        mailbox: None,
    };
    out.push((
        "invite",
        "with-mailbox".to_owned(),
        with_mailbox.encode().into_bytes(),
    ));
    out.push(("invite", "bare".to_owned(), bare.encode().into_bytes()));
    // Regression: a name cut at 100 characters right after a space read back differently.
    let cut = Invite {
        display_name: Some(format!("{} tail", "n".repeat(99))),
        public_key: alice.public_key().clone(),
        mailbox: None,
    };
    out.push((
        "invite",
        "regression-name-cut-at-a-space".to_owned(),
        cut.encode().into_bytes(),
    ));

    for (name, text) in [
        (
            "mailbox",
            include_str!("../../config/examples/mailbox.yaml"),
        ),
        ("node", include_str!("../../config/examples/node.yaml")),
        ("empty", "# nothing set\n"),
        (
            "flow",
            "{listen: '[::1]:9000', retention: 3d 4h, rate_per_second: 2.5, allowlist: [ab]}\n",
        ),
    ] {
        out.push(("config", name.to_owned(), text.as_bytes().to_vec()));
    }

    out.push((
        "pem",
        "public".to_owned(),
        alice.public_key().to_pem().into_bytes(),
    ));
    out.push((
        "pem",
        "public-der".to_owned(),
        alice.public_key().der().to_vec(),
    ));
    out
}

/// Private-key seeds for the `pem` target: alice's key as PKCS#8 and bob's encrypted under
/// [`SEED_PASSPHRASE`]. These are test keys anyone can derive from the fixed seed above, not
/// secrets; they are written for each fuzz run (`sm-fuzz-seeds --with-keys`) rather than
/// committed so that the repository holds no private-key files at all.
pub fn key_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let (alice, bob) = identities();
    let mut out = Vec::new();
    if let Ok(pem) = alice.to_pkcs8_pem() {
        out.push(("pem", "pkcs8".to_owned(), pem.as_bytes().to_vec()));
    }
    if let Ok(pem) = bob.to_encrypted_pem(SEED_PASSPHRASE) {
        out.push(("pem", "encrypted".to_owned(), pem.as_bytes().to_vec()));
    }
    out
}
