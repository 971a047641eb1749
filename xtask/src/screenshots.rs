//! `cargo xtask screenshots`: a mailbox and two nodes on free ports with temporary data,
//! a short conversation, then headless Chromium's PNGs of the main screens (desktop and
//! phone, light and dark) into `docs/screenshots/`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::{Person, Service, build_binaries, find_program, introduce, root, target_dir};

/// Chromium's arguments for screenshots: headless, no sandbox (CI runs as root), nothing that
/// goes to the network by itself.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// One screenshot: its file name, window size, the URL and any extra Chromium arguments.
struct Shot {
    file: &'static str,
    size: (u32, u32),
    url: String,
    extra: &'static [&'static str],
}

pub fn screenshots() -> anyhow::Result<()> {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]).context(
        "no chromium on PATH: install it (Debian/Ubuntu: apt-get install chromium) to take screenshots",
    )?;
    build_binaries()?;
    let bin = target_dir().join("debug");
    let scratch = std::env::temp_dir().join(format!("sm-screenshots-{}", std::process::id()));
    let out = root().join("docs").join("screenshots");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let mut services: Vec<Service> = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        let mut mailbox = Command::new(bin.join("mailbox"));
        mailbox
            .arg("serve")
            .arg("--data-dir")
            .arg(scratch.join("mailbox"))
            .args(["--listen", "127.0.0.1:0", "--dashboard", "127.0.0.1:0"]);
        services.push(Service::start("mailbox", mailbox)?);
        let quic = services[0].expect("mailbox listening on ")?;
        let quic = quic.trim_end_matches(" (QUIC)").to_owned();
        let fingerprint = services[0].expect("certificate fingerprint: ")?;
        let dashboard = services[0].expect("dashboard on ")?;
        let address = format!("{quic}#{fingerprint}");

        let mut people = Vec::new();
        for name in ["alice", "bob"] {
            let mut node = Command::new(bin.join("node"));
            node.arg("run")
                .arg("--data-dir")
                .arg(scratch.join(name))
                .args(["--listen", "127.0.0.1:0", "--mailbox", &address]);
            let label = if name == "alice" {
                "alice's node"
            } else {
                "bob's node"
            };
            let mut service = Service::start(label, node)?;
            let url = service.expect("node UI at ")?;
            let link = service.expect("sign in at ")?;
            services.push(service);
            people.push(Person::new(name, url, &scratch.join(name), link)?);
        }
        introduce(&people, false)?;
        let (alice, bob) = (&people[0], &people[1]);
        converse(alice, bob)?;
        // Alice compared safety numbers with bob: the conversation notes it.
        let verified = alice
            .http
            .patch(alice.url("/api/identities/alice/contacts/bob"))
            .json(&json!({ "verified": true }))
            .send()?;
        if !verified.status().is_success() {
            bail!("cannot mark bob verified: {}", verified.text()?);
        }

        // Each screenshot is a new browser: each signs in with a link of its own.
        let chat = "/?identity=alice&contact=bob";
        let shots = [
            Shot {
                file: "chat.png",
                size: (1100, 750),
                url: alice.sign_in(chat)?,
                extra: &[],
            },
            Shot {
                file: "settings.png",
                size: (1100, 900),
                url: alice.sign_in(&format!("{chat}&settings=1"))?,
                extra: &[],
            },
            Shot {
                file: "dashboard.png",
                size: (1000, 900),
                url: dashboard.clone(),
                extra: &[],
            },
            Shot {
                file: "invite.png",
                size: (1100, 900),
                url: alice.sign_in("/?identity=alice&invite=1")?,
                extra: &[],
            },
            Shot {
                file: "phone.png",
                size: (390, 800),
                url: alice.sign_in(chat)?,
                extra: &[],
            },
            Shot {
                file: "phone-dark.png",
                size: (390, 800),
                url: alice.sign_in("/?identity=alice")?,
                extra: &["--force-dark-mode"],
            },
            Shot {
                file: "dark.png",
                size: (1100, 750),
                url: alice.sign_in(chat)?,
                extra: &["--force-dark-mode"],
            },
        ];
        for shot in &shots {
            screenshot(&chromium, &scratch.join("chromium"), &out, shot)?;
        }
        Ok(())
    })();

    for s in services.iter_mut().rev() {
        s.terminate();
    }
    for s in services.iter_mut().rev() {
        s.wait_or_kill(Duration::from_secs(10));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Alice and bob exchange a few messages (no emoji: a bare machine has no font for them);
/// wait until alice's are delivered.
fn converse(alice: &Person, bob: &Person) -> anyhow::Result<()> {
    let lines = [
        (
            alice,
            "alice",
            "bob",
            "Hi Bob! Did the new mailbox work for you?",
        ),
        (
            bob,
            "bob",
            "alice",
            "Yes, all my messages came through overnight.",
        ),
        (
            alice,
            "alice",
            "bob",
            "Great. Dinner at 8?\nI'll bring the dessert.",
        ),
        (bob, "bob", "alice", "See you at 8!"),
        (alice, "alice", "bob", "Perfect, see you then."),
    ];
    for (person, id, contact, text) in lines {
        let sent = person
            .http
            .post(person.url(&format!("/api/identities/{id}/contacts/{contact}/messages")))
            .json(&json!({ "text": text }))
            .send()?;
        if !sent.status().is_success() {
            bail!("{id} cannot send {text:?}: {}", sent.text()?);
        }
        // Let it arrive before the answer, so both sides show the same order.
        std::thread::sleep(Duration::from_millis(300));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page: serde_json::Value = alice
            .http
            .get(alice.url("/api/identities/alice/contacts/bob/messages"))
            .send()?
            .error_for_status()?
            .json()?;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        let ours: Vec<_> = messages
            .iter()
            .filter(|m| m["direction"] == "out")
            .collect();
        if ours.len() == 3 && messages.len() == 5 && ours.iter().all(|m| m["status"] == "delivered")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the messages were not all delivered within 20 s: {page}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Have headless Chromium save one screenshot into `out`.
fn screenshot(chromium: &Path, profiles: &Path, out: &Path, shot: &Shot) -> anyhow::Result<()> {
    let file = out.join(shot.file);
    let profile = profiles.join(shot.file);
    let mut cmd = Command::new(chromium);
    cmd.args(CHROMIUM_ARGS)
        .args(shot.extra)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},{}", shot.size.0, shot.size.1))
        .arg(format!("--screenshot={}", file.display()))
        .arg(&shot.url)
        .stdin(Stdio::null());
    // Its messages go to a file (read on failure): a pipe nobody reads could fill up.
    std::fs::create_dir_all(profiles)?;
    let log = profiles.join(format!("{}.log", shot.file));
    let log_file = std::fs::File::create(&log)?;
    cmd.stdout(log_file.try_clone()?).stderr(log_file);
    let _ = std::fs::remove_file(&file);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", chromium.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("chromium took over 60 s for {}", shot.file);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() || !file.is_file() {
        bail!(
            "chromium did not write {} ({status}):\n{}",
            file.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    println!("wrote {}", file.display());
    Ok(())
}
