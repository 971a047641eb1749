//! What the node's integration tests share: a node over an in-memory store.

#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use node::core::service::Node;
use node::core::store::Store;

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
