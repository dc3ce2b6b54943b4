//! Several appends and ingests applied together in one transaction, with
//! one lookup of idempotency IDs, one numbering of the log and one insert.
//! This is what the group-commit writer runs.
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

use std::collections::{HashMap, HashSet};

use auditlake_core::{AuditEvent, NewEvent, Scope};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::append::{
    events_by_id, lock_log, placeholders, resolve_parents, write_events, IngestItem, IngestOutcome,
    INSERT_CHUNK, PG_JSON_CHUNK,
};
use crate::{rows, Backend, StoreError};

/// One unit of work.
pub(crate) enum Work<'a> {
    /// Append these events.
    Append(&'a [NewEvent]),
    /// Ingest this batch for the tenant, all or none.
    Ingest(Uuid, &'a [IngestItem]),
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

/// Applies `work` in the transaction behind `conn`; see the module docs.
pub(crate) async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    work: &[Work<'_>],
) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
    // Everything below reads and writes under the append lock, so that a
    // concurrent retry committed while this group waited is seen (and
    // replayed) and the org-to-group mapping is the one at this point of
    // the log.
    lock_log(conn, backend).await?;
    let mut all_events: Vec<&NewEvent> = Vec::new();
    for w in work {
        match w {
            Work::Append(events) => all_events.extend(events.iter()),
            Work::Ingest(_, items) => all_events.extend(items.iter().map(|i| &i.event)),
        }
    }
    let parents = resolve_parents(conn, backend, all_events.into_iter()).await?;
    let mut known = lookup_ids(conn, backend, work).await?;

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
            Work::Ingest(scope, items) => match plan_ingest(*scope, items, &known, &org_missing) {
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
                                new_ids.push((*scope, &it.idempotency_id, &it.request_hash, idx));
                                known.insert(
                                    (*scope, it.idempotency_id.clone()),
                                    (it.request_hash.clone(), Held::New(idx)),
                                );
                                held.push(Held::New(idx));
                                replayed.push(false);
                            }
                        }
                    }
                    Plan::Ingest(held, replayed)
                }
            },
        };
        plans.push(plan);
    }

    let created = if fresh.is_empty() {
        Vec::new()
    } else {
        write_events(conn, backend, fresh.iter().copied(), &parents).await?
    };
    record_ids(conn, backend, &new_ids, &created).await?;
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
    let stored = events_by_id(conn, backend, &stored_ids).await?;

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

/// The stored idempotency IDs among those the ingests name.
async fn lookup_ids(
    conn: &mut AnyConnection,
    backend: Backend,
    work: &[Work<'_>],
) -> Result<Known, StoreError> {
    let mut by_scope: HashMap<Uuid, Vec<&str>> = HashMap::new();
    for w in work {
        if let Work::Ingest(scope, items) = w {
            by_scope
                .entry(*scope)
                .or_default()
                .extend(items.iter().map(|i| i.idempotency_id.as_str()));
        }
    }
    let mut known = Known::new();
    for (scope, ids) in by_scope {
        let chunk_len = match backend {
            Backend::Sqlite => INSERT_CHUNK,
            Backend::Postgres => PG_JSON_CHUNK,
        };
        for chunk in ids.chunks(chunk_len) {
            let sql = match backend {
                Backend::Sqlite => format!(
                    "SELECT idempotency_id, request_hash, event_id FROM ingest_ids \
                     WHERE scope_id = ? AND idempotency_id IN {}",
                    placeholders(backend, 1, chunk.len(), 2)
                ),
                // The IDs as one JSON array, each probed in the primary key
                // by a LATERAL subquery (its LIMIT keeps the planner from
                // flattening it into a hash join that scans the table).
                // Not an IN list either: PostgreSQL's cached generic plan
                // for a long IN list scanned every row of the tenant per
                // value.
                Backend::Postgres => "SELECT i.idempotency_id AS idempotency_id, \
                     i.request_hash AS request_hash, i.event_id AS event_id \
                     FROM json_array_elements_text($2::json) AS v(id), \
                     LATERAL (SELECT idempotency_id, request_hash, event_id FROM ingest_ids \
                     WHERE scope_id = $1 AND idempotency_id = v.id LIMIT 1) AS i"
                    .to_owned(),
            };
            let mut q = sqlx::query(&sql).bind(scope.to_string());
            match backend {
                Backend::Sqlite => {
                    for id in chunk {
                        q = q.bind(*id);
                    }
                }
                Backend::Postgres => {
                    q = q.bind(
                        serde_json::to_string(chunk)
                            .map_err(|e| StoreError::Corrupt(format!("encoding IDs: {e}")))?,
                    );
                }
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

/// Records the idempotency IDs of the events this group created.
async fn record_ids(
    conn: &mut AnyConnection,
    backend: Backend,
    new_ids: &[(Uuid, &str, &str, usize)],
    created: &[AuditEvent],
) -> Result<(), StoreError> {
    match backend {
        Backend::Sqlite => {
            for chunk in new_ids.chunks(INSERT_CHUNK) {
                let sql = format!(
                    "INSERT INTO ingest_ids (scope_id, idempotency_id, event_id, request_hash) \
                     VALUES {}",
                    placeholders(backend, chunk.len(), 4, 1)
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
        }
        // One JSON parameter for all rows (see `append::write_events`).
        Backend::Postgres => {
            #[derive(serde::Serialize)]
            struct Row<'a> {
                scope_id: Uuid,
                idempotency_id: &'a str,
                event_id: Uuid,
                request_hash: &'a str,
            }
            for chunk in new_ids.chunks(PG_JSON_CHUNK) {
                let rows: Vec<Row> = chunk
                    .iter()
                    .map(|(scope, id, hash, idx)| Row {
                        scope_id: *scope,
                        idempotency_id: id,
                        event_id: created[*idx].id,
                        request_hash: hash,
                    })
                    .collect();
                let json = serde_json::to_string(&rows)
                    .map_err(|e| StoreError::Corrupt(format!("encoding rows: {e}")))?;
                sqlx::query(
                    "INSERT INTO ingest_ids (scope_id, idempotency_id, event_id, request_hash) \
                     SELECT scope_id, idempotency_id, event_id, request_hash \
                     FROM json_to_recordset($1::json) AS r(scope_id text, idempotency_id text, \
                     event_id text, request_hash text)",
                )
                .bind(json)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}
