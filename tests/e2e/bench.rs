//! The system benchmarks' short versions: `sm-bench` scenarios at a small size against the
//! binaries under test, so a scenario that stops working fails here rather than in the
//! next `cargo xtask bench` (the `node` scenario failed unnoticed for a day once). The
//! figures are not judged: only that each scenario finishes and prints them.

use std::process::Command;

use serde_json::Value;

/// Run `sm-bench` with `args` and `env`; its figures, or a panic with its output.
fn sm_bench(args: &[&str], env: &[(&str, &str)]) -> Vec<Value> {
    let out = Command::new(tests::binary("sm-bench").unwrap())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sm-bench {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn names(figures: &[Value]) -> Vec<&str> {
    figures
        .iter()
        .map(|f| f["figure"].as_str().unwrap())
        .collect()
}

#[test]
fn the_node_scenario_runs_at_a_small_size() {
    let figures = sm_bench(&["node"], &[("SM_NODE_MESSAGES", "1000")]);
    assert_eq!(
        names(&figures),
        [
            "end to end: alice's API POST → bob's SSE event, p50",
            "end to end: alice's API POST → bob's SSE event, p99",
            "node: sequential message POSTs through the web API",
            "node: sequential message POSTs, a new connection each",
            "node: conversation page with 1,000 stored messages (paged), p50",
        ]
    );
    assert!(
        figures
            .iter()
            .all(|f| f["measured"].as_f64().unwrap() > 0.0)
    );
}

#[test]
fn the_sustained_send_scenario_runs_at_a_small_size() {
    let figures = sm_bench(&["send-sustained"], &[("SM_SEND_SECONDS", "2")]);
    let names = names(&figures);
    assert!(
        names.contains(&"mailbox: durable SENDs/s, 1 KiB, 64 connections, 2 s"),
        "{names:?}"
    );
    assert!(figures[0]["measured"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_soak_and_store_history_scenarios_run_at_a_small_size() {
    let figures = sm_bench(
        &["soak", "history"],
        &[
            ("SM_SOAK_SECONDS", "3"),
            ("SM_HISTORY_MILLIONS", "2"),
            ("SM_HISTORY_STEP", "2000"),
        ],
    );
    let names = names(&figures);
    for name in [
        "soak: SENDs answered (64 connections, mixed SEND/PULL/ACK)",
        "store history: last step's rate / first's (steps of 2000)",
    ] {
        assert!(names.contains(&name), "{name}: {names:?}");
    }
    let lost = figures
        .iter()
        .find(|f| {
            f["figure"]
                .as_str()
                .unwrap()
                .starts_with("soak: errors / lost")
        })
        .unwrap_or_else(|| panic!("no loss figure: {names:?}"));
    assert_eq!(lost["shown"], "0 / 0 / 0", "{lost}");
}

#[test]
fn a_scenario_size_that_is_not_a_number_is_refused_by_name() {
    let out = Command::new(tests::binary("sm-bench").unwrap())
        .arg("node")
        .env("SM_NODE_MESSAGES", "many")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SM_NODE_MESSAGES"), "{stderr}");
}
