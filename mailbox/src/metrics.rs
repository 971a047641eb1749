//! What the mailbox counts: Prometheus metrics (served at `/metrics`), a per-second series of
//! SENDs and deliveries for the dashboard's chart, the last retention run, and recent log
//! lines. Nothing here holds keys or message contents.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::protocol::ErrorCode;

/// Label of the refused-requests family.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The error code.
    pub reason: String,
}

/// Seconds of history kept for the chart.
pub const SERIES_SECONDS: usize = 300;

/// The mailbox's counters.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Envelopes stored.
    pub stored: Counter,
    /// Envelopes acknowledged by their recipient.
    pub delivered: Counter,
    /// Envelopes deleted by retention.
    pub expired: Counter,
    /// Refused requests by reason.
    pub refused: Family<Reason, Counter>,
    /// Open connections.
    pub connections: Gauge,
    /// Logged-in identities, summed over connections.
    pub logged_in: Gauge,
    /// Queued envelopes (set when scraped).
    pub queued_envelopes: Gauge,
    /// Queued bytes (set when scraped).
    pub queued_bytes: Gauge,
    series: Mutex<Series>,
    /// When the last retention run ended, and how many envelopes it expired.
    pub last_retention: Mutex<Option<(SystemTime, u64)>>,
    started: Instant,
}

#[derive(Debug, Default)]
struct Series {
    /// (second since start, sends, deliveries), oldest first.
    points: VecDeque<(u64, u64, u64)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh counters, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mailbox");
        let stored = Counter::default();
        let delivered = Counter::default();
        let expired = Counter::default();
        let refused = Family::<Reason, Counter>::default();
        let connections = Gauge::default();
        let logged_in = Gauge::default();
        let queued_envelopes = Gauge::default();
        let queued_bytes = Gauge::default();
        registry.register("envelopes_stored", "Envelopes stored", stored.clone());
        registry.register(
            "envelopes_delivered",
            "Envelopes acknowledged by their recipient",
            delivered.clone(),
        );
        registry.register(
            "envelopes_expired",
            "Envelopes deleted by retention",
            expired.clone(),
        );
        registry.register(
            "requests_refused",
            "Requests refused, by reason",
            refused.clone(),
        );
        registry.register("connections", "Open connections", connections.clone());
        registry.register(
            "logged_in_identities",
            "Identities logged in, summed over connections",
            logged_in.clone(),
        );
        registry.register(
            "queued_envelopes",
            "Envelopes waiting for their recipient",
            queued_envelopes.clone(),
        );
        registry.register(
            "queued_bytes",
            "Bytes waiting for their recipient",
            queued_bytes.clone(),
        );
        Self {
            registry,
            stored,
            delivered,
            expired,
            refused,
            connections,
            logged_in,
            queued_envelopes,
            queued_bytes,
            series: Mutex::default(),
            last_retention: Mutex::default(),
            started: Instant::now(),
        }
    }

    /// Count a refusal.
    pub fn refuse(&self, code: ErrorCode) {
        self.refused
            .get_or_create(&Reason {
                reason: code.as_str().to_owned(),
            })
            .inc();
    }

    /// Refusals so far, by reason, for those that happened.
    pub fn refusals(&self) -> Vec<(String, u64)> {
        ErrorCode::ALL
            .iter()
            .filter_map(|code| {
                let label = Reason {
                    reason: code.as_str().to_owned(),
                };
                let n = self.refused.get(&label).map(|c| c.get())?;
                (n > 0).then(|| (code.as_str().to_owned(), n))
            })
            .collect()
    }

    /// Count `sends` stored and `deliveries` acknowledged now, for the chart.
    pub fn record(&self, sends: u64, deliveries: u64) {
        let second = self.started.elapsed().as_secs();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        match series.points.back_mut() {
            Some(last) if last.0 == second => {
                last.1 += sends;
                last.2 += deliveries;
            }
            _ => series.points.push_back((second, sends, deliveries)),
        }
        while series
            .points
            .front()
            .is_some_and(|p| p.0 + (SERIES_SECONDS as u64) <= second)
        {
            series.points.pop_front();
        }
    }

    /// The last [`SERIES_SECONDS`] seconds, one (sends, deliveries) point per second,
    /// oldest first, zeros where nothing happened.
    pub fn series(&self) -> Vec<(u64, u64)> {
        let now = self.started.elapsed().as_secs();
        let first = now.saturating_sub(SERIES_SECONDS as u64 - 1);
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        (first..=now)
            .map(|s| {
                series
                    .points
                    .iter()
                    .find(|p| p.0 == s)
                    .map(|p| (p.1, p.2))
                    .unwrap_or((0, 0))
            })
            .collect()
    }

    /// How long the mailbox has run.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The metrics count what the core tells.
impl crate::core::Observer for Metrics {
    fn observe(&self, tally: crate::core::Tally) {
        use crate::core::Tally;
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        match tally {
            Tally::Connected => {
                self.connections.inc();
            }
            Tally::Disconnected => {
                self.connections.dec();
            }
            Tally::LoggedIn => {
                self.logged_in.inc();
            }
            Tally::LoggedOut(n) => {
                self.logged_in.dec_by(gauge(n));
            }
            Tally::Stored => {
                self.stored.inc();
                self.record(1, 0);
            }
            Tally::Delivered(n) => {
                self.delivered.inc_by(n);
                self.record(0, n);
            }
            Tally::Expired(n) => {
                self.expired.inc_by(n);
                *self
                    .last_retention
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some((SystemTime::now(), n));
            }
            Tally::Refused(code) => self.refuse(code),
        }
    }
}

/// The most recent log lines, for the dashboard.
#[derive(Debug, Default)]
pub struct RecentLogs {
    lines: Mutex<VecDeque<String>>,
}

/// How many log lines the dashboard keeps.
pub const LOG_LINES: usize = 50;

impl RecentLogs {
    /// Add a line, dropping the oldest beyond [`LOG_LINES`].
    pub fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.push_back(line);
        while lines.len() > LOG_LINES {
            lines.pop_front();
        }
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// A `tracing` layer that copies INFO and above into [`RecentLogs`].
#[derive(Debug)]
pub struct RecentLogsLayer(pub std::sync::Arc<RecentLogs>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RecentLogsLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::INFO {
            return;
        }
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                if field.name() == "message" {
                    let _ = write!(self.0, " {value:?}");
                } else {
                    let _ = write!(self.0, " {}={value:?}", field.name());
                }
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let time = humantime::format_rfc3339_seconds(SystemTime::now());
        self.0.push(format!(
            "{time} {} {}:{}",
            meta.level(),
            meta.target(),
            fields.0
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_and_refusals_list() {
        let m = Metrics::new();
        m.stored.inc();
        m.refuse(ErrorCode::Quota);
        m.refuse(ErrorCode::Quota);
        let text = m.encode();
        assert!(text.contains("mailbox_envelopes_stored_total 1"), "{text}");
        assert!(
            text.contains("mailbox_requests_refused_total{reason=\"quota\"} 2"),
            "{text}"
        );
        assert_eq!(m.refusals(), vec![("quota".to_owned(), 2)]);
    }

    #[test]
    fn series_has_one_point_per_second() {
        let m = Metrics::new();
        m.record(3, 1);
        m.record(2, 0);
        let s = m.series();
        assert_eq!(
            s.len(),
            SERIES_SECONDS.min(m.uptime().as_secs() as usize + 1).max(1)
        );
        assert_eq!(s.last(), Some(&(5, 1)));
    }

    #[test]
    fn recent_logs_are_bounded() {
        let logs = RecentLogs::default();
        for i in 0..(LOG_LINES + 5) {
            logs.push(format!("line {i}"));
        }
        let lines = logs.lines();
        assert_eq!(lines.len(), LOG_LINES);
        assert_eq!(lines[0], "line 5");
    }
}
