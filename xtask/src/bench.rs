//! `cargo xtask bench`: build in release mode, run the criterion micro-benchmarks (crypto,
//! login) and `sm-bench` (the system figures, measured against the real `mailbox` and `node`
//! binaries from a load generator in a process of its own), then print one table (figure,
//! measured, target) and write it as JSON to `target/bench/results.json`.
//!
//! Criterion figures come from its own estimates (`target/criterion/.../new/estimates.json`);
//! `sm-bench` prints its figures as JSON lines. A slow figure never fails anything:
//! benchmarks inform, tests decide.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use serde_json::{Value, json};

/// One row of the table from criterion. (criterion stores a benchmark named `a/b` in the
/// directory `a_b`.)
struct Figure {
    name: &'static str,
    /// criterion's directory for the benchmark, under target/criterion.
    bench: &'static str,
    /// How to turn a mean time per iteration (ns) into the figure.
    unit: Unit,
    target: &'static str,
}

enum Unit {
    /// Operations per second.
    PerSecond,
    /// Microseconds per operation.
    Micros,
    /// Milliseconds per operation.
    Millis,
}

const FIGURES: &[Figure] = &[
    Figure {
        name: "crypto, aws-lc-rs (default): seal 1 KiB (sign + wrap), per core",
        bench: "envelope/aws-lc-rs_seal/1024",
        unit: Unit::PerSecond,
        target: ">= 3,500/s",
    },
    Figure {
        name: "crypto, aws-lc-rs (default): open 1 KiB (unwrap + verify), per core",
        bench: "envelope/aws-lc-rs_open/1024",
        unit: Unit::PerSecond,
        target: ">= 3,500/s",
    },
    Figure {
        name: "crypto v2 (forward-secret), aws-lc-rs: seal 1 KiB (unpickle + sign + Olm + pickle), per core",
        bench: "envelope-v2/aws-lc-rs_seal_1024",
        unit: Unit::PerSecond,
        target: ">= 3,000/s",
    },
    Figure {
        name: "crypto v2 (forward-secret), aws-lc-rs: open 1 KiB (unpickle + Olm + verify + pickle), per core",
        bench: "envelope-v2/aws-lc-rs_open_1024",
        unit: Unit::PerSecond,
        target: ">= 3,500/s",
    },
    Figure {
        name: "crypto, aws-lc-rs (default): seal 64 KiB, per core",
        bench: "envelope/aws-lc-rs_seal/65536",
        unit: Unit::PerSecond,
        target: "-",
    },
    Figure {
        name: "crypto, rsa crate (pure Rust): seal 1 KiB (sign + wrap), per core",
        bench: "envelope/rsa_seal/1024",
        unit: Unit::PerSecond,
        target: "-",
    },
    Figure {
        name: "crypto, rsa crate (pure Rust): open 1 KiB (unwrap + verify), per core",
        bench: "envelope/rsa_open/1024",
        unit: Unit::PerSecond,
        target: "-",
    },
    Figure {
        name: "crypto, rsa crate (pure Rust): seal 64 KiB, per core",
        bench: "envelope/rsa_seal/65536",
        unit: Unit::PerSecond,
        target: "-",
    },
    Figure {
        name: "crypto: RSA-2048 key generation",
        bench: "keygen/rsa-2048",
        unit: Unit::Millis,
        target: "-",
    },
    Figure {
        name: "login: accepted",
        bench: "login/accepted",
        unit: Unit::Micros,
        target: "same as refused",
    },
    Figure {
        name: "login: refused, bad proof",
        bench: "login/refused_bad-proof",
        unit: Unit::Micros,
        target: "same as accepted",
    },
    Figure {
        name: "login: refused, key not parseable",
        bench: "login/refused_garbage-key",
        unit: Unit::Micros,
        target: "same as accepted",
    },
];

fn mean_ns(criterion: &Path, bench: &str) -> Option<f64> {
    let path = criterion.join(bench).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value["mean"]["point_estimate"].as_f64()
}

fn format(unit: &Unit, ns: f64) -> (f64, String) {
    match unit {
        Unit::PerSecond => {
            let v = 1e9 / ns;
            (v, format!("{v:.0}/s"))
        }
        Unit::Micros => {
            let v = ns / 1e3;
            (v, format!("{v:.1} µs"))
        }
        Unit::Millis => {
            let v = ns / 1e6;
            (v, format!("{v:.1} ms"))
        }
    }
}

/// Run the benchmarks and report.
pub fn run(
    root: &Path,
    target_dir: &Path,
    cargo: impl Fn() -> std::process::Command,
) -> anyhow::Result<()> {
    release_build(&cargo)?;
    for (package, bench) in [("crypto", "crypto"), ("mailbox", "mailbox")] {
        let mut cmd = cargo();
        cmd.args([
            "bench",
            "-p",
            package,
            "--bench",
            bench,
            "--",
            "--noplot",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "3",
        ]);
        let status = cmd
            .status()
            .with_context(|| format!("cannot run the {package} benchmarks"))?;
        anyhow::ensure!(
            status.success(),
            "the {package} benchmarks failed ({status})"
        );
    }
    let system = system_figures(target_dir)?;

    let criterion = target_dir.join("criterion");
    let mut rows = Vec::new();
    for f in FIGURES {
        let measured = mean_ns(&criterion, f.bench).map(|ns| format(&f.unit, ns));
        let shown = measured
            .as_ref()
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| "not run".into());
        rows.push(json!({
            "figure": f.name,
            "benchmark": f.bench,
            "measured": measured.as_ref().map(|(v, _)| *v),
            "shown": shown,
            "target": f.target,
        }));
    }
    rows.extend(system);
    println!();
    println!("{:<72} {:>12}  target", "figure", "measured");
    println!("{}", "-".repeat(100));
    for row in &rows {
        println!(
            "{:<72} {:>12}  {}",
            row["figure"].as_str().unwrap_or("?"),
            row["shown"].as_str().unwrap_or("?"),
            row["target"].as_str().unwrap_or("?"),
        );
    }
    let out_dir = target_dir.join("bench");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    });
    let report = json!({ "machine": machine, "figures": rows });
    let file = out_dir.join("results.json");
    std::fs::write(&file, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "\nwritten to {} (see docs/benchmarks.md; {})",
        file.display(),
        root.display()
    );
    Ok(())
}

/// Run `sm-bench all` and collect the figures it prints.
fn system_figures(target_dir: &Path) -> anyhow::Result<Vec<Value>> {
    let release = target_dir.join("release");
    let work = target_dir.join("bench").join("work");
    let mut child = std::process::Command::new(release.join("sm-bench"))
        .arg("all")
        .env("SM_BIN_DIR", &release)
        .env("SM_BENCH_DIR", &work)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start sm-bench")?;
    let stdout = child.stdout.take().context("no stdout from sm-bench")?;
    let mut figures = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line.starts_with('{') {
            let figure: Value = serde_json::from_str(&line)
                .with_context(|| format!("sm-bench printed {line:?}"))?;
            println!(
                "{}: {}",
                figure["figure"].as_str().unwrap_or("?"),
                figure["shown"].as_str().unwrap_or("?")
            );
            figures.push(figure);
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "sm-bench failed ({status})");
    Ok(figures)
}

/// `cargo xtask soak` and `cargo xtask cluster-soak`: build release binaries and run
/// `sm-bench <scenario>` (`soak`: five minutes of SENDs alone, `send-sustained`, then five
/// of mixed traffic; `cluster-soak`: ten, and nats-server).
pub fn soak(
    target_dir: &Path,
    cargo: impl Fn() -> std::process::Command,
    scenario: &str,
) -> anyhow::Result<()> {
    release_build(&cargo)?;
    let release = target_dir.join("release");
    let mut command = std::process::Command::new(release.join("sm-bench"));
    if scenario.starts_with("cluster") {
        command.env("NATS_SERVER", crate::setup::ensure_nats()?);
    }
    // The soak is preceded by five minutes of SENDs alone: issue 15's rate, sustained.
    let scenarios: &[&str] = if scenario == "soak" {
        &["send-sustained", "soak"]
    } else {
        &[scenario]
    };
    let status = command
        .args(scenarios)
        .env("SM_BIN_DIR", &release)
        .env("SM_BENCH_DIR", target_dir.join("bench").join("work"))
        .env("RUST_LOG", "warn")
        .status()
        .context("cannot start sm-bench")?;
    anyhow::ensure!(status.success(), "{scenario} failed ({status})");
    Ok(())
}

/// `cargo xtask store-history [millions]`: build release binaries and run `sm-bench
/// history` (the store API past many millions of envelopes; 50 by default).
pub fn store_history(
    target_dir: &Path,
    cargo: impl Fn() -> std::process::Command,
    millions: Option<&str>,
) -> anyhow::Result<()> {
    release_build(&cargo)?;
    let release = target_dir.join("release");
    let status = std::process::Command::new(release.join("sm-bench"))
        .arg("history")
        .env("SM_HISTORY_MILLIONS", millions.unwrap_or("50"))
        .env("SM_BENCH_DIR", target_dir.join("bench").join("work"))
        .env("RUST_LOG", "warn")
        .status()
        .context("cannot start sm-bench")?;
    anyhow::ensure!(status.success(), "the store history run failed ({status})");
    Ok(())
}

/// Build the binaries the system benchmarks run (mailbox, node, sm-bench) in release mode.
fn release_build(cargo: &impl Fn() -> std::process::Command) -> anyhow::Result<()> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "mailbox",
        "-p",
        "node",
        "-p",
        "tests",
        "--bins",
    ]);
    let status = build.status().context("cannot run cargo build")?;
    anyhow::ensure!(status.success(), "the release build failed ({status})");
    Ok(())
}
