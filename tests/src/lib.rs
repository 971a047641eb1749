//! Test harness: starts the real `mailbox` and `node` binaries on ephemeral ports with their
//! own temporary data directories, and talks to them the way a user or script would.
//!
//! The binaries are found in the target directory next to the running test executable (or
//! in `$SM_BIN_DIR`), never through PATH: `node` on PATH is Node.js. `cargo xtask test`
//! builds them before running the tests.
//!
//! For tests of the mailbox on its own there are helpers that speak its protocol the way a
//! node does, with [`mailbox::client::Client`]: [`Mailbox::connect_as`] connects and logs
//! identities in, [`identities`] makes fresh ones, [`seal_text`] and [`seal_texts`] seal
//! text envelopes, and [`RawConnection`] sends requests without the client's own Hello.

pub mod fuzz;
pub mod soak;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use config::MailboxAddress;
use crypto::{Draft, Identity, MessageKind, Sealed};
use mailbox::client::Client;
use mailbox::protocol::{self, Request, Response};
use serde_json::Value;

/// Where our binaries are.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/<test-exe> → target/<profile>; a binary of this crate
    // (`sm-bench`) sits in target/<profile> itself.
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir().join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build the binaries first (`cargo build -p mailbox -p node`; `cargo xtask test` does it)",
            path.display()
        );
    }
    Ok(path)
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> anyhow::Result<Self> {
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,quinn=warn");
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// Wait for a stdout line starting with `prefix`; return the rest of it.
    pub fn expect_line(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.to_owned());
                    }
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "no line starting with {prefix:?} within {timeout:?} (exit status {status:?})"
                    );
                }
            }
        }
    }

    /// Its process id (for reading `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill it now (SIGKILL), and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ask it to stop (SIGTERM, sent with the `kill` command) and wait up to `timeout` for
    /// it to exit; returns its exit status. If it does not exit in time it is killed and
    /// this fails. Blocks the calling thread while it waits.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        // Once reaped, its pid may belong to another process: never signal it then.
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("cannot run `kill`")?;
        if !kill.success() {
            bail!("`kill -TERM {pid}` failed: {kill}");
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("process {pid} still ran {timeout:?} after SIGTERM; killed it");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running mailbox.
#[derive(Debug)]
pub struct Mailbox {
    /// The process.
    pub proc: Proc,
    /// QUIC address.
    pub addr: String,
    /// Certificate fingerprint, hex.
    pub fingerprint: String,
    /// Dashboard base URL.
    pub dashboard: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The QUIC listen address it was asked for (`127.0.0.1:0` unless [`Mailbox::start_on`]).
    listen: String,
    /// The `MAILBOX_*` variables it was started with (for [`Mailbox::restart`]).
    env: Vec<(String, String)>,
    /// The extra arguments it was started with (for [`Mailbox::restart`]).
    args: Vec<String>,
}

impl Mailbox {
    /// Start a mailbox on ephemeral ports with `data_dir`.
    pub fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(data_dir, &[], &[])
    }

    /// Start a mailbox on ephemeral ports with `data_dir`, the environment variables `env`
    /// (e.g. `("MAILBOX_QUOTA_ENVELOPES", "3")`) and `extra_args` after
    /// `serve --data-dir DIR --listen 127.0.0.1:0 --dashboard 127.0.0.1:0` (e.g.
    /// `["--config", FILE]`). `MAILBOX_*` variables of the test's own environment are not
    /// passed on: a mailbox runs with exactly the settings its test gives.
    pub fn start_with(
        data_dir: &Path,
        env: &[(&str, &str)],
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::spawn(
            data_dir.to_owned(),
            EPHEMERAL.to_owned(),
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            extra_args.iter().map(|a| (*a).to_owned()).collect(),
        )
    }

    /// Start a mailbox with `data_dir` whose QUIC endpoint listens on `listen` (e.g.
    /// `127.0.0.1:50123`, a port nodes were told about before it started); the dashboard is
    /// on an ephemeral port. [`Mailbox::restart`] keeps that address.
    pub fn start_on(data_dir: &Path, listen: &str) -> anyhow::Result<Self> {
        Self::spawn(
            data_dir.to_owned(),
            listen.to_owned(),
            Vec::new(),
            Vec::new(),
        )
    }

    /// Start another mailbox process on the same data directory, with the same environment
    /// and arguments, on the same listen address as asked at start (new ephemeral ports
    /// unless it was started with [`Mailbox::start_on`]). Stop this one first
    /// ([`Proc::kill`] or [`Proc::terminate`]): the store locks its directory.
    pub fn restart(&self) -> anyhow::Result<Self> {
        Self::spawn(
            self.data_dir.clone(),
            self.listen.clone(),
            self.env.clone(),
            self.args.clone(),
        )
    }

    /// Like [`Mailbox::restart`], but on the QUIC port this one had: the address nodes
    /// already use. Stop this one first.
    pub fn restart_on_same_port(&self) -> anyhow::Result<Self> {
        Self::spawn(
            self.data_dir.clone(),
            self.addr.clone(),
            self.env.clone(),
            self.args.clone(),
        )
    }

    fn spawn(
        data_dir: PathBuf,
        listen: String,
        env: Vec<(String, String)>,
        args: Vec<String>,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary("mailbox")?);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &listen, "--dashboard", "127.0.0.1:0"])
            .args(&args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MAILBOX_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut proc = Proc::spawn(cmd)?;
        let t = Duration::from_secs(20);
        let addr = proc
            .expect_line("mailbox listening on ", t)?
            .trim_end_matches(" (QUIC)")
            .to_owned();
        let fingerprint = proc.expect_line("certificate fingerprint: ", t)?;
        let dashboard = proc.expect_line("dashboard on ", t)?;
        Ok(Self {
            proc,
            addr,
            fingerprint,
            dashboard,
            data_dir,
            listen,
            env,
            args,
        })
    }

    /// The address nodes use, with the certificate pin.
    pub fn pinned_address(&self) -> String {
        format!("{}#{}", self.addr, self.fingerprint)
    }

    /// The pinned address, parsed.
    pub fn address(&self) -> anyhow::Result<MailboxAddress> {
        Ok(self.pinned_address().parse()?)
    }

    /// The QUIC socket address.
    pub fn socket_addr(&self) -> anyhow::Result<SocketAddr> {
        self.addr
            .parse()
            .with_context(|| format!("mailbox address {:?}", self.addr))
    }

    /// Connect a client (certificate pinned; hello said), with no identity logged in.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(&self.address()?)
            .await
            .with_context(|| format!("connect to the mailbox at {}", self.addr))
    }

    /// Connect a client and log `identities` in on it.
    pub async fn connect_as(&self, identities: &[&Arc<Identity>]) -> anyhow::Result<Client> {
        let client = self.connect().await?;
        for identity in identities {
            login(&client, identity).await?;
        }
        Ok(client)
    }

    /// GET a dashboard path such as `/metrics`.
    pub async fn dashboard_get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(reqwest::get(format!("{}{path}", self.dashboard)).await?)
    }

    /// The value of one sample in `/metrics`, e.g. `mailbox_envelopes_stored_total` or
    /// `mailbox_requests_refused_total{reason="quota"}`; `None` if it is not there.
    pub async fn metric(&self, sample: &str) -> anyhow::Result<Option<f64>> {
        let resp = self.dashboard_get("/metrics").await?;
        if !resp.status().is_success() {
            bail!("GET /metrics: {}", resp.status());
        }
        let text = resp.text().await?;
        for line in text.lines() {
            if let Some(value) = line
                .strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
            {
                return Ok(Some(
                    value
                        .trim()
                        .parse()
                        .with_context(|| format!("metric line {line:?}"))?,
                ));
            }
        }
        Ok(None)
    }
}

/// Listen on a port the kernel picks.
const EPHEMERAL: &str = "127.0.0.1:0";

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
        endpoint.set_default_client_config(mailbox::tls::client_config(verifier)?);
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

/// A running node and an HTTP client for its API.
#[derive(Debug)]
pub struct Node {
    /// The process.
    pub proc: Proc,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// A client.
    pub http: reqwest::Client,
}

impl Node {
    /// Start a node with `data_dir`, using the mailbox at `mailbox` (host:port[#fp]).
    pub fn start(data_dir: &Path, mailbox: &str) -> anyhow::Result<Self> {
        Self::spawn(data_dir, Some(mailbox))
    }

    /// Start a node with `data_dir` without `--mailbox`, as a user restarts one: it uses
    /// the mailbox address saved in its settings (`--mailbox` would override that).
    pub fn start_with_saved_mailbox(data_dir: &Path) -> anyhow::Result<Self> {
        Self::spawn(data_dir, None)
    }

    /// Start a node like [`Node::start`] with extra environment variables (e.g.
    /// `("NODE_ACCESS_TOKEN", "...")`).
    pub fn start_with_env(
        data_dir: &Path,
        mailbox: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn_with(data_dir, Some(mailbox), env)
    }

    fn spawn(data_dir: &Path, mailbox: Option<&str>) -> anyhow::Result<Self> {
        Self::spawn_with(data_dir, mailbox, &[])
    }

    fn spawn_with(
        data_dir: &Path,
        mailbox: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary("node")?);
        cmd.envs(env.iter().copied());
        cmd.arg("run")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(mailbox) = mailbox {
            cmd.args(["--mailbox", mailbox]);
        }
        let mut proc = Proc::spawn(cmd)?;
        let url = proc.expect_line("node UI at ", Duration::from_secs(20))?;
        Ok(Self {
            proc,
            url,
            http: reqwest::Client::new(),
        })
    }

    /// GET a JSON API path; fails unless 2xx.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.http.get(format!("{}{path}", self.url)).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }

    /// POST JSON to an API path; returns the status and the JSON answer.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await?))
    }

    /// GET a text resource (a PEM, a page).
    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self.http.get(format!("{}{path}", self.url)).send().await?;
        if !resp.status().is_success() {
            bail!("GET {path}: {}", resp.status());
        }
        Ok(resp.text().await?)
    }

    /// A request to an API path, with any method, to add headers or a raw body to.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// `GET /api/status`.
    pub async fn status(&self) -> anyhow::Result<Value> {
        self.get("/api/status").await
    }

    /// Open `GET /api/events` (Server-Sent Events).
    pub async fn events(&self) -> anyhow::Result<EventStream> {
        let resp = self
            .request(reqwest::Method::GET, "/api/events")
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("GET /api/events: {status}");
        }
        let kind = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !kind.starts_with("text/event-stream") {
            bail!("GET /api/events: content type {kind:?}, not text/event-stream");
        }
        Ok(EventStream {
            resp,
            buf: Vec::new(),
        })
    }

    /// Create an identity; returns its JSON.
    pub async fn create_identity(&self, id: &str) -> anyhow::Result<Value> {
        let (status, body) = self
            .post("/api/identities", serde_json::json!({ "id": id }))
            .await?;
        if status != 201 {
            bail!("create identity {id}: {status} {body}");
        }
        Ok(body)
    }

    /// Add `other`'s identity `other_id` as contact `name` of our identity `id`.
    pub async fn add_contact_from(
        &self,
        id: &str,
        name: &str,
        other: &Node,
        other_id: &str,
    ) -> anyhow::Result<Value> {
        let pem = other
            .text(&format!("/api/identities/{other_id}/public-key"))
            .await?;
        let (status, body) = self
            .post(
                &format!("/api/identities/{id}/contacts"),
                serde_json::json!({ "name": name, "public_key": pem }),
            )
            .await?;
        if status != 201 {
            bail!("add contact {name}: {status} {body}");
        }
        Ok(body)
    }
}

/// A node's Server-Sent Event stream, read chunk by chunk.
#[derive(Debug)]
pub struct EventStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

/// One Server-Sent Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its `event:` name (`message` when it has none).
    pub event: String,
    /// Its `data:` lines, joined by newlines.
    pub data: String,
}

impl Event {
    /// The data as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.data)
            .with_context(|| format!("event {} data {:?}", self.event, self.data))
    }
}

impl EventStream {
    /// The next event (comments such as keep-alives are skipped), or an error after
    /// `timeout` or when the stream ends.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let block = String::from_utf8(block).context("an event that is not UTF-8")?;
                let (mut event, mut data) = (None, Vec::new());
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event = Some(value.to_owned()),
                        "data" => data.push(value),
                        _ => {}
                    }
                }
                if event.is_none() && data.is_empty() {
                    continue;
                }
                return Ok(Event {
                    event: event.unwrap_or_else(|| "message".to_owned()),
                    data: data.join("\n"),
                });
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Err(_) => bail!("no event within {timeout:?}"),
                Ok(Ok(Some(bytes))) => self.buf.extend_from_slice(&bytes),
                Ok(Ok(None)) => bail!("the event stream ended"),
                Ok(Err(e)) => return Err(e).context("reading the event stream"),
            }
        }
    }

    /// Skip events until one named `event` whose JSON data satisfies `matches`; fail if
    /// none comes within `timeout`.
    pub async fn wait_for(
        &mut self,
        event: &str,
        timeout: Duration,
        mut matches: impl FnMut(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = self
                .next(left)
                .await
                .with_context(|| format!("waiting for a {event:?} event"))?;
            if next.event == event {
                let data = next.json()?;
                if matches(&data) {
                    return Ok(data);
                }
            }
        }
    }
}

/// Poll `check` until it returns Some, or fail after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------- real browsers ----------

/// What to do when chromedriver is missing. The browser tests fail rather than skip: CI
/// installs Chromium, and a developer should too.
const NO_CHROMEDRIVER: &str = "chromedriver is not on PATH: the browser tests drive a real \
     headless Chromium through it. Install Chromium and its WebDriver, e.g. \
     `apt-get install chromium chromium-driver` on Debian or Ubuntu (.ci/run does it)";

/// Chromium's arguments: headless, no sandbox (tests run as root in CI), nothing that goes
/// to the network by itself, a fixed window size.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1000,700",
];

/// The first of `names` found in a directory of PATH.
pub fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick, released again).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind a TCP socket")?;
    Ok(listener.local_addr()?.port())
}

/// Where failing browser tests leave their screenshots: `target/test-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let bin = bin_dir();
    bin.parent().unwrap_or(&bin).join("test-screenshots")
}

/// A chromedriver process on an ephemeral port. Dropping it asks chromedriver to shut down
/// (which ends its sessions and their browsers), then kills it if it is still there.
#[derive(Debug)]
pub struct Chromedriver {
    child: Child,
    port: u16,
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
}

impl Chromedriver {
    /// Start chromedriver and wait until its `/status` says it is ready. Fails with a
    /// message saying what to install when chromedriver is missing.
    pub async fn start() -> anyhow::Result<Self> {
        let program = find_program(&["chromedriver"]).context(NO_CHROMEDRIVER)?;
        let http = reqwest::Client::new();
        let mut last_error = None;
        // The port is free when picked; retry in the rare case another process takes it first.
        for _ in 0..3 {
            let port = free_tcp_port()?;
            let child = Command::new(&program)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {}", program.display()))?;
            let mut driver = Self {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
            };
            match driver.wait_ready(&http).await {
                Ok(()) => return Ok(driver),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("chromedriver did not start")))
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("chromedriver exited at start ({status})");
            }
            let ready = http
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(resp) = ready
                && let Ok(body) = resp.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "chromedriver did not answer on {}/status within 20 s",
                    self.url
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser session with `options`: a fresh Chromium with its own profile in a new
    /// temporary directory (kept alive by the returned [`Browser`]'s session set).
    pub async fn session(
        &self,
        label: &str,
        options: &BrowserOptions,
    ) -> anyhow::Result<(Browser, tempfile::TempDir)> {
        let profile = tempfile::tempdir().context("a temporary Chromium profile")?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut chrome = serde_json::json!({ "args": args });
        if let Some(binary) = find_program(&["chromium", "chromium-browser", "google-chrome"]) {
            chrome["binary"] = binary.display().to_string().into();
        }
        if !options.javascript {
            chrome["prefs"] =
                serde_json::json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), chrome);
        // The browser's console, for `Browser::console`.
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({ "browser": "ALL" }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .with_context(|| format!("start a Chromium session ({label}) through chromedriver"))?;
        let session = client
            .session_id()
            .await?
            .context("chromedriver gave no session id")?;
        Ok((
            Browser {
                client,
                label: label.to_owned(),
                driver: self.url.clone(),
                session,
                http: reqwest::Client::new(),
            },
            profile,
        ))
    }

    /// Ask chromedriver to quit (`GET /shutdown`), with a plain blocking request: this runs
    /// from `Drop`.
    fn shutdown(&self) {
        use std::io::{Read as _, Write as _};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.shutdown();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a browser session.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    /// Whether pages may run scripts.
    pub javascript: bool,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self { javascript: true }
    }
}

impl BrowserOptions {
    /// A browser with JavaScript turned off (Chromium's content setting), as some users run.
    pub fn without_javascript() -> Self {
        Self { javascript: false }
    }
}

/// One headless Chromium, driven over WebDriver. Cheap to clone (the clones drive the same
/// browser).
#[derive(Clone, Debug)]
pub struct Browser {
    /// The WebDriver client, for anything the helpers below do not cover.
    pub client: fantoccini::Client,
    /// Who uses it (`alice`), for messages and screenshot names.
    pub label: String,
    driver: String,
    session: String,
    http: reqwest::Client,
}

/// A CSS selector locator.
fn css(selector: &str) -> fantoccini::Locator<'_> {
    fantoccini::Locator::Css(selector)
}

impl Browser {
    /// Load `url` (returns once the page has loaded).
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("{}: open {url}", self.label))
    }

    /// The URL shown now.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// Reload the page.
    pub async fn reload(&self) -> anyhow::Result<()> {
        Ok(self.client.refresh().await?)
    }

    /// The first element matching the CSS `selector`; fails at once if there is none.
    pub async fn find(&self, selector: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .find(css(selector))
            .await
            .with_context(|| format!("{}: no element matches {selector:?}", self.label))
    }

    /// Every element matching the CSS `selector`.
    pub async fn find_all(
        &self,
        selector: &str,
    ) -> anyhow::Result<Vec<fantoccini::elements::Element>> {
        Ok(self.client.find_all(css(selector)).await?)
    }

    /// How many elements match the CSS `selector`.
    pub async fn count(&self, selector: &str) -> anyhow::Result<usize> {
        Ok(self.find_all(selector).await?.len())
    }

    /// Wait up to `timeout` for an element matching `selector`.
    pub async fn wait_for(
        &self,
        selector: &str,
        timeout: Duration,
    ) -> anyhow::Result<fantoccini::elements::Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.find_all(selector).await?.into_iter().next() {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: nothing matched {selector:?} within {timeout:?}; the page is {}, \
                     showing: {:?}",
                    self.label,
                    self.url().await.unwrap_or_default(),
                    self.shows().await
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The start of what the page shows (its body's text), for error messages.
    pub async fn shows(&self) -> String {
        let text = match self.client.find(css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(e) => format!("(no body: {e})"),
        };
        text.chars().take(300).collect()
    }

    /// The rendered text of the first element matching `selector` (what a user reads).
    pub async fn text(&self, selector: &str) -> anyhow::Result<String> {
        Ok(self.find(selector).await?.text().await?)
    }

    /// The current value of the form field matching `selector`.
    pub async fn value(&self, selector: &str) -> anyhow::Result<String> {
        Ok(self
            .find(selector)
            .await?
            .prop("value")
            .await?
            .unwrap_or_default())
    }

    /// Click the element matching `selector`.
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        self.find(selector)
            .await?
            .click()
            .await
            .with_context(|| format!("{}: click {selector:?}", self.label))
    }

    /// Type `keys` into the field matching `selector` (special keys from
    /// [`fantoccini::key::Key`] may be mixed in).
    pub async fn type_into(&self, selector: &str, keys: &str) -> anyhow::Result<()> {
        self.find(selector)
            .await?
            .send_keys(keys)
            .await
            .with_context(|| format!("{}: type into {selector:?}", self.label))
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("{}: run a script in the page", self.label))
    }

    /// Poll `script` until it returns something truthy (not `null`, `false`, `0` or `""`);
    /// return that. Fails after `timeout`, naming `what`.
    pub async fn wait_js(
        &self,
        timeout: Duration,
        what: &str,
        script: &str,
        args: Vec<Value>,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, args.clone()).await?;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: timed out after {timeout:?} waiting for {what}",
                    self.label
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The browser console's entries since the last call (`level`, `message`, `source`), as
    /// chromedriver's log endpoint gives them.
    pub async fn console(&self) -> anyhow::Result<Vec<Value>> {
        let resp = self
            .http
            .post(format!("{}/session/{}/se/log", self.driver, self.session))
            .json(&serde_json::json!({ "type": "browser" }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("{}: reading the browser log: {status} {body}", self.label);
        }
        Ok(body["value"].as_array().cloned().unwrap_or_default())
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.client.screenshot().await?)
    }
}

/// The browsers of one test, on one chromedriver. [`Browsers::finish`] takes the test's
/// result: on failure it saves a screenshot of every browser to
/// `target/test-screenshots/<test>.png` (`<test>-<label>.png` with several browsers); then
/// it ends the sessions.
#[derive(Debug)]
pub struct Browsers {
    test: String,
    sessions: Vec<Browser>,
    driver: Chromedriver,
    profiles: Vec<tempfile::TempDir>,
}

impl Browsers {
    /// Start chromedriver for test `test`.
    pub async fn start(test: &str) -> anyhow::Result<Self> {
        Ok(Self {
            test: test.to_owned(),
            sessions: Vec::new(),
            driver: Chromedriver::start().await?,
            profiles: Vec::new(),
        })
    }

    /// Open a new browser (its own Chromium and profile) for `label`.
    pub async fn open(&mut self, label: &str, options: BrowserOptions) -> anyhow::Result<Browser> {
        let (browser, profile) = self.driver.session(label, &options).await?;
        self.sessions.push(browser.clone());
        self.profiles.push(profile);
        Ok(browser)
    }

    /// End the test: screenshots if `result` is an error (their paths are printed), then
    /// close every browser; returns `result`.
    pub async fn finish(self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        if result.is_err() {
            let dir = screenshot_dir();
            let _ = std::fs::create_dir_all(&dir);
            for browser in &self.sessions {
                let name = if self.sessions.len() == 1 {
                    format!("{}.png", self.test)
                } else {
                    format!("{}-{}.png", self.test, browser.label)
                };
                let path = dir.join(name);
                match browser.screenshot().await {
                    Ok(png) => match std::fs::write(&path, png) {
                        Ok(()) => eprintln!("screenshot: {}", path.display()),
                        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
                    },
                    Err(e) => eprintln!("no screenshot of {}'s browser: {e:#}", browser.label),
                }
            }
        }
        for browser in self.sessions {
            let _ = browser.client.close().await;
        }
        result
    }
}

/// A UDP proxy between QUIC peers that loses and delays datagrams: `loss` of them (0.0 to
/// 1.0) are dropped, and a fifth of the rest are held back 5 to 40 ms (so some overtake
/// others). Each client address gets its own upstream socket. Stops when dropped.
#[derive(Debug)]
pub struct LossyProxy {
    /// Where clients send.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Datagrams dropped so far, either way.
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
    /// Datagrams passed on so far, either way.
    pub passed: Arc<std::sync::atomic::AtomicU64>,
}

impl LossyProxy {
    /// Listen on an ephemeral port of 127.0.0.1 and forward to `upstream`.
    pub async fn start(upstream: SocketAddr, loss: f64) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering::Relaxed;
        let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let passed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (d, p) = (dropped.clone(), passed.clone());
        // Decide a datagram's fate: None to drop, or how long to hold it.
        let fate = move |d: &std::sync::atomic::AtomicU64, p: &std::sync::atomic::AtomicU64| {
            use crypto::rand::RngExt as _;
            let mut rng = crypto::rand::rng();
            if rng.random_bool(loss) {
                d.fetch_add(1, Relaxed);
                return None;
            }
            p.fetch_add(1, Relaxed);
            Some(if rng.random_bool(0.2) {
                Duration::from_millis(rng.random_range(5..40))
            } else {
                Duration::ZERO
            })
        };
        let task = tokio::spawn(async move {
            let mut upstreams: std::collections::HashMap<SocketAddr, Arc<tokio::net::UdpSocket>> =
                std::collections::HashMap::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((n, client)) = front.recv_from(&mut buf).await else {
                    return;
                };
                let up = match upstreams.get(&client) {
                    Some(up) => up.clone(),
                    None => {
                        let Ok(socket) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
                            continue;
                        };
                        let up = Arc::new(socket);
                        if up.connect(upstream).await.is_err() {
                            continue;
                        }
                        upstreams.insert(client, up.clone());
                        // Answers from upstream go back to this client, with the same fate.
                        let (front, up2, d, p) = (front.clone(), up.clone(), d.clone(), p.clone());
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 65_536];
                            while let Ok(n) = up2.recv(&mut buf).await {
                                let Some(hold) = fate(&d, &p) else { continue };
                                let datagram = buf[..n].to_vec();
                                let front = front.clone();
                                tokio::spawn(async move {
                                    tokio::time::sleep(hold).await;
                                    let _ = front.send_to(&datagram, client).await;
                                });
                            }
                        });
                        up
                    }
                };
                let Some(hold) = fate(&d, &p) else { continue };
                let datagram = buf[..n].to_vec();
                tokio::spawn(async move {
                    tokio::time::sleep(hold).await;
                    let _ = up.send(&datagram).await;
                });
            }
        });
        Ok(Self {
            addr,
            task,
            dropped,
            passed,
        })
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
