//! The node's core: what it does and keeps, with no HTTP and no QUIC in it (no axum, no
//! quinn). [`service::Node`] is the operations (identities, contacts, messages, the inbox
//! of incoming envelopes, the outbox), over [`store`] (records behind a `Kv` engine trait,
//! sled or memory) and key files; [`settings`] the typed settings the node owns; [`invite`]
//! reads and writes invite codes; [`error`] is the domain error, which the HTTP layer maps
//! to statuses.

pub mod error;
pub mod invite;
pub mod service;
pub mod settings;
pub mod store;
