//! Speaking the mailbox protocol as a node does, and as a node never would: fresh
//! identities, sealed texts, logins, a connection without Hello, garbage datagrams.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Listen on a port the kernel picks.
pub(super) const EPHEMERAL: &str = "127.0.0.1:0";

/// A UDP port on 127.0.0.1 that nothing listens on now (the kernel's pick of a free one,
/// released again): for a mailbox address that nodes use before the mailbox starts.
pub fn free_udp_port() -> anyhow::Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").context("bind a UDP socket")?;
    Ok(socket.local_addr()?.port())
}

/// `N` fresh identities, generated in parallel off the async executor (RSA key generation
/// takes 50 to 100 ms each).
pub async fn identities<const N: usize>() -> anyhow::Result<[Arc<Identity>; N]> {
    let tasks: Vec<_> = (0..N)
        .map(|_| tokio::task::spawn_blocking(Identity::generate))
        .collect();
    let mut out = Vec::with_capacity(N);
    for task in tasks {
        out.push(Arc::new(task.await?.context("generate an identity")?));
    }
    out.try_into()
        .map_err(|_| anyhow::anyhow!("generated the wrong number of identities"))
}

/// `identity`'s login proof for `client`'s connection (an RSA signature, made off the async
/// executor). Valid on that connection only.
pub async fn login_proof(client: &Client, identity: &Arc<Identity>) -> anyhow::Result<Vec<u8>> {
    let (challenge, exporter) = client.login_material();
    let identity = identity.clone();
    Ok(tokio::task::spawn_blocking(move || identity.sign_login(&challenge, &exporter)).await??)
}

/// Log `identity` in on `client`'s connection; returns its fingerprint as the mailbox saw it.
pub async fn login(
    client: &Client,
    identity: &Arc<Identity>,
) -> anyhow::Result<crypto::Fingerprint> {
    let proof = login_proof(client, identity).await?;
    client
        .login(identity.public_key().der(), proof)
        .await
        .with_context(|| format!("log {} in", identity.fingerprint()))
}

/// A text message draft.
pub fn text_draft(seq: u64, text: &str) -> Draft {
    Draft {
        kind: MessageKind::Text,
        seq,
        prev: None,
        sent_at: SystemTime::now(),
        body: text.as_bytes().to_vec(),
    }
}

/// An envelope from `from` to `to` carrying `text` (sealed off the async executor).
pub async fn seal_text(
    from: &Arc<Identity>,
    to: &Arc<Identity>,
    text: &str,
) -> anyhow::Result<Sealed> {
    let mut sealed = seal_texts(from, to, vec![text.to_owned()]).await?;
    sealed.pop().context("nothing sealed")
}

/// Envelopes from `from` to `to`, one per text, in the same order; sealed in parallel off
/// the async executor (about 3 ms each).
pub async fn seal_texts(
    from: &Arc<Identity>,
    to: &Arc<Identity>,
    texts: Vec<String>,
) -> anyhow::Result<Vec<Sealed>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_worker = texts.len().div_ceil(workers).max(1);
    let mut tasks = Vec::new();
    for (chunk_index, chunk) in texts.chunks(per_worker).enumerate() {
        let (from, to, chunk) = (from.clone(), to.clone(), chunk.to_vec());
        tasks.push(tokio::task::spawn_blocking(move || {
            chunk
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let seq = (chunk_index * per_worker + i + 1) as u64;
                    from.seal(to.public_key(), &text_draft(seq, text))
                })
                .collect::<Result<Vec<_>, _>>()
        }));
    }
    let mut out = Vec::with_capacity(texts.len());
    for task in tasks {
        out.extend(task.await?.context("seal")?);
    }
    Ok(out)
}

/// A QUIC connection to a mailbox that sends nothing by itself: no Hello, unlike
/// [`Client::connect`]. For protocol tests that need to choose the first request.
#[derive(Debug)]
pub struct RawConnection {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

impl RawConnection {
    /// Connect to `mailbox`, pinning its certificate.
    pub async fn connect(mailbox: &Mailbox) -> anyhow::Result<Self> {
        let verifier = Arc::new(mailbox::tls::PinVerifier::new(
            mailbox.address()?.fingerprint,
        ));
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        endpoint.set_default_client_config(mailbox::tls::client_config(verifier, true)?);
        let conn = endpoint
            .connect(mailbox.socket_addr()?, "secure-messenger-mailbox")?
            .await
            .context("QUIC handshake with the mailbox")?;
        Ok(Self { endpoint, conn })
    }

    /// Send one request on a new stream and read the answer.
    pub async fn request(&self, request: &Request) -> anyhow::Result<Response> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        send.write_all(&protocol::encode(request)).await?;
        send.finish()?;
        let bytes = recv.read_to_end(protocol::MAX_FRAME + 4).await?;
        Ok(protocol::decode_response(&bytes)?)
    }

    /// Open a request stream and write `bytes` on it without finishing it: a request the
    /// mailbox is still receiving, for as long as the returned streams are kept.
    pub async fn start_request(
        &self,
        bytes: &[u8],
    ) -> anyhow::Result<(quinn::SendStream, quinn::RecvStream)> {
        let (mut send, recv) = self.conn.open_bi().await?;
        send.write_all(bytes).await?;
        Ok((send, recv))
    }

    /// Close the connection.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        self.endpoint.wait_idle().await;
    }
}

/// Sends `count` random UDP datagrams (from a generator seeded with `seed`) to `target`:
/// odd ones 1 to 1399 random bytes, even ones shaped like a QUIC version 1 Initial packet
/// (long header, padded to at least 1200 bytes as a client's must be, so the server gets as
/// far as trying to decrypt it) that will not decrypt.
pub async fn garbage_datagrams(target: SocketAddr, seed: u64, count: usize) -> anyhow::Result<()> {
    use crypto::rand::{Rng as _, RngExt as _, SeedableRng as _};
    let mut rng = crypto::rand::rngs::StdRng::seed_from_u64(seed);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    for i in 0..count {
        let initial = i % 2 == 0;
        let len = if initial {
            rng.random_range(1200..1400)
        } else {
            rng.random_range(1..1400)
        };
        let mut datagram = vec![0u8; len];
        rng.fill_bytes(&mut datagram);
        if initial {
            datagram[0] = 0xc0 | (datagram[0] & 0x0f);
            datagram[1..5].copy_from_slice(&1u32.to_be_bytes());
        }
        socket.send_to(&datagram, target).await?;
    }
    Ok(())
}
