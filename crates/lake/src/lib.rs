//! auditlake's local CloudTrail Lake.
//!
//! It speaks AWS CloudTrail Lake's own wire protocols, so the official AWS
//! SDKs and CLI work against it by changing only the endpoint URL. Three
//! layers, each a module folder:
//!
//! - `wire`: the HTTP listener, SigV4, `PutAuditEvents` and the control
//!   plane (stores, channels, resource policies, queries);
//! - `storage`: the SQLite catalog and ingest buffer, and the Parquet files
//!   per store and day behind `object_store`;
//! - `query`: the CloudTrail Lake SQL dialect on DataFusion, run in worker
//!   processes under OS limits.
//!
//! [`Lake`], here, ties storage and queries together for the wire side.
//! Data flows one way: request → validation → catalog (committed) →
//! Parquet (flush, compaction, retention) → queries. `testing` (feature
//! `testing`) starts a lake on a loopback port with fixed keys, for tests;
//! `fuzzing` (feature `fuzzing`) holds the fuzz targets' entry points.

mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod keys;
pub mod query;
pub mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

pub use crate::error::{LakeError, Result};
pub use crate::keys::{AccessKey, Keyring, GENERATED_KEY_FILE};
pub use crate::query::{QueryLimits, QueryWorker};

use crate::query::Queries;
use crate::storage::catalog::{now_ms, Catalog};
use crate::storage::record::day_of;
use crate::storage::Storage;

/// Largest request body.
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// Days a deleted store waits (`PENDING_DELETION`) before its data goes.
const DELETION_WAIT_DAYS: i64 = 7;
/// Buffered events after which the maintenance task flushes at once.
const FLUSH_THRESHOLD: u64 = 50_000;
/// Bytes of request bodies the listener holds at once: 32 calls at the
/// 1 MiB limit. A flood of large calls waits for it instead of filling
/// memory (each body is held several times over while it is parsed and
/// written).
const BODY_BUDGET: usize = 32 * 1024 * 1024;

pub use auditlake_http::ServeLimits;
const DAY_MS: i64 = 86_400_000;

/// How to open a lake.
#[derive(Debug, Clone)]
pub struct LakeConfig {
    /// Directory of the catalog, and of the Parquet files (under
    /// `objects/`).
    pub dir: PathBuf,
    /// Accepted access keys. Empty: a generated key kept in `dir`.
    pub keys: Vec<AccessKey>,
    /// Query engine limits.
    pub limits: QueryLimits,
    /// How queries' worker processes are started.
    pub worker: QueryWorker,
    /// What one client may hold of the listener.
    pub serve: ServeLimits,
}

impl LakeConfig {
    /// Defaults for a lake in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            keys: Vec::new(),
            limits: QueryLimits::default(),
            // The `auditlake` binary's own worker command.
            worker: QueryWorker::current_exe(&["lake", "query-worker"]).unwrap_or_else(|_| {
                QueryWorker {
                    program: "auditlake".into(),
                    args: vec!["lake".into(), "query-worker".into()],
                }
            }),
            serve: ServeLimits::default(),
        }
    }
}

/// A running lake; cheap to clone.
#[derive(Debug, Clone)]
pub struct Lake {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Catalog,
    storage: Storage,
    queries: Queries,
    keys: Keyring,
    generated_key: Option<PathBuf>,
    since_flush: AtomicU64,
    wake: tokio::sync::Notify,
    /// Request bodies held at once (see `server::handle`).
    bodies: auditlake_http::BodyBudget,
    serve: ServeLimits,
}

impl Lake {
    /// Opens the lake in `config.dir`, creating it on first use, and
    /// removes Parquet files a crash left unlisted.
    pub async fn open(config: LakeConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        let (keys, generated_key) = if config.keys.is_empty() {
            let (key, path, _) = keys::load_or_generate(&config.dir)?;
            (vec![key], Some(path))
        } else {
            (config.keys, None)
        };
        for k in &keys {
            k.validate().map_err(|e| {
                LakeError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            })?;
        }
        config
            .limits
            .validate()
            .map_err(|e| LakeError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let root = config.dir.join("objects");
        std::fs::create_dir_all(&root)?;
        let objects: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&root)?);
        let catalog = Catalog::open(&config.dir).await?;
        let storage = Storage::new(objects, catalog.clone());
        let removed = storage.remove_unlisted().await?;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed Parquet files left unlisted by an interrupted flush"
            );
        }
        let queries = Queries::new(
            catalog.clone(),
            storage.clone(),
            root,
            config.limits,
            config.worker,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                catalog,
                storage,
                queries,
                keys: Keyring::new(keys),
                generated_key,
                since_flush: AtomicU64::new(0),
                wake: tokio::sync::Notify::new(),
                bodies: auditlake_http::BodyBudget::new(BODY_BUDGET, MAX_BODY),
                serve: config.serve,
            }),
        })
    }

    /// The budget of request bodies held at once.
    pub(crate) fn bodies(&self) -> &auditlake_http::BodyBudget {
        &self.inner.bodies
    }

    /// What one client may hold of the listener.
    pub fn serve_limits(&self) -> ServeLimits {
        self.inner.serve
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The Parquet storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub(crate) fn queries(&self) -> &Queries {
        &self.inner.queries
    }

    /// The accepted keys.
    pub fn keys(&self) -> &Keyring {
        &self.inner.keys
    }

    /// The file holding the generated key, when no key was configured.
    pub fn generated_key_file(&self) -> Option<&Path> {
        self.inner.generated_key.as_deref()
    }

    fn note_ingested(&self, n: usize) {
        let total = self
            .inner
            .since_flush
            .fetch_add(n as u64, Ordering::Relaxed)
            + n as u64;
        if total >= FLUSH_THRESHOLD {
            self.inner.wake.notify_one();
        }
    }

    /// Flushes the buffer to Parquet, compacts, and applies retention and
    /// store deletion. The background task runs this; tests call it.
    pub async fn maintain(&self) -> Result<()> {
        self.inner.since_flush.store(0, Ordering::Relaxed);
        self.storage().flush_all().await?;
        let now = now_ms();
        for store in self.catalog().all_stores().await? {
            if store.status == "PENDING_DELETION" {
                if now - store.updated_ms >= DELETION_WAIT_DAYS * DAY_MS {
                    let files = self.catalog().purge_store(&store.id).await?;
                    self.storage().delete_files(&files).await;
                    tracing::info!(store = %store.id, "deleted event data store after its waiting period");
                }
                continue;
            }
            self.storage().compact(&store.id).await?;
            let cutoff = now - store.retention_days * DAY_MS;
            let before_day = day_of(cutoff);
            let before_ms = cutoff.div_euclid(DAY_MS) * DAY_MS;
            let expired = self
                .catalog()
                .expire(&store.id, &before_day, before_ms)
                .await?;
            if !expired.is_empty() {
                tracing::info!(store = %store.id, files = expired.len(), before = %before_day, "retention removed old days");
                self.storage().delete_files(&expired).await;
            }
        }
        let pages = self.catalog().reclaim_free_pages().await?;
        if pages > 0 {
            tracing::debug!(pages, "gave the catalog's free pages back");
        }
        Ok(())
    }

    /// Runs `maintain` every `every`, and sooner when much is buffered.
    pub fn spawn_maintenance(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let lake = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = lake.inner.wake.notified() => {}
                }
                if let Err(e) = lake.maintain().await {
                    tracing::error!(error = %e, "lake maintenance failed; retrying later");
                }
            }
        })
    }

    /// Flushes the buffer and closes the catalog.
    pub async fn close(&self) {
        if let Err(e) = self.storage().flush_all().await {
            tracing::warn!(error = %e, "could not flush the lake's buffer at shutdown; it stays buffered");
        }
        self.catalog().close().await;
    }
}
