//! `sm-bench`: the system benchmarks of issue 6, run against the real `mailbox` and `node`
//! binaries (release builds when `cargo xtask bench` runs it). This process is the load
//! generator: it talks QUIC and HTTP to the processes under test, which run on their own.
//!
//! `sm-bench <scenario>...` with scenarios `send`, `drain`, `idle`, `store`, `cold-start`,
//! `node`, or `all` (all of those), `send-sustained` (issue 15: `send` for five minutes),
//! `soak` (issue 7: five minutes of mixed traffic) and
//! `cluster` (issue 19: over a 3-server NATS JetStream cluster) and `cluster-soak` (its
//! long run with killed servers). Each figure is printed as one JSON object on a line of its own starting
//! with `{` (xtask collects those into its table); everything else is commentary. Working
//! data goes under `$SM_BENCH_DIR` (default: a temporary directory) and is deleted after.
//! Benchmarks inform; nothing here fails on a slow figure, only on a broken system.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use crypto::Identity;
use crypto::rand::SeedableRng as _;
use mailbox::client::Client;
use mailbox::store::{Incoming, QueueStore as _, Quota, SledQueue};
use serde_json::{Value, json};
use tests::soak::{rss_kib, template};
use tests::{Mailbox, Node, login};

mod cluster;
mod history;
mod mailbox_load;
mod node_load;
mod soak;

use cluster::{cluster, cluster_soak};
use history::history;
use mailbox_load::{
    FULL_LOAD, cold_start, drain, fill, fill_store, full_load, idle, send, send_sustained, store,
};
use node_load::node;
use soak::soak;

/// Settings that take the mailbox's per-identity and per-address limits out of the way: the
/// benchmarks measure capacity, not policy.
const UNLIMITED: &[(&str, &str)] = &[
    ("MAILBOX_QUOTA_ENVELOPES", "100000000"),
    ("MAILBOX_QUOTA_BYTES", "1000000000000"),
    ("MAILBOX_MAX_BYTES_PER_ADDRESS", "1000000000000"),
    ("MAILBOX_MAX_ENVELOPES_PER_ADDRESS", "1000000000"),
    ("MAILBOX_MAX_TOTAL_ENVELOPES", "1000000000"),
    ("MAILBOX_RATE_PER_SECOND", "1000000000"),
    ("MAILBOX_RATE_BURST", "1000000000"),
    ("MAILBOX_ADDRESS_RATE_PER_SECOND", "1000000000"),
    ("MAILBOX_ADDRESS_RATE_BURST", "1000000000"),
    ("MAILBOX_MAX_CONNECTIONS_PER_ADDRESS", "20000"),
    ("MAILBOX_MAX_LOGINS_PER_IDENTITY", "20000"),
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("fill-store") {
        // Internal: fill a store in a process of its own, so that its lock is gone when the
        // mailbox opens it.
        let dir = PathBuf::from(args.get(1).context("fill-store DIR COUNT")?);
        let count: u64 = args.get(2).context("fill-store DIR COUNT")?.parse()?;
        return tokio::runtime::Runtime::new()?.block_on(fill_store(&dir, count));
    }
    let scenarios: Vec<&str> = if args.is_empty() || args.iter().any(|a| a == "all") {
        vec!["cold-start", "send", "drain", "idle", "store", "node"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    let base = match std::env::var_os("SM_BENCH_DIR") {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    let rt = tokio::runtime::Runtime::new()?;
    for scenario in scenarios {
        let dir = base.path().join(scenario);
        std::fs::create_dir_all(&dir)?;
        eprintln!("== {scenario}");
        let result = match scenario {
            "send" => rt.block_on(send(&dir)),
            "send-sustained" => rt.block_on(send_sustained(&dir)),
            "drain" => rt.block_on(drain(&dir)),
            "idle" => rt.block_on(idle(&dir)),
            "store" => rt.block_on(store(&dir)),
            "cold-start" => cold_start(&dir),
            "node" => rt.block_on(node(&dir)),
            "soak" => rt.block_on(soak(&dir)),
            "history" => rt.block_on(history(&dir)),
            "cluster" => rt.block_on(cluster(&dir)),
            "cluster-soak" => rt.block_on(cluster_soak(&dir)),
            other => bail!("unknown scenario {other:?}"),
        };
        result.with_context(|| format!("scenario {scenario}"))?;
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Print one figure for xtask's table.
fn figure(name: &str, measured: f64, shown: String, target: &str) {
    println!(
        "{}",
        json!({ "figure": name, "measured": measured, "shown": shown, "target": target })
    );
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

/// A fixed identity (seeded), so runs compare.
fn identity(seed: u64) -> anyhow::Result<Arc<Identity>> {
    let mut rng = crypto::rand::rngs::StdRng::seed_from_u64(seed);
    Ok(Arc::new(Identity::generate_with_rng(&mut rng)?))
}

/// The template with message id `n` (bytes 33..49 of the clear header). The mailbox routes
/// and deduplicates by the header; it cannot open envelopes, so copies are as good as new.
fn with_id(template: &[u8], run: u64, n: u64) -> Vec<u8> {
    let mut envelope = template.to_vec();
    envelope[33..41].copy_from_slice(&run.to_be_bytes());
    envelope[41..49].copy_from_slice(&n.to_be_bytes());
    envelope
}

/// A whole number from the environment variable `name`, `default` when it is unset; a
/// value that is not one is an error naming the variable.
fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={v:?} is not a whole number: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => anyhow::bail!("{name}: {e}"),
    }
}

/// `10000` as `10,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn run_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn connect_as(mailbox: &Mailbox, identity: &Arc<Identity>) -> anyhow::Result<Client> {
    mailbox.connect_as(&[identity]).await
}
