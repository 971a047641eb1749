//! Test harness: starts the real `mailbox` and `node` binaries on ephemeral ports with their
//! own temporary data directories, and talks to them the way a user or script would.
//!
//! The binaries are found in the target directory next to the running test executable (or
//! in `$SM_BIN_DIR`), never through PATH: `node` on PATH is Node.js. `cargo xtask test`
//! builds them before running the tests.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
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

    /// Kill it now (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
}

impl Mailbox {
    /// Start a mailbox on ephemeral ports with `data_dir`.
    pub fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary("mailbox")?);
        cmd.arg("serve").arg("--data-dir").arg(data_dir).args([
            "--listen",
            "127.0.0.1:0",
            "--dashboard",
            "127.0.0.1:0",
        ]);
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
        })
    }

    /// The address nodes use, with the certificate pin.
    pub fn pinned_address(&self) -> String {
        format!("{}#{}", self.addr, self.fingerprint)
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
