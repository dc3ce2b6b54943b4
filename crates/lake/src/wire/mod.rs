//! The wire side: CloudTrail Lake's own HTTP API, so that the official AWS
//! SDKs and CLI work by changing only the endpoint URL.
//!
//! - `server`: the listener; SigV4 on every request (`sigv4`);
//! - `data`: `PutAuditEvents`, durable before it answers;
//! - `control`: event data stores, channels, resource policies (evaluated
//!   by `auditlake_cloudtrail::policy`) and queries;
//! - `arn`: the ARNs of stores and channels.

pub(crate) mod arn;
pub(crate) mod control;
pub(crate) mod data;
pub mod server;
pub(crate) mod sigv4;
