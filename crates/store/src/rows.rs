//! Decoding rows into domain types: the `Any` driver's, and for the event
//! writes (`batch`) PostgreSQL's own. IDs are stored as text and times
//! as epoch microseconds so both backends share one SQL.

use auditlake_core::{AuditEvent, Group, Org, Token, User};
use sqlx::any::AnyRow;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::StoreError;

// `uuid`, `opt_uuid` and `event` are generic over the driver: `batch`
// decodes PostgreSQL's own rows with them.

pub(crate) fn uuid<R: Row>(row: &R, col: &str) -> Result<Uuid, StoreError>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt(format!("{col} = {s:?} is not a UUID")))
}

pub(crate) fn opt_uuid<R: Row>(row: &R, col: &str) -> Result<Option<Uuid>, StoreError>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| {
        Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt(format!("{col} = {s:?} is not a UUID")))
    })
    .transpose()
}

pub(crate) const EVENT_COLS: &str =
    "seq, id, created_us, event, org_id, group_id, user_id, project_id, content, source_ip, user_agent, ingested_by";

pub(crate) fn event<R: Row>(row: &R) -> Result<AuditEvent, StoreError>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        id: uuid(row, "id")?,
        created_us: row.try_get("created_us")?,
        event: row.try_get("event")?,
        org_id: opt_uuid(row, "org_id")?,
        group_id: opt_uuid(row, "group_id")?,
        user_id: opt_uuid(row, "user_id")?,
        project_id: row.try_get("project_id")?,
        content: row.try_get("content")?,
        source_ip: row.try_get("source_ip")?,
        user_agent: row.try_get("user_agent")?,
        ingested_by: opt_uuid(row, "ingested_by")?,
    })
}

pub(crate) const USER_COLS: &str = "id, email, name, created_us";

pub(crate) fn user(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: uuid(row, "id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        created_us: row.try_get("created_us")?,
    })
}

pub(crate) const GROUP_COLS: &str = "id, name, created_us";

pub(crate) fn group(row: &AnyRow) -> Result<Group, StoreError> {
    group_prefixed(row, "")
}

/// A group from columns named `{prefix}id`, `{prefix}name`, ...: a group
/// joined into a wider row.
pub(crate) fn group_prefixed(row: &AnyRow, prefix: &str) -> Result<Group, StoreError> {
    let col = |c: &str| format!("{prefix}{c}");
    Ok(Group {
        id: uuid(row, &col("id"))?,
        name: row.try_get(col("name").as_str())?,
        created_us: row.try_get(col("created_us").as_str())?,
    })
}

pub(crate) const ORG_COLS: &str = "id, name, slug, group_id, settings, created_us";

pub(crate) fn org(row: &AnyRow) -> Result<Org, StoreError> {
    org_prefixed(row, "")
}

/// An org from columns named `{prefix}id`, `{prefix}name`, ... (see
/// [`group_prefixed`]).
pub(crate) fn org_prefixed(row: &AnyRow, prefix: &str) -> Result<Org, StoreError> {
    let col = |c: &str| format!("{prefix}{c}");
    let settings: String = row.try_get(col("settings").as_str())?;
    Ok(Org {
        id: uuid(row, &col("id"))?,
        name: row.try_get(col("name").as_str())?,
        slug: row.try_get(col("slug").as_str())?,
        group_id: opt_uuid(row, &col("group_id"))?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("org settings: {e}")))?,
        created_us: row.try_get(col("created_us").as_str())?,
    })
}

pub(crate) const TOKEN_COLS: &str = "id, user_id, name, prefix, created_us, expires_us, revoked_us";

pub(crate) fn token(row: &AnyRow) -> Result<Token, StoreError> {
    Ok(Token {
        id: uuid(row, "id")?,
        user_id: uuid(row, "user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_us: row.try_get("created_us")?,
        expires_us: row.try_get("expires_us")?,
        revoked_us: row.try_get("revoked_us")?,
    })
}
