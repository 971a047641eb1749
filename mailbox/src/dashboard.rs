//! The monitoring dashboard over HTTP: a page (rendered by `ui`), `/metrics` (Prometheus
//! text), `/healthz`, and the stylesheet. It shows figures only: there are no keys or
//! contents on a mailbox to show.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::metrics::RecentLogs;
use crate::server::Server;
use crate::store::QueueStore;

struct Dashboard<S> {
    server: Arc<Server<S>>,
    logs: Arc<RecentLogs>,
    listen: SocketAddr,
    fingerprint_grouped: String,
    node_address: NodeAddress,
    retention: Duration,
}

/// What nodes put in their settings to use a mailbox listening on `listen` with the
/// certificate `fingerprint`: `host:port#fingerprint`, and a note when it does not do as it
/// is (on every interface, the host part is the operator's to fill in; on loopback, only
/// this machine reaches it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddress {
    /// The address as nodes write it.
    pub address: String,
    /// What to change before pasting it, if anything.
    pub note: Option<String>,
}

impl NodeAddress {
    /// The address for a mailbox bound to `listen`.
    pub fn new(listen: SocketAddr, fingerprint: &[u8; 32]) -> Self {
        // The host part as it is written in the address (an IPv6 one in brackets).
        let host = match listen {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let note = if listen.ip().is_unspecified() {
            Some(format!(
                "The mailbox listens on every interface: put this host's name or address in place of {host}."
            ))
        } else if listen.ip().is_loopback() {
            Some(format!(
                "Only this machine reaches {host}: for nodes elsewhere, start the mailbox with --listen 0.0.0.0:{} (or this host's address).",
                listen.port()
            ))
        } else {
            None
        };
        Self {
            address: format!("{listen}#{}", hex::encode(fingerprint)),
            note,
        }
    }
}

/// The dashboard's routes.
pub fn router<S: QueueStore>(
    server: Arc<Server<S>>,
    logs: Arc<RecentLogs>,
    listen: SocketAddr,
    fingerprint: [u8; 32],
    retention: Duration,
) -> Router {
    let state = Arc::new(Dashboard {
        server,
        logs,
        listen,
        fingerprint_grouped: crypto::Fingerprint(fingerprint).grouped(),
        node_address: NodeAddress::new(listen, &fingerprint),
        retention,
    });
    Router::new()
        .route("/", get(page::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(ui::serve::assets(false))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// On a loopback address the dashboard answers only requests for its own name, so a web
/// page cannot read it through DNS rebinding. Bound elsewhere, it is meant to be reached
/// under other names, and the check is off.
pub fn host_guard(router: Router, bound: SocketAddr) -> Router {
    if !bound.ip().is_loopback() {
        return router;
    }
    let allowed = Arc::new(ui::serve::allowed_hosts(bound));
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let allowed = allowed.clone();
            async move {
                match ui::serve::check_host(&allowed, request.headers()) {
                    Ok(()) => next.run(request).await,
                    Err(refusal) => {
                        (axum::http::StatusCode::FORBIDDEN, format!("{refusal}\n")).into_response()
                    }
                }
            }
        },
    ))
}

async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    ui::serve::add_security_headers(response.headers_mut(), ui::serve::DASHBOARD_CSP);
    response
}

fn refresh_gauges<S: QueueStore>(server: &Server<S>) {
    let stats = server.core().store().stats();
    let m = server.metrics();
    m.queued_envelopes
        .set(i64::try_from(stats.envelopes).unwrap_or(i64::MAX));
    m.queued_bytes
        .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
}

async fn metrics<S: QueueStore>(State(d): State<Arc<Dashboard<S>>>) -> impl IntoResponse {
    refresh_gauges(&d.server);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        d.server.metrics().encode(),
    )
}

async fn page<S: QueueStore>(State(d): State<Arc<Dashboard<S>>>) -> impl IntoResponse {
    refresh_gauges(&d.server);
    let m = d.server.metrics();
    let uptime = Duration::from_secs(m.uptime().as_secs());
    let last = *m.last_retention.lock().unwrap_or_else(|p| p.into_inner());
    let nonneg = |v: i64| u64::try_from(v).unwrap_or(0);
    Html(ui::dashboard_page(&ui::DashboardPage {
        listen: d.listen.to_string(),
        node_address: d.node_address.address.clone(),
        node_address_note: d.node_address.note.clone(),
        fingerprint_grouped: d.fingerprint_grouped.clone(),
        uptime: config::time::span(uptime),
        connections: nonneg(m.connections.get()),
        logged_in: nonneg(m.logged_in.get()),
        queued_envelopes: nonneg(m.queued_envelopes.get()),
        queued_bytes: nonneg(m.queued_bytes.get()),
        stored_total: m.stored.get(),
        delivered_total: m.delivered.get(),
        expired_total: m.expired.get(),
        refused: m.refusals(),
        retention: config::time::span(d.retention),
        last_retention_run: last
            .map(|(when, n)| format!("{} ({n} expired)", config::time::seconds_utc(when))),
        series: m
            .series()
            .into_iter()
            .map(|(sends, deliveries)| ui::RatePoint { sends, deliveries })
            .collect(),
        log_lines: d.logs.lines(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_address_is_pasteable_or_says_what_to_fill_in() {
        let fingerprint = [0xab; 32];
        let hex = "ab".repeat(32);
        let public = NodeAddress::new("192.0.2.7:4433".parse().expect("an address"), &fingerprint);
        assert_eq!(public.address, format!("192.0.2.7:4433#{hex}"));
        assert_eq!(public.note, None);
        let v6 = NodeAddress::new(
            "[2001:db8::7]:4433".parse().expect("an address"),
            &fingerprint,
        );
        assert_eq!(v6.address, format!("[2001:db8::7]:4433#{hex}"));
        assert!(v6.address.parse::<config::MailboxAddress>().is_ok());
        assert_eq!(v6.note, None);
        for (every, host) in [("0.0.0.0:4433", "0.0.0.0."), ("[::]:4433", "[::].")] {
            let any = NodeAddress::new(every.parse().expect("an address"), &fingerprint);
            let note = any.note.expect("a note");
            assert!(
                note.contains("this host's name") && note.ends_with(host),
                "{note}"
            );
        }
        for local in ["127.0.0.1:4433", "[::1]:4433"] {
            let here = NodeAddress::new(local.parse().expect("an address"), &fingerprint);
            let note = here.note.expect("a note");
            assert!(
                note.contains("Only this machine") && note.contains("0.0.0.0:4433"),
                "{note}"
            );
        }
    }
}
