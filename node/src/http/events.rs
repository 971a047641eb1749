//! `GET /api/events`: Server-Sent Events for live pages and scripts.
//!
//! Events: `message` (a stored message or gap marker, with its identity and contact),
//! `status` (an outgoing message's new status), `request` (a message from an unknown
//! sender), `connection` (the status JSON). A listener that falls behind gets `resync` and
//! should reload what it shows.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::core::service::NodeEvent;
use crate::http::AppState;
use crate::http::api::{entry_json, status_json};

fn to_sse(state: &AppState, event: NodeEvent) -> Event {
    match event {
        NodeEvent::Message {
            identity,
            contact,
            entry,
        } => {
            let mut data = entry_json(&entry);
            if let Some(obj) = data.as_object_mut() {
                obj.insert("identity".into(), json!(identity));
                obj.insert("contact".into(), json!(contact));
            }
            Event::default().event("message").data(data.to_string())
        }
        NodeEvent::Status {
            identity,
            contact,
            id,
            status,
            error,
        } => Event::default().event("status").data(
            json!({ "identity": identity, "contact": contact, "id": id, "status": status.as_str(), "error": error })
                .to_string(),
        ),
        NodeEvent::Request {
            identity,
            fingerprint,
        } => Event::default()
            .event("request")
            .data(json!({ "identity": identity, "fingerprint": fingerprint }).to_string()),
        NodeEvent::Connection => Event::default()
            .event("connection")
            .data(status_json(&state.node).to_string()),
    }
}

/// The event stream; starts with the current connection status.
pub async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.node.subscribe();
    let first = Event::default()
        .event("connection")
        .data(status_json(&state.node).to_string());
    let closing = state.closing.clone();
    let events = futures_util::stream::unfold(
        (state, rx, Some(first), closing),
        |(state, mut rx, first, mut closing)| async move {
            if let Some(first) = first {
                return Some((Ok(first), (state, rx, None, closing)));
            }
            if *closing.borrow() {
                return None;
            }
            let received = tokio::select! {
                r = rx.recv() => r,
                // The node is stopping: end the stream so shutdown is not held up.
                _ = closing.changed() => return None,
            };
            let event = match received {
                Ok(event) => to_sse(&state, event),
                Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (state, rx, None, closing)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
