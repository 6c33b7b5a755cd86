//! Test support for Ferry's tests, shared by every crate as a dev-dependency:
//!
//! - [`client`]: one FTP test client, blocking, over plain TCP or TLS (explicit `AUTH TLS` or implicit),
//!   that speaks line by line and asserts reply codes, with data connections in every mode (PASV, EPSV,
//!   PORT, EPRT), plain or protected. For what a library client such as `suppaftp` cannot express:
//!   hostile bytes, pipelining, ABOR mid-transfer, exact replies.
//! - [`binary`]: one launcher of the real `ferry` binary: port 0, the bound addresses read back from its
//!   start-up lines, waits on events (lines, exit) rather than sleeps, signals, and a kill on drop that
//!   prints the server's log when the test failed.
//! - [`tls`]: a self-signed certificate and client configurations that trust it.
//! - [`util`]: deterministic test data, byte comparisons, loopback ports, required external tools.
//!
//! Every helper panics with a message on failure: these are tests. Addresses are loopback only.

#![allow(clippy::unwrap_used)]

pub mod binary;
pub mod client;
pub mod tls;
pub mod util;

pub use binary::Ferry;
pub use client::{Client, DataMode, Reply, Transfer};

use std::time::Duration;

/// How long a client waits for any reply or data before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// The full-rights user that fixtures create by default.
pub const USER: &str = "alice";
/// Its password.
pub const PASS: &str = "s3cret";
