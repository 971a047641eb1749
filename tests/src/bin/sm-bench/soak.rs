//! `soak`: five minutes of mixed traffic against one mailbox (issue 7).

use super::*;

/// Issue 7's soak: 64 connections of mixed SEND / PULL / ACK for `SM_SOAK_SECONDS` (300)
/// seconds; errors, losses, and the mailbox's RSS from minute 1 to the end. Not part of
/// `all` (it is long): `cargo xtask soak` runs it.
pub(super) async fn soak(dir: &Path) -> anyhow::Result<()> {
    let seconds = env_number("SM_SOAK_SECONDS", 300)?;
    let mailbox = Mailbox::start_with(&dir.join("mailbox"), UNLIMITED, &[])?;
    let ids: Vec<Arc<Identity>> = (1..=9).map(identity).collect::<anyhow::Result<_>>()?;
    let report = tests::soak::soak(
        &mailbox,
        &ids,
        Duration::from_secs(seconds),
        Duration::from_secs(10),
    )
    .await?;
    eprintln!("{report:?}");
    let mib = |k: u64| k as f64 / 1024.0;
    // The sample at minute 1 (or the first after it), and the last.
    let at_minute = report
        .rss_kib
        .get(6)
        .or(report.rss_kib.last())
        .copied()
        .unwrap_or(0);
    let last = report.rss_kib.last().copied().unwrap_or(0);
    let growth = if at_minute == 0 {
        0.0
    } else {
        (last as f64 - at_minute as f64) / at_minute as f64 * 100.0
    };
    figure(
        "soak: SENDs answered (64 connections, mixed SEND/PULL/ACK)",
        report.sent as f64,
        format!("{} in {seconds} s", report.sent),
        "-",
    );
    // The SEND rate minute by minute (samples every 10 s): a figure, not a gate (fsync
    // here swings several-fold).
    let per_minute: Vec<String> = report
        .sent_at
        .iter()
        .step_by(6)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| format!("{:.0}", (w[1] - w[0]) as f64 / 60.0))
        .collect();
    figure(
        "soak: SENDs/s minute by minute",
        per_minute.len() as f64,
        if per_minute.is_empty() {
            "shorter than a minute".to_owned()
        } else {
            format!("{}/s", per_minute.join(", "))
        },
        "flat (a figure, not a gate)",
    );
    figure(
        "soak: errors / lost / delivered twice",
        (report.errors + report.lost + report.duplicates) as f64,
        format!(
            "{} / {} / {}",
            report.errors, report.lost, report.duplicates
        ),
        "0 / 0 / 0",
    );
    figure(
        "soak: mailbox RSS from minute 1 to the end",
        growth,
        format!(
            "{:.0} -> {:.0} MiB ({growth:+.1}%)",
            mib(at_minute),
            mib(last)
        ),
        "within 10%",
    );
    // Single samples swing by ~10% with sled's garbage in flight (docs/security.md), so the
    // gate compares levels: the mean of the minute after minute 1 against the mean of the
    // last minute. A run shorter than two minutes only reports.
    let mean = |samples: &[u64]| samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64;
    let samples = &report.rss_kib;
    let first_level = mean(samples.get(6..12).unwrap_or_default());
    let last_level = mean(&samples[samples.len().saturating_sub(6)..]);
    let level_growth = (last_level - first_level) / first_level.max(1.0) * 100.0;
    figure(
        "soak: mailbox RSS level, minute 1-2 against the last minute",
        level_growth,
        format!(
            "{:.0} -> {:.0} MiB ({level_growth:+.1}%)",
            first_level / 1024.0,
            last_level / 1024.0
        ),
        "within 10%",
    );
    // `cargo xtask soak` fails when a target is missed.
    anyhow::ensure!(
        report.errors + report.lost + report.duplicates == 0,
        "the soak had errors, losses or duplicates: {report:?}"
    );
    anyhow::ensure!(
        seconds < 120 || level_growth.abs() <= 10.0,
        "the mailbox's RSS level moved {level_growth:+.1}% from minute 1-2 to the last minute (target: within 10%)"
    );
    Ok(())
}
