//! What both of auditlake's HTTP listeners (the API and the lake) need to
//! stay up when clients misbehave:
//!
//! - [`serve`]: an HTTP/1 server on a TCP listener that drops a client
//!   that sends nothing for [`ServeLimits::read_timeout`] (while it sends
//!   headers, between requests and while it sends a body), caps the
//!   connections one client address may hold, and shuts down gracefully;
//! - [`BodyBudget`]: bytes of request bodies held in memory at once, so a
//!   flood of large bodies waits unread instead of filling memory.
//!
//! axum's own `serve` sets no read timeout: a client that opens a request
//! and sends nothing more would hold its connection, and whatever the
//! request had taken, for as long as it liked.

mod budget;
mod serve;

pub use budget::{BodyBudget, Held};
pub use serve::{is_read_timeout, serve, ServeLimits};
