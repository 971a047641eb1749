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
    // target/<profile>/deps/<test-exe> → target/<profile>
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
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
pub async fn login(client: &Client, identity: &Arc<Identity>) -> anyhow::Result<[u8; 32]> {
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
        let mut cmd = Command::new(binary("node")?);
        cmd.arg("run").arg("--data-dir").arg(data_dir).args([
            "--listen",
            "127.0.0.1:0",
            "--mailbox",
            mailbox,
        ]);
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
