//! The per-tenant hash chain, as stored: linking events as they are
//! appended, linking events stored before the chain existed, and verifying
//! a chain.
//!
//! # Invariants
//!
//! - Every event is linked in the transaction that appends it, under the
//!   append lock, from the head of its chain (`chain_heads`), and the head
//!   moves in that same transaction. So a chain's links follow `seq`, and a
//!   committed event always has its link.
//! - Verification reads the head first and checks only events up to it:
//!   appends that commit while it runs are neither a false break nor
//!   silently half-checked.
//!
//! The definition of a link and of a chain is [`auditlake_core::chain`].

use std::collections::HashMap;

use auditlake_core::chain::{self, Link, GENESIS};
use auditlake_core::AuditEvent;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::sql::{placeholders, INSERT_CHUNK};
use crate::{rows, Store, StoreError};

/// Events read per statement while verifying.
const PAGE: i64 = 10_000;

/// SQLite: the links of `events`, in order, continuing each one's chain
/// from its stored head; moves the heads. The caller holds the append lock
/// and inserts the events with these links in the same transaction.
/// (PostgreSQL reads and moves the heads in `batch`.)
pub(crate) async fn extend(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
) -> Result<Vec<String>, StoreError> {
    let mut ids: Vec<Uuid> = events.iter().map(chain::chain_of).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut heads = read_heads(conn, &ids).await?;
    let links = link_all(&mut heads, events);
    write_heads(conn, &heads).await?;
    Ok(links)
}

/// Heads of chains by chain ID: the `seq` and link of each one's last event.
pub(crate) type Heads = HashMap<Uuid, (i64, Link)>;

/// The links of `events`, in order, each continuing its chain from
/// `heads` (a chain missing there starts at the genesis link); moves
/// `heads` past them.
pub(crate) fn link_all(heads: &mut Heads, events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let head = heads.entry(chain::chain_of(e)).or_insert((0, GENESIS));
            *head = (e.seq, chain::link(&head.1, e));
            chain::to_hex(&head.1)
        })
        .collect()
}

/// A stored head's hash, decoded.
pub(crate) fn parse_link(hash: &str) -> Result<Link, StoreError> {
    chain::from_hex(hash).ok_or_else(|| StoreError::Corrupt(format!("chain head hash {hash:?}")))
}

async fn read_heads(conn: &mut AnyConnection, ids: &[Uuid]) -> Result<Heads, StoreError> {
    let mut heads = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(INSERT_CHUNK) {
        let sql = format!(
            "SELECT chain_id, seq, hash FROM chain_heads WHERE chain_id IN {}",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let hash: String = row.try_get("hash")?;
            heads.insert(
                rows::uuid(&row, "chain_id")?,
                (row.try_get("seq")?, parse_link(&hash)?),
            );
        }
    }
    Ok(heads)
}

async fn write_heads(conn: &mut AnyConnection, heads: &Heads) -> Result<(), StoreError> {
    let heads: Vec<_> = heads.iter().collect();
    for chunk in heads.chunks(INSERT_CHUNK) {
        let sql = format!(
            "INSERT INTO chain_heads (chain_id, seq, hash) VALUES {} \
             ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            placeholders(chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql);
        for (id, (seq, link)) in chunk {
            q = q.bind(id.to_string()).bind(*seq).bind(chain::to_hex(link));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The outcome of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The chain: an org's or a group's ID, or the nil UUID for platform
    /// events.
    pub chain: Uuid,
    /// Events checked.
    pub events: u64,
    /// The `seq` of the chain's last event as recorded by its head, if the
    /// chain has one.
    pub head_seq: Option<i64>,
    /// The first place where the chain does not hold, if any.
    pub first_break: Option<ChainBreak>,
}

impl ChainBreak {
    fn at(e: &AuditEvent, problem: &str) -> Self {
        Self {
            seq: e.seq,
            event_id: Some(e.id),
            problem: problem.into(),
        }
    }
}

impl ChainReport {
    /// Whether the chain holds.
    pub fn intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Where and how a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The `seq` of the first event that does not verify, or of the chain's
    /// recorded head when the events end early.
    pub seq: i64,
    /// That event's ID, when the event is there.
    pub event_id: Option<Uuid>,
    /// What is wrong, for a human.
    pub problem: String,
}

impl Store {
    /// Verifies the hash chain of one tenant (an org's or a group's ID; the
    /// nil UUID for platform events) and reports the first break.
    pub async fn verify_chain(&self, chain_id: Uuid) -> Result<ChainReport, StoreError> {
        let mut head = self.chain_head(chain_id).await?;
        let mut report = ChainReport {
            chain: chain_id,
            events: 0,
            head_seq: None,
            first_break: None,
        };
        let mut prev = GENESIS;
        let mut last: Option<(i64, Uuid)> = None;
        loop {
            let upto = head.as_ref().map_or(0, |h| h.0);
            report.head_seq = head.as_ref().map(|h| h.0);
            // Check every event up to the head, page by page.
            loop {
                let after = last.map_or(0, |(s, _)| s);
                let page = self.chain_events(chain_id, after, upto, PAGE).await?;
                if page.is_empty() {
                    break;
                }
                for (e, stored) in &page {
                    let expected = chain::link(&prev, e);
                    let problem = match stored.as_deref().map(chain::from_hex) {
                        None => Some("the event has no chain hash"),
                        Some(None) => Some("the event's chain hash is not a SHA-256 digest"),
                        Some(Some(link)) if link != expected => Some(
                            "the event does not match its chain hash: it was altered, or an \
                             event before it in the chain was removed, inserted or altered",
                        ),
                        Some(Some(_)) => None,
                    };
                    if let Some(problem) = problem {
                        report.first_break = Some(ChainBreak::at(e, problem));
                        return Ok(report);
                    }
                    prev = expected;
                    report.events += 1;
                    last = Some((e.seq, e.id));
                }
            }
            // Events past the head are either appends that committed while
            // this ran (the head has moved with them: check them too) or
            // rows slipped in behind the head's back.
            let Some((beyond, _)) = self.chain_events(chain_id, upto, i64::MAX, 1).await?.pop()
            else {
                break;
            };
            let now = self.chain_head(chain_id).await?;
            if now == head {
                let problem = match head {
                    None => "the event belongs to a chain with no recorded head",
                    Some(_) => {
                        "the event lies beyond the chain's recorded head: it was inserted, \
                                or the head was moved back"
                    }
                };
                report.first_break = Some(ChainBreak::at(&beyond, problem));
                return Ok(report);
            }
            head = now;
        }
        if let Some((seq, hash)) = head {
            let problem = if last.is_none_or(|(s, _)| s != seq) {
                Some(format!(
                    "the chain's head is event seq {seq}, but its events end at {}: events at \
                     its end were removed",
                    last.map_or("none".into(), |(s, _)| format!("seq {s}"))
                ))
            } else if chain::from_hex(&hash) != Some(prev) {
                Some("the chain's last event does not match the recorded head".into())
            } else {
                None
            };
            report.first_break = problem.map(|problem| ChainBreak {
                seq,
                event_id: last.filter(|(s, _)| *s == seq).map(|(_, id)| id),
                problem,
            });
        }
        Ok(report)
    }

    async fn chain_head(&self, chain_id: Uuid) -> Result<Option<(i64, String)>, StoreError> {
        sqlx::query("SELECT seq, hash FROM chain_heads WHERE chain_id = $1")
            .bind(chain_id.to_string())
            .fetch_optional(&self.read)
            .await?
            .map(|row| Ok((row.try_get("seq")?, row.try_get("hash")?)))
            .transpose()
    }

    /// The chain's events with `after < seq <= upto`, in order, with their
    /// stored links.
    async fn chain_events(
        &self,
        chain_id: Uuid,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<(AuditEvent, Option<String>)>, StoreError> {
        let filter = if chain_id.is_nil() {
            "org_id IS NULL AND group_id IS NULL"
        } else {
            "(org_id = $4 OR (org_id IS NULL AND group_id = $4))"
        };
        let sql = format!(
            "SELECT {}, chain_hash FROM audit_events WHERE seq > $1 AND seq <= $2 AND {filter} \
             ORDER BY seq LIMIT $3",
            rows::EVENT_COLS
        );
        let mut q = sqlx::query(&sql).bind(after).bind(upto).bind(limit);
        if !chain_id.is_nil() {
            q = q.bind(chain_id.to_string());
        }
        q.fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| Ok((rows::event(row)?, row.try_get("chain_hash")?)))
            .collect()
    }

    /// Every chain there is reason to check: each with a recorded head,
    /// every org and group (a tenant whose head was deleted must still be
    /// checked), and the platform chain.
    pub async fn chains(&self) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query(
            "SELECT chain_id AS id FROM chain_heads \
             UNION SELECT id FROM orgs UNION SELECT id FROM groups_",
        )
        .fetch_all(&self.read)
        .await?;
        let mut ids = rows
            .iter()
            .map(|r| rows::uuid(r, "id"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.push(Uuid::nil());
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}
