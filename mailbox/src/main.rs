//! `mailbox`: run and inspect a Secure Messenger mailbox.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use config::{MailboxConfig, StoreSetting};

/// sled allocates its nodes on the committer thread and frees them through epoch
/// reclamation on whichever thread collects. Under glibc's malloc the heap grew steadily in
/// the 5-minute soak; jemalloc or mimalloc answered ~20% more SENDs (docs/security.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "mailbox",
    version,
    about = "Secure Messenger store-and-forward mailbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Default)]
struct Common {
    /// YAML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (queue, certificate).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// QUIC listen address (UDP), e.g. 127.0.0.1:50000; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Dashboard listen address (HTTP), e.g. 127.0.0.1:8090.
    #[arg(long, value_name = "ADDR")]
    dashboard: Option<String>,
    /// Where envelopes and keys are kept: `sled`, or NATS URLs (nats://host:port,...).
    #[arg(long, value_name = "STORE")]
    store: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve: QUIC for nodes, HTTP for the dashboard.
    Serve(Common),
    /// Print the certificate fingerprint (SHA-256, hex) that nodes pin.
    Fingerprint {
        /// Data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<String>,
        /// YAML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Copy this (stopped) mailbox's queued envelopes and device keys from its sled store
    /// into a NATS JetStream cluster, for front-ends with `store: <those URLs>`.
    Migrate {
        #[command(flatten)]
        common: Common,
        /// The cluster: comma-separated NATS URLs (nats://host:port,...).
        #[arg(long, value_name = "URLS")]
        to: String,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the effective configuration (defaults < file < MAILBOX_* variables < flags).
    Show(Common),
}

fn load(common: &Common) -> anyhow::Result<MailboxConfig> {
    let mut flags: Vec<(&str, String)> = Vec::new();
    for (key, value) in [
        ("data_dir", &common.data_dir),
        ("listen", &common.listen),
        ("dashboard", &common.dashboard),
        ("store", &common.store),
    ] {
        if let Some(v) = value {
            flags.push((key, v.clone()));
        }
    }
    let loaded = config::load::<MailboxConfig>(
        common.config.as_deref(),
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        &flags,
    )?;
    for note in &loaded.notes {
        tracing::warn!("{note}");
    }
    Ok(loaded.config)
}

/// The store failed while serving: the process stops with
/// [`config::bin::EXIT_STORAGE_FAILED`].
#[derive(Debug, thiserror::Error)]
#[error(
    "the queue store failed, so the mailbox stopped (restart it; nothing answered is lost): {0}"
)]
struct StoreFailed(String);

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailbox: error: {}", config::bin::report(e.as_ref()));
            if e.is::<StoreFailed>() {
                std::process::ExitCode::from(config::bin::EXIT_STORAGE_FAILED)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let logs = std::sync::Arc::new(mailbox::metrics::RecentLogs::default());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,quinn=warn".into()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a terminal, not in a log file or pipe.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(mailbox::metrics::RecentLogsLayer(logs.clone()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(common) => {
            let config = load(&common)?;
            tokio::runtime::Runtime::new()
                .context("cannot start the async runtime")?
                .block_on(serve(config, logs))
        }
        Command::Migrate { common, to } => {
            let config = load(&common)?;
            let to = match to.parse::<StoreSetting>() {
                Ok(StoreSetting::Nats(urls)) => urls,
                _ => {
                    anyhow::bail!("--to: {to:?} is not a list of NATS URLs (nats://host:port,...)")
                }
            };
            let migrated = tokio::runtime::Runtime::new()
                .context("cannot start the async runtime")?
                .block_on(mailbox::migrate(&config, &to))?;
            println!(
                "copied {} queued envelopes ({} new to the cluster) and the device keys of {} \
                 identities from {}; the sled data stays there until you delete it",
                migrated.envelopes,
                migrated.new,
                migrated.owners,
                config.data_dir.display()
            );
            Ok(())
        }
        Command::Fingerprint { data_dir, config } => {
            let config = load(&Common {
                config,
                data_dir,
                ..Common::default()
            })?;
            let fp = mailbox::fingerprint(&config)?;
            println!("{}", hex::encode(fp));
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Show(common),
        } => {
            print!("{}", config::to_yaml(&load(&common)?)?);
            Ok(())
        }
    }
}

async fn serve(
    config: MailboxConfig,
    logs: std::sync::Arc<mailbox::metrics::RecentLogs>,
) -> anyhow::Result<()> {
    let running = mailbox::start(&config, logs).await.with_context(|| {
        format!(
            "mailbox could not start (data dir {})",
            config.data_dir.display()
        )
    })?;
    // These lines are read by people, the demo and the tests: keep their shape.
    println!("mailbox listening on {} (QUIC)", running.quic_addr);
    println!(
        "certificate fingerprint: {}",
        hex::encode(running.fingerprint)
    );
    println!("dashboard on http://{}", running.dashboard_addr);
    let for_nodes = mailbox::dashboard::NodeAddress::new(running.quic_addr, &running.fingerprint);
    println!("nodes use the address {}", for_nodes.address);
    if let Some(note) = for_nodes.note {
        println!("  ({note})");
    }
    match &config.store {
        StoreSetting::Sled => println!("store: sled in {}", config.data_dir.display()),
        StoreSetting::Nats(urls) => println!(
            "store: NATS JetStream, stream {} ({} server address{} given)",
            config.nats_stream,
            urls.len(),
            if urls.len() == 1 { "" } else { "es" }
        ),
    }
    let failure = tokio::select! {
        () = config::bin::shutdown_signal() => None,
        reason = running.failed() => Some(reason),
    };
    tracing::info!("shutting down");
    running.shutdown().await;
    match failure {
        Some(reason) => Err(StoreFailed(reason).into()),
        None => Ok(()),
    }
}
