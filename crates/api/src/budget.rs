//! Which memory budget a request's body is held in.
//!
//! A request that may carry a body takes its share of a budget before the
//! body is read (see `auditlake_http::BodyBudget`). Who is asking decides
//! which: a request that authenticates from its headers alone (an API
//! token, or a dashboard session) shares the server's budget; any other
//! (signing in, a bad token) gets a small budget of its own and a small
//! body limit, so that clients without credentials, however many and
//! however slow, can never make an authenticated request wait.

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::AppState;

/// Bytes of request bodies held at once for requests without credentials.
pub const STRANGERS_BUDGET: usize = 1024 * 1024;
/// The largest body of a request without credentials: a sign-in form.
pub const STRANGERS_BODY_LIMIT: usize = 64 * 1024;

/// The middleware: authenticates from the headers, then waits for the
/// request's share of the budget that applies.
pub(crate) async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let body_follows = !req.body().is_end_stream();
    if state.bodies.cost(req.headers(), body_follows) == 0 {
        return next.run(req).await;
    }
    if authenticated(&state, req.headers()).await {
        let _held = state.bodies.hold(req.headers(), body_follows).await;
        return next.run(req).await;
    }
    // Nor may they queue for it longer than a client may stay silent.
    let held = tokio::time::timeout(
        state.serve.read_timeout,
        state.strangers.hold(req.headers(), body_follows),
    )
    .await;
    let Ok(_held) = held else {
        return crate::error::ApiError::busy().into_response();
    };
    let req = req.map(|body| Body::new(http_body_util::Limited::new(body, STRANGERS_BODY_LIMIT)));
    next.run(req).await
}

/// Whether the headers carry a valid API token or dashboard session. The
/// handler checks the rights (and the token again, from the cache).
async fn authenticated(state: &AppState, headers: &HeaderMap) -> bool {
    if let Some(secret) = crate::extract::token_of(headers) {
        return matches!(
            state.store.authenticate_request(secret, None).await,
            Ok(Some(_))
        );
    }
    match crate::dashboard::session_secret(headers) {
        Some(secret) => matches!(state.store.session(&secret).await, Ok(Some(_))),
        None => false,
    }
}
