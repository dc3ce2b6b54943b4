//! Persistence for auditlake: tenants, memberships, tokens and the audit log.
//!
//! # Layout
//!
//! - [`Store`]: one interface over two backends, SQLite (the embedded
//!   default, WAL mode) and PostgreSQL. Both run the same SQL through sqlx's
//!   `Any` driver; only the migrations, connection set-up and the bulk
//!   writes of audit events differ (on PostgreSQL writes run on native
//!   connections, for binary `COPY`: `append`, `pg_copy`).
//! - `tenants`: users, groups, orgs, memberships, each change written with
//!   its audit event in one transaction.
//! - `tokens`: personal API tokens, stored as SHA-256 hashes; `auth_cache`:
//!   successful authentications reused for a moment.
//! - `sessions`: dashboard sign-in sessions, stored the same way, and
//!   local users' passwords (argon2id).
//! - `append`: write transactions and the append lock, with the ordering
//!   invariant readers rely on; `batch`: the single path that writes audit
//!   events, for state changes and for the group commit (`writer`) that
//!   stand-alone appends and ingests go through. `sql` holds the statement
//!   text they share; it imports nothing of theirs, so the modules depend
//!   one way: `sql` ← `chain` ← `append` ← `batch` ← `writer`.
//! - `chain`: the per-tenant hash chain over the log, and its verification.
//! - `search`: audit-log queries with stable keyset cursors.
//! - `integrations`: cloud event integrations, their durable delivery
//!   cursors, counters and leases (the forwarder's state).
//!
//! Every write that changes state also appends its audit event inside the
//! same transaction: there is no change without its event and no event
//! without its change.

mod append;
mod auth_cache;
mod batch;
mod chain;
mod error;
mod integrations;
mod pg_copy;
mod rows;
mod search;
mod sessions;
mod sql;
mod tenants;
mod tokens;
mod writer;

pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

use append::WritePool;

pub use auth_cache::DEFAULT_TTL as DEFAULT_AUTH_CACHE_TTL;
pub use batch::{IngestAccess, IngestItem, IngestOutcome};
pub use chain::{ChainBreak, ChainReport};
pub use error::StoreError;
pub use integrations::{Delivery, IntegrationChange, Lag, Lease};
pub use search::{SearchCursor, SearchPage, SearchQuery, SortOrder};
pub use sessions::{NewSession, Session, SignedInWith, MIN_PASSWORD_LEN, SESSION_SECS};
pub use tenants::{Member, Page, PageOf};
pub use tokens::{Authenticated, NamedTenant, NewToken, TenantRef};

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (WAL).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Readers. On SQLite several connections read in parallel under WAL.
    read: AnyPool,
    /// Writers (see `append`). On SQLite a single connection, shared with
    /// the group-commit writer, so writes never contend for the database
    /// lock; on PostgreSQL native connections for state changes.
    write: WritePool,
    /// The group-commit writer's connection (see `writer`): on SQLite
    /// `write` itself, on PostgreSQL one of its own.
    writer_pool: WritePool,
    backend: Backend,
    /// The group-commit writer for stand-alone appends (see `writer`).
    writer: tokio::sync::mpsc::Sender<writer::Job>,
    /// Bumped after every commit that appended events, so the forwarder
    /// wakes at once instead of at its next poll (other processes' appends
    /// are found by polling).
    appended: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Recent authentications (see `auth_cache`).
    auth_cache: std::sync::Arc<auth_cache::AuthCache>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Migrations embedded in the binary, per backend, in version order: the
/// schema as one initial migration, and each later change as the next.
/// Built by hand instead of with `sqlx::migrate!` so the build does not
/// compile sqlx's proc-macro crate with both database drivers a second
/// time.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[(
    1,
    "init",
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/postgres/0001_init.sql"),
)];

fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, name, sqlite, postgres)| {
            let sql = match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            Migration::new(
                *version,
                (*name).into(),
                MigrationType::Simple,
                (*sql).into(),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: migrations.into(),
        ..Migrator::DEFAULT
    }
}

/// Runs the migrations on `pool`.
async fn migrate<'a, A>(backend: Backend, pool: A) -> Result<(), StoreError>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    migrator(backend).run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => StoreError::UnknownMigration(v),
        e => e.into(),
    })
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://...`) and runs the
    /// migrations. A SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL scheme in {:?}; use sqlite:// or postgres://",
                redact(url)
            )));
        };
        let (read, write, writer_pool) = match backend {
            Backend::Sqlite => {
                let opts = sqlite_options(url)?;
                let write = sqlite_pool(1).connect_with(opts.clone()).await?;
                // Migrate before the readers open so they see the schema.
                migrate(backend, &write).await?;
                // Few readers: each is a thread of its own, and on small
                // machines the wake-ups between threads cost more than the
                // parallelism wins.
                let read = sqlite_pool(4).connect_with(opts).await?;
                let write = WritePool::Sqlite(write);
                (read, write.clone(), write)
            }
            Backend::Postgres => {
                let opts = AnyConnectOptions::from_str(url)?
                    .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
                let read = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?;
                migrate(backend, &read).await?;
                let native = PgConnectOptions::from_str(url)?
                    .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
                // State changes take the append lock in turn: fewer
                // connections than reads, opened when first needed.
                let write = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy_with(native.clone());
                // One writer task: a second connection would only wait
                // for the append lock.
                let writer_pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(native)
                    .await?;
                (
                    read,
                    WritePool::Postgres(write),
                    WritePool::Postgres(writer_pool),
                )
            }
        };
        let appended = std::sync::Arc::new(tokio::sync::watch::channel(0).0);
        Ok(Store {
            read,
            writer: writer::spawn(writer_pool.clone(), appended.clone()),
            write,
            writer_pool,
            backend,
            appended,
            auth_cache: Default::default(),
        })
    }

    /// Sets how long a successful authentication may be reused without
    /// reading the database again when nothing changed in this process
    /// (see `auth_cache`); zero reads it on every request. The default is
    /// [`DEFAULT_AUTH_CACHE_TTL`]. The cache is shared by every clone of
    /// this store, so the setting is too.
    pub fn with_auth_cache_ttl(self, ttl: Duration) -> Self {
        self.auth_cache.set_ttl(ttl);
        self
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection, waiting for running statements.
    pub async fn close(&self) {
        self.writer_pool.close().await;
        self.write.close().await;
        self.read.close().await;
    }

    /// A receiver that changes after every local commit that appended
    /// events. Appends by other processes sharing the database do not
    /// signal it; followers poll as well.
    pub fn subscribe_appends(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Commits `tx`, which changed state and appended its events, makes
    /// every cached authentication stale (the change may revoke a token or
    /// a membership) and wakes the followers.
    pub(crate) async fn commit(&self, tx: append::WriteTx) -> Result<(), StoreError> {
        let done = tx.commit().await;
        // Also when the commit failed: it may have committed before the
        // error reached us.
        self.auth_cache.invalidate();
        done?;
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

/// SQLite in WAL mode with `synchronous=NORMAL`: a committed transaction
/// survives a crash of the process (kill -9); `busy_timeout` covers the
/// moment a checkpoint holds the lock.
fn sqlite_options(url: &str) -> Result<AnyConnectOptions, StoreError> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = if url.contains("mode=") {
        url.to_owned()
    } else {
        format!("{url}{sep}mode=rwc")
    };
    Ok(AnyConnectOptions::from_str(&url)?
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1)))
}

/// The Any driver has no typed SQLite options, so the PRAGMAs run on each
/// new connection.
fn sqlite_pool(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                )
                .await?;
                Ok(())
            })
        })
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
