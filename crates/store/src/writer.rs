//! Group commit for appends that stand alone (`api.access`, ingest).
//!
//! # Design
//!
//! Every request that only appends events (no other state change) sends a
//! [`Job`] to one writer task per process. The task takes whatever jobs are
//! queued (up to [`MAX_GROUP_EVENTS`] events), runs them one after another
//! in a single transaction and commits once, then answers each job. Under
//! load this turns thousands of small commits (each one a WAL flush on
//! PostgreSQL, each one a turn of the single SQLite writer) into a few large
//! ones, without making any caller wait longer than one commit.
//!
//! # Invariants
//!
//! - A job's answer is sent only after the commit that holds its events, so
//!   an acknowledged event is durable.
//! - The group is applied by `batch::apply`: one lookup of idempotency IDs,
//!   one numbering of the log, one multi-row insert for all its jobs. A job
//!   fails for its own reasons (conflict, unknown tenant) only in the
//!   planning pass, before anything is written, so a failed job leaves
//!   nothing behind in the shared transaction and the others commit.
//! - A database error aborts the group; each job of it is then retried alone
//!   in its own transaction, so one bad job cannot fail its neighbours and
//!   every job gets its own true answer.
//! - Ordering and scope rules are those of [`crate::append`]: the jobs are
//!   numbered and scoped by the same `batch::apply` as state changes' events,
//!   under the same lock.

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use auditlake_core::{AuditEvent, NewEvent};

use crate::append::WritePool;
use crate::batch::{self, IngestAccess, IngestItem, IngestOutcome, Outcome, Work};
use crate::{Store, StoreError};

/// Most events one group commit takes before it commits.
pub const MAX_GROUP_EVENTS: usize = 5_000;

/// Jobs waiting for the writer, at most.
const QUEUE: usize = 4_096;

/// One unit of work for the writer.
pub(crate) enum Job {
    /// Append events.
    Append {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<AuditEvent>, StoreError>>,
    },
    /// Ingest a batch for a tenant, all or none.
    Ingest {
        scope_id: Uuid,
        items: Vec<IngestItem>,
        /// The request's `api.access` event, appended with the batch
        /// (boxed: two whole events would make every job that large).
        access: Option<Box<IngestAccess>>,
        reply: oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
    },
}

impl Job {
    fn len(&self) -> usize {
        match self {
            Job::Append { events, .. } => events.len(),
            Job::Ingest { items, access, .. } => items.len() + usize::from(access.is_some()),
        }
    }
}

enum Done {
    Append(Result<Vec<AuditEvent>, StoreError>),
    Ingest(Result<Vec<IngestOutcome>, StoreError>),
}

/// Starts the writer task; it ends when every sender is dropped.
pub(crate) fn spawn(pool: WritePool, appended: Appended) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(pool, rx, appended));
    tx
}

type Appended = std::sync::Arc<tokio::sync::watch::Sender<u64>>;

async fn run(pool: WritePool, mut rx: mpsc::Receiver<Job>, appended: Appended) {
    while let Some(first) = rx.recv().await {
        let mut size = first.len();
        let mut jobs = vec![first];
        while size < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(job) => {
                    size += job.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("auditlake_group_commit_events").record(size as f64);
        let result = commit_group(&pool, &jobs).await;
        // Wake followers even after a failed group: the one-by-one retries
        // below may have committed some of its jobs.
        let bump = || appended.send_modify(|n| *n = n.wrapping_add(1));
        match result {
            Ok(done) => {
                bump();
                answer(jobs, done)
            }
            Err(e) => {
                if jobs.len() > 1 {
                    tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; retrying its jobs one by one");
                }
                for job in jobs {
                    let done = match commit_group(&pool, std::slice::from_ref(&job)).await {
                        Ok(mut d) => d.pop().expect("one result per job"),
                        Err(e) => match &job {
                            Job::Append { .. } => Done::Append(Err(e)),
                            Job::Ingest { .. } => Done::Ingest(Err(e)),
                        },
                    };
                    answer(vec![job], vec![done]);
                }
                bump();
            }
        }
    }
}

/// Runs `jobs` in one transaction. `Err` means the transaction failed as a
/// whole (nothing committed); job-level failures come back inside `Ok`.
async fn commit_group(pool: &WritePool, jobs: &[Job]) -> Result<Vec<Done>, StoreError> {
    let work: Vec<Work> = jobs
        .iter()
        .map(|j| match j {
            Job::Append { events, .. } => Work::Append(events),
            Job::Ingest {
                scope_id,
                items,
                access,
                ..
            } => Work::Ingest(*scope_id, items, access.as_deref()),
        })
        .collect();
    let mut tx = pool.begin_locked().await?;
    let outcomes = match batch::apply(&mut tx, &work).await {
        Ok(outcomes) => {
            tx.commit().await?;
            outcomes
        }
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    Ok(jobs
        .iter()
        .zip(outcomes)
        .map(|(job, out)| {
            let wrong = || StoreError::Corrupt("outcome of the wrong kind".into());
            match job {
                Job::Append { .. } => Done::Append(out.and_then(|o| match o {
                    Outcome::Appended(e) => Ok(e),
                    Outcome::Ingested(_) => Err(wrong()),
                })),
                Job::Ingest { .. } => Done::Ingest(out.and_then(|o| match o {
                    Outcome::Ingested(e) => Ok(e),
                    Outcome::Appended(_) => Err(wrong()),
                })),
            }
        })
        .collect())
}

fn answer(jobs: Vec<Job>, done: Vec<Done>) {
    for (job, d) in jobs.into_iter().zip(done) {
        // A caller that went away (client disconnected) no longer listens;
        // its events are committed all the same.
        match (job, d) {
            (Job::Append { reply, .. }, Done::Append(r)) => {
                let _ = reply.send(r);
            }
            (Job::Ingest { reply, .. }, Done::Ingest(r)) => {
                let _ = reply.send(r);
            }
            _ => unreachable!("results follow their jobs"),
        }
    }
}

impl Store {
    /// Appends events that describe no other state change (`api.access`,
    /// for example), committed by the group-commit writer.
    pub async fn append(&self, events: &[NewEvent]) -> Result<Vec<AuditEvent>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let events = events.to_vec();
        self.submit(Job::Append { events, reply }, rx).await
    }

    /// Hands a job to the group-commit writer and waits for its answer.
    async fn submit<T>(
        &self,
        job: Job,
        rx: tokio::sync::oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer dropped the job".into()))?
    }

    /// Stores a batch of ingested events for the tenant `scope_id`, all or
    /// none. Items whose idempotency ID was already used with the same
    /// request hash come back as [`IngestOutcome::Replayed`]; with another
    /// hash the whole batch fails with [`StoreError::Conflict`].
    pub async fn ingest(
        &self,
        scope_id: Uuid,
        items: Vec<IngestItem>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        self.ingest_recorded(scope_id, items, None).await
    }

    /// [`Store::ingest`], also appending the request's `access` event in
    /// the same transaction when the batch succeeds. When it fails nothing
    /// is written, the access event included, and the caller records it.
    pub async fn ingest_recorded(
        &self,
        scope_id: Uuid,
        items: Vec<IngestItem>,
        access: Option<IngestAccess>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.submit(
            Job::Ingest {
                scope_id,
                items,
                access: access.map(Box::new),
                reply,
            },
            rx,
        )
        .await
    }
}
