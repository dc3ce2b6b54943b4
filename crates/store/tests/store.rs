//! Integration tests of `auditlake-store`. Every test runs twice, on SQLite
//! and on PostgreSQL, each time against a fresh database (`store_test!`).
//!
//! The tests are grouped by area in `tests/store/*.rs`; this file holds the
//! helpers they share.

use std::fmt::Debug;

use auditlake_core::{Actor, AuditEvent, EventName, NewEvent, Scope, User};
use auditlake_store::{Store, StoreError};
use serde_json::Value;
use uuid::Uuid;

#[path = "store/chain.rs"]
mod chain;
#[path = "store/ingest.rs"]
mod ingest;
#[path = "store/integrations.rs"]
mod integrations;
#[path = "store/log.rs"]
mod log;
#[path = "store/paging.rs"]
mod paging;
#[path = "store/scope.rs"]
mod scope;
#[path = "store/search.rs"]
mod search;
#[path = "store/sessions.rs"]
mod sessions;
#[path = "store/tenants.rs"]
mod tenants;
#[path = "store/tokens.rs"]
mod tokens;

/// Like `store_test!`, but the body also gets the database URL, for the few
/// tests that must look at the raw tables: `db_test!(name, |url, store| ..)`.
macro_rules! db_test {
    ($name:ident, |$url:ident, $store:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($url: String, $store: auditlake_store::Store) {
                $body.await
            }

            async fn on(backend: auditlake_store::Backend) {
                let db = auditlake_store::testing::TestDb::new(backend).await;
                let store = db.store().await;
                run(db.url.clone(), store.clone()).await;
                store.close().await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                on(auditlake_store::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                on(auditlake_store::Backend::Postgres).await
            }
        }
    };
}
use db_test;

/// A fixed instant (2023-11-14) for events whose time a test controls.
const T0: i64 = 1_700_000_000_000_000;

/// Creates a user with a name derived from the email.
async fn new_user(store: &Store, email: &str) -> User {
    store
        .create_user(email, &format!("User {email}"))
        .await
        .expect("create user")
}

/// The actor for a user, with no request origin.
fn actor(u: &User) -> Actor {
    Actor::user(u.id)
}

/// The whole log in `seq` order.
async fn full_log(store: &Store) -> Vec<AuditEvent> {
    store.read_log(0, 1_000_000).await.expect("read log")
}

/// Events appended after `seq`.
async fn log_after(store: &Store, seq: i64) -> Vec<AuditEvent> {
    store.read_log(seq, 1_000_000).await.expect("read log")
}

/// The event names of `events`, in order.
fn names(events: &[AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// The event IDs of `events`, in order.
fn ids(events: &[AuditEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

/// An event's payload, parsed.
fn content(e: &AuditEvent) -> Value {
    serde_json::from_str(&e.content).expect("content is JSON")
}

/// An event named `name` in `scope` at `created_us`, with no actor.
fn event_at(name: &str, scope: Scope, created_us: i64) -> NewEvent {
    NewEvent {
        id: auditlake_core::new_id(),
        created_us,
        event: EventName::parse(name).expect("valid event name"),
        scope,
        user_id: None,
        project_id: None,
        content: r#"{"k":"v"}"#.to_owned(),
        source_ip: None,
        user_agent: None,
        ingested_by: None,
    }
}

/// Appends one event and returns it as stored.
async fn append_one(store: &Store, e: NewEvent) -> AuditEvent {
    let mut stored = store.append(&[e]).await.expect("append");
    assert_eq!(stored.len(), 1);
    stored.remove(0)
}

/// The error of a call that must fail.
#[track_caller]
fn err<T: Debug>(res: Result<T, StoreError>) -> StoreError {
    match res {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_conflict<T: Debug>(res: Result<T, StoreError>) {
    let e = err(res);
    assert!(
        matches!(e, StoreError::Conflict(_)),
        "expected Conflict, got {e:?}"
    );
}

#[track_caller]
fn assert_not_found<T: Debug>(res: Result<T, StoreError>) {
    let e = err(res);
    assert!(
        matches!(e, StoreError::NotFound(_)),
        "expected NotFound, got {e:?}"
    );
}

#[track_caller]
fn assert_invalid<T: Debug>(res: Result<T, StoreError>) {
    let e = err(res);
    assert!(
        matches!(e, StoreError::Invalid(_)),
        "expected Invalid, got {e:?}"
    );
}
