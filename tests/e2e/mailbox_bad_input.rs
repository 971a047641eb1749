//! The mailbox's bad-input table: every row is one hostile or broken request with the answer
//! it must get, and after every row a good SEND on the same connection must still succeed
//! and be the one envelope bob then pulls. At the end, nothing a refused request carried is
//! queued anywhere.

use std::sync::Arc;

use anyhow::Context as _;

use crypto::rand::{Rng as _, RngExt as _, SeedableRng as _};
use crypto::{Fingerprint, Identity, MessageId};
use mailbox::client::Client;
use mailbox::protocol::{self, ErrorCode, Request, Response};
use tests::{
    Mailbox, RawConnection, garbage_datagrams, identities, login_proof, seal_text, seal_texts,
};

use super::mailbox::{drain, fp, ids_of};

/// One bad request.
#[derive(Clone, Copy, Debug)]
enum Bad {
    /// A length prefix promising more bytes than follow.
    TruncatedFrame,
    /// A stream finished without a single byte.
    EmptyStream,
    /// A length prefix beyond the largest frame (4 GiB).
    OversizedFrame,
    /// Frame type 42.
    UnknownFrameType,
    /// Two frames on one request stream.
    TwoFrames,
    /// A length prefix, then random bytes.
    RandomPayload,
    /// A SEND cut off inside its recipient field.
    CutInsideAFingerprint,
    /// A new connection whose first request is not Hello.
    RequestBeforeHello,
    /// A new connection's Hello with only an unknown version.
    WrongVersion,
    /// Hello again on a connection that said it.
    SecondHello,
    /// A login whose signature is random bytes.
    LoginWrongSignature,
    /// A login with a proof made on another, still open connection.
    LoginOtherConnectionsProof,
    /// A login with a proof that already logged in on a connection now closed.
    LoginReplayedProof,
    /// A login with bytes that are not a public key.
    LoginNotAKey,
    /// A SEND as an identity not logged in on this connection.
    SendAsAnother,
    /// A SEND larger than the mailbox accepts.
    SendOverSize,
    /// A SEND to a queue that is full.
    SendOverQuota,
    /// A SEND from a sender past its rate.
    SendOverRate,
    /// A SEND whose recipient is not the envelope's (a fingerprint that names no one).
    SendToAMalformedFingerprint,
    /// A SEND whose envelope is cut short.
    SendTruncatedEnvelope,
    /// A PULL of another identity's queue.
    PullOthersQueue,
    /// An ACK of another identity's queue.
    AckOthersQueue,
    /// An ACK, in one's own queue, of ids that are another identity's.
    AckOthersIds,
    /// Random UDP datagrams at the QUIC port, half shaped like QUIC Initial packets.
    GarbageDatagrams,
}

/// What a row must be answered.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// An error with one of these codes.
    Refused(&'static [ErrorCode]),
    /// `Acked { deleted: 0 }`: accepted, and nothing deleted.
    NothingDeleted,
    /// No answer is expected (datagrams); only that the server keeps serving.
    Served,
}

const QUOTA: u64 = 6;
const MAX_ENVELOPE: usize = 3000;

const TABLE: &[(Bad, Expect)] = &[
    (
        Bad::TruncatedFrame,
        Expect::Refused(&[ErrorCode::Malformed]),
    ),
    (Bad::EmptyStream, Expect::Refused(&[ErrorCode::Malformed])),
    (Bad::OversizedFrame, Expect::Refused(&[ErrorCode::TooLarge])),
    (
        Bad::UnknownFrameType,
        Expect::Refused(&[ErrorCode::UnknownFrame]),
    ),
    (Bad::TwoFrames, Expect::Refused(&[ErrorCode::Malformed])),
    (
        Bad::RandomPayload,
        Expect::Refused(&[ErrorCode::Malformed, ErrorCode::UnknownFrame]),
    ),
    (
        Bad::CutInsideAFingerprint,
        Expect::Refused(&[ErrorCode::Malformed]),
    ),
    (
        Bad::RequestBeforeHello,
        Expect::Refused(&[ErrorCode::HelloFirst]),
    ),
    (
        Bad::WrongVersion,
        Expect::Refused(&[ErrorCode::UnsupportedVersion]),
    ),
    (Bad::SecondHello, Expect::Refused(&[ErrorCode::HelloFirst])),
    (
        Bad::LoginWrongSignature,
        Expect::Refused(&[ErrorCode::LoginFailed]),
    ),
    (
        Bad::LoginOtherConnectionsProof,
        Expect::Refused(&[ErrorCode::LoginFailed]),
    ),
    (
        Bad::LoginReplayedProof,
        Expect::Refused(&[ErrorCode::LoginFailed]),
    ),
    (
        Bad::LoginNotAKey,
        Expect::Refused(&[ErrorCode::LoginFailed]),
    ),
    (
        Bad::SendAsAnother,
        Expect::Refused(&[ErrorCode::NotLoggedIn]),
    ),
    (Bad::SendOverSize, Expect::Refused(&[ErrorCode::TooLarge])),
    (Bad::SendOverQuota, Expect::Refused(&[ErrorCode::Quota])),
    (
        Bad::SendOverRate,
        Expect::Refused(&[ErrorCode::RateLimited]),
    ),
    (
        Bad::SendToAMalformedFingerprint,
        Expect::Refused(&[ErrorCode::BadEnvelope]),
    ),
    (
        Bad::SendTruncatedEnvelope,
        Expect::Refused(&[ErrorCode::BadEnvelope]),
    ),
    (
        Bad::PullOthersQueue,
        Expect::Refused(&[ErrorCode::NotLoggedIn]),
    ),
    (
        Bad::AckOthersQueue,
        Expect::Refused(&[ErrorCode::NotLoggedIn]),
    ),
    (Bad::AckOthersIds, Expect::NothingDeleted),
    (Bad::GarbageDatagrams, Expect::Served),
];

/// Who takes part: `alice` sends the good requests (to `bob`), `carol` never logs in,
/// `dave`'s queue is full, `erin` spends her rate, `frank` filled dave's queue.
struct Cast {
    alice: Arc<Identity>,
    bob: Arc<Identity>,
    carol: Arc<Identity>,
    dave: Arc<Identity>,
    erin: Arc<Identity>,
}

struct Ctx {
    mailbox: Mailbox,
    cast: Cast,
    /// Logged in as alice and erin.
    client: Client,
    /// Envelopes sealed to dave and queued (dave's ids, for [`Bad::AckOthersIds`]).
    daves_ids: Vec<MessageId>,
}

#[tokio::test]
async fn every_bad_request_gets_its_error_and_the_next_good_one_is_served() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let quota = QUOTA.to_string();
    let max = MAX_ENVELOPE.to_string();
    let mailbox = Mailbox::start_with(
        dir.path(),
        &[
            ("MAILBOX_QUOTA_ENVELOPES", quota.as_str()),
            ("MAILBOX_MAX_ENVELOPE_BYTES", max.as_str()),
            // A burst that alice's one SEND per row (and one over quota) never spends, and
            // erin's loop does, however slow the machine: a token a second comes back.
            ("MAILBOX_RATE_PER_SECOND", "1"),
            ("MAILBOX_RATE_BURST", "40"),
        ],
        &[],
    )?;
    let [alice, bob, carol, dave, erin, frank] = identities().await?;

    // Fill dave's queue to its quota (from frank, so alice's rate is untouched).
    let filler = mailbox.connect_as(&[&frank]).await?;
    let texts = (0..QUOTA).map(|i| format!("for dave {i}")).collect();
    let mut daves_ids = Vec::new();
    for sealed in seal_texts(&frank, &dave, texts).await? {
        assert!(filler.send(fp(&frank), sealed.bytes).await?);
        daves_ids.push(sealed.header.id);
    }
    let client = mailbox.connect_as(&[&alice, &erin]).await?;
    let bobs_client = mailbox.connect_as(&[&bob]).await?;
    let ctx = Ctx {
        mailbox,
        cast: Cast {
            alice,
            bob,
            carol,
            dave,
            erin,
        },
        client,
        daves_ids,
    };

    for &(bad, expect) in TABLE {
        let answer = attempt(&ctx, bad).await?;
        match (expect, &answer) {
            (Expect::Refused(codes), Some(Response::Error { code, message })) => {
                assert!(
                    codes.contains(code),
                    "{bad:?}: {code:?} ({message}), not {codes:?}"
                );
                assert!(!message.is_empty(), "{bad:?}: the refusal says why");
            }
            (Expect::NothingDeleted, Some(Response::Acked { deleted: 0 }))
            | (Expect::Served, None) => {}
            _ => panic!("{bad:?}: expected {expect:?}, answered {answer:?}"),
        }
        // The good request: alice's next SEND on the same connection is stored, and it is
        // all that bob's queue holds.
        let what = format!("after {bad:?}");
        let (alice, bob) = (&ctx.cast.alice, &ctx.cast.bob);
        let sealed = seal_text(alice, bob, &what).await?;
        let stored = ctx.client.send(fp(alice), sealed.bytes).await;
        assert!(stored.context(what.clone())?, "{what}: stored as new");
        let bobs = drain(&bobs_client, fp(bob)).await?;
        assert_eq!(ids_of(&bobs), [sealed.header.id], "{what}: bob's queue");
    }

    // Nothing a refused request carried was stored.
    let daves = drain(
        &ctx.mailbox.connect_as(&[&ctx.cast.dave]).await?,
        fp(&ctx.cast.dave),
    )
    .await?;
    assert_eq!(
        ids_of(&daves),
        ctx.daves_ids,
        "dave's queue is as frank filled it"
    );
    // And nowhere else: dave's were all that was left queued (bob's were drained after
    // every row), so no refused SEND is queued for anyone.
    let queued = ctx.mailbox.metric("mailbox_queued_envelopes").await?;
    assert_eq!(
        queued,
        Some(0.0),
        "envelopes queued anywhere after the drains"
    );
    Ok(())
}

/// Makes the bad request of `bad`; the answer, if one is expected.
async fn attempt(ctx: &Ctx, bad: Bad) -> anyhow::Result<Option<Response>> {
    let Cast {
        alice,
        bob,
        carol,
        dave,
        erin,
    } = &ctx.cast;
    let client = &ctx.client;
    let hello = protocol::encode(&Request::Hello { versions: vec![1] });
    let mut rng = crypto::rand::rngs::StdRng::seed_from_u64(bad as u64);
    let answer = match bad {
        Bad::TruncatedFrame => {
            let mut short = hello.clone();
            short[3] = 100;
            client.request_raw(&[&short]).await?
        }
        Bad::EmptyStream => client.request_raw(&[]).await?,
        Bad::OversizedFrame => client.request_raw(&[&[0xff; 4]]).await?,
        Bad::UnknownFrameType => client.request_raw(&[&[0, 0, 0, 1, 42]]).await?,
        Bad::TwoFrames => client.request_raw(&[&hello, &hello]).await?,
        Bad::RandomPayload => {
            let mut payload = vec![0u8; 300];
            rng.fill_bytes(&mut payload);
            // Not a known frame type followed by garbage: type 7, or a SEND of junk.
            payload[0] = if rng.random() { 7 } else { 2 };
            let framed = [&(payload.len() as u32).to_be_bytes()[..], &payload].concat();
            client.request_raw(&[&framed]).await?
        }
        Bad::CutInsideAFingerprint => {
            let sealed = seal_text(alice, bob, "cut").await?;
            let frame = protocol::encode(&Request::Send {
                sender: fp(alice),
                recipient: fp(bob),
                id: sealed.header.id,
                envelope: sealed.bytes,
            });
            // Type byte, 32 sender bytes, then 10 of the recipient's 32.
            let cut = &frame[4..4 + 1 + 32 + 10];
            let framed = [&(cut.len() as u32).to_be_bytes()[..], cut].concat();
            client.request_raw(&[&framed]).await?
        }
        Bad::RequestBeforeHello => {
            let raw = RawConnection::connect(&ctx.mailbox).await?;
            let answer = raw
                .request(&Request::Pull {
                    recipient: fp(alice),
                    max_count: 1,
                })
                .await?;
            raw.close().await;
            answer
        }
        Bad::WrongVersion => {
            let raw = RawConnection::connect(&ctx.mailbox).await?;
            let answer = raw
                .request(&Request::Hello {
                    versions: vec![99, 0],
                })
                .await?;
            raw.close().await;
            answer
        }
        Bad::SecondHello => client.request_raw(&[&hello]).await?,
        Bad::LoginWrongSignature => {
            let mut signature = vec![0u8; 256];
            rng.fill_bytes(&mut signature);
            login_request(client, bob, signature).await?
        }
        Bad::LoginOtherConnectionsProof => {
            let other = ctx.mailbox.connect().await?;
            let proof = login_proof(&other, bob).await?;
            login_request(client, bob, proof).await?
        }
        Bad::LoginReplayedProof => {
            let earlier = ctx.mailbox.connect().await?;
            let proof = login_proof(&earlier, bob).await?;
            earlier.login(bob.public_key().der(), proof.clone()).await?;
            drop(earlier);
            login_request(client, bob, proof).await?
        }
        Bad::LoginNotAKey => {
            let proof = login_proof(client, bob).await?;
            client
                .request(&Request::Login {
                    public_key: b"-----BEGIN PUBLIC KEY----- not a key".to_vec(),
                    signature: proof,
                })
                .await?
        }
        Bad::SendAsAnother => {
            let sealed = seal_text(carol, bob, "not from carol").await?;
            send_request(ctx, fp(carol), sealed).await?
        }
        Bad::SendOverSize => {
            let sealed = seal_text(alice, bob, &"x".repeat(MAX_ENVELOPE)).await?;
            send_request(ctx, fp(alice), sealed).await?
        }
        Bad::SendOverQuota => {
            let sealed = seal_text(alice, dave, "one too many").await?;
            send_request(ctx, fp(alice), sealed).await?
        }
        Bad::SendOverRate => {
            // Erin writes to dave's full queue: refused for the quota, each costing her
            // a token (the rate is checked first), until her burst is spent.
            let texts = (0..100).map(|i| format!("erin {i}")).collect();
            let mut last = Response::Acked { deleted: u32::MAX };
            for sealed in seal_texts(erin, dave, texts).await? {
                last = send_request(ctx, fp(erin), sealed).await?;
                if !matches!(
                    &last,
                    Response::Error {
                        code: ErrorCode::Quota,
                        ..
                    }
                ) {
                    break;
                }
            }
            last
        }
        Bad::SendToAMalformedFingerprint => {
            let sealed = seal_text(alice, bob, "to nobody").await?;
            client
                .request(&Request::Send {
                    sender: fp(alice),
                    recipient: Fingerprint([0xff; 32]),
                    id: sealed.header.id,
                    envelope: sealed.bytes,
                })
                .await?
        }
        Bad::SendTruncatedEnvelope => {
            let sealed = seal_text(alice, bob, "truncated").await?;
            client
                .request(&Request::Send {
                    sender: fp(alice),
                    recipient: fp(bob),
                    id: sealed.header.id,
                    envelope: sealed.bytes[..60].to_vec(),
                })
                .await?
        }
        Bad::PullOthersQueue => {
            client
                .request(&Request::Pull {
                    recipient: fp(dave),
                    max_count: 10,
                })
                .await?
        }
        Bad::AckOthersQueue => {
            client
                .request(&Request::Ack {
                    recipient: fp(dave),
                    ids: ctx.daves_ids.clone(),
                })
                .await?
        }
        Bad::AckOthersIds => {
            client
                .request(&Request::Ack {
                    recipient: fp(alice),
                    ids: ctx.daves_ids.clone(),
                })
                .await?
        }
        Bad::GarbageDatagrams => {
            garbage_datagrams(ctx.mailbox.socket_addr()?, 11, 200).await?;
            return Ok(None);
        }
    };
    Ok(Some(answer))
}

async fn login_request(
    client: &Client,
    who: &Arc<Identity>,
    signature: Vec<u8>,
) -> anyhow::Result<Response> {
    Ok(client
        .request(&Request::Login {
            public_key: who.public_key().der().to_vec(),
            signature,
        })
        .await?)
}

/// A SEND of `sealed` as `sender`.
async fn send_request(
    ctx: &Ctx,
    sender: Fingerprint,
    sealed: crypto::Sealed,
) -> anyhow::Result<Response> {
    let answer = ctx
        .client
        .request(&Request::Send {
            sender,
            recipient: sealed.header.recipient,
            id: sealed.header.id,
            envelope: sealed.bytes,
        })
        .await?;
    Ok(answer)
}
