//! A real node process, an HTTP client of its API, and its event stream.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A running node and an HTTP client for its API.
#[derive(Debug)]
pub struct Node {
    /// The process.
    pub proc: Proc,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Where its pages and browser sessions live, e.g. `http://n-0123456789abcdef.localhost:41234`
    /// (the same as `url` when it requires no token).
    pub page: String,
    /// Its access token (none when it requires none).
    pub token: Option<String>,
    /// The sign-in link it printed at start, as a person copies it from the terminal (none
    /// when it requires no token).
    pub start_link: Option<String>,
    /// A client that sends the token.
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

    /// Start a node with `data_dir` listening on `listen` (say, the address it had before a
    /// restart, so that its open pages find it again).
    pub fn start_on(data_dir: &Path, mailbox: &str, listen: &str) -> anyhow::Result<Self> {
        Self::spawn_on(data_dir, Some(mailbox), &[], listen)
    }

    fn spawn(data_dir: &Path, mailbox: Option<&str>) -> anyhow::Result<Self> {
        Self::spawn_with(data_dir, mailbox, &[])
    }

    fn spawn_with(
        data_dir: &Path,
        mailbox: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn_on(data_dir, mailbox, env, "127.0.0.1:0")
    }

    fn spawn_on(
        data_dir: &Path,
        mailbox: Option<&str>,
        env: &[(&str, &str)],
        listen: &str,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary("node")?);
        cmd.envs(env.iter().copied());
        cmd.arg("run")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen]);
        if let Some(mailbox) = mailbox {
            cmd.args(["--mailbox", mailbox]);
        }
        let mut proc = Proc::spawn(cmd)?;
        let url = proc.expect_line("node UI at ", Duration::from_secs(20))?;
        let open = env
            .iter()
            .any(|(k, v)| *k == "NODE_REQUIRE_TOKEN" && *v == "false");
        let mut start_link = None;
        let (page, token) = if open {
            (url.clone(), None)
        } else {
            let link = proc.expect_line("sign in at ", Duration::from_secs(5))?;
            start_link = Some(link.clone());
            let page = link
                .split("/login?")
                .next()
                .context("a sign-in link without /login")?
                .to_owned();
            let token = match env.iter().find(|(k, _)| *k == "NODE_ACCESS_TOKEN") {
                Some((_, t)) => (*t).to_owned(),
                None => std::fs::read_to_string(data_dir.join("access-token"))
                    .context("the node made no access-token file")?
                    .trim()
                    .to_owned(),
            };
            (page, Some(token))
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))?,
            );
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        Ok(Self {
            proc,
            url,
            page,
            token,
            start_link,
            http,
        })
    }

    /// A request to a path of the node's without its token (as a stranger would make it).
    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, format!("{}{path}", self.url))
    }

    /// The page host, `n-<hex>.localhost:PORT`.
    pub fn page_host(&self) -> &str {
        self.page.trim_start_matches("http://")
    }

    /// A new one-time sign-in link for a browser.
    pub async fn sign_in_link(&self) -> anyhow::Result<String> {
        let resp = self
            .request(reqwest::Method::POST, "/api/sign-in")
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("POST /api/sign-in: {status}: {body}");
        }
        body["url"]
            .as_str()
            .map(str::to_owned)
            .context("no url in the sign-in answer")
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
