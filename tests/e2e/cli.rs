//! The `node` and `mailbox` command lines, as a person or a script uses them.

use std::process::{Command, Output};

use tests::{Mailbox, Node, binary};

fn node_cli(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(binary("node")?)
        .args(args)
        .env_remove("NODE_ACCESS_TOKEN")
        .output()?)
}

/// The CLI as the node's own user runs it: with the node's data directory in its
/// configuration, where it finds the access token the node made.
fn node_cli_in(data_dir: &std::path::Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(binary("node")?)
        .args(args)
        .env_remove("NODE_ACCESS_TOKEN")
        .env("NODE_DATA_DIR", data_dir)
        .output()?)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_cli_drives_a_running_node() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let alice = Node::start(&dir.path().join("alice"), &mailbox.pinned_address())?;
    let bob = Node::start(&dir.path().join("bob"), &mailbox.pinned_address())?;
    let a = alice.url.trim_start_matches("http://").to_owned();
    let b = bob.url.trim_start_matches("http://").to_owned();
    let (a_dir, b_dir) = (dir.path().join("alice"), dir.path().join("bob"));

    // Without the token the node refuses the CLI, and says so.
    let refused = node_cli(&["--api", &a, "status"])?;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("access token"),
        "{}",
        stderr(&refused)
    );

    let made = node_cli_in(
        &a_dir,
        &["--api", &a, "id", "create", "alice", "--name", "Alice"],
    )?;
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(stdout(&made).contains("created identity alice"));
    let made = node_cli_in(&b_dir, &["--api", &b, "--json", "id", "create", "bob"])?;
    let json: serde_json::Value = serde_json::from_slice(&made.stdout)?;
    assert_eq!(json["id"], "bob");

    let shown = node_cli_in(&a_dir, &["--api", &a, "--json", "id", "show", "alice"])?;
    let invite = serde_json::from_slice::<serde_json::Value>(&shown.stdout)?["invite"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(invite.starts_with("sm1-"), "{}", stdout(&shown));
    let added = node_cli_in(
        &b_dir,
        &[
            "--api", &b, "contact", "add", "bob", "alice", "--invite", &invite,
        ],
    )?;
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(stdout(&added).contains("safety number"));

    let sent = node_cli_in(
        &b_dir,
        &[
            "--api", &b, "send", "bob", "alice", "hello", "from", "the", "shell",
        ],
    )?;
    assert!(sent.status.success(), "{}", stderr(&sent));
    let inbox = node_cli_in(&b_dir, &["--api", &b, "inbox", "bob", "alice"])?;
    assert!(
        stdout(&inbox).contains("you (") && stdout(&inbox).contains("hello from the shell"),
        "{}",
        stdout(&inbox)
    );
    let status = node_cli_in(&b_dir, &["--api", &b, "status"])?;
    assert!(stdout(&status).contains("mailbox:"), "{}", stdout(&status));
    // A new sign-in link for a browser.
    let link = node_cli_in(&b_dir, &["--api", &b, "signin"])?;
    assert!(link.status.success(), "{}", stderr(&link));
    assert!(
        stdout(&link).contains(&format!("{}/login?code=", bob.page)),
        "{}",
        stdout(&link)
    );

    // Refusals: a clear message and a non-zero exit.
    let bad = node_cli_in(&a_dir, &["--api", &a, "id", "create", "../x"])?;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("A-Z a-z 0-9"), "{}", stderr(&bad));
    let unconfirmed = node_cli_in(&a_dir, &["--api", &a, "id", "delete", "alice"])?;
    assert!(!unconfirmed.status.success());
    assert!(
        stderr(&unconfirmed).contains("--confirm alice"),
        "{}",
        stderr(&unconfirmed)
    );
    let listed = node_cli_in(&a_dir, &["--api", &a, "id", "list"])?;
    assert!(stdout(&listed).contains("alice"), "nothing was deleted");
    // A name is one path segment, escaped: `a/b` is refused as a name, not read as a path.
    let slashed = node_cli_in(
        &a_dir,
        &[
            "--api",
            &a,
            "contact",
            "delete",
            "alice",
            "../../identities",
        ],
    )?;
    assert!(!slashed.status.success());
    assert!(
        stderr(&slashed).contains("A-Z a-z 0-9"),
        "{}",
        stderr(&slashed)
    );
    assert!(stdout(&node_cli_in(&a_dir, &["--api", &a, "id", "list"])?).contains("alice"));
    Ok(())
}

#[test]
fn the_node_cli_refuses_flags_that_do_not_fit_the_command() -> anyhow::Result<()> {
    // Client flags mean nothing to `node run`: refused before anything starts.
    let run = node_cli(&["--api", "127.0.0.1:1", "run"])?;
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("--api and --json"),
        "{}",
        stderr(&run)
    );
    let show = node_cli(&["--json", "config", "show"])?;
    assert!(!show.status.success());
    // A contact comes from a key file or an invite code, not both, and not neither.
    let both = node_cli(&[
        "contact", "add", "a", "b", "--key", "k.pem", "--invite", "sm1-x",
    ])?;
    assert!(!both.status.success());
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );
    let neither = node_cli(&["contact", "add", "a", "b"])?;
    assert!(!neither.status.success());
    assert!(
        stderr(&neither).contains("required"),
        "{}",
        stderr(&neither)
    );
    Ok(())
}

#[test]
fn the_node_cli_says_when_no_node_runs() -> anyhow::Result<()> {
    // A port nothing listens on (bound and released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let out = node_cli(&["--api", &format!("127.0.0.1:{port}"), "status"])?;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no node is running") && err.contains("node run"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bad_configuration_names_the_key_and_the_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("mailbox.yaml");
    std::fs::write(&file, "listen: 127.0.0.1:1\nretention: soon\n")?;
    let out = Command::new(binary("mailbox")?)
        .args(["config", "show", "--config"])
        .arg(&file)
        .output()?;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("retention") && err.contains("mailbox.yaml") && err.contains("line 2"),
        "{err}"
    );

    let out = Command::new(binary("node")?)
        .args(["config", "show", "--mailbox", "nonsense"])
        .output()?;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--mailbox"), "{}", stderr(&out));

    let shown = Command::new(binary("mailbox")?)
        .args(["config", "show", "--listen", "127.0.0.1:4433"])
        .env("MAILBOX_RETENTION", "36h")
        .output()?;
    let text = stdout(&shown);
    assert!(
        text.contains("listen: 127.0.0.1:4433") && text.contains("retention: 1day 12h"),
        "{text}"
    );
    Ok(())
}

/// Run `command`, which must give up by itself: its output, or an error if it is still
/// running (serving) after a generous bound.
fn exits_at_once(command: &mut Command) -> anyhow::Result<Output> {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let started = std::time::Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            child.kill()?;
            child.wait()?;
            anyhow::bail!("{command:?} is still running");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

/// Paths that cannot be used (a directory where a file belongs, a file where a directory
/// belongs, a file that is not there): each start ends at once, non-zero, with a message
/// that names the path and, where a configuration key gave it, the key.
#[test]
fn unusable_paths_are_refused_naming_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a_dir = dir.path().join("a-directory");
    std::fs::create_dir(&a_dir)?;
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "not a directory")?;
    let missing = dir.path().join("missing");
    let with_passphrase_file = |name: &str, path: &std::path::Path| -> anyhow::Result<String> {
        let file = dir.path().join(name);
        std::fs::write(&file, format!("passphrase_file: {}\n", path.display()))?;
        Ok(file.display().to_string())
    };
    let (a_dir, a_file, missing) = (
        a_dir.display().to_string(),
        a_file.display().to_string(),
        missing.display().to_string(),
    );
    let (pass_missing, pass_dir) = (
        with_passphrase_file("missing.yaml", missing.as_ref())?,
        with_passphrase_file("directory.yaml", a_dir.as_ref())?,
    );
    let (node_1, node_2) = (
        dir.path().join("node-1").display().to_string(),
        dir.path().join("node-2").display().to_string(),
    );
    let serve = ["--listen", "127.0.0.1:0", "--dashboard", "127.0.0.1:0"];
    let run = ["--listen", "127.0.0.1:0", "--mailbox", "127.0.0.1:9"];
    // What, program, arguments (with `serve` or `run` added for those commands), and the
    // words the error must contain.
    let rows: [(&str, &str, &[&str], &[&str]); 7] = [
        (
            "a directory as the mailbox's config file",
            "mailbox",
            &["config", "show", "--config", &a_dir],
            &[&a_dir],
        ),
        (
            "a directory as the node's config file",
            "node",
            &["config", "show", "--config", &a_dir],
            &[&a_dir],
        ),
        (
            "a missing config file",
            "mailbox",
            &["serve", "--config", &missing],
            &[&missing],
        ),
        (
            "a file as the mailbox's data directory",
            "mailbox",
            &["serve", "--data-dir", &a_file],
            &[&a_file, "not a directory"],
        ),
        (
            "a file as the node's data directory",
            "node",
            &["run", "--data-dir", &a_file],
            &[&a_file, "not a directory"],
        ),
        (
            "a passphrase file that is not there",
            "node",
            &["run", "--config", &pass_missing, "--data-dir", &node_1],
            &["passphrase_file", &missing],
        ),
        (
            "a directory as the passphrase file",
            "node",
            &["run", "--config", &pass_dir, "--data-dir", &node_2],
            &["passphrase_file", &a_dir],
        ),
    ];
    for (what, program, args, named) in rows {
        let extra: &[&str] = match args.first() {
            Some(&"serve") => &serve,
            Some(&"run") => &run,
            _ => &[],
        };
        let out = exits_at_once(
            Command::new(binary(program)?)
                .args(args)
                .args(extra)
                .env_remove("NODE_ACCESS_TOKEN"),
        )?;
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: exited {}", out.status);
        for name in named {
            assert!(err.contains(name), "{what}: {name} not in {err}");
        }
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    Ok(())
}

#[test]
fn the_mailbox_prints_the_fingerprint_nodes_pin() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(dir.path())?;
    let data = dir.path().to_str().unwrap_or_default().to_owned();
    drop(mailbox);
    let out = Command::new(binary("mailbox")?)
        .args(["fingerprint", "--data-dir", &data])
        .output()?;
    let printed = stdout(&out).trim().to_owned();
    assert_eq!(printed.len(), 64, "{printed}");
    let again = Mailbox::start(dir.path())?;
    assert_eq!(
        again.fingerprint, printed,
        "the certificate is kept in the data dir"
    );
    Ok(())
}

/// The token can be turned off only on a loopback address: elsewhere `node run` refuses to
/// start, naming the setting.
#[test]
fn no_token_is_refused_on_an_address_others_can_reach() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = exits_at_once(
        Command::new(binary("node")?)
            .args(["run", "--listen", "0.0.0.0:0", "--mailbox", "127.0.0.1:9"])
            .arg("--data-dir")
            .arg(dir.path().join("node"))
            .env("NODE_REQUIRE_TOKEN", "false")
            .env_remove("NODE_ACCESS_TOKEN"),
    )?;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("require_token") && err.contains("loopback"),
        "{err}"
    );
    Ok(())
}

/// Logs that go to a file or a pipe, not a terminal, carry no colour codes (an operator
/// reads them with `less` or ships them to a log store).
#[test]
fn logs_written_to_a_file_have_no_colour_codes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("mailbox.log");
    let mut child = Command::new(binary("mailbox")?)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--dashboard", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        // Without it, tracing-subscriber would leave colours out anyway.
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log)?;
        if text.contains("mailbox serving") {
            break text;
        }
        if std::time::Instant::now() > deadline || child.try_wait()?.is_some() {
            child.kill()?;
            child.wait()?;
            anyhow::bail!("no \"mailbox serving\" log line: {text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill()?;
    child.wait()?;
    assert!(!text.contains('\u{1b}'), "colour codes in {text:?}");
    Ok(())
}
