//! The fuzz targets' bodies (`tests::fuzz`) on stable Rust: every committed seed, the seeds
//! that are made fresh (private keys), and proptest inputs, both arbitrary bytes and seeds
//! with bytes flipped, cut or appended. `cargo xtask fuzz` runs the same functions under
//! libFuzzer for minutes; this keeps a fixed crash fixed in every `cargo xtask test`.

use std::path::Path;

use proptest::prelude::*;
use tests::fuzz::{self, TARGETS, Target};

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap()
}

#[test]
fn every_committed_seed_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, check) in TARGETS {
        let dir = root.join(name);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            check(&bytes);
            count += 1;
        }
        assert!(count >= 2, "{}: only {count} seeds", dir.display());
    }
}

#[test]
fn generated_seeds_are_accepted_by_their_parsers() {
    // Seeds must reach the accepting paths, or the fuzzer starts from nothing.
    let (_, bob) = fuzz::identities();
    for (name, file, bytes) in fuzz::seeds().into_iter().chain(fuzz::key_seeds()) {
        target(name)(&bytes);
        let text = std::str::from_utf8(&bytes);
        let accepted = match name {
            "envelope" => bob.open(&bytes).is_ok(),
            "envelope_v2" => crypto::EnvelopeV2::parse(&bytes).is_ok(),
            "frame" => {
                mailbox::protocol::decode_request(&bytes).is_ok()
                    || mailbox::protocol::decode_response(&bytes).is_ok()
                    || mailbox::protocol::decode_event(&bytes).is_ok()
            }
            "invite" => node::core::invite::Invite::decode(text.unwrap()).is_ok(),
            "config" => {
                config::from_yaml::<config::MailboxConfig>(text.unwrap()).is_ok()
                    || config::from_yaml::<config::NodeConfig>(text.unwrap()).is_ok()
            }
            "pem" => match text {
                Ok(text) => {
                    crypto::PublicKey::from_pem(text).is_ok()
                        || crypto::Identity::from_pkcs8_pem(text).is_ok()
                        || crypto::Identity::from_encrypted_pem(text, fuzz::SEED_PASSPHRASE).is_ok()
                }
                Err(_) => crypto::PublicKey::from_der(&bytes).is_ok(),
            },
            other => panic!("unknown target {other}"),
        };
        assert!(accepted, "seed {name}/{file} is refused by its parser");
    }
}

#[test]
fn committed_seeds_are_the_generated_ones() {
    // The committed seeds are deterministic (seeded keys and RNG): a format change shows
    // here. Rewrite them with `target/debug/sm-fuzz-seeds tests/fuzz/seeds`.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, file, bytes) in fuzz::seeds() {
        let path = root.join(name).join(&file);
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{} differs from its generator",
            path.display()
        );
    }
}

/// A seed with a few bytes changed, cut or extended, and its target's name.
fn mutated() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let seeds = fuzz::seeds();
    let count = seeds.len();
    (
        0..count,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::option::of(any::<prop::sample::Index>()),
        proptest::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(move |(i, flips, cut, tail)| {
            let mut bytes = seeds[i].2.clone();
            if !bytes.is_empty() {
                for (at, byte) in flips {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes.extend(tail);
            (seeds[i].0, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_break_no_target(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for (_, check) in TARGETS {
            check(&bytes);
        }
    }

    #[test]
    fn damaged_seeds_break_no_target((name, bytes) in mutated()) {
        target(name)(&bytes);
    }
}
