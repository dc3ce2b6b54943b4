//! CloudTrail Lake's vocabulary, shared by auditlake's lake (which serves
//! it) and its clients (the dashboard's console, the CLI, the benchmarks
//! and the tests):
//!
//! - [`AccessKey`]: an access key of an account;
//! - [`policy`]: channel resource policies and the `PutAuditEvents` check
//!   they make, so a client can ask the same question the lake answers;
//! - [`client`]: the official AWS SDK clients pointed at a lake, and the
//!   console's "add integration" flow as SDK calls.

pub mod client;
mod key;
pub mod policy;

pub use key::AccessKey;
