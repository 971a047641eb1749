//! A mailbox cluster on loopback: nats-server processes with JetStream
//! ([`LocalNats`]) and `mailbox serve` front-ends over them, which share one certificate
//! (so a node pins one fingerprint for all).

#[allow(clippy::wildcard_imports)]
use super::*;

pub use mailbox::store::jetstream::local::LocalNats;

/// NATS servers and the front-ends serving over them.
#[derive(Debug)]
pub struct Cluster {
    /// The NATS servers.
    pub nats: LocalNats,
    /// The front-ends, in the order started.
    pub front_ends: Vec<Mailbox>,
    dir: PathBuf,
}

impl Cluster {
    /// Start `servers` NATS servers (3: a JetStream cluster with R3) and `front_ends`
    /// front-ends over them, everything under `dir`.
    pub fn start(dir: &Path, servers: usize, front_ends: usize) -> anyhow::Result<Self> {
        let nats = LocalNats::start(&dir.join("nats"), servers).context("start nats-server")?;
        let mut cluster = Self {
            nats,
            front_ends: Vec::new(),
            dir: dir.to_owned(),
        };
        for _ in 0..front_ends {
            let front_end = cluster.start_front_end(&[])?;
            cluster.front_ends.push(front_end);
        }
        Ok(cluster)
    }

    /// The settings every front-end of this cluster has (`MAILBOX_*`).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("MAILBOX_STORE".to_owned(), self.nats.urls()),
            (
                "MAILBOX_TLS_CERT".to_owned(),
                self.dir.join("cert.pem").display().to_string(),
            ),
            (
                "MAILBOX_TLS_KEY".to_owned(),
                self.dir.join("key.pem").display().to_string(),
            ),
        ]
    }

    /// Start one more front-end (not added to [`Self::front_ends`]) with the cluster's
    /// settings and `extra` ones.
    pub fn start_front_end(&self, extra: &[(&str, &str)]) -> anyhow::Result<Mailbox> {
        let n = std::fs::read_dir(&self.dir)?.count();
        let data_dir = self.dir.join(format!("front-end-{n}"));
        let env = self.env();
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        Mailbox::start_with(&data_dir, &all, &[])
    }

    /// The address a node uses for the whole cluster: every front-end, then the pin.
    pub fn pinned_address(&self) -> String {
        let addrs: Vec<&str> = self.front_ends.iter().map(|f| f.addr.as_str()).collect();
        let fingerprint = self
            .front_ends
            .first()
            .map(|f| f.fingerprint.as_str())
            .unwrap_or_default();
        format!("{}#{fingerprint}", addrs.join(","))
    }
}
