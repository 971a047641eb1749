//! The monitoring dashboard over HTTP: a page (rendered by `ui`), `/healthz`, and the
//! stylesheet. It shows figures only: there are no keys or contents on a mailbox to show.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::server::Service;
use crate::store::QueueStore;

struct Dashboard<S> {
    service: Arc<Service<S>>,
    started: Instant,
    listen: SocketAddr,
    fingerprint: String,
}

/// The dashboard's routes.
pub fn router<S: QueueStore>(
    service: Arc<Service<S>>,
    listen: SocketAddr,
    fingerprint: [u8; 32],
) -> Router {
    let state = Arc::new(Dashboard {
        service,
        started: Instant::now(),
        listen,
        fingerprint: hex::encode(fingerprint),
    });
    Router::new()
        .route("/", get(page::<S>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            ui::STYLESHEET_PATH,
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    ui::STYLESHEET,
                )
            }),
        )
        .with_state(state)
}

async fn page<S: QueueStore>(State(d): State<Arc<Dashboard<S>>>) -> impl IntoResponse {
    let counters = &d.service.counters;
    let service = d.service.clone();
    // Counting the queue walks the store: keep it off the executor threads.
    let queue = tokio::task::spawn_blocking(move || service.store().stats())
        .await
        .unwrap_or_default();
    let uptime = d.started.elapsed().as_secs();
    Html(ui::dashboard_page(&ui::DashboardPage {
        listen: d.listen.to_string(),
        fingerprint: d.fingerprint.clone(),
        uptime: humantime_secs(uptime),
        connections: counters.connections.load(Ordering::Relaxed),
        queued_envelopes: queue.envelopes,
        queued_bytes: queue.bytes,
        stored_total: counters.stored.load(Ordering::Relaxed),
        pulled_total: counters.pulled.load(Ordering::Relaxed),
    }))
}

fn humantime_secs(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}
