//! One integration's delivery loop, run while its lease is held.
//!
//! # Invariants
//!
//! - The cursor moves only after the destination acknowledged every entry
//!   of a batch (`Store::record_delivery`, fenced by lease and revision).
//!   Entries that failed are sent again alone; those that succeeded are not
//!   resent unless the process dies before the acknowledgement, and then
//!   they carry the same `id` (at-least-once, deterministic IDs).
//! - Nothing is skipped: a batch is retried until it is acknowledged or the
//!   lease is lost; failures only change the integration's visible status.
//! - Losing the lease (taken over, integration changed or removed) stops
//!   the worker before its next write; the supervisor leases afresh.

use std::sync::Arc;
use std::time::Duration;

use auditlake_core::integration::Status;
use auditlake_core::time_fmt;
use auditlake_store::{Delivery, Lease};
use tokio::sync::watch;
// Tokio's clock, not `std`'s: the same in production, and it lets the
// backoff and renewal timing be tested under a paused clock.
use tokio::time::Instant;
use uuid::Uuid;

use crate::batch::{self, Entry};
use crate::destination::Sent;
use crate::Shared;

/// Why a worker stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// No more events after the cursor.
    CaughtUp,
    /// The lease went to someone else, or the integration changed.
    LeaseLost,
    /// The process is shutting down.
    Shutdown,
}

/// Runs integration `id` until it is caught up, lost or shut down.
pub(crate) async fn run(shared: Arc<Shared>, id: Uuid) -> Stop {
    let now = time_fmt::now_micros();
    let lease = match shared
        .store
        .lease_integration(id, &shared.config.owner, now, now + ttl_us(&shared))
        .await
    {
        Ok(Some(lease)) => lease,
        Ok(None) => return Stop::LeaseLost,
        Err(e) => {
            tracing::warn!(integration = %id, error = %e, "could not lease the integration");
            return Stop::LeaseLost;
        }
    };
    let mut w = Worker {
        shared: shared.clone(),
        renewed: Instant::now(),
        lease,
    };
    let stop = w.deliver().await;
    if stop != Stop::LeaseLost {
        if let Err(e) = shared.store.release_lease(&w.lease).await {
            tracing::warn!(integration = %id, error = %e, "could not release the lease; it expires");
        }
    }
    stop
}

fn ttl_us(shared: &Shared) -> i64 {
    i64::try_from(shared.config.lease_ttl.as_micros()).unwrap_or(i64::MAX)
}

struct Worker {
    shared: Arc<Shared>,
    lease: Lease,
    renewed: Instant,
}

impl Worker {
    async fn deliver(&mut self) -> Stop {
        let mut cursor = self.lease.integration.cursor;
        loop {
            if self.shared.shutting_down() {
                return Stop::Shutdown;
            }
            if let Err(stop) = self.keep_lease().await {
                return stop;
            }
            let events = match self
                .shared
                .store
                .events_for(&self.lease.integration, cursor, batch::MAX_ENTRIES as i64)
                .await
            {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(integration = %self.lease.integration.id, error = %e, "reading the log failed");
                    if let Err(stop) = self.pause(self.shared.config.retry.cap).await {
                        return stop;
                    }
                    continue;
                }
            };
            if events.is_empty() {
                return Stop::CaughtUp;
            }
            let entries = match batch::entries(
                &self.lease.integration,
                &events,
                &self.shared.config.event_source,
            ) {
                Ok(entries) => entries,
                Err(e) => {
                    // A stored payload that is not JSON: a corrupt row. Keep
                    // it visible and waiting rather than skip it.
                    let error = format!("event {} cannot be encoded: {e}", events[0].id);
                    if let Err(stop) = self.fail(Status::Failing, error, 0, u32::MAX).await {
                        return stop;
                    }
                    continue;
                }
            };
            match self.send(&entries).await {
                Ok(()) => {
                    let last = entries.last().expect("at least one entry");
                    cursor = last.seq;
                    let ack = Delivery::Acknowledged {
                        cursor,
                        delivered: entries.len() as i64,
                        failed: 0,
                    };
                    match self.shared.store.record_delivery(&self.lease, &ack).await {
                        Ok(true) => self.delivered(&entries, &events),
                        Ok(false) => return Stop::LeaseLost,
                        Err(e) => {
                            // Delivered but not recorded: the batch is sent
                            // again after the lease expires, with the same IDs.
                            tracing::warn!(integration = %self.lease.integration.id, error = %e, "recording a delivery failed");
                            return Stop::LeaseLost;
                        }
                    }
                }
                Err(stop) => return stop,
            }
        }
    }

    /// Sends `entries` until every one is acknowledged; failed entries are
    /// sent again alone, after a backoff.
    async fn send(&mut self, entries: &[Entry]) -> Result<(), Stop> {
        let i = &self.lease.integration;
        let arn = i.config.arn();
        let external_id = i.external_id().to_string();
        let channel_arn = i.config.channel_arn.clone();
        let mut pending: Vec<Entry> = entries.to_vec();
        let mut attempt = 0u32;
        loop {
            let sent = self
                .shared
                .destination
                .put(&arn.region, &channel_arn, &external_id, &pending)
                .await;
            match sent {
                Sent::Answered { failed } if failed.is_empty() => return Ok(()),
                Sent::Answered { failed } => {
                    metrics::counter!("auditlake_forwarder_entry_failures_total")
                        .increment(failed.len() as u64);
                    let (_, code, message) = &failed[0];
                    let transient = code.contains("Throttl") || code.contains("Internal");
                    let error = format!(
                        "{} of {} entries failed; first: {code}: {message}",
                        failed.len(),
                        pending.len()
                    );
                    let failed_ids: std::collections::HashSet<&str> =
                        failed.iter().map(|(id, _, _)| id.as_str()).collect();
                    pending.retain(|e| failed_ids.contains(e.id.as_str()));
                    let status = if transient {
                        Status::Retrying
                    } else {
                        Status::Failing
                    };
                    self.fail(status, error, failed.len() as i64, attempt)
                        .await?;
                }
                Sent::Refused { transient, error } => {
                    metrics::counter!("auditlake_forwarder_call_failures_total", "transient" => transient.to_string())
                        .increment(1);
                    let status = if transient {
                        Status::Retrying
                    } else {
                        Status::Failing
                    };
                    self.fail(status, error, 0, attempt).await?;
                }
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// Records a failed attempt on the integration, then waits out the
    /// backoff of `attempt` (transient failures retry sooner than refusals).
    async fn fail(
        &mut self,
        status: Status,
        error: String,
        failed: i64,
        attempt: u32,
    ) -> Result<(), Stop> {
        let id = self.lease.integration.id;
        tracing::warn!(integration = %id, status = status.as_str(), %error, "delivery failed");
        let delivery = Delivery::Failed {
            status,
            error,
            failed,
        };
        match self
            .shared
            .store
            .record_delivery(&self.lease, &delivery)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(Stop::LeaseLost),
            Err(e) => tracing::warn!(integration = %id, error = %e, "recording a failure failed"),
        }
        let policy = match status {
            Status::Failing => self.shared.config.failing,
            _ => self.shared.config.retry,
        };
        self.pause(policy.delay(attempt)).await
    }

    /// Sleeps for `d`, renewing the lease on the way; stops early on
    /// shutdown or a lost lease.
    async fn pause(&mut self, d: Duration) -> Result<(), Stop> {
        let step = self.shared.config.lease_ttl / 3;
        let shutdown = self.shared.shutdown.clone();
        pause(self, d, step, shutdown).await
    }

    fn delivered(&self, entries: &[Entry], events: &[auditlake_core::AuditEvent]) {
        let now = time_fmt::now_micros();
        metrics::counter!("auditlake_forwarder_events_delivered_total")
            .increment(entries.len() as u64);
        let latency = metrics::histogram!("auditlake_forwarder_delivery_seconds");
        for e in events.iter().take(entries.len()) {
            latency.record((now - e.created_us).max(0) as f64 / 1e6);
        }
    }
}

/// What a pause keeps alive while it waits.
trait KeepLease {
    /// Renews the lease if it is due; `Err(Stop::LeaseLost)` once it is
    /// someone else's.
    async fn keep_lease(&mut self) -> Result<(), Stop>;
}

impl KeepLease for Worker {
    /// Renews the lease once a third of it has passed.
    async fn keep_lease(&mut self) -> Result<(), Stop> {
        if self.renewed.elapsed() < self.shared.config.lease_ttl / 3 {
            return Ok(());
        }
        let until = time_fmt::now_micros() + ttl_us(&self.shared);
        match self.shared.store.renew_lease(&self.lease, until).await {
            Ok(true) => {
                self.renewed = Instant::now();
                Ok(())
            }
            Ok(false) => Err(Stop::LeaseLost),
            Err(e) => {
                tracing::warn!(integration = %self.lease.integration.id, error = %e, "renewing the lease failed");
                Ok(())
            }
        }
    }
}

/// Sleeps for `d` on tokio's clock, keeping `lease` at least every `step`
/// on the way (a backoff may outlast the lease); stops early on shutdown
/// or a lost lease.
async fn pause(
    lease: &mut impl KeepLease,
    d: Duration,
    step: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Stop> {
    let until = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep((until - now).min(step)) => {}
            _ = shutdown.wait_for(|s| *s) => return Err(Stop::Shutdown),
        }
        lease.keep_lease().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The pause runs on tokio's clock only, so these tests pause it: a
    // minute of backoff takes no real time, and every instant is exact.

    /// A lease that records when it was kept and is lost at the `lose_at`th
    /// renewal.
    struct Recorded {
        kept: Vec<Instant>,
        lose_at: Option<usize>,
    }

    impl KeepLease for Recorded {
        async fn keep_lease(&mut self) -> Result<(), Stop> {
            self.kept.push(Instant::now());
            if Some(self.kept.len()) == self.lose_at {
                return Err(Stop::LeaseLost);
            }
            Ok(())
        }
    }

    fn recorded(lose_at: Option<usize>) -> Recorded {
        Recorded {
            kept: Vec::new(),
            lose_at,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_lasts_its_backoff_and_keeps_the_lease_on_the_way() {
        let (_tx, rx) = watch::channel(false);
        let mut lease = recorded(None);
        let start = Instant::now();
        // A 10 s backoff under a 3 s lease, renewed every third of it.
        pause(
            &mut lease,
            Duration::from_secs(10),
            Duration::from_secs(1),
            rx,
        )
        .await
        .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        let at: Vec<Duration> = lease.kept.iter().map(|t| *t - start).collect();
        let want: Vec<Duration> = (1..=10).map(Duration::from_secs).collect();
        assert_eq!(at, want, "the lease is kept every step");
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_step_of_a_pause_is_cut_to_the_backoff() {
        let (_tx, rx) = watch::channel(false);
        let mut lease = recorded(None);
        let start = Instant::now();
        pause(
            &mut lease,
            Duration::from_millis(2_500),
            Duration::from_secs(1),
            rx,
        )
        .await
        .unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(2_500));
        assert_eq!(lease.kept.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_pause_returns_at_once_without_renewing() {
        let (_tx, rx) = watch::channel(false);
        let mut lease = recorded(None);
        let start = Instant::now();
        pause(&mut lease, Duration::ZERO, Duration::from_secs(1), rx)
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(lease.kept.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_a_pause_short() {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(4_500)).await;
            tx.send(true).unwrap();
            // Kept open until the pause has seen it.
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        });
        let mut lease = recorded(None);
        let start = Instant::now();
        let stop = pause(
            &mut lease,
            Duration::from_secs(60),
            Duration::from_secs(1),
            rx,
        )
        .await;
        assert_eq!(stop, Err(Stop::Shutdown));
        assert_eq!(start.elapsed(), Duration::from_millis(4_500));
        assert_eq!(lease.kept.len(), 4, "kept until the shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lease_ends_a_pause_at_the_renewal_that_finds_it() {
        let (_tx, rx) = watch::channel(false);
        let mut lease = recorded(Some(3));
        let start = Instant::now();
        let stop = pause(
            &mut lease,
            Duration::from_secs(60),
            Duration::from_secs(1),
            rx,
        )
        .await;
        assert_eq!(stop, Err(Stop::LeaseLost));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
