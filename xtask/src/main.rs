//! Developer tasks for Secure Messenger: `cargo xtask <task>`.
//!
//! - `demo`: build, start a mailbox and two nodes (alice on :8000, bob on :8001) who know
//!   each other, and stop all three on Ctrl-C. Data lives in `.demo/` and survives restarts.
//! - `test`: every test (builds the binaries the end-to-end tests start).
//! - `ci`: what CI checks: fmt, clippy `-D warnings` (also on the lean crypto and mailbox
//!   builds), rustdoc `-D warnings`, then `test`. `.ci/run` adds `--locked`, installs what
//!   is missing and runs `cargo deny`. `test` installs the system packages the tests need
//!   (`setup`).
//! - `screenshots` (`screenshots.rs`): build, start a mailbox and two nodes on ephemeral ports with temporary
//!   data, let alice and bob exchange a few messages, and have headless Chromium take PNGs of
//!   the main screens into `docs/screenshots/`; then stop everything.
//! - `bench`, `crash`, `outage`, `soak`, `fuzz`: the long runs (see `USAGE`); `test` runs
//!   short versions of the last four.
//!
//! Our binary `node` shares its name with Node.js: it is always run from the target
//! directory, never found through PATH.

mod bench;
mod fuzz;
mod screenshots;
mod setup;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

const USAGE: &str =
    "usage: cargo xtask <demo|test|ci|screenshots|bench|crash|outage|soak|cluster-soak|store-history|fuzz>

  demo         start a mailbox and two nodes, alice (http://127.0.0.1:8000) and bob
               (http://127.0.0.1:8001), who know each other; Ctrl-C stops them.
               --two-mailboxes: bob keeps his own mailbox (127.0.0.1:50001), and each
               node delivers to the other's
  test         run every test (unit, integration, end-to-end, browser)
  ci           what CI runs: cargo fmt --check, cargo clippy -D warnings, cargo doc
               -D warnings, then test
  screenshots  start a mailbox and two nodes on free ports, exchange a few messages and
               save PNGs of the main screens to docs/screenshots/ with headless Chromium
               (needs chromium: apt-get install chromium)
  bench        build in release mode, run the criterion benchmarks and sm-bench (the
               system figures); print them against their targets and write them to
               target/bench/results.json
  crash        kill the mailbox with SIGKILL 20 times under concurrent SEND load, then
               the nodes 20 times while they send and receive (cargo xtask test does 3
               and 4); every answered SEND and POST must arrive once
  outage       stop the mailbox for a minute while alice writes 100 messages; all must
               arrive after it returns (cargo xtask test does 3 s)
  soak         5 minutes of SENDs alone from 64 connections (the durable SEND rate
               minute by minute), then 5 minutes of mixed SEND/PULL/ACK against a
               release mailbox (cargo xtask test does 10 s): fails on any error or
               loss, or on an RSS level moving over 10% from minute 1 to the end
  cluster-soak 10 minutes (SM_SOAK_SECONDS) of that traffic over 2 front-ends and 3
               NATS servers; every 20 s a server or a front-end (in turn) is killed
               with SIGKILL and restarted; fails on a lost answered SEND (cargo xtask
               test kills 2 servers under 26 s of load)
  store-history [MILLIONS]: the queue store's API alone past MILLIONS (default 50)
               stored-and-acknowledged envelopes, printing each million's rate and the
               trees a lookup walks (cargo xtask test does 2 steps of 2,000)
  fuzz         [--seconds N] [target...]: build the cargo-fuzz targets (nightly) and run
               each for N seconds (default 600; cargo xtask test does 10): frame,
               envelope, invite, config, pem";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(args.iter().skip(1).any(|a| a == "--two-mailboxes")),
        Some("test") => test(&args[1..]),
        Some("ci") => ci(),
        Some("screenshots") => screenshots::screenshots(),
        Some("bench") => bench::run(&root(), &target_dir(), cargo),
        Some("crash") => crash(),
        Some("outage") => outage(),
        Some("soak") => bench::soak(&target_dir(), cargo, "soak"),
        Some("cluster-soak") => bench::soak(&target_dir(), cargo, "cluster-soak"),
        Some("store-history") => {
            bench::store_history(&target_dir(), cargo, args.get(1).map(String::as_str))
        }
        Some("fuzz") => fuzz::run(&root(), &target_dir(), cargo, &args[1..]),
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

/// The end-to-end tests `cargo xtask test` runs a second time with `SM_TEST_STORE=jetstream`:
/// every mailbox and node test but the cluster's own.
const JETSTREAM_SUITE: &str = "(test(/^mailbox/) | test(/^node::/)) - test(/cluster/)";

fn test(extra: &[String]) -> anyhow::Result<()> {
    setup::ensure_test_tools()?;
    let nats = setup::ensure_nats()?;
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
    cmd.args(extra).env("NATS_SERVER", &nats);
    run(cmd)?;
    // The mailbox's and the node's process-level suites once more, on the clustered engine:
    // each mailbox they start is a front-end over a nats-server of its own (the cluster
    // tests themselves ran above).
    let mut jetstream = cargo();
    if has_nextest() {
        jetstream
            .args([
                "nextest",
                "run",
                "-p",
                "tests",
                "--test",
                "e2e",
                "--no-fail-fast",
            ])
            .args(["-E", JETSTREAM_SUITE]);
    } else {
        jetstream.args([
            "test",
            "-p",
            "tests",
            "--test",
            "e2e",
            "--no-fail-fast",
            "--",
        ]);
        jetstream.args(["mailbox", "node::", "--skip", "cluster"]);
    }
    jetstream
        .env("NATS_SERVER", &nats)
        .env("SM_TEST_STORE", "jetstream");
    run(jetstream)?;
    // The crypto crate again with its pure-Rust backend alone (the rsa crate): the same
    // tests, golden envelope included, without aws-lc-rs.
    let mut pure = cargo();
    if has_nextest() {
        pure.args(["nextest", "run", "-p", "crypto", "--no-default-features"]);
    } else {
        pure.args(["test", "-p", "crypto", "--no-default-features"]);
    }
    run(pure)?;
    // Every fuzz target built (nightly, AddressSanitizer) and run briefly from its seeds;
    // `cargo xtask fuzz` runs them for minutes. The machine image carries nightly; without
    // it the fuzz targets are skipped, and one line says so.
    if !setup::has_nightly() {
        println!(
            "fuzz: SKIPPED: the nightly toolchain is missing (rustup toolchain install nightly)"
        );
        return Ok(());
    }
    fuzz::run(
        &root(),
        &target_dir(),
        cargo,
        &["--seconds".to_owned(), "10".to_owned()],
    )
}

/// The long versions of the repeated-kill tests, mailbox and node (`SM_KILLS` sets how many
/// kills each).
fn crash() -> anyhow::Result<()> {
    e2e_long(
        ("SM_KILLS", "20"),
        &[
            "mailbox::durability::repeated_kills_under_load_lose_no_answered_send",
            "node::recovery::repeated_node_kills_lose_and_duplicate_no_message",
        ],
    )
}

/// The long version of the outage test: the mailbox is down for a minute.
fn outage() -> anyhow::Result<()> {
    e2e_long(
        ("SM_OUTAGE_SECONDS", "60"),
        &[
            "node::recovery::a_mailbox_down_while_100_messages_are_written_delivers_them_all_when_it_returns",
        ],
    )
}

/// Runs end-to-end tests by name with a setting that makes them long, showing their output.
fn e2e_long(setting: (&str, &str), tests: &[&str]) -> anyhow::Result<()> {
    build_binaries()?;
    let mut cmd = cargo();
    cmd.env(setting.0, setting.1)
        .args(["test", "-p", "tests", "--test", "e2e", "--"])
        .args(tests)
        .args(["--exact", "--nocapture", "--test-threads", "1"]);
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
    let mut pure = cargo();
    pure.args([
        "clippy",
        "-p",
        "crypto",
        "--no-default-features",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(pure)?;
    // The mailbox crate as a node links it (protocol, core, client), and with nothing.
    for features in [&["--features", "client"][..], &[]] {
        let mut lean = cargo();
        lean.args(["clippy", "-p", "mailbox", "--no-default-features", "--lib"]);
        lean.args(features);
        lean.args(["--", "-D", "warnings"]);
        run(lean)?;
    }
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run(doc)?;
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

/// The demo: a mailbox and alice and bob, who know each other; with `two_mailboxes`, bob
/// keeps his own mailbox (QUIC 127.0.0.1:50001, dashboard 8091) and each was added from
/// the other's invite, so each node delivers to the other's mailbox.
fn demo(two_mailboxes: bool) -> anyhow::Result<()> {
    build_binaries()?;
    let bin = target_dir().join("debug");
    let data = if two_mailboxes {
        root().join(".demo").join("two-mailboxes")
    } else {
        root().join(".demo")
    };
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
        let bobs = if two_mailboxes {
            let mut second = Command::new(bin.join("mailbox"));
            second
                .arg("serve")
                .arg("--data-dir")
                .arg(data.join("mailbox-b"))
                .args([
                    "--listen",
                    "127.0.0.1:50001",
                    "--dashboard",
                    "127.0.0.1:8091",
                ]);
            let mut service = Service::start("bob's mailbox", second)?;
            let fingerprint = service.expect("certificate fingerprint: ")?;
            services.push(service);
            format!("127.0.0.1:50001#{fingerprint}")
        } else {
            address.clone()
        };

        let people = [("alice", 8000u16, &address), ("bob", 8001u16, &bobs)];
        let mut persons = Vec::new();
        for (name, port, address) in people {
            let mut node = Command::new(bin.join("node"));
            node.arg("run")
                .arg("--data-dir")
                .arg(data.join(name))
                .args([
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--mailbox",
                    address,
                ]);
            let mut service = Service::start(
                if name == "alice" {
                    "alice's node"
                } else {
                    "bob's node"
                },
                node,
            )?;
            let base = service.expect("node UI at ")?;
            let link = service.expect("sign in at ")?;
            services.push(service);
            persons.push(Person::new(name, base, &data.join(name), link)?);
        }
        introduce(&persons, two_mailboxes)?;

        println!();
        println!("Secure Messenger demo is running. Open each link once (it signs that browser");
        println!("in; `node signin` makes new ones):");
        for (person, other) in [(&persons[0], "bob"), (&persons[1], "alice")] {
            let chat = format!("/?identity={}&contact={other}", person.name);
            println!("  {:<7} {}", person.name, with_next(&person.link, &chat)?);
        }
        println!("  mailbox http://127.0.0.1:8090 (dashboard), QUIC 127.0.0.1:50000");
        if two_mailboxes {
            println!("  bob's own mailbox http://127.0.0.1:8091 (dashboard), QUIC 127.0.0.1:50001");
        }
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

/// A demo person's node: its API base, a client that sends its access token, and the
/// sign-in link it printed.
struct Person {
    name: &'static str,
    base: String,
    http: reqwest::blocking::Client,
    link: String,
}

impl Person {
    /// The node of `name` serving at `base`, with its token from `data_dir`.
    fn new(
        name: &'static str,
        base: String,
        data_dir: &Path,
        link: String,
    ) -> anyhow::Result<Self> {
        let token = std::fs::read_to_string(data_dir.join("access-token"))
            .with_context(|| format!("{name}'s node made no access-token file"))?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))?,
        );
        let http = reqwest::blocking::Client::builder()
            .default_headers(headers)
            .build()?;
        Ok(Self {
            name,
            base,
            http,
            link,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A fresh one-time sign-in link that opens `next`.
    fn sign_in(&self, next: &str) -> anyhow::Result<String> {
        let link: serde_json::Value = self
            .http
            .post(self.url("/api/sign-in"))
            .send()?
            .error_for_status()?
            .json()?;
        with_next(link["url"].as_str().context("no sign-in link")?, next)
    }
}

/// A sign-in link that goes on to the page `next` once signed in.
fn with_next(link: &str, next: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(link)?;
    url.query_pairs_mut().append_pair("next", next);
    Ok(url.to_string())
}

/// Make each identity if missing, and give each the other as a contact: by public key, or
/// `by_invite` (which names the other's mailbox, where messages to them then go).
fn introduce(people: &[Person], by_invite: bool) -> anyhow::Result<()> {
    for p in people {
        let name = p.name;
        let exists = p
            .http
            .get(p.url(&format!("/api/identities/{name}")))
            .send()?;
        if exists.status() == reqwest::StatusCode::NOT_FOUND {
            let made = p
                .http
                .post(p.url("/api/identities"))
                .json(&json!({ "id": name, "display_name": capitalise(name) }))
                .send()?;
            if !made.status().is_success() {
                bail!("cannot create identity {name}: {}", made.text()?);
            }
        }
    }
    for p in people {
        let name = p.name;
        for o in people.iter().filter(|o| o.name != name) {
            let other = o.name;
            let known = p
                .http
                .get(p.url(&format!("/api/identities/{name}/contacts/{other}")))
                .send()?;
            if known.status() != reqwest::StatusCode::NOT_FOUND {
                continue;
            }
            let body = if by_invite {
                let invite: serde_json::Value = o
                    .http
                    .get(o.url(&format!("/api/identities/{other}/invite")))
                    .send()?
                    .error_for_status()?
                    .json()?;
                json!({ "name": other, "invite": invite["invite"] })
            } else {
                let pem = o
                    .http
                    .get(o.url(&format!("/api/identities/{other}/public-key")))
                    .send()?
                    .error_for_status()?
                    .text()?;
                json!({ "name": other, "public_key": pem })
            };
            let added = p
                .http
                .post(p.url(&format!("/api/identities/{name}/contacts")))
                .json(&body)
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

/// The first of `names` found on PATH.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}
