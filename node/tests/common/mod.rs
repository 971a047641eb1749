//! What the node's integration tests share: a node over an in-memory store.

#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use node::core::service::Node;
use node::core::store::{OutboxKind, Store};

/// A node over an in-memory store, its key files in a temporary directory (kept as long as
/// the returned guard lives).
pub fn memory_node() -> (Arc<Node>, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let node = Node::with_store(
        Store::in_memory().unwrap(),
        keys.path().join("keys"),
        65_536,
        None,
    )
    .unwrap();
    (Arc::new(node), keys)
}

/// Seal the receipts due, then take every envelope out of `from`'s outbox (as if the
/// mailbox stored it) and return them, oldest first, with their kinds.
pub fn drain_all(from: &Node) -> Vec<(OutboxKind, Vec<u8>)> {
    from.seal_due_receipts().unwrap();
    let mut out = Vec::new();
    for outgoing in from.outbox().unwrap() {
        out.push((outgoing.record.kind, outgoing.envelope.unwrap()));
        from.outbox_done(outgoing.key, &outgoing.record, None)
            .unwrap();
    }
    out
}

/// Deliver envelopes to identity `id` of `to` (either version).
pub fn deliver(to: &Node, id: &str, envelopes: &[(OutboxKind, Vec<u8>)]) {
    let identity = to.identity(id).unwrap();
    for (_, env) in envelopes {
        if crypto::EnvelopeHeader::parse(env).unwrap().version == crypto::FORMAT_V2 {
            to.receive_v2(id, env).unwrap().unwrap();
        } else {
            to.receive(id, &identity.open(env).unwrap()).unwrap();
        }
    }
}
