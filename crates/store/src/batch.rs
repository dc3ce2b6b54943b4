//! Several appends and ingests applied together in one transaction, with
//! one lookup of idempotency IDs, one numbering of the log and one insert.
//! This is what the group-commit writer runs, and what a state change runs
//! for its events ([`insert_events`]): the one path that writes audit
//! events (see [`crate::append`]).
//!
//! # Contract
//!
//! Each unit of [`Work`] gets its own answer. A unit fails for its own
//! reasons (an unknown org, an idempotency ID used for something else, the
//! same ID twice in one batch) during the planning pass, before anything is
//! written, so it leaves nothing behind and its neighbours still commit. An
//! `Err` from [`apply`] itself is a database failure: the caller must roll
//! the transaction back. Units are planned in order, so a later unit that
//! repeats an earlier unit's idempotency ID replays the event the earlier
//! one creates.
//!
//! # Round trips
//!
//! The writer holds the append lock from the first read to the commit, so
//! the time between statements is time no other group can use. On
//! PostgreSQL, where every statement is a network round trip, a group is
//! `BEGIN` with the lock in the same message
//! ([`crate::append::WritePool::begin_locked`]), one read of everything
//! planning needs ([`prefetch_pg`]), the writes ([`write_pg`]) and
//! `COMMIT`. The writes send rows in PostgreSQL's binary `COPY` format
//! ([`crate::pg_copy`]), the cheapest way to hand the server rows. SQLite
//! runs in process and keeps one statement per table.

use std::collections::{HashMap, HashSet};

use auditlake_core::{AuditEvent, NewEvent, Scope};
use sqlx::{AnyConnection, PgConnection, Row};
use uuid::Uuid;

use crate::append::{number, resolve_parents, write_events, WriteTx};
use crate::chain::{link_all, parse_link, Heads};
use crate::pg_copy::CopyRows;
use crate::sql::{placeholders, INSERT_CHUNK};
use crate::{rows, StoreError};

/// One event submitted through the ingest API.
#[derive(Debug, Clone)]
pub struct IngestItem {
    /// The client's idempotency ID, unique per target tenant.
    pub idempotency_id: String,
    /// A hash of what the client sent, to tell a true repeat from a clash.
    pub request_hash: String,
    /// The event to store when the ID is new.
    pub event: NewEvent,
}

/// The `api.access` event of the request that ingests a batch, written in
/// the batch's own transaction so the request costs one commit, not two.
/// The request's answer depends on the batch's outcome, so there is one
/// event per possible answer; the writer appends the one that applies.
#[derive(Debug, Clone)]
pub struct IngestAccess {
    /// Appended when the batch stores at least one new event.
    pub created: NewEvent,
    /// Appended when every item replays an earlier one.
    pub replayed: NewEvent,
}

/// What happened to one ingested item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored now.
    Created(AuditEvent),
    /// The ID was seen before with the same content: the original event.
    Replayed(AuditEvent),
}

impl IngestOutcome {
    /// The stored event either way.
    pub fn event(&self) -> &AuditEvent {
        match self {
            IngestOutcome::Created(e) | IngestOutcome::Replayed(e) => e,
        }
    }
}

/// One unit of work.
pub(crate) enum Work<'a> {
    /// Append these events.
    Append(&'a [NewEvent]),
    /// Ingest this batch for the tenant, all or none, and append the
    /// access event that fits its outcome when it succeeds.
    Ingest(Uuid, &'a [IngestItem], Option<&'a IngestAccess>),
}

/// What a unit produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The appended events, as stored.
    Appended(Vec<AuditEvent>),
    /// One outcome per ingested item.
    Ingested(Vec<IngestOutcome>),
}

/// Where an idempotency ID's event is.
#[derive(Clone, Copy)]
enum Held {
    /// Committed before: its event ID.
    Stored(Uuid),
    /// Created by this group: its index in `fresh`.
    New(usize),
}

/// How one planned unit will be answered.
enum Plan {
    Failed(StoreError),
    /// Indexes into `fresh`.
    Append(std::ops::Range<usize>),
    /// Per item.
    Ingest(Vec<Held>, Vec<bool>),
}

/// Appends the events of a state change in its transaction `tx`,
/// returning them as stored (with `seq` and `group_id` filled in).
pub(crate) async fn insert_events(
    tx: &mut WriteTx,
    events: &[NewEvent],
) -> Result<Vec<AuditEvent>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    tx.lock_log().await?;
    match apply(tx, &[Work::Append(events)]).await?.pop() {
        Some(Ok(Outcome::Appended(stored))) => Ok(stored),
        Some(Err(e)) => Err(e),
        _ => Err(StoreError::Corrupt("outcome of the wrong kind".into())),
    }
}

/// Applies `work` in `tx`, which must hold the append lock
/// ([`crate::append::WritePool::begin_locked`], [`WriteTx::lock_log`]);
/// see the module docs.
pub(crate) async fn apply(
    tx: &mut WriteTx,
    work: &[Work<'_>],
) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
    // Everything below reads and writes under the append lock, so that a
    // concurrent retry committed while this group waited is seen (and
    // replayed) and the org-to-group mapping is the one at this point of
    // the log.
    let mut all_events: Vec<&NewEvent> = Vec::new();
    for w in work {
        match w {
            Work::Append(events) => all_events.extend(events.iter()),
            Work::Ingest(_, items, access) => {
                all_events.extend(items.iter().map(|i| &i.event));
                all_events.extend(access.iter().flat_map(|a| [&a.created, &a.replayed]));
            }
        }
    }
    let Prefetched {
        parents,
        mut known,
        log,
    } = match &mut *tx {
        WriteTx::Postgres(c) => prefetch_pg(c, &all_events, work).await?,
        WriteTx::Sqlite(c) => Prefetched {
            parents: resolve_parents(c, all_events.iter().copied()).await?,
            known: lookup_ids(c, work).await?,
            log: None,
        },
    };

    let org_missing = |e: &NewEvent| matches!(e.scope, Scope::Org(o) if !parents.contains_key(&o));
    let mut fresh: Vec<&NewEvent> = Vec::new();
    // (scope, idempotency id, request hash, index in `fresh`) to record.
    let mut new_ids: Vec<(Uuid, &str, &str, usize)> = Vec::new();
    let mut plans = Vec::with_capacity(work.len());
    for w in work {
        let plan = match w {
            Work::Append(events) => {
                if events.iter().any(org_missing) {
                    Plan::Failed(StoreError::NotFound("organization"))
                } else {
                    let start = fresh.len();
                    fresh.extend(events.iter());
                    Plan::Append(start..fresh.len())
                }
            }
            Work::Ingest(scope, items, access) => {
                match plan_ingest(*scope, items, &known, &org_missing) {
                    Err(e) => Plan::Failed(e),
                    Ok(replays) => {
                        let mut held = Vec::with_capacity(items.len());
                        let mut replayed = Vec::with_capacity(items.len());
                        for (it, replay) in items.iter().zip(replays) {
                            match replay {
                                Some(h) => {
                                    held.push(h);
                                    replayed.push(true);
                                }
                                None => {
                                    let idx = fresh.len();
                                    fresh.push(&it.event);
                                    new_ids.push((
                                        *scope,
                                        &it.idempotency_id,
                                        &it.request_hash,
                                        idx,
                                    ));
                                    known.insert(
                                        (*scope, it.idempotency_id.clone()),
                                        (it.request_hash.clone(), Held::New(idx)),
                                    );
                                    held.push(Held::New(idx));
                                    replayed.push(false);
                                }
                            }
                        }
                        if let Some(a) = access {
                            let any_new = replayed.iter().any(|r| !r);
                            fresh.push(if any_new { &a.created } else { &a.replayed });
                        }
                        Plan::Ingest(held, replayed)
                    }
                }
            }
        };
        plans.push(plan);
    }

    let created = match (&mut *tx, log) {
        _ if fresh.is_empty() => Vec::new(),
        (WriteTx::Postgres(c), Some((head, heads))) => {
            write_pg(c, &fresh, &parents, head, heads, &new_ids).await?
        }
        (WriteTx::Postgres(_), None) => {
            return Err(StoreError::Corrupt("prefetch without the log head".into()))
        }
        (WriteTx::Sqlite(c), _) => {
            let created = write_events(c, fresh.iter().copied(), &parents).await?;
            record_ids(c, &new_ids, &created).await?;
            created
        }
    };
    let stored_ids: Vec<Uuid> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::Ingest(held, _) => Some(held),
            _ => None,
        })
        .flatten()
        .filter_map(|h| match h {
            Held::Stored(id) => Some(*id),
            Held::New(_) => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let stored = match tx {
        WriteTx::Postgres(c) => events_by_id_pg(c, &stored_ids).await?,
        WriteTx::Sqlite(c) => events_by_id_sqlite(c, &stored_ids).await?,
    };

    plans
        .into_iter()
        .map(|plan| {
            Ok(match plan {
                Plan::Failed(e) => Err(e),
                Plan::Append(range) => Ok(Outcome::Appended(created[range].to_vec())),
                Plan::Ingest(held, replayed) => {
                    let mut out = Vec::with_capacity(held.len());
                    for (h, was_replay) in held.into_iter().zip(replayed) {
                        let event = match h {
                            Held::New(i) => created[i].clone(),
                            Held::Stored(id) => stored
                                .get(&id)
                                .cloned()
                                .ok_or(StoreError::NotFound("replayed event"))?,
                        };
                        out.push(if was_replay {
                            IngestOutcome::Replayed(event)
                        } else {
                            IngestOutcome::Created(event)
                        });
                    }
                    Ok(Outcome::Ingested(out))
                }
            })
        })
        .collect()
}

type Known = HashMap<(Uuid, String), (String, Held)>;

/// What a group reads under the append lock before it plans.
struct Prefetched {
    /// The parent group of each org the events name (existing orgs only).
    parents: HashMap<Uuid, Option<Uuid>>,
    /// The stored idempotency IDs among those the ingests name.
    known: Known,
    /// PostgreSQL: the log's head and the heads of the chains the events
    /// extend, read in the same statement (SQLite reads them as it writes).
    log: Option<(i64, Heads)>,
}

/// PostgreSQL: everything a group reads before it writes, in one statement
/// instead of four. Each statement is a round trip to the server, and the
/// writer holds the append lock across all of them: under load, round
/// trips, not rows, bound how fast groups follow each other. The rows come
/// tagged by kind: `p` org parents, `i` stored idempotency IDs, `c` chain
/// heads, `h` the log's head.
async fn prefetch_pg(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    work: &[Work<'_>],
) -> Result<Prefetched, StoreError> {
    let mut orgs: Vec<String> = Vec::new();
    let mut chains: Vec<String> = Vec::new();
    for e in events {
        let chain = match e.scope {
            Scope::Org(o) => {
                orgs.push(o.to_string());
                o
            }
            Scope::Group(g) => g,
            Scope::User => Uuid::nil(),
        };
        chains.push(chain.to_string());
    }
    for list in [&mut orgs, &mut chains] {
        list.sort_unstable();
        list.dedup();
    }
    let (mut id_scopes, mut id_values): (Vec<String>, Vec<&str>) = (Vec::new(), Vec::new());
    for w in work {
        if let Work::Ingest(scope, items, _) = w {
            let scope = scope.to_string();
            for it in items.iter() {
                id_scopes.push(scope.clone());
                id_values.push(&it.idempotency_id);
            }
        }
    }
    // Each list is probed by primary key through LATERAL ... LIMIT 1: not
    // an IN list, whose cached generic plan can scan every row of a tenant
    // per value, and not a join the planner may turn into a hash join that
    // scans the table.
    let sql = "SELECT 'p' AS k, o.id AS a, o.group_id AS b, NULL::text AS c, NULL::text AS d, \
                 NULL::bigint AS n \
               FROM unnest($1::text[]) AS v(id), \
               LATERAL (SELECT id, group_id FROM orgs WHERE id = v.id LIMIT 1) AS o \
             UNION ALL \
             SELECT 'i', i.scope_id, i.idempotency_id, i.request_hash, i.event_id, NULL \
               FROM unnest($2::text[], $3::text[]) AS v(s, i), \
               LATERAL (SELECT scope_id, idempotency_id, request_hash, event_id FROM ingest_ids \
                 WHERE scope_id = v.s AND idempotency_id = v.i LIMIT 1) AS i \
             UNION ALL \
             SELECT 'c', h.chain_id, h.hash, NULL, NULL, h.seq \
               FROM unnest($4::text[]) AS v(id), \
               LATERAL (SELECT chain_id, hash, seq FROM chain_heads WHERE chain_id = v.id LIMIT 1) AS h \
             UNION ALL \
             SELECT 'h', NULL, NULL, NULL, NULL, (SELECT COALESCE(MAX(seq), 0) FROM audit_events)";
    let rows = sqlx::query(sql)
        .bind(orgs)
        .bind(id_scopes)
        .bind(id_values)
        .bind(chains)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Prefetched {
        parents: HashMap::new(),
        known: Known::new(),
        log: None,
    };
    let (mut head, mut heads) = (None, Heads::new());
    for row in rows {
        let kind: String = row.try_get("k")?;
        match kind.as_str() {
            "p" => {
                out.parents
                    .insert(rows::uuid(&row, "a")?, rows::opt_uuid(&row, "b")?);
            }
            "i" => {
                out.known.insert(
                    (rows::uuid(&row, "a")?, row.try_get("b")?),
                    (row.try_get("c")?, Held::Stored(rows::uuid(&row, "d")?)),
                );
            }
            "c" => {
                let hash: String = row.try_get("b")?;
                heads.insert(
                    rows::uuid(&row, "a")?,
                    (row.try_get("n")?, parse_link(&hash)?),
                );
            }
            "h" => head = Some(row.try_get::<i64, _>("n")?),
            other => return Err(StoreError::Corrupt(format!("prefetch row kind {other:?}"))),
        }
    }
    let head = head.ok_or_else(|| StoreError::Corrupt("prefetch without the log head".into()))?;
    out.log = Some((head, heads));
    Ok(out)
}

/// PostgreSQL: writes a group's events and their idempotency IDs with
/// binary `COPY` and moves the chains' heads, from the head and chain heads
/// read under the append lock.
async fn write_pg(
    conn: &mut PgConnection,
    fresh: &[&NewEvent],
    parents: &HashMap<Uuid, Option<Uuid>>,
    head: i64,
    mut heads: Heads,
    new_ids: &[(Uuid, &str, &str, usize)],
) -> Result<Vec<AuditEvent>, StoreError> {
    let created = number(fresh.iter().copied(), parents, head);
    let links = link_all(&mut heads, &created);

    let bytes = created.iter().map(|e| e.content.len() + 400).sum();
    let mut events = CopyRows::new(13, bytes);
    for (e, link) in created.iter().zip(&links) {
        events
            .row()
            .int8(e.seq)
            .display(Some(e.id))
            .int8(e.created_us)
            .text(Some(&e.event))
            .display(e.org_id)
            .display(e.group_id)
            .display(e.user_id)
            .text(e.project_id.as_deref())
            .text(Some(&e.content))
            .text(e.source_ip.as_deref())
            .text(e.user_agent.as_deref())
            .display(e.ingested_by)
            .text(Some(link));
    }
    copy_in(
        conn,
        &format!(
            "COPY audit_events ({}, chain_hash) FROM STDIN (FORMAT binary)",
            rows::EVENT_COLS
        ),
        events.finish(),
    )
    .await?;

    if !new_ids.is_empty() {
        let bytes = new_ids.iter().map(|(_, id, _, _)| id.len() + 200).sum();
        let mut ids = CopyRows::new(4, bytes);
        for (scope, id, hash, idx) in new_ids {
            ids.row()
                .display(Some(scope))
                .text(Some(id))
                .display(Some(created[*idx].id))
                .text(Some(hash));
        }
        copy_in(
            conn,
            "COPY ingest_ids (scope_id, idempotency_id, event_id, request_hash) \
             FROM STDIN (FORMAT binary)",
            ids.finish(),
        )
        .await?;
    }

    // Only the chains this group extended: the prefetch may hold heads of
    // chains whose events failed their plan.
    let mut moved: Vec<Uuid> = created
        .iter()
        .map(auditlake_core::chain::chain_of)
        .collect();
    moved.sort_unstable();
    moved.dedup();
    let (mut chain_ids, mut seqs, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
    for id in moved {
        if let Some((seq, link)) = heads.get(&id) {
            chain_ids.push(id.to_string());
            seqs.push(*seq);
            hashes.push(auditlake_core::chain::to_hex(link));
        }
    }
    sqlx::query(
        "INSERT INTO chain_heads (chain_id, seq, hash) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) \
         ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(chain_ids)
    .bind(seqs)
    .bind(hashes)
    .execute(&mut *conn)
    .await?;
    Ok(created)
}

/// Runs `statement`, a `COPY ... FROM STDIN (FORMAT binary)`, with `body`.
async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    body: Vec<u8>,
) -> Result<(), StoreError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(body).await?;
    copy.finish().await?;
    Ok(())
}

/// PostgreSQL: the stored events with these IDs (replays), each probed by
/// its unique index as in [`prefetch_pg`].
async fn events_by_id_pg(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, AuditEvent>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT e.* FROM unnest($1::text[]) AS v(vid), \
         LATERAL (SELECT {} FROM audit_events WHERE id = v.vid LIMIT 1) AS e",
        rows::EVENT_COLS
    );
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    sqlx::query(&sql)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| rows::event(row).map(|e| (e.id, e)))
        .collect()
}

/// SQLite: the stored events with these IDs (replays).
async fn events_by_id_sqlite(
    conn: &mut AnyConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, AuditEvent>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(INSERT_CHUNK) {
        let sql = format!(
            "SELECT {} FROM audit_events WHERE id IN {}",
            rows::EVENT_COLS,
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let e = rows::event(&row)?;
            out.insert(e.id, e);
        }
    }
    Ok(out)
}

/// Decides each item of one ingest: `Some(held)` replays, `None` is new.
fn plan_ingest(
    scope: Uuid,
    items: &[IngestItem],
    known: &Known,
    org_missing: &impl Fn(&NewEvent) -> bool,
) -> Result<Vec<Option<Held>>, StoreError> {
    let mut distinct = HashSet::with_capacity(items.len());
    if let Some(dup) = items.iter().find(|it| !distinct.insert(&it.idempotency_id)) {
        return Err(StoreError::Invalid(format!(
            "idempotency id {:?} appears more than once in the batch",
            dup.idempotency_id
        )));
    }
    let mut plan = Vec::with_capacity(items.len());
    for it in items {
        match known.get(&(scope, it.idempotency_id.clone())) {
            Some((hash, _)) if *hash != it.request_hash => {
                return Err(StoreError::Conflict(format!(
                    "idempotency id {:?} was already used for a different event",
                    it.idempotency_id
                )))
            }
            Some((_, held)) => plan.push(Some(*held)),
            None if org_missing(&it.event) => return Err(StoreError::NotFound("organization")),
            None => plan.push(None),
        }
    }
    Ok(plan)
}

/// SQLite: the stored idempotency IDs among those the ingests name
/// (PostgreSQL reads them in [`prefetch_pg`]).
async fn lookup_ids(conn: &mut AnyConnection, work: &[Work<'_>]) -> Result<Known, StoreError> {
    let mut by_scope: HashMap<Uuid, Vec<&str>> = HashMap::new();
    for w in work {
        if let Work::Ingest(scope, items, _) = w {
            by_scope
                .entry(*scope)
                .or_default()
                .extend(items.iter().map(|i| i.idempotency_id.as_str()));
        }
    }
    let mut known = Known::new();
    for (scope, ids) in by_scope {
        for chunk in ids.chunks(INSERT_CHUNK) {
            let sql = format!(
                "SELECT idempotency_id, request_hash, event_id FROM ingest_ids \
                 WHERE scope_id = ? AND idempotency_id IN {}",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(scope.to_string());
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&mut *conn).await? {
                known.insert(
                    (scope, row.try_get("idempotency_id")?),
                    (
                        row.try_get("request_hash")?,
                        Held::Stored(rows::uuid(&row, "event_id")?),
                    ),
                );
            }
        }
    }
    Ok(known)
}

/// SQLite: records the idempotency IDs of the events this group created
/// (PostgreSQL writes them in [`write_pg`]).
async fn record_ids(
    conn: &mut AnyConnection,
    new_ids: &[(Uuid, &str, &str, usize)],
    created: &[AuditEvent],
) -> Result<(), StoreError> {
    for chunk in new_ids.chunks(INSERT_CHUNK) {
        let sql = format!(
            "INSERT INTO ingest_ids (scope_id, idempotency_id, event_id, request_hash) VALUES {}",
            placeholders(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (scope, id, hash, idx) in chunk {
            q = q
                .bind(scope.to_string())
                .bind(*id)
                .bind(created[*idx].id.to_string())
                .bind(*hash);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
