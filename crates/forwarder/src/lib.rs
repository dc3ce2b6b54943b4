//! The forwarder: delivers each integration's audit events to its
//! CloudTrail Lake channel with `PutAuditEvents`, never losing one.
//!
//! # Layout
//!
//! - [`spawn`] starts the supervisor: on every local append (and on a poll
//!   interval, for appends by other processes sharing the database) it asks
//!   the store which integrations have events after their cursor and a free
//!   lease, and starts a worker for each, up to a limit.
//! - `worker`: one integration's loop: lease, read after the cursor, batch,
//!   send, acknowledge, retry; it ends when caught up.
//! - `batch`: events to entries, cut at 100 entries and 1 MB.
//! - `destination`: the SDK clients and the classification of failures.
//! - `backoff`: capped exponential backoff with full jitter.
//!
//! The delivery contract (design.md) is held by the store's fenced cursor
//! and the worker's refusal to skip; see `worker` for the invariants.

pub mod backoff;
pub mod batch;
pub mod destination;
mod worker;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use auditlake_core::time_fmt;
use auditlake_store::Store;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

pub use backoff::Backoff;
pub use destination::{StaticKey, Target};

/// How the forwarder runs.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// This process's name on leases; unique per process.
    pub owner: String,
    /// `eventData.eventSource` of every forwarded event.
    pub event_source: String,
    /// Where and as whom to send.
    pub target: Target,
    /// How long a lease lasts without renewal: how soon another process
    /// takes over from a crashed one.
    pub lease_ttl: Duration,
    /// How often to look for work appended by other processes.
    pub poll: Duration,
    /// Most integrations delivered at once by this process.
    pub max_workers: usize,
    /// Backoff after transient failures (throttling, 5xx, network).
    pub retry: Backoff,
    /// Backoff while the destination refuses (permission, missing channel).
    pub failing: Backoff,
}

impl ForwarderConfig {
    /// Defaults for production, sending to `target`.
    pub fn new(event_source: impl Into<String>, target: Target) -> Self {
        Self {
            owner: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
            event_source: event_source.into(),
            target,
            lease_ttl: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            max_workers: 256,
            retry: Backoff {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(20),
            },
            failing: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(60),
            },
        }
    }
}

/// What the workers share.
pub(crate) struct Shared {
    store: Store,
    config: ForwarderConfig,
    destination: destination::Destination,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// A running forwarder.
pub struct Forwarder {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Stops taking work, lets each worker finish the call it is in,
    /// releases the leases and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Starts the forwarder over `store`.
pub async fn spawn(store: Store, config: ForwarderConfig) -> Forwarder {
    let (tx, rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        destination: destination::Destination::new(config.target.clone()).await,
        store,
        config,
        shutdown: rx,
    });
    let task = tokio::spawn(supervise(shared));
    Forwarder { shutdown: tx, task }
}

async fn supervise(shared: Arc<Shared>) {
    let mut appended = shared.store.subscribe_appends();
    let mut shutdown = shared.shutdown.clone();
    let mut workers: JoinSet<worker::Stop> = JoinSet::new();
    let mut tasks: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    let mut running: HashSet<Uuid> = HashSet::new();
    // Integrations found with work that wait for a free worker: filled by
    // a look at the database, drained as workers end, so that a full pool
    // does not look again each time one worker finishes.
    let mut waiting: VecDeque<Uuid> = VecDeque::new();
    let mut look = true;
    tracing::info!(owner = %shared.config.owner, "forwarder started");
    loop {
        if look {
            appended.borrow_and_update();
            let now = time_fmt::now_micros();
            match shared
                .store
                .integrations_with_work(&shared.config.owner, now)
                .await
            {
                Ok(ids) => {
                    waiting = ids.into_iter().filter(|id| !running.contains(id)).collect();
                }
                Err(e) => tracing::warn!(error = %e, "looking for integrations with work failed"),
            }
        }
        while running.len() < shared.config.max_workers {
            let Some(id) = waiting.pop_front() else { break };
            if running.insert(id) {
                let task = workers.spawn(worker::run(shared.clone(), id));
                tasks.insert(task.id(), id);
            }
        }
        metrics::gauge!("auditlake_forwarder_workers").set(running.len() as f64);
        tokio::select! {
            _ = appended.changed() => look = true,
            _ = tokio::time::sleep(shared.config.poll) => look = true,
            Some(done) = workers.join_next_with_id(), if !workers.is_empty() => {
                look = false;
                let task = match done {
                    Ok((task, _)) => task,
                    Err(e) => {
                        // Its lease expires and the integration is picked
                        // up again; nothing was acknowledged that was not sent.
                        tracing::error!(error = %e, "a forwarder worker failed");
                        e.id()
                    }
                };
                if let Some(id) = tasks.remove(&task) {
                    running.remove(&id);
                }
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    while workers.join_next().await.is_some() {}
    tracing::info!("forwarder stopped");
}
