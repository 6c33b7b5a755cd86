#![no_std]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
// clippy.toml keeps format!/write! (core::fmt) out of the engine's code; tests may use them.
#![cfg_attr(test, allow(clippy::disallowed_macros))]
//! Sans-IO FTP protocol engine.
//!
//! `ferry-proto` turns the bytes of an FTP control connection into replies and *actions* (authenticate,
//! open a passive port, connect to an active address, run a transfer, do a file-system operation,
//! abort, close) and never performs any I/O itself: no sockets, no files, no clock. A driver, such as
//! the tokio server in `ferry-server`, owns the sockets and the storage, executes the actions and feeds
//! their results back. The same engine can therefore run under any executor and any TCP/IP stack, and
//! sessions can be tested deterministically with scripted input and fake time.
//!
//! The call contract is documented on [`session::Session`]:
//! `handle_input` / `handle_completion` / `handle_timeout` in, `poll_output` / `poll_timeout` out.
//!
//! Modules, from the wire up: [`line`](mod@line) (CRLF framing, Telnet stripping, line limit), [`command`]
//! (one variant per verb), [`reply`] (codes and multi-line replies), [`path`] (virtual paths that
//! never rise above the root), [`addr`] (PORT/EPRT/PASV/EPSV), [`listing`] (LIST/NLST/MLSx/MDTM
//! formatting), [`ascii`] (TYPE A conversion), [`storage`] (the storage error kinds with their replies, and upload
//! modes: the vocabulary of every storage backend) and [`session`] (the state machine).
extern crate alloc;

pub mod addr;
pub mod ascii;
pub mod command;
pub mod glob;
pub mod line;
pub mod listing;
pub mod path;
pub mod reply;
pub mod session;
pub mod storage;
mod text;
