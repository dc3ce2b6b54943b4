//! Audit-log search with stable cursors.
//!
//! A search walks `(created_us, seq)` in the requested order. The first page
//! pins a snapshot, the log's head `seq`, and every later page filters
//! `seq <= snapshot`: events appended while a client pages (even ones
//! back-dated into the window by the ingest API) never shift, repeat or
//! skip items of the result it is reading. Because `seq` follows commit
//! order (see `append`), the snapshot is exact.

use auditlake_core::{AuditEvent, Scope};
use base64::Engine as _;
use sqlx::Row;
use uuid::Uuid;

use crate::{rows, Store, StoreError};

/// Direction of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Oldest first.
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

/// Where the next page of a search starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    /// `created_us` of the last item returned.
    pub created_us: i64,
    /// `seq` of the last item returned.
    pub seq: i64,
    /// The log head when the search began.
    pub snapshot: i64,
}

impl SearchCursor {
    /// An opaque string for clients.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "1.{}.{}.{}",
            self.created_us, self.seq, self.snapshot
        ))
    }

    /// Parses a string made by [`SearchCursor::encode`].
    pub fn decode(s: &str) -> Option<Self> {
        if s.len() > 200 {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let mut parts = text.split('.');
        if parts.next()? != "1" {
            return None;
        }
        let cursor = Self {
            created_us: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            snapshot: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

/// A search of one tenant's log.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// `Org(id)`: the org's events; `Group(id)`: events whose group is `id`
    /// (the group's own and its orgs').
    pub scope: Option<Scope>,
    /// Inclusive lower bound, epoch microseconds.
    pub from_us: i64,
    /// Exclusive upper bound, epoch microseconds.
    pub to_us: i64,
    /// Page size.
    pub size: u32,
    /// Only this user's events.
    pub user_id: Option<Uuid>,
    /// Only this project's events.
    pub project_id: Option<String>,
    /// Only these event names (empty: all).
    pub events: Vec<String>,
    /// Not these event names.
    pub exclude_events: Vec<String>,
    /// Order.
    pub sort: SortOrder,
    /// Continue after this point.
    pub cursor: Option<SearchCursor>,
    /// Skip this many items (page-number clients such as API v1).
    pub offset: u64,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Events in the requested order.
    pub items: Vec<AuditEvent>,
    /// Cursor of the next page; `None` on the last one.
    pub next: Option<SearchCursor>,
}

impl Store {
    /// Runs a search. See the module docs for the cursor contract.
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchPage, StoreError> {
        // A first page pins the log head in the same statement that reads
        // it, so the snapshot and the page agree and the search costs one
        // round trip to the database instead of two.
        let (snapshot, head_col) = match q.cursor {
            Some(c) => (Snapshot::At(c.snapshot), ""),
            None => (
                Snapshot::Head,
                ", (SELECT COALESCE(MAX(seq), 0) FROM audit_events) AS head",
            ),
        };
        let (filter, mut args) = filter(q, Some(snapshot))?;
        let mut sql = format!(
            "SELECT {}{head_col} FROM audit_events WHERE {filter}",
            rows::EVENT_COLS
        );
        let (cmp, dir) = match q.sort {
            SortOrder::Asc => (">", "ASC"),
            SortOrder::Desc => ("<", "DESC"),
        };
        if let Some(c) = q.cursor {
            let n = args.len();
            sql.push_str(&format!(
                " AND (created_us {cmp} ${} OR (created_us = ${} AND seq {cmp} ${}))",
                n + 1,
                n + 2,
                n + 3
            ));
            args.extend([Arg::I(c.created_us), Arg::I(c.created_us), Arg::I(c.seq)]);
        }
        sql.push_str(&format!(" ORDER BY created_us {dir}, seq {dir}"));
        args.push(Arg::I(i64::from(q.size) + 1));
        sql.push_str(&format!(" LIMIT ${}", args.len()));
        if q.offset > 0 {
            args.push(Arg::I(q.offset as i64));
            sql.push_str(&format!(" OFFSET ${}", args.len()));
        }

        let rows = bind(sqlx::query(&sql), args).fetch_all(&self.read).await?;
        let snapshot = match (q.cursor, rows.first()) {
            (Some(c), _) => c.snapshot,
            (None, Some(row)) => row.try_get("head")?,
            // Nothing found: there is no next page, so no snapshot to keep.
            (None, None) => 0,
        };
        let more = rows.len() > q.size as usize;
        let items = rows
            .iter()
            .take(q.size as usize)
            .map(rows::event)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match items.last() {
            Some(last) if more => Some(SearchCursor {
                created_us: last.created_us,
                seq: last.seq,
                snapshot,
            }),
            _ => None,
        };
        Ok(SearchPage { items, next })
    }

    /// How many of the events `q` selects (cursor and order aside) fall in
    /// each `bucket_us`-wide slice of time: `(slice start, count)`, oldest
    /// first, empty slices left out. For the dashboard's chart.
    pub async fn histogram(
        &self,
        q: &SearchQuery,
        bucket_us: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        if bucket_us <= 0 {
            return Err(StoreError::Invalid("the bucket must be positive".into()));
        }
        let (filter, mut args) = filter(q, None)?;
        args.push(Arg::I(bucket_us));
        let n = args.len();
        let sql = format!(
            "SELECT created_us / ${n} AS bucket, COUNT(*) AS n FROM audit_events \
             WHERE {filter} GROUP BY bucket ORDER BY bucket"
        );
        bind(sqlx::query(&sql), args)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| {
                let bucket: i64 = r.try_get("bucket")?;
                Ok((bucket * bucket_us, r.try_get("n")?))
            })
            .collect()
    }

    /// One event of `scope`'s log by ID (`None` for another tenant's).
    pub async fn event_in(&self, scope: Scope, id: Uuid) -> Result<Option<AuditEvent>, StoreError> {
        let (col, tenant) = match scope {
            Scope::Org(o) => ("org_id", o),
            Scope::Group(g) => ("group_id", g),
            Scope::User => return Ok(None),
        };
        let sql = format!(
            "SELECT {} FROM audit_events WHERE id = $1 AND {col} = $2",
            rows::EVENT_COLS
        );
        sqlx::query(&sql)
            .bind(id.to_string())
            .bind(tenant.to_string())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(rows::event)
            .transpose()
    }
}

/// The last `seq` a search may return.
#[derive(Clone, Copy)]
enum Snapshot {
    /// The one a cursor carries.
    At(i64),
    /// The log's head as the statement reads it.
    Head,
}

/// The `WHERE` clause of `q` (tenant, time window, filters; the snapshot
/// when given) with its arguments, numbered from `$1`.
fn filter(q: &SearchQuery, snapshot: Option<Snapshot>) -> Result<(String, Vec<Arg>), StoreError> {
    let mut sql = String::new();
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |sql: &mut String, clause: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&clause.replace('?', &format!("${}", args.len())));
    };
    match q.scope {
        Some(Scope::Org(o)) => push(&mut sql, "org_id = ?", Arg::S(o.to_string())),
        Some(Scope::Group(g)) => push(&mut sql, "group_id = ?", Arg::S(g.to_string())),
        _ => {
            return Err(StoreError::Invalid(
                "a search needs an org or a group".into(),
            ))
        }
    }
    push(&mut sql, " AND created_us >= ?", Arg::I(q.from_us));
    push(&mut sql, " AND created_us < ?", Arg::I(q.to_us));
    match snapshot {
        Some(Snapshot::At(seq)) => push(&mut sql, " AND seq <= ?", Arg::I(seq)),
        Some(Snapshot::Head) => {
            sql.push_str(" AND seq <= (SELECT COALESCE(MAX(seq), 0) FROM audit_events)")
        }
        None => {}
    }
    if let Some(u) = q.user_id {
        push(&mut sql, " AND user_id = ?", Arg::S(u.to_string()));
    }
    if let Some(p) = &q.project_id {
        push(&mut sql, " AND project_id = ?", Arg::S(p.clone()));
    }
    for (list, op) in [(&q.events, "IN"), (&q.exclude_events, "NOT IN")] {
        if list.is_empty() {
            continue;
        }
        sql.push_str(&format!(" AND event {op} ("));
        for (i, e) in list.iter().enumerate() {
            push(&mut sql, if i == 0 { "?" } else { ",?" }, Arg::S(e.clone()));
        }
        sql.push(')');
    }
    Ok((sql, args))
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        query = match a {
            Arg::S(s) => query.bind(s),
            Arg::I(i) => query.bind(i),
        };
    }
    query
}

enum Arg {
    S(String),
    I(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = SearchCursor {
            created_us: 1_700_000_000_000_000,
            seq: 42,
            snapshot: 99,
        };
        assert_eq!(SearchCursor::decode(&c.encode()), Some(c));
        for bad in ["", "xyz", "MS4yLjM", "' OR 1=1 --", &"A".repeat(300)] {
            assert_eq!(SearchCursor::decode(bad), None, "{bad}");
        }
    }
}
