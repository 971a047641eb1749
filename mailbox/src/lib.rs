//! The Secure Messenger mailbox: a store-and-forward server for sealed envelopes.
//!
//! Nodes connect over QUIC (TLS 1.3, ALPN [`protocol::ALPN`]), log their identities in,
//! SEND envelopes for others and PULL and ACK their own. The mailbox reads only an
//! envelope's clear header (recipient fingerprint, message id); it never sees plaintext or
//! private keys.
//!
//! - [`protocol`]: frames and their encoding, free of I/O.
//! - [`core`]: every decision (admission, logins, limits, SEND/PULL/ACK, pushes), free of
//!   I/O, over a [`store::QueueStore`]; the client's session too. [`limits`]: token buckets.
//! - [`store`]: the queue store trait, its sled implementation (group commit) and an
//!   in-memory one.
//! - [`server`]: the QUIC driver around the core.
//! - [`client`]: the QUIC client nodes use.
//! - [`tls`]: certificates, pinning.
//! - [`dashboard`]: HTTP monitoring page, `/metrics` and `/healthz`; [`metrics`]: counters.
//! - [`start`] (in `run.rs`): everything above wired together, for the binary.
//!
//! # Features
//!
//! Without default features the crate is the protocol, the core, the store trait with its
//! in-memory engine: no I/O. `client` adds the QUIC client and certificate pinning (what a
//! node links); `server` (the default) adds the sled store, the QUIC driver, the dashboard,
//! metrics and the binary.

#[cfg(feature = "client")]
pub mod client;
pub mod core;
#[cfg(feature = "server")]
pub mod dashboard;
pub mod limits;
#[cfg(feature = "server")]
pub mod metrics;
pub mod protocol;
#[cfg(feature = "server")]
mod run;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
#[cfg(feature = "client")]
pub mod tls;

#[cfg(feature = "server")]
pub use run::{Migrated, Running, StartError, fingerprint, migrate, start};
