//! Developer tasks for Secure Messenger: `cargo xtask <task>`.
//!
//! - `demo`: build, start a mailbox and two nodes (alice on :8000, bob on :8001) who know
//!   each other, and stop all three on Ctrl-C. Data lives in `.demo/` and survives restarts.
//! - `test`: every test (builds the binaries the end-to-end tests start).
//! - `ci`: exactly what CI checks: fmt, clippy `-D warnings`, then `test`.
//!
//! Our binary `node` shares its name with Node.js: it is always run from the target
//! directory, never found through PATH.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

const USAGE: &str = "usage: cargo xtask <demo|test|ci>

  demo   start a mailbox and two nodes, alice (http://127.0.0.1:8000) and bob
         (http://127.0.0.1:8001), who know each other; Ctrl-C stops them
  test   run every test (unit, integration, end-to-end)
  ci     what CI runs: cargo fmt --check, cargo clippy -D warnings, then test";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("ci") => ci(),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(mut cmd: Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn build_binaries() -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "-p", "mailbox", "-p", "node"]);
    run(cmd)
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    // Build every target at once: the same feature set as the test run below, so the
    // binaries the end-to-end tests start are built once, and are current.
    let mut build = cargo();
    build.args(["build", "--workspace", "--all-targets"]);
    run(build)?;
    // nextest does not run doctests: run them first, so the last summary is the main one.
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc", "--quiet"]);
    run(doc)?;
    let mut cmd = cargo();
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra);
    run(cmd)
}

fn ci() -> anyhow::Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    test(&[])
}

/// A child process whose stdout lines we read.
struct Service {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Service {
    fn start(name: &'static str, mut cmd: Command) -> anyhow::Result<Self> {
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { name, child, lines })
    }

    fn expect(&mut self, prefix: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_owned());
            }
        }
        bail!(
            "{} did not start (see its messages above; is its port already in use?)",
            self.name
        )
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        }
    }

    fn wait_or_kill(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop in time; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn demo() -> anyhow::Result<()> {
    build_binaries()?;
    let bin = target_dir().join("debug");
    let data = root().join(".demo");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }

    let mut services: Vec<Service> = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        let mut mailbox = Command::new(bin.join("mailbox"));
        mailbox
            .arg("serve")
            .arg("--data-dir")
            .arg(data.join("mailbox"))
            .args([
                "--listen",
                "127.0.0.1:50000",
                "--dashboard",
                "127.0.0.1:8090",
            ]);
        services.push(Service::start("mailbox", mailbox)?);
        let fingerprint = services[0].expect("certificate fingerprint: ")?;
        let address = format!("127.0.0.1:50000#{fingerprint}");

        let people = [("alice", 8000u16), ("bob", 8001u16)];
        for (name, port) in people {
            let mut node = Command::new(bin.join("node"));
            node.arg("run")
                .arg("--data-dir")
                .arg(data.join(name))
                .args([
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--mailbox",
                    &address,
                ]);
            let mut service = Service::start(
                if name == "alice" {
                    "alice's node"
                } else {
                    "bob's node"
                },
                node,
            )?;
            service.expect("node UI at ")?;
            services.push(service);
        }
        introduce(&people)?;

        println!();
        println!("Secure Messenger demo is running:");
        println!("  alice   http://127.0.0.1:8000/?identity=alice&contact=bob");
        println!("  bob     http://127.0.0.1:8001/?identity=bob&contact=alice");
        println!("  mailbox http://127.0.0.1:8090 (dashboard), QUIC 127.0.0.1:50000");
        println!("  data in {} (kept between runs)", data.display());
        println!("Press Ctrl-C to stop.");
        while !stop.load(Ordering::SeqCst) {
            for s in &mut services {
                if let Ok(Some(status)) = s.child.try_wait() {
                    bail!("{} exited unexpectedly ({status})", s.name);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    })();

    println!("stopping...");
    for s in services.iter_mut().rev() {
        s.terminate();
    }
    for s in services.iter_mut().rev() {
        s.wait_or_kill(Duration::from_secs(10));
    }
    result
}

/// Make each identity if missing, and give each the other as a contact.
fn introduce(people: &[(&str, u16)]) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::new();
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    for &(name, port) in people {
        let exists = http
            .get(url(port, &format!("/api/identities/{name}")))
            .send()?;
        if exists.status() == reqwest::StatusCode::NOT_FOUND {
            let made = http
                .post(url(port, "/api/identities"))
                .json(&json!({ "id": name, "display_name": capitalise(name) }))
                .send()?;
            if !made.status().is_success() {
                bail!("cannot create identity {name}: {}", made.text()?);
            }
        }
    }
    for &(name, port) in people {
        for &(other, other_port) in people.iter().filter(|(o, _)| *o != name) {
            let known = http
                .get(url(
                    port,
                    &format!("/api/identities/{name}/contacts/{other}"),
                ))
                .send()?;
            if known.status() != reqwest::StatusCode::NOT_FOUND {
                continue;
            }
            let pem = http
                .get(url(
                    other_port,
                    &format!("/api/identities/{other}/public-key"),
                ))
                .send()?
                .error_for_status()?
                .text()?;
            let added = http
                .post(url(port, &format!("/api/identities/{name}/contacts")))
                .json(&json!({ "name": other, "public_key": pem }))
                .send()?;
            if !added.status().is_success() {
                bail!("cannot add {other} to {name}: {}", added.text()?);
            }
        }
    }
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
