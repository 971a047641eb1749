//! Starting and stopping the whole mailbox: store, certificate, QUIC driver, dashboard and
//! retention, wired together. The binary's only entry point into the crate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use config::{MailboxConfig, StoreSetting, ensure_private_dir};
use tracing::info;

use crate::{core, dashboard, metrics, server, store, tls};

/// Why the mailbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be made.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate could not be loaded or made.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(#[from] core::PolicyError),
    /// The login decoy key could not be made.
    #[error("cannot make the login decoy key: {0}")]
    Decoy(#[from] crypto::Error),
    /// A blocking task (key generation) did not finish: it panicked or the runtime is
    /// shutting down.
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A setting is not usable (named, with the reason).
    #[error("setting {key}: {reason}")]
    Setting {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running mailbox.
#[derive(Debug)]
pub struct Running {
    /// The QUIC address it listens on (the real port when 0 was asked).
    pub quic_addr: SocketAddr,
    /// The dashboard's address.
    pub dashboard_addr: SocketAddr,
    /// SHA-256 of its certificate.
    pub fingerprint: [u8; 32],
    endpoint: quinn::Endpoint,
    server: Arc<server::Server<store::AnyQueue>>,
    quic_task: tokio::task::JoinHandle<()>,
    http_task: tokio::task::JoinHandle<()>,
    retention_task: tokio::task::JoinHandle<()>,
    disk_task: Option<tokio::task::JoinHandle<()>>,
    arrivals_task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Resolves if the store fails (a write or a sync could not be made durable), with the
    /// reason: every request is refused from then on, and the binary stops with exit code 70.
    pub async fn failed(&self) -> String {
        self.server.core().store().failed().await
    }

    /// Stop accepting, let in-flight requests finish (at most 10 s), and close. Every
    /// answered SEND is already durable.
    pub async fn shutdown(self) {
        self.server.core().stop();
        self.retention_task.abort();
        for task in [&self.disk_task, &self.arrivals_task].into_iter().flatten() {
            task.abort();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.server.in_flight() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.endpoint.close(0u32.into(), b"shutting down");
        self.endpoint.wait_idle().await;
        self.http_task.abort();
        let _ = self.quic_task.await;
    }
}

/// The certificate fingerprint of the mailbox `config` describes, making the certificate if
/// there is none yet.
pub fn fingerprint(config: &MailboxConfig) -> Result<[u8; 32], StartError> {
    ensure_private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    Ok(server_identity(config)?.fingerprint())
}

/// The certificate: from `tls_cert` and `tls_key` (shared by the front-ends of a cluster),
/// or the one kept in the data directory.
fn server_identity(config: &MailboxConfig) -> Result<tls::ServerIdentity, StartError> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Ok(tls::ServerIdentity::load_or_create_files(cert, key)?),
        (None, None) => Ok(tls::ServerIdentity::load_or_create(&config.data_dir)?),
        (Some(_), None) => Err(StartError::Setting {
            key: "tls_key",
            reason: "tls_cert is set, so its key must be too".to_owned(),
        }),
        (None, Some(_)) => Err(StartError::Setting {
            key: "tls_cert",
            reason: "tls_key is set, so the certificate must be too".to_owned(),
        }),
    }
}

/// The NATS options the settings give, each name checked.
fn nats_options(config: &MailboxConfig, urls: &[String]) -> Result<store::NatsOptions, StartError> {
    let bad = |key, reason: &str| StartError::Setting {
        key,
        reason: reason.to_owned(),
    };
    let token = |s: &str| {
        !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>'))
    };
    if !token(&config.nats_stream) {
        return Err(bad(
            "nats_stream",
            "a stream name has no spaces, dots, `*` or `>`",
        ));
    }
    if !token(&config.nats_subject_prefix) {
        return Err(bad(
            "nats_subject_prefix",
            "one subject token: no spaces, dots, `*` or `>`",
        ));
    }
    if config.nats_key_bucket.is_empty()
        || !config
            .nats_key_bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(bad("nats_key_bucket", "letters, digits, `-` and `_` only"));
    }
    if config.nats_replicas.is_some_and(|r| !(1..=5).contains(&r)) {
        return Err(bad("nats_replicas", "JetStream keeps 1 to 5 replicas"));
    }
    let mut options = store::NatsOptions::new(&urls.join(","), config.retention);
    options.stream = config.nats_stream.clone();
    options.prefix = config.nats_subject_prefix.clone();
    options.key_bucket = config.nats_key_bucket.clone();
    options.replicas = config.nats_replicas;
    options.tls_ca = config.nats_tls_ca.clone();
    options.start_timeout = config.nats_start_timeout;
    Ok(options)
}

/// What `mailbox migrate` copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Queued envelopes read from the sled store.
    pub envelopes: u64,
    /// Of those, stored in the cluster now (the rest were there already).
    pub new: u64,
    /// Identities whose device keys were copied.
    pub owners: u64,
}

/// Copy the sled mailbox in `config`'s data directory (stopped) into the NATS cluster at
/// `to` (the other NATS settings from `config`): every queued envelope, with its id, stored
/// time and origin, each recipient's in order, and every identity's device keys. Running
/// it again stores nothing twice of what is still queued in the cluster; what nodes have
/// acknowledged there since (more than JetStream's two-minute window ago) is stored again,
/// and nodes drop it as a duplicate. The sled data stays until it is deleted.
pub async fn migrate(config: &MailboxConfig, to: &[String]) -> Result<Migrated, StartError> {
    let (queue, keys) = open_sled(config)?;
    let options = nats_options(config, to)?;
    let target = store::JetStreamQueue::open(&options).await?;
    let target_keys = store::JetStreamKeys::open(&options).await?;
    let mut migrated = Migrated::default();
    let mut chunk = Vec::with_capacity(512);
    let mut export = queue.export();
    loop {
        let next = export.next().transpose()?;
        let done = next.is_none();
        chunk.extend(next);
        if chunk.len() >= 512 || (done && !chunk.is_empty()) {
            migrated.envelopes += chunk.len() as u64;
            migrated.new += target.import(std::mem::take(&mut chunk)).await?;
            info!(envelopes = migrated.envelopes, "migrating");
        }
        if done {
            break;
        }
    }
    for (owner, owner_keys) in keys.export()? {
        target_keys.import(owner, &owner_keys).await?;
        migrated.owners += 1;
    }
    Ok(migrated)
}

/// The sled stores in the data directory.
fn open_sled(config: &MailboxConfig) -> Result<(store::SledQueue, store::SledKeys), StartError> {
    let dir = &config.data_dir;
    let queue = store::SledQueue::open_with(
        &dir.join("queue"),
        store::SledOptions::for_retention(config.retention),
    )?;
    Ok((queue, store::SledKeys::open(&dir.join("keys"))?))
}

/// The engines the `store` setting names.
async fn open_store(
    config: &MailboxConfig,
) -> Result<(store::AnyQueue, store::AnyKeys), StartError> {
    match &config.store {
        StoreSetting::Sled => {
            let (queue, keys) = open_sled(config)?;
            Ok((store::AnyQueue::Sled(queue), store::AnyKeys::Sled(keys)))
        }
        StoreSetting::Nats(urls) => {
            let options = nats_options(config, urls)?;
            let queue = store::JetStreamQueue::open(&options).await?;
            let keys = store::JetStreamKeys::open(&options).await?;
            info!(stream = %options.stream, "the store is JetStream");
            Ok((
                store::AnyQueue::JetStream(queue),
                store::AnyKeys::JetStream(keys),
            ))
        }
    }
}

/// Start a mailbox: open the store, load or make the certificate, bind QUIC and HTTP, and
/// run retention. `logs` receives recent log lines for the dashboard.
pub async fn start(
    config: &MailboxConfig,
    logs: Arc<metrics::RecentLogs>,
) -> Result<Running, StartError> {
    let policy = core::Policy::from_config(config)?;
    let dir = &config.data_dir;
    ensure_private_dir(dir).map_err(|source| StartError::DataDir {
        path: dir.clone(),
        source,
    })?;
    // File work, and possibly a wait of up to 5 s for another front-end writing the shared
    // certificate: not on an executor thread.
    let identity = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || server_identity(&config)).await??
    };
    let fingerprint = identity.fingerprint();
    let (queue, keys) = open_store(config).await?;
    let arrivals = match &queue {
        store::AnyQueue::JetStream(q) => q.take_arrivals(),
        store::AnyQueue::Sled(_) => None,
    };
    let local_disk = matches!(queue, store::AnyQueue::Sled(_));
    let decoy = decoy_key(dir).await?;
    let metrics = Arc::new(metrics::Metrics::new());
    let server = Arc::new(server::Server::new(
        core::Mailbox::new(queue, policy, decoy, metrics).with_keys(keys),
        config.push_timeout,
    ));

    let server_config =
        identity.server_config(config.max_streams_per_connection, config.idle_timeout)?;
    let endpoint = quinn::Endpoint::server(server_config, config.listen).map_err(|source| {
        StartError::Bind {
            addr: config.listen,
            source,
        }
    })?;
    let quic_addr = endpoint.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let listener = tokio::net::TcpListener::bind(config.dashboard)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.dashboard,
            source,
        })?;
    let dashboard_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.dashboard,
        source,
    })?;
    let app = dashboard::host_guard(
        dashboard::router(
            server.clone(),
            logs,
            quic_addr,
            fingerprint,
            config.retention,
        ),
        dashboard_addr,
    );
    let http_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "dashboard stopped");
        }
    });
    let quic_task = tokio::spawn(server::serve(endpoint.clone(), server.clone()));
    let retention_task = tokio::spawn(retention(server.clone(), config.retention_check));
    // The free-disk watermark is the sled store's; a cluster's disks are NATS's.
    let disk_task = local_disk.then(|| tokio::spawn(watch_disk(server.clone(), dir.to_owned())));
    let arrivals_task =
        arrivals.map(|arrivals| tokio::spawn(forward_arrivals(server.clone(), arrivals)));
    info!(%quic_addr, %dashboard_addr, "mailbox serving");
    Ok(Running {
        quic_addr,
        dashboard_addr,
        fingerprint,
        endpoint,
        server,
        quic_task,
        http_task,
        retention_task,
        disk_task,
        arrivals_task,
    })
}

/// A public key that stands in for unparseable keys at login, so that every refused login
/// costs the same. Generated once (RSA key generation takes 50 ms or more) and kept in the
/// data directory as `login-decoy.pem`: only its public half, which is no secret.
async fn decoy_key(dir: &Path) -> Result<crypto::PublicKey, StartError> {
    let path = dir.join("login-decoy.pem");
    if let Ok(pem) = std::fs::read_to_string(&path)
        && let Ok(key) = crypto::PublicKey::from_pem(&pem)
    {
        return Ok(key);
    }
    let key = tokio::task::spawn_blocking(crypto::Identity::generate)
        .await??
        .public_key()
        .clone();
    if let Err(e) = std::fs::write(&path, key.to_pem()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the login decoy key; a new one is made at each start");
    }
    Ok(key)
}

/// Tell the core the free space on the data directory's disk, every second (it refuses
/// SENDs below its watermark).
async fn watch_disk<S: store::QueueStore>(server: Arc<server::Server<S>>, dir: std::path::PathBuf) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match fs2::available_space(&dir) {
            Ok(free) => server.core().handle_disk_free(free),
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "cannot measure the free disk space")
            }
        }
    }
}

/// Push what other front-ends stored for recipients logged in here.
async fn forward_arrivals<S: store::QueueStore>(
    server: Arc<server::Server<S>>,
    mut arrivals: tokio::sync::mpsc::Receiver<crypto::Fingerprint>,
) {
    while let Some(recipient) = arrivals.recv().await {
        server.core().handle_arrival(recipient);
        server.push();
    }
}

/// Run retention every `every` (the core knows the period).
async fn retention<S: store::QueueStore>(
    server: Arc<server::Server<S>>,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match server.core().expire(config::now_ms()).await {
            Ok(expired) if expired > 0 => info!(expired, "retention deleted envelopes"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention failed; will retry"),
        }
    }
}
