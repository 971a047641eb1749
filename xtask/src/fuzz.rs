//! `cargo xtask fuzz`: build the cargo-fuzz crate (`tests/fuzz`) with the nightly toolchain
//! and run each libFuzzer target for a while, starting from the committed seeds
//! (`tests/fuzz/seeds/<target>`) plus a scratch corpus under `target/fuzz/corpus/<target>`
//! that keeps what earlier runs found and the private-key seeds that are never committed.
//!
//! Prints one line per target (executions, coverage, corpus) and writes
//! `target/fuzz/results.json`. A crash, a leak or an input slower than 60 s fails the run;
//! libFuzzer saves the input under `tests/fuzz/artifacts/<target>/`, and
//! `cargo +nightly fuzz run --fuzz-dir tests/fuzz <target> <file>` replays it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::json;

/// The cargo-fuzz version installed when there is none.
const CARGO_FUZZ: &str = "0.13.2";

/// The targets, in the order they run: `tests/fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: &[&str] = &[
    "frame",
    "envelope",
    "envelope_v2",
    "invite",
    "config",
    "pem",
];

/// What one target's run did.
struct Outcome {
    target: String,
    runs: u64,
    seconds: f64,
    coverage: u64,
    corpus: u64,
}

/// `cargo xtask fuzz [--seconds N] [target...]`: every target (or the named ones) for `N`
/// seconds each (default 600).
pub fn run(
    root: &Path,
    target_dir: &Path,
    cargo: impl Fn() -> Command,
    args: &[String],
) -> anyhow::Result<()> {
    let mut seconds = 600u64;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                seconds = value.parse().ok().filter(|s| *s > 0).with_context(|| {
                    format!("--seconds: {value:?} is not a whole number of seconds above 0")
                })?;
            }
            name if TARGETS.contains(&name) => targets.push(name.to_owned()),
            other => bail!(
                "fuzz: unknown argument {other:?} (targets: {}; option: --seconds N)",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    ensure_cargo_fuzz(root)?;

    // Seeds, private-key ones included, into the scratch corpus (a stable build).
    let corpus = target_dir.join("fuzz").join("corpus");
    let mut seeds = cargo();
    seeds
        .args([
            "run",
            "--quiet",
            "-p",
            "tests",
            "--bin",
            "sm-fuzz-seeds",
            "--",
        ])
        .arg(&corpus)
        .arg("--with-keys");
    crate::run(seeds)?;

    let mut build = nightly(root);
    build.args(["fuzz", "build", "--fuzz-dir", "tests/fuzz"]);
    crate::run(build)?;

    let logs = target_dir.join("fuzz").join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut outcomes = Vec::new();
    for target in &targets {
        println!("fuzz: {target} for {seconds} s");
        outcomes.push(fuzz_one(root, &corpus, &logs, target, seconds)?);
    }

    println!(
        "\n{:<10} {:>12} {:>8} {:>10} {:>8} {:>7}",
        "target", "executions", "seconds", "exec/s", "cov", "corpus"
    );
    for o in &outcomes {
        println!(
            "{:<10} {:>12} {:>8.0} {:>10.0} {:>8} {:>7}",
            o.target,
            o.runs,
            o.seconds,
            o.runs as f64 / o.seconds.max(1.0),
            o.coverage,
            o.corpus
        );
    }
    // One entry per target: this run's replace those of earlier runs.
    let path = target_dir.join("fuzz").join("results.json");
    let mut results: serde_json::Map<String, serde_json::Value> = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    for o in &outcomes {
        results.insert(
            o.target.clone(),
            json!({"executions": o.runs, "seconds": o.seconds, "coverage": o.coverage,
                   "corpus": o.corpus, "crashes": 0}),
        );
    }
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("\nno crashes; written to {}", path.display());
    Ok(())
}

/// `cargo +nightly` through rustup, whatever toolchain runs xtask itself.
fn nightly(root: &Path) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .current_dir(root)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

/// The nightly toolchain must be there; cargo-fuzz is installed if it is not.
fn ensure_cargo_fuzz(root: &Path) -> anyhow::Result<()> {
    let quiet = |mut cmd: Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut rustc = nightly(root);
    rustc.arg("--version");
    if !quiet(rustc) {
        bail!("fuzzing needs the nightly toolchain: rustup toolchain install nightly");
    }
    let mut fuzz = nightly(root);
    fuzz.args(["fuzz", "--version"]);
    if !quiet(fuzz) {
        println!("fuzz: installing cargo-fuzz {CARGO_FUZZ} (cargo install --locked)");
        let mut install = Command::new("cargo");
        install
            .args(["install", "--locked", "cargo-fuzz", "--version", CARGO_FUZZ])
            .env_remove("CARGO")
            .env_remove("RUSTC");
        crate::run(install)?;
    }
    Ok(())
}

fn fuzz_one(
    root: &Path,
    corpus: &Path,
    logs: &Path,
    target: &str,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    let scratch = corpus.join(target);
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = nightly(root);
    cmd.args(["fuzz", "run", "--fuzz-dir", "tests/fuzz", target])
        .arg(&scratch)
        .arg(root.join("tests/fuzz/seeds").join(target))
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            // Generous: a key file may legitimately ask for costly key derivation (bounded
            // in crypto, but slow under AddressSanitizer).
            "-timeout=60",
            "-print_final_stats=1",
        ]);
    // A dictionary of the format's words, where one helps (the config keys and YAML's
    // special values: `.nan` took longer than minutes to find without it).
    let dict = root.join("tests/fuzz").join(format!("{target}.dict"));
    if dict.exists() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    cmd.stdout(log.try_clone()?).stderr(log);
    let started = Instant::now();
    let status = cmd.status().context("cannot run cargo fuzz")?;
    let elapsed = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
        // libFuzzer names the file it saved the input to; without one, the run itself
        // failed (a build error, say).
        match text
            .lines()
            .find_map(|l| l.split("Test unit written to ").nth(1))
        {
            Some(input) => bail!(
                "fuzz target {target} found a failing input ({status}), saved as {input}; \
                 replay: cargo +nightly fuzz run --fuzz-dir tests/fuzz {target} {input}; \
                 full log: {}",
                log_path.display()
            ),
            None => bail!(
                "fuzz target {target} did not run ({status}); full log: {}",
                log_path.display()
            ),
        }
    }
    let runs = stat(&text, "stat::number_of_executed_units:")
        .context("libFuzzer printed no final stats")?;
    // The last status line: "#123 DONE cov: 931 ft: 1781 corp: 277/37Kb ...".
    let last = text
        .lines()
        .rev()
        .find(|l| l.contains(" cov: "))
        .unwrap_or("");
    let field = |name: &str| {
        last.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .and_then(|v| v.split('/').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Outcome {
        target: target.to_owned(),
        runs,
        seconds: elapsed,
        coverage: field("cov:"),
        corpus: field("corp:"),
    })
}

/// A number from libFuzzer's `-print_final_stats` lines.
fn stat(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}
