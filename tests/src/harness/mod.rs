//! The harness, one file a job: binaries and processes, the mailbox and node processes,
//! protocol helpers, waits, browsers, and a lossy network.

mod browser;
mod cluster;
mod mailbox_proc;
mod net;
mod node_proc;
mod process;
mod speak;
mod wait;

pub use browser::*;
pub use cluster::*;
pub use mailbox_proc::*;
pub use net::*;
pub use node_proc::*;
pub use process::*;
pub use speak::*;
pub use wait::*;

use anyhow::{Context as _, bail};
use config::MailboxAddress;
use crypto::{Draft, Identity, MessageKind, Sealed};
use mailbox::client::Client;
use mailbox::protocol::{self, Request, Response};
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};
