//! Domain types of auditlake, free of I/O.
//!
//! # Layout
//!
//! - [`chain`]: the per-tenant hash chain that makes edits of the stored
//!   log evident.
//! - [`event`]: audit events as stored and as submitted, event-name rules.
//! - [`integration`]: cloud event integrations, their scope rule and the
//!   CloudTrail Lake `eventData` of an event.
//! - [`tenant`]: users, groups, organizations, roles and the access rules.
//! - [`validate`]: input limits shared by every API that accepts events.
//! - [`time_fmt`]: the one way timestamps are rendered and parsed.
//!
//! Everything here is pure so that the store, the API and the forwarder
//! agree on one definition of an event and of who may see it.

pub mod chain;
pub mod event;
pub mod integration;
pub mod tenant;
pub mod time_fmt;
pub mod validate;

pub use event::{Actor, AuditEvent, EventName, NewEvent};
pub use integration::Integration;
pub use tenant::{Access, Group, Org, Role, Scope, Token, User};
pub use validate::ValidationError;

/// A new time-ordered identifier (UUID v7), used for every stored row.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
