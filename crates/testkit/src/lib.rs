//! What auditlake's test suites and its benchmark tools share, so that each
//! does not carry its own copy:
//!
//! - [`process`]: spawning a binary and reading its standard output until
//!   it announces itself (its listening address, its credentials file),
//!   with a deadline, and killing it when the handle is dropped;
//! - [`wait`]: polling a condition until it holds, with a deadline and a
//!   panic message that names what was awaited.
//!
//! No suite picks its own ports: every server under test binds port 0 and
//! announces the address it got, which [`process::spawn_until`] reads.
//!
//! The crate is for tests and tools only (`publish = false`); nothing in
//! the shipped binaries depends on it.

pub mod process;
pub mod wait;

pub use process::{spawn_until, try_spawn_until, Killed, SpawnError};
pub use wait::{try_wait_until, wait_until, wait_until_blocking, wait_until_every, Progress};
