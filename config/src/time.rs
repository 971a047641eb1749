//! Time as both binaries write it: milliseconds since the Unix epoch inside, RFC 3339 UTC
//! at the edges. The one place that reads the wall clock for the stores' timestamps; the
//! I/O-free cores are given the time instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The last millisecond of the year 9999: humantime cannot write later years, and a sender
/// can sign any time it likes.
const MAX_MS: u64 = 253_402_300_799_999;

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T21:40:00.000Z`; times past 9999 are
/// written as the last millisecond of 9999.
pub fn rfc3339(ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.min(MAX_MS));
    humantime::format_rfc3339_millis(time).to_string()
}

/// `2026-11-25 21:40 UTC`: minutes, for people.
pub fn short_utc(ms: u64) -> String {
    let full = rfc3339(ms);
    match (full.get(..10), full.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => full,
    }
}

/// `2026-11-25 21:40:07 UTC`: seconds, for people.
pub fn seconds_utc(time: SystemTime) -> String {
    let full = humantime::format_rfc3339_seconds(time).to_string();
    format!("{} UTC", full.trim_end_matches('Z').replace('T', " "))
}

/// A span of time in words for people: `"7 days"`, `"1 day 2 h"`, `"3 h 12 min 5 s"`,
/// `"0 s"` (whole seconds; humantime writes `7days`).
pub fn span(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    match days {
        0 => {}
        1 => parts.push("1 day".to_owned()),
        n => parts.push(format!("{n} days")),
    }
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    if minutes > 0 {
        parts.push(format!("{minutes} min"));
    }
    if seconds > 0 || parts.is_empty() {
        parts.push(format!("{seconds} s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_words() {
        let cases = [
            (0, "0 s"),
            (59, "59 s"),
            (3_600, "1 h"),
            (11_525, "3 h 12 min 5 s"),
            (86_400, "1 day"),
            (7 * 86_400, "7 days"),
            (93_600, "1 day 2 h"),
        ];
        for (secs, words) in cases {
            assert_eq!(span(Duration::from_secs(secs)), words, "{secs} s");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(short_utc(1_764_106_807_123), "2025-11-25 21:40 UTC");
        assert_eq!(
            seconds_utc(UNIX_EPOCH + Duration::from_millis(1_764_106_807_123)),
            "2025-11-25 21:40:07 UTC"
        );
        assert!(now_ms() > 1_764_106_807_123);
    }
}
