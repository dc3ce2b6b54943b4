//! Integration tests of `auditlake-api`: the real server on a real socket,
//! driven over HTTP, on SQLite and on PostgreSQL (`api_test!`).
//!
//! The harness is in `common/`; the tests are grouped by area in `api/`.

mod common;

#[path = "api/auth.rs"]
mod auth;
#[path = "api/authz.rs"]
mod authz;
#[path = "api/capture.rs"]
mod capture;
#[path = "api/cloud_events.rs"]
mod cloud_events;
#[path = "api/dashboard.rs"]
mod dashboard;
#[path = "api/ingest.rs"]
mod ingest;
#[path = "api/isolation.rs"]
mod isolation;
#[path = "api/limits.rs"]
mod limits;
#[path = "api/ops.rs"]
mod ops;
#[path = "api/search.rs"]
mod search;
#[path = "api/tenancy.rs"]
mod tenancy;
#[path = "api/v1.rs"]
mod v1;
#[path = "api/versioning.rs"]
mod versioning;
