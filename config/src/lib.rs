//! Layered configuration for the Secure Messenger `mailbox` server and `node` client.
//!
//! The effective configuration is built from four layers, later wins:
//!
//! 1. built-in defaults ([`MailboxConfig::default`], [`NodeConfig::default`]);
//! 2. a YAML file, if the binary was given one (unknown keys are refused, missing keys keep
//!    their defaults, an empty file means "all defaults");
//! 3. environment variables `MAILBOX_<KEY>` / `NODE_<KEY>` (e.g. `NODE_DATA_DIR`);
//!    variables with the prefix that are not settings are ignored with a note, because
//!    `NODE_` collides with Node.js variables such as `NODE_OPTIONS`;
//! 4. command-line flags, passed in by the binary as `(key, raw value)` pairs.
//!
//! [`load`] returns the result together with the keys that came from the environment or
//! flags and notes for the binary to log; [`to_yaml`] renders the effective configuration
//! for `config show`. Example files with every key and its default are in
//! `config/examples/`.
//!
//! ```
//! use config::{NodeConfig, load, to_yaml};
//!
//! let env = vec![("NODE_LISTEN".to_owned(), "127.0.0.1:9000".to_owned())];
//! let flags = [("pull_interval", "5s".to_owned())];
//! let loaded = load::<NodeConfig>(None, env, &flags)?;
//! assert_eq!(loaded.config.listen.port(), 9000);
//! assert_eq!(loaded.overridden, ["listen", "pull_interval"]);
//! assert!(to_yaml(&loaded.config)?.contains("pull_interval: 5s"));
//! # Ok::<(), config::ConfigError>(())
//! ```
//!
//! What this crate does **not** do: parse the command line (the binaries own their flags and
//! hand over only the ones the user gave), read the process environment itself (the binary
//! passes `std::env::vars()`), resolve a relative `data_dir` (it is kept exactly as given),
//! or watch the file for changes. It does make the data directories, private to their user
//! ([`ensure_private_dir`]), and holds the few helpers both binaries share ([`time`]).

mod address;
#[cfg(feature = "bin")]
pub mod bin;
mod duration;
mod store;
pub mod time;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_norway::Value;

pub use address::{AddressError, MailboxAddress};
pub use store::{StoreSetting, StoreSettingError};
pub use time::now_ms;

/// Directory name under the platform data directory shared by both binaries.
const APP_DIR: &str = "secure-messenger";

/// The default data directory of a component (`"mailbox"` or `"node"`):
/// `<platform data dir>/secure-messenger/<component>` (e.g.
/// `~/.local/share/secure-messenger/node` on Linux), or
/// `./.secure-messenger/<component>` (relative) if the platform has no data directory.
pub fn default_data_dir(component: &str) -> PathBuf {
    match dirs::data_dir() {
        Some(dir) => dir.join(APP_DIR).join(component),
        None => PathBuf::from(format!(".{APP_DIR}")).join(component),
    }
}

/// Make a data directory if needed and keep it private to its user (mode 0700 on Unix, even
/// if it existed with looser permissions). A file in its place is refused as not a
/// directory.
pub fn ensure_private_dir(path: &Path) -> std::io::Result<()> {
    if path.exists() && !path.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "exists and is not a directory",
        ));
    }
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Configuration of the `mailbox` server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailboxConfig {
    /// QUIC (UDP) address nodes connect to. Default `127.0.0.1:50000`.
    pub listen: SocketAddr,
    /// HTTP address of the operator dashboard. Default `127.0.0.1:8090`.
    pub dashboard: SocketAddr,
    /// Where the mailbox keeps its database and TLS certificate.
    /// Default [`default_data_dir`]`("mailbox")`. A relative path is kept as given.
    pub data_dir: PathBuf,
    /// How long an undelivered envelope is kept. Default 7 days.
    /// Written as a duration such as `"7d"`, `"36h"`, `"90s"`, `"1h 30m"`.
    #[serde(with = "duration")]
    pub retention: Duration,
    /// Largest envelope accepted, in bytes. Default 70 000 (a 64 KiB body plus overhead).
    pub max_envelope_bytes: usize,
    /// How often retention runs. Default 1 minute.
    #[serde(with = "duration")]
    pub retention_check: Duration,
    /// Most envelopes queued for one recipient. Default 10 000.
    pub quota_envelopes: u64,
    /// Most bytes queued for one recipient. Default 256 MiB.
    pub quota_bytes: u64,
    /// Most bytes queued in all (live envelopes); past it SENDs get a temporary
    /// `mailbox_full`. Default none (the free-disk watermark still holds).
    pub max_total_bytes: Option<u64>,
    /// Most live bytes one sending address (an IPv4 address, or an IPv6 /64) may have
    /// stored, to all recipients together; past it its SENDs get a temporary
    /// `mailbox_full`. Default 1 GiB.
    pub max_bytes_per_address: u64,
    /// Most envelopes queued in all: past it SENDs get a temporary `mailbox_full`. The
    /// mailbox keeps ~50–170 bytes of memory per queued envelope (its id, and the usage of
    /// its recipient and origin when they are made up), so this bounds its memory too.
    /// Default 10 000 000.
    pub max_total_envelopes: u64,
    /// Most envelopes one sending address (an IPv4 address, or an IPv6 /64) may have
    /// queued, to all recipients together; past it its SENDs get a temporary
    /// `mailbox_full`. Default 1 000 000.
    pub max_envelopes_per_address: u64,
    /// Free space the mailbox leaves on the disk of its data directory: below it SENDs get
    /// a temporary `mailbox_full`, and everything else goes on. Default 1 GiB.
    pub min_free_disk_bytes: u64,
    /// SENDs per second one identity may make, sustained (token bucket). Default 50.
    /// Rates are finite and above zero.
    #[serde(deserialize_with = "positive_rate")]
    pub rate_per_second: f64,
    /// SENDs one identity may make in a burst. Default 200. Bursts are finite and at least 1.
    #[serde(deserialize_with = "burst")]
    pub rate_burst: f64,
    /// Requests per second one source address may make, sustained. Default 500.
    #[serde(deserialize_with = "positive_rate")]
    pub address_rate_per_second: f64,
    /// Requests one source address may make in a burst. Default 2 000.
    #[serde(deserialize_with = "burst")]
    pub address_rate_burst: f64,
    /// Connections one source address may hold open. Default 64.
    pub max_connections_per_address: usize,
    /// Handshakes from one source address whose address QUIC has not validated yet, in
    /// progress at once; more get a Retry (which a spoofed address cannot answer). Default 8.
    pub max_handshakes_per_address: usize,
    /// Connections one identity may be logged in on at once (each one is pushed every
    /// arrival). Default 8.
    pub max_logins_per_identity: usize,
    /// How long a push to a connection may wait for the peer to take it; a connection that
    /// does not is closed. Default 30 s.
    #[serde(with = "duration")]
    pub push_timeout: Duration,
    /// Concurrent request streams per connection. Default 32 (quinn reserves memory per
    /// permitted stream: keep it small).
    pub max_streams_per_connection: u32,
    /// A connection with no traffic for this long is closed. Default 60 s.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// The members: when not empty, only these identities (fingerprints, 64 hex) may be
    /// recipients here, PULL and ACK; anyone may log in to deliver to them. In the
    /// environment, comma-separated.
    pub allowlist: Vec<String>,
    /// Identities whose device keys (for forward-secret sessions) the mailbox keeps at
    /// most; a new one past it is refused `mailbox_full`. About 10 KB each. Default 100 000.
    pub max_key_owners: u64,
    /// One-time keys the mailbox keeps per identity, at most. Default 100.
    pub max_one_time_keys: usize,
    /// One-time keys served an hour per claiming identity, and per owner (a burst of as
    /// many); past it claims get the owner's fallback key, so nobody drains an identity's
    /// keys. Default 30. Finite and above zero.
    #[serde(deserialize_with = "positive_rate")]
    pub key_claims_per_hour: f64,
    /// Key publications an hour per identity (a burst of as many). Default 60. Finite and
    /// above zero.
    #[serde(deserialize_with = "positive_rate")]
    pub key_publishes_per_hour: f64,
    /// Where envelopes and device keys are kept: `sled` (embedded in the data directory;
    /// the default) or a comma-separated list of NATS URLs
    /// (`nats://127.0.0.1:4222,nats://127.0.0.1:4223`): a JetStream cluster that several
    /// front-ends share, each of them stateless.
    pub store: StoreSetting,
    /// With a NATS store: the JetStream stream of the queue. Default `SM_QUEUE`.
    pub nats_stream: String,
    /// With a NATS store: the first token of the mailbox's subjects. Default `sm`.
    pub nats_subject_prefix: String,
    /// With a NATS store: the key-value bucket of device keys. Default `sm-keys`.
    pub nats_key_bucket: String,
    /// With a NATS store: replicas of the stream and the bucket (1 to 5). Default: 3 when
    /// the cluster has three servers or more, else 1.
    pub nats_replicas: Option<usize>,
    /// With a NATS store: a CA certificate (PEM) to trust for TLS to the servers, when they
    /// use a private one (TLS is then required).
    pub nats_tls_ca: Option<PathBuf>,
    /// With a NATS store: how long a front-end waits for JetStream at start. Default 30 s.
    #[serde(with = "duration")]
    pub nats_start_timeout: Duration,
    /// The TLS certificate nodes pin (PEM), with `tls_key`: the front-ends of one cluster
    /// share one, so a node's pinned fingerprint holds for each. Default: one made and kept
    /// in the data directory.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM, PKCS#8).
    pub tls_key: Option<PathBuf>,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 50000)),
            dashboard: SocketAddr::from((Ipv4Addr::LOCALHOST, 8090)),
            data_dir: default_data_dir("mailbox"),
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            max_envelope_bytes: 70_000,
            retention_check: Duration::from_secs(60),
            quota_envelopes: 10_000,
            quota_bytes: 256 * 1024 * 1024,
            max_total_bytes: None,
            max_bytes_per_address: 1024 * 1024 * 1024,
            max_total_envelopes: 10_000_000,
            max_envelopes_per_address: 1_000_000,
            min_free_disk_bytes: 1024 * 1024 * 1024,
            rate_per_second: 50.0,
            rate_burst: 200.0,
            address_rate_per_second: 500.0,
            address_rate_burst: 2_000.0,
            max_connections_per_address: 64,
            max_handshakes_per_address: 8,
            max_logins_per_identity: 8,
            push_timeout: Duration::from_secs(30),
            max_streams_per_connection: 32,
            idle_timeout: Duration::from_secs(60),
            allowlist: Vec::new(),
            max_key_owners: 100_000,
            max_one_time_keys: 100,
            key_claims_per_hour: 30.0,
            key_publishes_per_hour: 60.0,
            store: StoreSetting::Sled,
            nats_stream: "SM_QUEUE".to_owned(),
            nats_subject_prefix: "sm".to_owned(),
            nats_key_bucket: "sm-keys".to_owned(),
            nats_replicas: None,
            nats_tls_ca: None,
            nats_start_timeout: Duration::from_secs(30),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Configuration of the `node` client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// HTTP address of the web UI and JSON API. Default `127.0.0.1:8000`.
    pub listen: SocketAddr,
    /// The mailbox to use. Default `127.0.0.1:50000`, no fingerprint.
    pub mailbox: MailboxAddress,
    /// Where the node keeps its keys and messages.
    /// Default [`default_data_dir`]`("node")`. A relative path is kept as given.
    pub data_dir: PathBuf,
    /// Largest message text a user may send, in bytes. Default 65 536.
    pub max_body_bytes: usize,
    /// How often the node asks the mailbox for new envelopes even without a push from it
    /// (a safety net: the mailbox pushes arrivals). Default 30 s.
    #[serde(with = "duration")]
    pub pull_interval: Duration,
    /// After moving to another mailbox, how long the node keeps pulling from the old one
    /// (contacts who have not seen the move notice yet still send there). Default 7 days,
    /// a mailbox's default retention.
    #[serde(with = "duration")]
    pub move_grace: Duration,
    /// The access token the API (as a bearer token) and sign-in require. When not set, the
    /// node generates one at first start into `access-token` in its data directory (mode
    /// 0600); a configured one wins over that file.
    pub access_token: Option<String>,
    /// Whether the API and the pages require the access token. Default true; false is
    /// refused unless `listen` is a loopback address.
    pub require_token: bool,
    /// The name of an environment variable holding the passphrase of the private keys.
    pub passphrase_env: Option<String>,
    /// A file holding the passphrase of the private keys (its first line).
    pub passphrase_file: Option<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8000)),
            mailbox: MailboxAddress {
                host: Ipv4Addr::LOCALHOST.to_string(),
                port: 50000,
                fingerprint: None,
                also: Vec::new(),
            },
            data_dir: default_data_dir("node"),
            max_body_bytes: 65_536,
            pull_interval: Duration::from_secs(30),
            move_grace: Duration::from_secs(7 * 24 * 60 * 60),
            access_token: None,
            require_token: true,
            passphrase_env: None,
            passphrase_file: None,
        }
    }
}

/// A rate: finite and above zero (`.nan`, `.inf`, `0` and `-5` are refused: an infinite
/// rate or burst lets every request through, a rate of 0 or NaN (which the limiter reads as
/// 0) refuses everyone forever once their burst is spent).
fn positive_rate<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_f64(Bounded {
        what: "a rate: a finite number above 0",
        ok: |v| v.is_finite() && v > 0.0,
    })
}

/// A burst: finite and at least 1 (a smaller bucket never holds a whole token).
fn burst<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_f64(Bounded {
        what: "a burst: a finite number of at least 1",
        ok: |v| v.is_finite() && v >= 1.0,
    })
}

/// A number checked inside the deserializer, so that the error carries the key and line.
struct Bounded {
    what: &'static str,
    ok: fn(f64) -> bool,
}

impl serde::de::Visitor<'_> for Bounded {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.what)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
        if (self.ok)(v) {
            Ok(v)
        } else {
            Err(E::custom(format_args!("{v} is not {}", self.what)))
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }
}

/// A configuration that can be built by [`load`].
pub trait Layered: Serialize + DeserializeOwned + Default {
    /// Environment prefix, `"MAILBOX_"` or `"NODE_"`.
    const ENV_PREFIX: &'static str;
}

impl Layered for MailboxConfig {
    const ENV_PREFIX: &'static str = "MAILBOX_";
}

impl Layered for NodeConfig {
    const ENV_PREFIX: &'static str = "NODE_";
}

/// Result of loading: the effective config plus which keys were set by the environment or flags.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The effective configuration.
    pub config: T,
    /// Keys (e.g. `"mailbox"`, `"data_dir"`) whose value came from an environment variable
    /// or a command-line flag, each listed once, in the order first set.
    pub overridden: Vec<String>,
    /// Human-readable notes for the binary to log, e.g.
    /// `ignoring environment variable NODE_FOO: not a setting (known: NODE_LISTEN, ...)`.
    pub notes: Vec<String>,
}

/// Why a configuration could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid YAML, has an unknown key or a bad value.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key and (when known) the line.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable, e.g. `NODE_LISTEN`.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A command-line flag has a bad value (or is not a setting).
    #[error("flag --{flag}: {message}")]
    Flag {
        /// The flag without the leading `--`, e.g. `data-dir`.
        flag: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration could not be turned into YAML.
    #[error("cannot render configuration: {0}")]
    Render(String),
}

/// Builds the effective configuration. Layers, later wins:
/// built-in defaults < YAML `file` (if given) < environment variables < `flags`.
///
/// `env` is an iterator of `(name, value)`; the binary passes `std::env::vars()`, tests
/// pass a `Vec`. Only variables starting with [`Layered::ENV_PREFIX`] are looked at; the rest
/// of the name, lowercased, is the key (`NODE_DATA_DIR` → `data_dir`). Variables with the
/// prefix that are not settings are ignored and reported in [`Loaded::notes`].
///
/// `flags` are `(key, raw value)` pairs for the flags the user gave, e.g.
/// `[("listen", "127.0.0.1:0")]`; errors name the flag as `--listen` (`_` becomes `-`).
///
/// Environment and flag values are read as YAML scalars, so `70000` is a number and
/// `127.0.0.1:8000` a string; a value that only makes sense as text (a path such as `123`)
/// is retried as text.
pub fn load<T: Layered>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &[(&str, String)],
) -> Result<Loaded<T>, ConfigError> {
    let keys = known_keys::<T>()?;
    let mut config = match file {
        Some(path) => read_file::<T>(path)?,
        None => T::default(),
    };
    let mut overridden: Vec<String> = Vec::new();
    let mut notes = Vec::new();

    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(T::ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_ascii_lowercase();
        if !keys.contains(&key) {
            let known: Vec<String> = keys
                .iter()
                .map(|k| format!("{}{}", T::ENV_PREFIX, k.to_ascii_uppercase()))
                .collect();
            notes.push(format!(
                "ignoring environment variable {var}: not a setting (known: {})",
                known.join(", ")
            ));
            continue;
        }
        config = set_key(&config, &key, &raw).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message,
        })?;
        record(&mut overridden, &key);
    }

    for (key, raw) in flags {
        let flag = key.replace('_', "-");
        if !keys.iter().any(|k| k == key) {
            return Err(ConfigError::Flag {
                flag,
                message: format!(
                    "not a setting (known: {})",
                    keys.iter()
                        .map(|k| format!("--{}", k.replace('_', "-")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        config =
            set_key(&config, key, raw).map_err(|message| ConfigError::Flag { flag, message })?;
        record(&mut overridden, key);
    }

    Ok(Loaded {
        config,
        overridden,
        notes,
    })
}

/// The effective configuration as YAML without comments (for `mailbox config show` /
/// `node config show`). The output loads back to the same configuration.
pub fn to_yaml<T: Serialize>(config: &T) -> Result<String, ConfigError> {
    serde_norway::to_string(config).map_err(|e| ConfigError::Render(e.to_string()))
}

/// Adds `key` to `overridden` unless it is already there.
fn record(overridden: &mut Vec<String>, key: &str) {
    if !overridden.iter().any(|k| k == key) {
        overridden.push(key.to_owned());
    }
}

/// The top-level keys of `T` in declaration order, found by serializing its default.
fn known_keys<T: Layered>() -> Result<Vec<String>, ConfigError> {
    match to_value(&T::default())? {
        Value::Mapping(map) => Ok(map
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect()),
        _ => Err(ConfigError::Render(
            "configuration does not serialize to a mapping".to_owned(),
        )),
    }
}

fn to_value<T: Serialize>(config: &T) -> Result<Value, ConfigError> {
    serde_norway::to_value(config).map_err(|e| ConfigError::Render(e.to_string()))
}

/// Reads and parses the YAML file. Missing keys keep their defaults.
fn read_file<T: Layered>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    from_yaml(&text).map_err(|YamlError(message)| ConfigError::File {
        path: path.to_owned(),
        message,
    })
}

/// Parses the text of a config file (layer 2 of [`load`] alone): unknown keys are refused,
/// missing keys keep their defaults, and an empty text (or one with only comments) means
/// all defaults. The error names the key and, when known, the line.
///
/// ```
/// let config: config::NodeConfig = config::from_yaml("listen: 127.0.0.1:9000\n")?;
/// assert_eq!(config.listen.port(), 9000);
/// assert!(config::from_yaml::<config::NodeConfig>("colour: blue\n")
///     .unwrap_err()
///     .to_string()
///     .contains("unknown field `colour`"));
/// # Ok::<(), config::YamlError>(())
/// ```
pub fn from_yaml<T: Layered>(text: &str) -> Result<T, YamlError> {
    // An empty file (or one with only comments) is a document with no value: all defaults.
    let value: Value = serde_norway::from_str(text).map_err(|e| YamlError(describe(&e)))?;
    if value.is_null() {
        return Ok(T::default());
    }
    // Deserialize from the text (not the `Value`) so errors carry line numbers; for a bad
    // value serde_norway prefixes the message with the key, e.g.
    // "listen: invalid socket address syntax at line 1 column 9".
    serde_norway::from_str(text).map_err(|e| YamlError(describe(&e)))
}

/// Why a configuration text does not parse: the key and, when known, the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

/// The message of a YAML error with its location. serde_norway leaves out the location when
/// it is the very start of the file (line 1 column 1); put it back so every located error
/// says which line.
fn describe(e: &serde_norway::Error) -> String {
    let message = e.to_string();
    match e.location() {
        Some(loc) if loc.line() == 1 && loc.column() == 1 && !message.contains(" at line ") => {
            format!("{message} at line 1 column 1")
        }
        _ => message,
    }
}

/// Returns `config` with `key` set from the raw text of an environment variable or flag.
fn set_key<T: Layered>(config: &T, key: &str, raw: &str) -> Result<T, String> {
    let Value::Mapping(mut map) = to_value(config).map_err(|e| e.to_string())? else {
        return Err("configuration does not serialize to a mapping".to_owned());
    };
    let text = Value::String(raw.to_owned());
    // A list setting (the allowlist) is given comma-separated: `<fp>,<fp>` (empty: none).
    let is_list = matches!(
        map.get(Value::String(key.to_owned())),
        Some(Value::Sequence(_))
    );
    // A YAML number or boolean is tried as such first (`70000` for a size); anything else
    // is taken verbatim as text, so `a#b` or `x # y` are not cut at a YAML comment.
    let candidates = if is_list {
        vec![Value::Sequence(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        )]
    } else {
        match serde_norway::from_str::<Value>(raw) {
            Ok(v @ (Value::Number(_) | Value::Bool(_))) => vec![v, text],
            _ => vec![text],
        }
    };
    let mut first_error = None;
    for candidate in candidates {
        map.insert(Value::String(key.to_owned()), candidate);
        match serde_norway::from_value::<T>(Value::Mapping(map.clone())) {
            Ok(config) => return Ok(config),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let reason = first_error.map_or_else(String::new, |e| e.to_string());
    Err(format!("bad value {raw:?} for `{key}`: {reason}"))
}
