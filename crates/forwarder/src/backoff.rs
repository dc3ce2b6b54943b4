//! Exponential backoff with full jitter ("Exponential Backoff And Jitter",
//! AWS Architecture Blog): the n-th wait is uniform in
//! `[0, min(cap, base * 2^n)]`. Full jitter spreads the retries of many
//! integrations hitting one throttled destination instead of synchronising
//! them. A dozen lines, so written here rather than adapted from a retry
//! crate whose jitter is partial.

use std::time::Duration;

use rand::Rng as _;

/// A backoff policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling of the wait before retry number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random wait before retry number `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(6), Duration::from_secs(5));
        assert_eq!(b.ceiling(200), Duration::from_secs(5));
        for attempt in 0..50 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
    }

    #[test]
    fn waits_are_spread_over_the_whole_range() {
        let b = Backoff {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(10),
        };
        let waits: Vec<_> = (0..200).map(|_| b.delay(0)).collect();
        assert!(waits.iter().any(|w| *w < Duration::from_secs(3)));
        assert!(waits.iter().any(|w| *w > Duration::from_secs(7)));
    }
}
