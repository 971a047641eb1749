//! Test harness: starts the real `mailbox` and `node` binaries on ephemeral ports with their
//! own temporary data directories, and talks to them the way a user or script would.
//!
//! The binaries are found in the target directory next to the running test executable (or
//! in `$SM_BIN_DIR`), never through PATH: `node` on PATH is Node.js. `cargo xtask test`
//! builds them before running the tests.
//!
//! For tests of the mailbox on its own there are helpers that speak its protocol the way a
//! node does, with [`mailbox::client::Client`]: [`Mailbox::connect_as`] connects and logs
//! identities in, [`identities`] makes fresh ones, [`seal_text`] and [`seal_texts`] seal
//! text envelopes, and [`RawConnection`] sends requests without the client's own Hello.

pub mod fuzz;
mod harness;
pub mod soak;

pub use harness::*;
