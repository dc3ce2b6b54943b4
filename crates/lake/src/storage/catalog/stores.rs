//! Event data stores in the catalog.

use sqlx::Row as _;

use super::db::{b, unique, Catalog};
use super::files::{file_from, DataFile};
use crate::error::{LakeError, Result};

/// An event data store.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDataStore {
    /// UUID; what SQL names after `FROM`.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region it was created in.
    pub region: String,
    /// Unique per account.
    pub name: String,
    /// `ENABLED`, `STOPPED_INGESTION` or `PENDING_DELETION`.
    pub status: String,
    /// Days events are kept.
    pub retention_days: i64,
    /// Whether deletion is refused.
    pub termination_protection: bool,
    /// Echoed `MultiRegionEnabled`.
    pub multi_region: bool,
    /// Echoed `OrganizationEnabled`.
    pub organization: bool,
    /// `EXTENDABLE_RETENTION_PRICING` or `FIXED_RETENTION_PRICING`.
    pub billing_mode: String,
    /// `AdvancedEventSelectors` as JSON.
    pub selectors: serde_json::Value,
    /// Tags as JSON.
    pub tags: serde_json::Value,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
}

fn store_from(row: &sqlx::sqlite::SqliteRow) -> Result<EventDataStore> {
    Ok(EventDataStore {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        region: row.try_get("region")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        retention_days: row.try_get("retention_days")?,
        termination_protection: row.try_get::<i64, _>("termination_protection")? != 0,
        multi_region: row.try_get::<i64, _>("multi_region")? != 0,
        organization: row.try_get::<i64, _>("organization")? != 0,
        billing_mode: row.try_get("billing_mode")?,
        selectors: serde_json::from_str(row.try_get("selectors")?)?,
        tags: serde_json::from_str(row.try_get("tags")?)?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

impl Catalog {
    /// Inserts a store; `EventDataStoreAlreadyExistsException` on a taken name.
    pub async fn insert_store(&self, s: &EventDataStore) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO event_data_stores (id, account, region, name, status, retention_days, \
             termination_protection, multi_region, organization, billing_mode, selectors, tags, \
             created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.account)
        .bind(&s.region)
        .bind(&s.name)
        .bind(&s.status)
        .bind(s.retention_days)
        .bind(b(s.termination_protection))
        .bind(b(s.multi_region))
        .bind(b(s.organization))
        .bind(&s.billing_mode)
        .bind(s.selectors.to_string())
        .bind(s.tags.to_string())
        .bind(s.created_ms)
        .bind(s.updated_ms)
        .execute(&self.pool)
        .await;
        unique(r, || {
            LakeError::bad(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {} already exists.", s.name),
            )
        })
    }

    /// Writes every mutable field of a store back.
    pub async fn update_store(&self, s: &EventDataStore) -> Result<()> {
        let r = sqlx::query(
            "UPDATE event_data_stores SET name = ?, status = ?, retention_days = ?, \
             termination_protection = ?, multi_region = ?, organization = ?, billing_mode = ?, \
             selectors = ?, updated_ms = ? WHERE id = ?",
        )
        .bind(&s.name)
        .bind(&s.status)
        .bind(s.retention_days)
        .bind(b(s.termination_protection))
        .bind(b(s.multi_region))
        .bind(b(s.organization))
        .bind(&s.billing_mode)
        .bind(s.selectors.to_string())
        .bind(s.updated_ms)
        .bind(&s.id)
        .execute(&self.pool)
        .await;
        unique(r, || {
            LakeError::bad(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {} already exists.", s.name),
            )
        })
    }

    /// The store with this ID in this account.
    pub async fn store(&self, account: &str, id: &str) -> Result<Option<EventDataStore>> {
        self.optional(
            "SELECT * FROM event_data_stores WHERE id = ? AND account = ?",
            &[id, account],
            store_from,
        )
        .await
    }

    /// An account's stores, oldest first.
    pub async fn stores(&self, account: &str) -> Result<Vec<EventDataStore>> {
        self.all(
            "SELECT * FROM event_data_stores WHERE account = ? ORDER BY created_ms, id",
            &[account],
            store_from,
        )
        .await
    }

    /// Every store of every account (for retention).
    pub async fn all_stores(&self) -> Result<Vec<EventDataStore>> {
        self.all(
            "SELECT * FROM event_data_stores ORDER BY created_ms, id",
            &[],
            store_from,
        )
        .await
    }

    /// Removes a store and its catalog entries; returns its files so the
    /// caller can delete them.
    pub async fn purge_store(&self, id: &str) -> Result<Vec<DataFile>> {
        let mut tx = self.pool.begin().await?;
        let files = sqlx::query("SELECT * FROM files WHERE store = ?")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(file_from)
            .collect::<Result<Vec<_>>>()?;
        for sql in [
            "DELETE FROM files WHERE store = ?",
            "DELETE FROM pending WHERE store = ?",
            "DELETE FROM event_data_stores WHERE id = ?",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(files)
    }
}
