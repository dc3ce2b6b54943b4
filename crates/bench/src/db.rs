//! Fresh databases for each scenario, and the raw-database baselines the
//! server is compared with: plain INSERTs on SQLite, COPY on PostgreSQL, of
//! the same rows into a table of the same shape.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use auditlake_store::Backend;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row};

/// The columns of `audit_events` that the store writes, in its order.
pub const EVENT_COLS: &str =
    "seq, id, created_us, event, org_id, group_id, user_id, project_id, content, source_ip, user_agent";

/// A database made for one scenario: a SQLite file in a fresh temporary
/// directory, or a PostgreSQL database created on the local server. Names
/// carry the `auditlake_bench_` prefix so the test suite's clean-up of
/// `auditlake_t_*` leftovers never drops a database in use here.
#[derive(Debug)]
pub struct FreshDb {
    /// URL to connect to it.
    pub url: String,
    /// Its backend.
    pub backend: Backend,
    pg: Option<(String, String)>,
    dir: Option<PathBuf>,
}

impl FreshDb {
    /// Creates an empty database. `pg_admin` is the URL of an existing
    /// PostgreSQL database to issue `CREATE DATABASE` from.
    pub async fn new(backend: Backend, pg_admin: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let tag = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("auditlake-bench-{tag}"));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(FreshDb {
                    url: format!("sqlite://{}/audit.db", dir.display()),
                    backend,
                    pg: None,
                    dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let name = format!("auditlake_bench_{tag}");
                let mut conn = PgConnection::connect(pg_admin)
                    .await
                    .with_context(|| format!("connecting to PostgreSQL at {pg_admin}"))?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .context("CREATE DATABASE")?;
                conn.close().await?;
                let base = pg_admin
                    .split('?')
                    .next()
                    .and_then(|u| u.rsplit_once('/'))
                    .map(|(b, _)| b)
                    .unwrap_or(pg_admin);
                Ok(FreshDb {
                    url: format!("{base}/{name}"),
                    backend,
                    pg: Some((pg_admin.to_owned(), name)),
                    dir: None,
                })
            }
        }
    }

    /// The SQLite file (SQLite only).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("audit.db"))
    }

    /// Bytes on disk: the SQLite files, or `pg_database_size`.
    pub async fn size_bytes(&self) -> Option<u64> {
        if let Some(dir) = &self.dir {
            let total = std::fs::read_dir(dir)
                .ok()?
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum();
            return Some(total);
        }
        let (admin, name) = self.pg.as_ref()?;
        let mut conn = PgConnection::connect(admin).await.ok()?;
        let size: i64 = sqlx::query("SELECT pg_database_size($1) AS s")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .ok()?
            .try_get("s")
            .ok()?;
        let _ = conn.close().await;
        u64::try_from(size).ok()
    }

    /// Drops the database or deletes its files.
    pub async fn cleanup(self) {
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut conn) = PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// SQLite with the PRAGMAs the server uses: WAL, `synchronous=NORMAL`.
async fn sqlite_connect(path: &std::path::Path) -> anyhow::Result<SqliteConnection> {
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await?)
}

/// The DDL of `audit_events` (table and indexes) as the server created it
/// in `db`, so the baseline writes into exactly the same shape even when
/// the migrations change.
pub async fn audit_events_ddl(db: &FreshDb) -> anyhow::Result<Vec<String>> {
    match db.backend {
        Backend::Sqlite => {
            let path = db.sqlite_path().expect("sqlite path");
            let mut conn = sqlite_connect(&path).await?;
            let rows = sqlx::query(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'audit_events' \
                 AND sql IS NOT NULL ORDER BY type DESC, name",
            )
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            let ddl: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>("sql"))
                .collect::<Result<_, _>>()?;
            if !ddl.first().is_some_and(|s| s.starts_with("CREATE TABLE")) {
                bail!("no audit_events table in {}", db.url);
            }
            Ok(ddl)
        }
        Backend::Postgres => {
            let mut conn = PgConnection::connect(&db.url).await?;
            let cols = sqlx::query(
                "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS ty, \
                        a.attnotnull AS notnull \
                 FROM pg_attribute a \
                 WHERE a.attrelid = 'public.audit_events'::regclass AND a.attnum > 0 \
                   AND NOT a.attisdropped ORDER BY a.attnum",
            )
            .fetch_all(&mut conn)
            .await?;
            let mut table = String::from("CREATE TABLE audit_events (");
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    table.push_str(", ");
                }
                let name: String = c.try_get("name")?;
                let ty: String = c.try_get("ty")?;
                let notnull: bool = c.try_get("notnull")?;
                table.push_str(&format!(
                    "{name} {ty}{}",
                    if notnull { " NOT NULL" } else { "" }
                ));
            }
            table.push(')');
            // Primary key and unique constraints come back as their unique
            // indexes: the same work per row.
            let idx = sqlx::query(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' \
                 AND tablename = 'audit_events' ORDER BY indexname",
            )
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            let mut ddl = vec![table];
            for r in idx {
                ddl.push(r.try_get("indexdef")?);
            }
            Ok(ddl)
        }
    }
}

/// One `audit_events` row as the server would store it.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// Log position.
    pub seq: i64,
    /// Event ID.
    pub id: String,
    /// Epoch microseconds.
    pub created_us: i64,
    /// Event name.
    pub event: String,
    /// Org.
    pub org_id: Option<String>,
    /// Group.
    pub group_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// JSON text.
    pub content: String,
    /// Caller's IP.
    pub source_ip: Option<String>,
    /// Caller's user agent.
    pub user_agent: Option<String>,
}

/// Rows per multi-row INSERT statement of the SQLite baseline (11
/// parameters each: 1,100 per statement).
pub const SQLITE_ROWS_PER_INSERT: usize = 100;

/// Inserts `rows` with plain multi-row INSERT statements (prepared once,
/// [`SQLITE_ROWS_PER_INSERT`] rows each) in one transaction, into a fresh
/// SQLite file with the server's PRAGMAs and `ddl`. Returns the time from
/// BEGIN to the end of COMMIT.
pub async fn sqlite_insert_baseline(
    db: &FreshDb,
    ddl: &[String],
    rows: &[RawRow],
) -> anyhow::Result<Duration> {
    let path = db.sqlite_path().expect("sqlite path");
    let mut conn = sqlite_connect(&path).await?;
    for stmt in ddl {
        sqlx::query(stmt).execute(&mut conn).await?;
    }
    let placeholders = |n: usize| -> String {
        let one = format!("({})", ["?"; 11].join(","));
        vec![one; n].join(",")
    };
    let full = format!(
        "INSERT INTO audit_events ({EVENT_COLS}) VALUES {}",
        placeholders(SQLITE_ROWS_PER_INSERT)
    );
    let start = Instant::now();
    let mut tx = conn.begin().await?;
    for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
        let sql = if chunk.len() == SQLITE_ROWS_PER_INSERT {
            full.clone()
        } else {
            format!(
                "INSERT INTO audit_events ({EVENT_COLS}) VALUES {}",
                placeholders(chunk.len())
            )
        };
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.seq)
                .bind(r.id.as_str())
                .bind(r.created_us)
                .bind(r.event.as_str())
                .bind(r.org_id.as_deref())
                .bind(r.group_id.as_deref())
                .bind(r.user_id.as_deref())
                .bind(r.project_id.as_deref())
                .bind(r.content.as_str())
                .bind(r.source_ip.as_deref())
                .bind(r.user_agent.as_deref());
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let elapsed = start.elapsed();
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_events")
        .fetch_one(&mut conn)
        .await?
        .try_get("n")?;
    conn.close().await?;
    if n as usize != rows.len() {
        bail!("SQLite baseline stored {n} rows, not {}", rows.len());
    }
    Ok(elapsed)
}

/// Quotes a CSV field; `None` is an unquoted empty field, which COPY reads
/// as NULL.
fn csv_field(out: &mut String, v: Option<&str>) {
    if let Some(s) = v {
        out.push('"');
        for c in s.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    }
}

/// `rows` as COPY CSV text.
pub fn to_csv(rows: &[RawRow]) -> String {
    let mut out = String::with_capacity(rows.len() * 512);
    for r in rows {
        out.push_str(&r.seq.to_string());
        out.push(',');
        csv_field(&mut out, Some(&r.id));
        out.push(',');
        out.push_str(&r.created_us.to_string());
        for v in [
            Some(r.event.as_str()),
            r.org_id.as_deref(),
            r.group_id.as_deref(),
            r.user_id.as_deref(),
            r.project_id.as_deref(),
            Some(r.content.as_str()),
            r.source_ip.as_deref(),
            r.user_agent.as_deref(),
        ] {
            out.push(',');
            csv_field(&mut out, v);
        }
        out.push('\n');
    }
    out
}

/// COPYs `rows` (CSV, sent in 1 MiB pieces) into a fresh PostgreSQL
/// database with `ddl`, as one statement and so one transaction. Returns
/// the time from the COPY statement to its completion.
pub async fn pg_copy_baseline(
    db: &FreshDb,
    ddl: &[String],
    rows: &[RawRow],
) -> anyhow::Result<Duration> {
    let mut conn = PgConnection::connect(&db.url).await?;
    for stmt in ddl {
        sqlx::query(stmt).execute(&mut conn).await?;
    }
    let csv = to_csv(rows);
    let start = Instant::now();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY audit_events ({EVENT_COLS}) FROM STDIN WITH (FORMAT csv)"
        ))
        .await?;
    let bytes = csv.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        // Cut at a line end so each piece holds whole rows (not required by
        // COPY, but keeps pieces independent).
        let mut end = (at + (1 << 20)).min(bytes.len());
        while end < bytes.len() && bytes[end - 1] != b'\n' {
            end += 1;
        }
        copy.send(&bytes[at..end]).await?;
        at = end;
    }
    let n = copy.finish().await?;
    let elapsed = start.elapsed();
    conn.close().await?;
    if n as usize != rows.len() {
        bail!("PostgreSQL COPY stored {n} rows, not {}", rows.len());
    }
    Ok(elapsed)
}

/// How many rows of `audit_events` have `event = name` in `url` (checks
/// that the server stored what it acknowledged).
pub async fn count_events(url: &str, name: &str) -> anyhow::Result<i64> {
    let opts = sqlx::any::AnyConnectOptions::from_str(url)?;
    let mut conn = sqlx::AnyConnection::connect_with(&opts).await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE event = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await?
        .try_get("n")?;
    conn.close().await?;
    Ok(n)
}

/// `ANALYZE` (PostgreSQL), as autovacuum would do after a bulk load.
pub async fn analyze(url: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::query("ANALYZE").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_nulls() {
        let r = RawRow {
            seq: 7,
            id: "i".into(),
            created_us: 9,
            event: "a.b".into(),
            org_id: None,
            group_id: Some("g".into()),
            user_id: None,
            project_id: None,
            content: r#"{"k":"v,\"x\""}"#.into(),
            source_ip: None,
            user_agent: Some("ua".into()),
        };
        assert_eq!(
            to_csv(&[r]),
            "7,\"i\",9,\"a.b\",,\"g\",,,\"{\"\"k\"\":\"\"v,\\\"\"x\\\"\"\"\"}\",,\"ua\"\n"
        );
    }
}
