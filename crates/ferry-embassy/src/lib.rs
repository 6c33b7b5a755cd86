#![no_std]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
//! The Ferry FTP engine on a microcontroller's TCP/IP stack.
//!
//! `ferry-embassy` drives [`ferry_proto::session::Session`]s over [embassy-net] TCP sockets (smoltcp
//! underneath), with [embassy-time] for every timeout, and runs their file-system actions on a
//! [`Storage`](storage::Storage) that needs no `std`: FAT on a block device ([`fat`]) on a device, or
//! any other backend (the host runner in `examples/host` serves a folder).
//!
//! The pieces, from the wire up:
//! - [`net::Server`]: a fixed pool of session slots (each owns a control socket and a data socket, with
//!   buffers the caller provides), one more socket that greets a client beyond the pool with `421` and
//!   closes, passive ports from a configured range, active connections to the control peer only.
//! - [`driver::run_session`]: one session's loop, generic over the control connection, the data
//!   channel and the clock ([`conn`], [`clock`]), so that it runs on embassy-net and, in tests, on
//!   in-memory pipes with fake time.
//! - [`storage`]: the async storage trait; [`fat`]: FAT12/16/32 with long file names.
//! - [`auth`]: a small list of users with salted PBKDF2-HMAC-SHA256 password hashes.
//!
//! Heap: the engine allocates per command (replies, paths); the driver allocates nothing per byte
//! transferred (transfers copy through one fixed chunk buffer per session; TYPE A conversion uses a
//! second buffer only while an ASCII transfer runs).
//!
//! [embassy-net]: https://docs.embassy.dev/embassy-net
//! [embassy-time]: https://docs.embassy.dev/embassy-time
extern crate alloc;
// The shared test fakes name this crate by its name.
#[cfg(test)]
extern crate self as ferry_embassy;

pub mod auth;
pub mod clock;
pub mod conn;
pub mod driver;
pub mod fat;
pub mod net;
pub mod storage;
