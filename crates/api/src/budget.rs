//! A memory budget for request bodies in flight.
//!
//! Per-route body limits bound one request (16 MiB for ingest), not a
//! flood of them: two dozen clients each sending a batch near the limit
//! took the server past 800 MiB of resident memory, since a body is held
//! several times over while it is parsed, validated and written. So a
//! request that declares a body takes permits for its size (in KiB) before
//! the body is read and keeps them until its response is ready; requests
//! beyond the budget wait their turn on the connection, unread, instead of
//! being held in memory. Requests without a body (`/healthz`, searches,
//! pages) never wait.

use std::sync::Arc;

use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

/// The default budget: two ingest bodies at the 16 MiB limit. With four,
/// a flood of such batches peaked between 430 and 540 MiB (a body is
/// held about five times over while parsed, validated and written).
pub const DEFAULT_BODY_BUDGET: usize = 32 * 1024 * 1024;

/// Bytes of request bodies the server holds at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    /// The largest body any route accepts: a body declared larger is
    /// refused by the route's limit without being read, so it takes
    /// nothing, and one of unknown length (chunked) counts as this much.
    largest: usize,
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

    /// KiB a request with these headers takes from the budget.
    fn cost(&self, req: &Request) -> u32 {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let bytes = match declared {
            Some(n) if n > self.largest as u64 => 0,
            Some(n) => n as usize,
            // Chunked, or HTTP/2 without a declared length: as large as any.
            None if !req.body().is_end_stream() => self.largest,
            None => 0,
        };
        u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
    }
}

/// The middleware: waits for the request's share of the budget.
pub(crate) async fn admit(State(budget): State<BodyBudget>, req: Request, next: Next) -> Response {
    let cost = budget.cost(&req);
    if cost == 0 {
        return next.run(req).await;
    }
    // The semaphore is never closed, so acquiring cannot fail.
    let _held = budget.kib.acquire_many(cost).await.ok();
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method("POST").uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn requests_cost_their_declared_size() {
        let b = BodyBudget::new(64 << 20, 16 << 20);
        assert_eq!(b.cost(&req(&[])), 0, "no body");
        assert_eq!(b.cost(&req(&[("content-length", "0")])), 0);
        assert_eq!(b.cost(&req(&[("content-length", "1")])), 1);
        assert_eq!(b.cost(&req(&[("content-length", "2049")])), 3);
        assert_eq!(
            b.cost(&req(&[("content-length", &(17 << 20).to_string())])),
            0,
            "refused unread by the route's limit"
        );
        let chunked = Request::builder()
            .method("POST")
            .body(axum::body::Body::from_stream(futures::stream::iter([
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{}")),
            ])))
            .unwrap();
        assert_eq!(
            b.cost(&chunked),
            16 * 1024,
            "unknown length counts as the largest"
        );
        assert_eq!(b.cost(&req(&[("content-length", "junk")])), 0);
    }

    #[tokio::test]
    async fn a_budget_admits_what_fits_and_holds_the_rest() {
        let b = BodyBudget::new(2048, 1024);
        let first = b.kib.clone().try_acquire_many_owned(2).unwrap();
        assert!(b.kib.try_acquire_many(1).is_err(), "the budget is spent");
        drop(first);
        assert!(b.kib.try_acquire_many(2).is_ok(), "and returns when done");
    }
}
