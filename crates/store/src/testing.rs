//! Fresh databases for tests: every test gets its own SQLite file or its own
//! PostgreSQL database, so tests run in parallel without seeing each other.
//!
//! PostgreSQL is reached at `AUDITLAKE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each database is created
//! from there and dropped by [`TestDb::cleanup`].

use sqlx::Connection;

use crate::{Backend, Store};

/// The server URL test databases are created from.
pub fn pg_admin_url() -> String {
    std::env::var("AUDITLAKE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database made for one test.
#[derive(Debug)]
pub struct TestDb {
    /// URL to connect to it.
    pub url: String,
    backend: Backend,
    pg_name: Option<String>,
    _dir: Option<std::path::PathBuf>,
}

impl TestDb {
    /// Creates an empty database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        sqlx::any::install_default_drivers();
        match backend {
            Backend::Sqlite => {
                let dir =
                    std::env::temp_dir().join(format!("auditlake-test-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}/audit.db", dir.display());
                TestDb {
                    url,
                    backend,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("auditlake_t_{}", uuid::Uuid::new_v4().simple());
                let admin = pg_admin_url();
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL must be running (see README)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDb {
                    url: format!("{base}/{name}"),
                    backend,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Connects a store (running migrations).
    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("connect test store")
    }

    /// Drops the database (PostgreSQL) or deletes its files (SQLite).
    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_name {
            if let Ok(mut conn) = sqlx::AnyConnection::connect(&pg_admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
        if let Some(dir) = &self._dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Defines one test per backend: `store_test!(name, |store| async move {..})`
/// expands to `name::sqlite` and `name::postgres`, each with a fresh database.
#[macro_export]
macro_rules! store_test {
    ($name:ident, |$store:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($store: $crate::Store) {
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::testing::TestDb::new($crate::Backend::Sqlite).await;
                let store = db.store().await;
                run(store.clone()).await;
                store.close().await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::testing::TestDb::new($crate::Backend::Postgres).await;
                let store = db.store().await;
                run(store.clone()).await;
                store.close().await;
                db.cleanup().await;
            }
        }
    };
}
