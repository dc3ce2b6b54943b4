//! HTTP interface of auditlake.
//!
//! # Layout
//!
//! - [`app`] builds the whole router from an [`AppState`]; [`serve`] runs it
//!   with graceful shutdown. Tests drive the same router over real sockets.
//! - `rest`: the Snyk-style REST API (`/rest`, JSON:API, versioned).
//! - `v1`: the legacy v1 audit-log endpoints (`/v1`).
//! - `ctx`: per-request context, version headers and `api.access` capture.
//! - `extract`: authentication, rights checks and input parsing.
//! - `error`: the one place failures become HTTP responses.
//! - `ops`: `/healthz`, `/metrics`, `/openapi.json`.
//! - `openapi`: the OpenAPI document, built from the handlers' annotations
//!   and the types they send and take.
//! - `dashboard`: the server-rendered web pages (sign-in, settings with the
//!   External IDs, the CloudTrail Lake integration flow).

mod budget;
mod ctx;
mod dashboard;
pub mod error;
mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod jsonapi;
mod openapi;
mod ops;
#[macro_use]
mod rest;
mod v1;
pub mod version;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use auditlake_store::Store;

pub use auditlake_http::{BodyBudget, ServeLimits};
pub use budget::{STRANGERS_BODY_LIMIT, STRANGERS_BUDGET};

/// The default budget of request bodies held at once: two ingest bodies at
/// the 16 MiB limit (a body is held about five times over while it is
/// parsed, validated and written).
pub const DEFAULT_BODY_BUDGET: usize = 32 * 1024 * 1024;
pub use rest::INGEST_BODY_LIMIT;

/// Largest body of any other endpoint.
pub const BODY_LIMIT: usize = 1024 * 1024;

pub use dashboard::{LakeConsole, SignInGuard};
pub use openapi::document as openapi_document;
pub use ops::MetricsAccess;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Renders `/metrics`; `None` when no recorder is installed (tests).
    pub metrics: Option<PrometheusHandle>,
    /// Who may read `/metrics`, and what it shows.
    pub metrics_access: MetricsAccess,
    /// The local lake, for the dashboard's query console; `None` when this
    /// process runs none.
    pub lake: Option<LakeConsole>,
    /// Per-token request limits of the APIs; `None`: unlimited.
    pub limits: Option<std::sync::Arc<RateLimits>>,
    /// Request bodies held in memory at once for requests with
    /// credentials (see `budget`).
    pub bodies: BodyBudget,
    /// The same for requests without (see `budget`).
    pub strangers: BodyBudget,
    /// What one client may hold of the listener.
    pub serve: ServeLimits,
    /// How far before its tenant's creation an ingested event may be dated
    /// (an import window for older logs), in microseconds; 0 by default.
    pub ingest_import_window_us: i64,
    /// Whether a tenant's admin may add any user by ID, rather than only
    /// users of the tenant's own group.
    pub membership_adds: MembershipAdds,
    /// Failed dashboard sign-ins of the last minutes.
    pub sign_ins: std::sync::Arc<SignInGuard>,
}

/// Whom a tenant's admin may add as a member directly, by user ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipAdds {
    /// An admin of the tenant's group adds anyone; the tenant's own admin
    /// adds only users who already belong to the group (its members, or
    /// members of its orgs), so that the admin of an org of their own
    /// making can neither add nor probe anybody's user ID.
    WithinGroup,
    /// Any user of the platform (a platform of one company).
    Anyone,
}

/// Requests per minute allowed to each API token, counted in this process
/// (a GCRA bucket per token: the whole minute's allowance may come as a
/// burst, then requests are spread out).
pub struct RateLimits {
    per_minute: u32,
    limiter: governor::DefaultKeyedRateLimiter<uuid::Uuid>,
}

impl RateLimits {
    /// `per_minute` requests per token and minute; `None` for 0 (no limit).
    pub fn per_minute(per_minute: u32) -> Option<std::sync::Arc<Self>> {
        let n = std::num::NonZeroU32::new(per_minute)?;
        Some(std::sync::Arc::new(Self {
            per_minute,
            limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(n)),
        }))
    }

    /// Counts a request of `token`; the error says when to retry.
    pub(crate) fn check(&self, token: uuid::Uuid) -> Result<(), error::ApiError> {
        use governor::clock::Clock as _;
        self.limiter.check_key(&token).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            error::ApiError::rate_limited(wait.as_secs() + 1, self.per_minute)
        })?;
        // Forget tokens that are idle again, so the table stays small.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        Ok(())
    }
}

impl AppState {
    /// State over `store`, with the process-wide Prometheus recorder when
    /// one has been installed by [`install_metrics`].
    pub fn new(store: Store) -> Self {
        Self {
            store,
            metrics: METRICS.get().cloned(),
            metrics_access: MetricsAccess::default(),
            lake: None,
            limits: None,
            bodies: BodyBudget::new(DEFAULT_BODY_BUDGET, INGEST_BODY_LIMIT),
            strangers: BodyBudget::new(STRANGERS_BUDGET, STRANGERS_BODY_LIMIT),
            serve: ServeLimits::default(),
            ingest_import_window_us: 0,
            membership_adds: MembershipAdds::WithinGroup,
            sign_ins: Default::default(),
        }
    }
}

static METRICS: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();

/// Installs the Prometheus recorder once per process.
pub fn install_metrics() -> Option<PrometheusHandle> {
    if let Some(h) = METRICS.get() {
        return Some(h.clone());
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok()?;
    let _ = METRICS.set(handle.clone());
    Some(handle)
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (rest, _) = rest::router().split_for_parts();
    let rest = rest
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ctx::rest,
        ));
    let (v1, _) = v1::router().split_for_parts();
    let v1 = v1
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), ctx::v1));
    Router::new()
        .nest("/rest", rest)
        .nest("/v1", v1)
        .merge(ops::router().split_for_parts().0)
        .merge(dashboard::router())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(ops::track))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        // Outside the timeout: waiting for the budget is not the request's
        // fault, while holding it (reading a slow body) is bounded by the
        // listener's read timeout.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            budget::admit,
        ))
        .with_state(state)
}

/// Serves `app` on `listener` under `state.serve` until `shutdown`
/// resolves, then lets running requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.serve;
    auditlake_http::serve(listener, app(state), limits, shutdown).await
}
