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
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::core::service::{Node, NodeEvent};
use crate::http::AppState;
use crate::http::api::{EntryJson, MessageStatus, status_json};

/// A `message` event: a stored message or gap marker, as a conversation page shows it, and
/// whose conversation it is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEvent {
    /// The identity.
    pub identity: String,
    /// The contact.
    pub contact: String,
    /// The entry.
    #[serde(flatten)]
    pub entry: EntryJson,
    /// Present and true when a message came after newer ones and took its place in a gap:
    /// it belongs above entries already shown (the page reloads the conversation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// A `status` event: an outgoing message's new status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// The identity.
    pub identity: String,
    /// The contact.
    pub contact: String,
    /// The message id, hex.
    pub id: String,
    /// Its new status.
    pub status: MessageStatus,
    /// Why it failed, in words (`null` unless it did).
    pub error: Option<String>,
}

/// A `request` event: a message from someone who is not a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEvent {
    /// The identity written to.
    pub identity: String,
    /// The sender's fingerprint, hex.
    pub fingerprint: String,
}

/// An event's name and its `data` line.
fn payload(node: &Node, event: NodeEvent) -> (&'static str, String) {
    match event {
        NodeEvent::Message {
            identity,
            contact,
            entry,
            late,
        } => (
            "message",
            json(&MessageEvent {
                identity,
                contact,
                entry: EntryJson::from(&entry),
                late,
            }),
        ),
        NodeEvent::Status {
            identity,
            contact,
            id,
            status,
            error,
        } => (
            "status",
            json(&StatusEvent {
                identity,
                contact,
                id: id.to_string(),
                status: status.into(),
                error,
            }),
        ),
        NodeEvent::Request {
            identity,
            fingerprint,
        } => (
            "request",
            json(&RequestEvent {
                identity,
                fingerprint: fingerprint.to_string(),
            }),
        ),
        NodeEvent::Connection => ("connection", status_json(node).to_string()),
    }
}

/// A payload as JSON (these types always serialize: strings, numbers and enums).
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn to_sse(state: &AppState, event: NodeEvent) -> Event {
    let (name, data) = payload(&state.node, event);
    Event::default().event(name).data(data)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::{Direction, Entry, MessageRecord, Status};

    fn check(event: NodeEvent, name: &str, data: &str) {
        let node = Node::with_store(
            crate::core::store::Store::in_memory().expect("store"),
            std::env::temp_dir().join("sm-events-test-keys"),
            1024,
            None,
        )
        .expect("node");
        assert_eq!(payload(&node, event), (name, data.to_owned()));
    }

    fn message() -> MessageRecord {
        MessageRecord {
            id: "00112233445566778899aabbccddeeff".parse().expect("an id"),
            direction: Direction::In,
            text: "hi <b>".into(),
            sent_ms: 1_764_106_800_123,
            stored_ms: 1_764_106_800_456,
            status: Status::Received,
            seq: 2,
            error: None,
            forward_secret: true,
        }
    }

    #[test]
    fn every_event_payload_is_pinned() {
        check(
            NodeEvent::Message {
                identity: "alice".into(),
                contact: "bob".into(),
                entry: Entry::Message(message()),
                late: false,
            },
            "message",
            r#"{"identity":"alice","contact":"bob","direction":"in","forward_secret":true,"id":"00112233445566778899aabbccddeeff","kind":"message","sent_at":"2025-11-25T21:40:00.123Z","seq":2,"status":"received","text":"hi <b>"}"#,
        );
        check(
            NodeEvent::Message {
                identity: "alice".into(),
                contact: "bob".into(),
                entry: Entry::Gap {
                    missing: 2,
                    detected_ms: 0,
                    first: Some(3),
                },
                late: false,
            },
            "message",
            r#"{"identity":"alice","contact":"bob","detected_at":"1970-01-01T00:00:00.000Z","kind":"gap","missing":2}"#,
        );
        check(
            NodeEvent::Message {
                identity: "alice".into(),
                contact: "bob".into(),
                entry: Entry::Message(message()),
                late: true,
            },
            "message",
            r#"{"identity":"alice","contact":"bob","direction":"in","forward_secret":true,"id":"00112233445566778899aabbccddeeff","kind":"message","sent_at":"2025-11-25T21:40:00.123Z","seq":2,"status":"received","text":"hi <b>","late":true}"#,
        );
        check(
            NodeEvent::Status {
                identity: "alice".into(),
                contact: "bob".into(),
                id: crypto::MessageId([0xff; 16]),
                status: Status::Failed,
                error: Some("too large".into()),
            },
            "status",
            r#"{"identity":"alice","contact":"bob","id":"ffffffffffffffffffffffffffffffff","status":"failed","error":"too large"}"#,
        );
        check(
            NodeEvent::Request {
                identity: "alice".into(),
                fingerprint: crypto::Fingerprint([0xab; 32]),
            },
            "request",
            r#"{"identity":"alice","fingerprint":"abababababababababababababababababababababababababababababababab"}"#,
        );
        check(
            NodeEvent::Connection,
            "connection",
            r#"{"mailbox":{"address":"","last_error":null,"last_sync":null,"state":"connecting"},"outbox":0}"#,
        );
    }

    #[test]
    fn payloads_read_back_as_their_types() {
        let data = r#"{"identity":"alice","contact":"bob","detected_at":"1970-01-01T00:00:00.000Z","kind":"gap","missing":2}"#;
        let event: MessageEvent = serde_json::from_str(data).expect("a message event");
        assert!(matches!(event.entry, EntryJson::Gap(ref g) if g.missing == 2));
        assert_eq!(json(&event), data);
    }
}
