//! A memory budget for request bodies in flight.
//!
//! A per-route body limit bounds one request, not a flood of them: a body
//! is held several times over while it is parsed, validated and written.
//! So a request that may carry a body takes permits for its size (in KiB)
//! before the body is read, and keeps them until its response is ready;
//! requests beyond the budget wait their turn, unread. Requests without a
//! body never wait.

use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of request bodies a listener holds at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    /// The largest body any route accepts: a body declared larger is
    /// refused by the route's limit without being read, so it takes
    /// nothing, and one of unknown length (chunked) counts as this much.
    largest: usize,
}

/// A request's share of a [`BodyBudget`], returned when dropped.
#[derive(Debug)]
pub struct Held {
    _permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// A budget of `bytes` (at least one body of `largest` bytes fits).
    pub fn new(bytes: usize, largest: usize) -> Self {
        let kib = bytes.max(largest).div_ceil(1024);
        Self {
            kib: Arc::new(Semaphore::new(kib.min(Semaphore::MAX_PERMITS))),
            largest,
        }
    }

    /// The largest body a route behind this budget accepts.
    pub fn largest(&self) -> usize {
        self.largest
    }

    /// KiB a request with these headers takes: its declared length, or the
    /// largest body when the length is not declared and a body follows.
    pub fn cost(&self, headers: &HeaderMap, body_follows: bool) -> u32 {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let bytes = match declared {
            Some(n) if n > self.largest as u64 => 0,
            Some(n) => n as usize,
            // Chunked, or HTTP/2 without a declared length: as large as any.
            None if body_follows => self.largest,
            None => 0,
        };
        u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
    }

    /// Waits for the share of a request with these headers.
    pub async fn hold(&self, headers: &HeaderMap, body_follows: bool) -> Held {
        let cost = self.cost(headers, body_follows);
        if cost == 0 {
            return Held { _permit: None };
        }
        // The semaphore is never closed, so acquiring only waits.
        Held {
            _permit: Arc::clone(&self.kib).acquire_many_owned(cost).await.ok(),
        }
    }

    /// KiB free now.
    pub fn available_kib(&self) -> usize {
        self.kib.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn requests_cost_their_declared_size() {
        let b = BodyBudget::new(64 << 20, 16 << 20);
        assert_eq!(b.cost(&headers(&[]), false), 0, "no body");
        assert_eq!(b.cost(&headers(&[("content-length", "0")]), true), 0);
        assert_eq!(b.cost(&headers(&[("content-length", "1")]), true), 1);
        assert_eq!(b.cost(&headers(&[("content-length", "2049")]), true), 3);
        assert_eq!(
            b.cost(&headers(&[("content-length", "17825792")]), true),
            0,
            "refused unread by the route's limit"
        );
        assert_eq!(
            b.cost(&headers(&[]), true),
            16 * 1024,
            "unknown length counts as the largest"
        );
        assert_eq!(b.cost(&headers(&[("content-length", "junk")]), false), 0);
    }

    #[tokio::test]
    async fn a_budget_admits_what_fits_and_holds_the_rest() {
        let b = BodyBudget::new(2048, 2048);
        let first = b.hold(&headers(&[("content-length", "2048")]), true).await;
        assert_eq!(b.available_kib(), 0, "the budget is spent");
        let one_kib = headers(&[("content-length", "1024")]);
        let waiting = b.hold(&one_kib, true);
        tokio::pin!(waiting);
        assert!(
            futures_poll_once(&mut waiting).await.is_none(),
            "a request beyond the budget waits"
        );
        drop(first);
        waiting.await;
        assert_eq!(b.available_kib(), 2, "and it returns when done");
    }

    /// Polls a future once: its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
