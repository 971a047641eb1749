//! `node`: run a Secure Messenger node.
//!
//! Note: Node.js is also called `node`. Run this one as `cargo run -p node -- run` or by its
//! path under `target/`, not through PATH.

mod cli;

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use config::NodeConfig;

#[derive(Parser, Debug)]
#[command(
    name = "node",
    version,
    about = "Secure Messenger node: your identities, contacts and messages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    target: cli::Target,
}

#[derive(clap::Args, Debug)]
struct Common {
    /// YAML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (keys, store).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// HTTP listen address for the UI and API, e.g. 127.0.0.1:8000; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Mailbox address, host:port with an optional #<certificate sha256>.
    #[arg(long, value_name = "ADDR")]
    mailbox: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node: web UI and JSON API, and sync with the mailbox.
    Run(Common),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    #[command(flatten)]
    Api(cli::ApiCommand),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the effective configuration (defaults < file < NODE_* variables < flags).
    Show(Common),
}

fn load(common: &Common) -> anyhow::Result<config::Loaded<NodeConfig>> {
    let mut flags: Vec<(&str, String)> = Vec::new();
    for (key, value) in [
        ("data_dir", &common.data_dir),
        ("listen", &common.listen),
        ("mailbox", &common.mailbox),
    ] {
        if let Some(v) = value {
            flags.push((key, v.clone()));
        }
    }
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let loaded = config::load::<NodeConfig>(common.config.as_deref(), env, &flags)?;
    for note in &loaded.notes {
        tracing::debug!("{note}");
    }
    Ok(loaded)
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node: error: {}", config::bin::report(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,quinn=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in a log file or pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let parsed = Cli::parse();
    let client_flags = parsed.target.api.is_some() || parsed.target.json;
    if client_flags && !matches!(parsed.command, Command::Api(_)) {
        anyhow::bail!(
            "--api and --json are for the API client commands (id, contact, send, inbox, status), not for `node run` or `node config`"
        );
    }
    match parsed.command {
        Command::Api(command) => {
            let (base, token) = api_target(parsed.target.api)?;
            cli::run(command, base, parsed.target.json, token)
        }
        Command::Run(common) => {
            let loaded = load(&common)?;
            for warning in node::secret_file_warnings(
                &loaded.config,
                common.config.as_deref(),
                &loaded.overridden,
            ) {
                tracing::warn!("{warning}");
            }
            tokio::runtime::Runtime::new()
                .context("cannot start the async runtime")?
                .block_on(run(loaded))
        }
        Command::Config {
            command: ConfigCommand::Show(common),
        } => {
            print!("{}", config::to_yaml(&load(&common)?.config)?);
            Ok(())
        }
    }
}

/// The API base URL and token for the client commands: `--api`, or the configured `listen`.
fn api_target(api: Option<String>) -> anyhow::Result<(String, Option<String>)> {
    let loaded = load(&Common {
        config: None,
        data_dir: None,
        listen: None,
        mailbox: None,
    })?;
    let addr = match api {
        Some(a) => a,
        None => {
            let listen = loaded.config.listen;
            if listen.ip().is_unspecified() {
                format!("127.0.0.1:{}", listen.port())
            } else {
                listen.to_string()
            }
        }
    };
    let base = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr
    } else {
        format!("http://{addr}")
    };
    let base = base.trim_end_matches('/').to_owned();
    // The configured token, or the one the node made in its data directory.
    let token = match loaded.config.access_token.clone() {
        Some(t) => Some(t),
        // The file's token goes only to this machine: a node elsewhere has its own.
        None if !is_loopback(&base) => None,
        None => {
            let path = loaded.config.data_dir.join(node::http::auth::TOKEN_FILE);
            match std::fs::read_to_string(&path) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read {}", path.display()));
                }
            }
        }
    };
    Ok((base, token))
}

/// Whether `base` (an http URL) names this machine.
fn is_loopback(base: &str) -> bool {
    let Some(url) = reqwest::Url::parse(base).ok() else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The key passphrase: from the configuration, or asked on the terminal when the keys are
/// encrypted and nothing else gives it.
fn passphrase(config: &NodeConfig) -> anyhow::Result<Option<node::core::service::Passphrase>> {
    if let Some(p) = node::configured_passphrase(config)? {
        return Ok(Some(p));
    }
    if !node::keys_are_encrypted(&config.data_dir) {
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the keys in {} are encrypted: set passphrase_env or passphrase_file in the configuration, or start the node on a terminal to be asked",
            config.data_dir.display()
        );
    }
    let text = rpassword::prompt_password("Passphrase for the private keys: ")
        .context("cannot read the passphrase")?;
    Ok(Some(node::core::service::Passphrase::new(text)))
}

async fn run(loaded: config::Loaded<NodeConfig>) -> anyhow::Result<()> {
    let config = loaded.config;
    let passphrase = passphrase(&config)?;
    let running = node::start(&config, &loaded.overridden, passphrase)
        .await
        .with_context(|| {
            format!(
                "node could not start (data dir {})",
                config.data_dir.display()
            )
        })?;
    // Read by people, the demo and the tests: keep their shape. The sign-in link holds a
    // one-time code, never the token.
    println!("node UI at http://{}", running.addr);
    if let Some(url) = &running.sign_in_url {
        println!("sign in at {url}");
    }
    config::bin::shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
