//! Channels in the catalog.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::db::{now_ms, unique, Catalog};
use super::ids::{channel_prefix, next_prefix};
use crate::error::{LakeError, Result};

/// Where a channel delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Destination {
    /// `EVENT_DATA_STORE`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The event data store's ARN.
    pub location: String,
}

/// A channel's `IngestionStatus`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestionStatus {
    /// Last call that stored at least one event.
    pub success_ms: Option<i64>,
    /// An event ID of that call.
    pub success_event: Option<String>,
    /// Last call, successful or not.
    pub attempt_ms: Option<i64>,
    /// An event ID of that call, when it got one.
    pub attempt_event: Option<String>,
    /// Error code of the last failed entry or call.
    pub error_code: Option<String>,
}

/// A channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// UUID.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region it was created in.
    pub region: String,
    /// Unique per account.
    pub name: String,
    /// `Source`, e.g. the product name.
    pub source: String,
    /// Event data stores it feeds.
    pub destinations: Vec<Destination>,
    /// Tags as JSON.
    pub tags: serde_json::Value,
    /// Resource policy document, as sent.
    pub policy: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Latest ingestion outcome.
    pub ingestion: IngestionStatus,
}

fn channel_from(row: &sqlx::sqlite::SqliteRow) -> Result<Channel> {
    Ok(Channel {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        region: row.try_get("region")?,
        name: row.try_get("name")?,
        source: row.try_get("source")?,
        destinations: serde_json::from_str(row.try_get("destinations")?)?,
        tags: serde_json::from_str(row.try_get("tags")?)?,
        policy: row.try_get("policy")?,
        created_ms: row.try_get("created_ms")?,
        ingestion: IngestionStatus {
            success_ms: row.try_get("success_ms")?,
            success_event: row.try_get("success_event")?,
            attempt_ms: row.try_get("attempt_ms")?,
            attempt_event: row.try_get("attempt_event")?,
            error_code: row.try_get("error_code")?,
        },
    })
}

impl Catalog {
    /// Inserts a channel; `ChannelAlreadyExistsException` on a taken name.
    pub async fn insert_channel(&self, c: &Channel) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO channels (id, account, region, name, source, destinations, tags, policy, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.account)
        .bind(&c.region)
        .bind(&c.name)
        .bind(&c.source)
        .bind(serde_json::to_string(&c.destinations)?)
        .bind(c.tags.to_string())
        .bind(&c.policy)
        .bind(c.created_ms)
        .execute(&self.pool)
        .await;
        unique(r, || channel_exists(&c.name))
    }

    /// Writes a channel's name, destinations and policy back.
    pub async fn update_channel(&self, c: &Channel) -> Result<()> {
        let r =
            sqlx::query("UPDATE channels SET name = ?, destinations = ?, policy = ? WHERE id = ?")
                .bind(&c.name)
                .bind(serde_json::to_string(&c.destinations)?)
                .bind(&c.policy)
                .bind(&c.id)
                .execute(&self.pool)
                .await;
        unique(r, || channel_exists(&c.name))
    }

    /// The channel with this ID in this account.
    pub async fn channel(&self, account: &str, id: &str) -> Result<Option<Channel>> {
        self.optional(
            "SELECT * FROM channels WHERE id = ? AND account = ?",
            &[id, account],
            channel_from,
        )
        .await
    }

    /// The channel with this ID, whichever account owns it (data plane:
    /// a partner writes to a channel of another account).
    pub async fn channel_any_account(&self, id: &str) -> Result<Option<Channel>> {
        self.optional("SELECT * FROM channels WHERE id = ?", &[id], channel_from)
            .await
    }

    /// An account's channels, oldest first.
    pub async fn channels(&self, account: &str) -> Result<Vec<Channel>> {
        self.all(
            "SELECT * FROM channels WHERE account = ? ORDER BY created_ms, id",
            &[account],
            channel_from,
        )
        .await
    }

    /// Deletes a channel and its `id` index.
    pub async fn delete_channel(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let prefix = channel_prefix(id);
        let (from, to) = (prefix.to_vec(), next_prefix(prefix));
        sqlx::query("DELETE FROM event_ids WHERE key >= ? AND (? IS NULL OR key < ?)")
            .bind(&from)
            .bind(&to)
            .bind(&to)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM channels WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a call that stored nothing (every entry failed).
    pub async fn record_failed_attempt(&self, channel: &str, error_code: &str) -> Result<()> {
        sqlx::query(
            "UPDATE channels SET attempt_ms = ?, attempt_event = NULL, error_code = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(error_code)
        .bind(channel)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn channel_exists(name: &str) -> LakeError {
    LakeError::bad(
        "ChannelAlreadyExistsException",
        format!("A channel named {name} already exists."),
    )
}
