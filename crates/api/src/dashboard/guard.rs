//! Failed sign-ins, counted per client address and per email: after
//! [`SignInGuard::MAX_FAILURES`] within [`SignInGuard::WINDOW`], further
//! attempts from that address or for that email are refused (429 with
//! `Retry-After`) until the window ends, so passwords cannot be guessed at
//! speed. An attempt counts from its start (concurrent guesses cannot
//! overtake the count); a successful one is taken back. Nothing is kept
//! past a window.
//!
//! Counted in this process, like the API's per-token limits: several
//! servers behind one balancer each allow the budget.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are dropped.
const PRUNE_AT: usize = 10_000;

/// A fixed window of failures of one key.
#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

/// The failed sign-ins of the last window, by key.
#[derive(Debug)]
pub struct SignInGuard {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Default for SignInGuard {
    fn default() -> Self {
        Self::new(Self::MAX_FAILURES, Self::WINDOW)
    }
}

/// The keys an attempt counts against: the client's address, and the
/// email when a password was tried.
pub fn keys(ip: Option<&str>, email: &str) -> Vec<String> {
    let mut keys = vec![format!("ip:{}", ip.unwrap_or("unknown"))];
    if !email.is_empty() {
        keys.push(format!("email:{}", email.to_lowercase()));
    }
    keys
}

impl SignInGuard {
    /// Failed attempts allowed per key and window, by default.
    pub const MAX_FAILURES: u32 = 10;
    /// How long failures are remembered, from the first of a window, by
    /// default.
    pub const WINDOW: Duration = Duration::from_secs(5 * 60);

    /// `max` failures per key within `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        // The table holds counts only; one a panic left half-updated is
        // still a table of counts.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts an attempt for `keys`: counts it as a failure at once, so
    /// that concurrent attempts cannot all pass before any has failed, or
    /// says how long to wait when one of the keys has used up its
    /// failures. [`SignInGuard::succeeded`] takes the count back.
    pub fn begin(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut table = self.table();
        let wait = keys
            .iter()
            .filter_map(|k| table.get(k))
            .filter(|f| f.count >= self.max)
            .filter_map(|f| (f.since + self.window).checked_duration_since(now))
            .filter(|wait| !wait.is_zero())
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        if table.len() >= PRUNE_AT {
            table.retain(|_, f| now.duration_since(f.since) < self.window);
        }
        for k in keys {
            let f = table.entry(k.clone()).or_insert(Failures {
                since: now,
                count: 0,
            });
            if now.duration_since(f.since) >= self.window {
                *f = Failures {
                    since: now,
                    count: 0,
                };
            }
            f.count = f.count.saturating_add(1);
        }
        Ok(())
    }

    /// An attempt [`SignInGuard::begin`] counted succeeded: it is not a
    /// failure after all.
    pub fn succeeded(&self, keys: &[String]) {
        let mut table = self.table();
        for k in keys {
            if let Some(f) = table.get_mut(k) {
                f.count = f.count.saturating_sub(1);
            }
        }
    }

    /// Keys with failures remembered (for tests of the pruning).
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// Whether no failure is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<String> {
        vec![s.to_owned()]
    }

    #[test]
    fn blocks_a_key_after_its_failures_until_the_window_ends() {
        let g = SignInGuard::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(g.begin(&k("ip:a"), t0 + Duration::from_secs(i)), Ok(()));
        }
        let wait = g.begin(&k("ip:a"), t0 + Duration::from_secs(10));
        assert_eq!(wait, Err(Duration::from_secs(50)));
        assert_eq!(g.begin(&k("ip:b"), t0), Ok(()), "other keys are not");
        // Either key of an attempt blocks it.
        let both = vec!["ip:b".to_owned(), "ip:a".to_owned()];
        assert!(g.begin(&both, t0).is_err());
        // A new window starts after the old one.
        assert_eq!(g.begin(&k("ip:a"), t0 + Duration::from_secs(61)), Ok(()));
    }

    #[test]
    fn attempts_in_flight_count_until_they_succeed() {
        let g = SignInGuard::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        // Three concurrent attempts, none finished: a fourth must wait.
        for _ in 0..3 {
            assert_eq!(g.begin(&k("ip:a"), t0), Ok(()));
        }
        assert!(g.begin(&k("ip:a"), t0).is_err());
        // Successes are taken back, so sign-ins alone never block.
        g.succeeded(&k("ip:a"));
        assert_eq!(g.begin(&k("ip:a"), t0), Ok(()));
        for _ in 0..10 {
            g.succeeded(&k("ip:a"));
            assert_eq!(g.begin(&k("ip:a"), t0), Ok(()));
        }
    }

    #[test]
    fn emails_count_case_insensitively_and_tokens_by_address_only() {
        assert_eq!(keys(Some("127.0.0.1"), ""), ["ip:127.0.0.1"]);
        assert_eq!(
            keys(None, "Ann@Example.com"),
            ["ip:unknown", "email:ann@example.com"]
        );
    }

    #[test]
    fn expired_windows_are_dropped_when_the_table_is_full() {
        let g = SignInGuard::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..PRUNE_AT {
            g.begin(&k(&format!("ip:{i}")), t0).unwrap();
        }
        assert_eq!(g.len(), PRUNE_AT);
        g.begin(&k("ip:new"), t0 + Duration::from_secs(61)).unwrap();
        assert_eq!(g.len(), 1);
    }
}
