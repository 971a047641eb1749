//! A real mailbox process on ephemeral ports, its dashboard and metrics, and QUIC clients
//! of it.
//!
//! The engine under test: sled (the default), or JetStream when `SM_TEST_STORE=jetstream`.
//! Then each mailbox a test starts (one that is not given `MAILBOX_STORE` itself) gets a
//! nats-server of its own, kept across [`Mailbox::restart`]: the mailbox process is a
//! front-end, and a killed one comes back to the same queue. `cargo xtask test` runs the
//! mailbox suite once more that way.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    /// The nats-server it stores in, when the suite runs on JetStream ([`Store::JetStream`]).
    nats: Option<Arc<LocalNats>>,
}

/// The engine the mailbox suite runs on: `SM_TEST_STORE` (`sled`, the default, or
/// `jetstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The embedded sled store in the data directory.
    Sled,
    /// A nats-server of the test's own with JetStream.
    JetStream,
}

impl Store {
    /// The engine `SM_TEST_STORE` names.
    ///
    /// # Panics
    /// On a value other than `sled` or `jetstream`: a run asked for an engine it would not
    /// get.
    pub fn under_test() -> Self {
        match std::env::var("SM_TEST_STORE").as_deref() {
            Err(_) | Ok("" | "sled") => Self::Sled,
            Ok("jetstream") => Self::JetStream,
            Ok(other) => panic!("SM_TEST_STORE={other:?}: expected sled or jetstream"),
        }
    }
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
        Self::start_ephemeral(data_dir, env, extra_args, None)
    }

    /// Start a mailbox on ephemeral ports over the JetStream of `nats` (kept across
    /// [`Mailbox::restart`]), with `data_dir` and the environment variables `env`.
    pub fn start_over(
        data_dir: &Path,
        nats: LocalNats,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start_ephemeral(data_dir, env, &[], Some(Arc::new(nats)))
    }

    fn start_ephemeral(
        data_dir: &Path,
        env: &[(&str, &str)],
        extra_args: &[&str],
        nats: Option<Arc<LocalNats>>,
    ) -> anyhow::Result<Self> {
        Self::spawn(
            data_dir.to_owned(),
            EPHEMERAL.to_owned(),
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            extra_args.iter().map(|a| (*a).to_owned()).collect(),
            nats,
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
            None,
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
            self.nats.clone(),
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
            self.nats.clone(),
        )
    }

    fn spawn(
        data_dir: PathBuf,
        listen: String,
        env: Vec<(String, String)>,
        args: Vec<String>,
        mut nats: Option<Arc<LocalNats>>,
    ) -> anyhow::Result<Self> {
        let own_store =
            env.iter().any(|(k, _)| k == "MAILBOX_STORE") || args.iter().any(|a| a == "--store");
        if nats.is_none() && !own_store && Store::under_test() == Store::JetStream {
            let server =
                LocalNats::start(&data_dir.join("nats"), 1).context("start nats-server")?;
            nats = Some(Arc::new(server));
        }
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
        if let Some(nats) = &nats {
            cmd.env("MAILBOX_STORE", nats.urls());
        }
        let mut proc = Proc::spawn(cmd)?;
        let t = Duration::from_secs(20);
        let addr = proc
            .expect_line("mailbox listening on ", t)?
            .trim_end_matches(" (QUIC)")
            .to_owned();
        let fingerprint = proc.expect_line("certificate fingerprint: ", t)?;
        let dashboard = proc.expect_line("dashboard on ", t)?;
        let store = proc.expect_line("store: ", t)?;
        if nats.is_some() && !store.starts_with("NATS JetStream") {
            bail!("the mailbox was given a nats-server and says its store is {store:?}");
        }
        Ok(Self {
            proc,
            addr,
            fingerprint,
            dashboard,
            data_dir,
            listen,
            env,
            args,
            nats,
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
