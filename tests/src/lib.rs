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

fn binary(name: &str) -> anyhow::Result<PathBuf> {
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
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            extra_args.iter().map(|a| (*a).to_owned()).collect(),
        )
    }

    /// Start another mailbox process on the same data directory, with the same environment
    /// and arguments, on new ephemeral ports. Stop this one first ([`Proc::kill`] or
    /// [`Proc::terminate`]): the store locks its directory.
    pub fn restart(&self) -> anyhow::Result<Self> {
        Self::spawn(self.data_dir.clone(), self.env.clone(), self.args.clone())
    }

    fn spawn(
        data_dir: PathBuf,
        env: Vec<(String, String)>,
        args: Vec<String>,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary("mailbox")?);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0", "--dashboard", "127.0.0.1:0"])
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
