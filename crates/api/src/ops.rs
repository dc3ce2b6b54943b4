//! Operational endpoints (`/healthz`, `/metrics`, `/openapi.json`), the
//! fallbacks, and request metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(rest_openapi))
}

/// Whether the server can reach its database.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    status: &'static str,
    /// Why not: `database`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Health check
///
/// Whether the server can reach its database. No authentication.
#[utoipa::path(get, path = "/healthz", tag = "Operations", security(()),
    responses(
        (status = 200, description = "Healthy.", body = Health),
        (status = 503, description = "The database is not reachable.", body = Health)))]
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(Health {
            status: "ok",
            reason: None,
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            let health = Health {
                status: "unavailable",
                reason: Some("database"),
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(health)).into_response()
        }
    }
}

/// Who may read `/metrics`: the holder of the configured bearer token.
/// Metrics name integrations and, when asked, tenants; with no token
/// configured, nobody may.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// SHA-256 of the token; `None`: `/metrics` is off.
    token: Option<[u8; 32]>,
    /// Whether the integration series carry the tenant's ID
    /// (`external_id`, the Organization or Group ID).
    pub tenant_labels: bool,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("token", &self.token.map(|_| "<set>"))
            .field("tenant_labels", &self.tenant_labels)
            .finish()
    }
}

impl MetricsAccess {
    /// `/metrics` for the holder of `token`, with or without tenant labels.
    pub fn with_token(token: &str, tenant_labels: bool) -> Self {
        Self {
            token: Some(Sha256::digest(token.as_bytes()).into()),
            tenant_labels,
        }
    }

    /// Whether the request's headers carry the token.
    fn admits(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(want) = &self.token else {
            return false;
        };
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| Sha256::digest(token.trim().as_bytes()));
        given.is_some_and(|g| bool::from(g.as_slice().ct_eq(want)))
    }
}

/// Prometheus metrics, for the holder of the metrics token
#[utoipa::path(get, path = "/metrics", tag = "Operations", security(("MetricsToken" = [])),
    responses(
        (status = 200, description = "Metrics in the Prometheus text format \
            (`text/plain; version=0.0.4`).", body = String),
        (status = 401, description = "The metrics token is missing or wrong.", body = String),
        (status = 404, description = "Metrics are off: the server was started without \
            `--metrics-token`.", body = String)))]
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if state.metrics_access.token.is_none() {
        return (
            StatusCode::NOT_FOUND,
            "metrics are off: start the server with --metrics-token to read them",
        )
            .into_response();
    }
    if !state.metrics_access.admits(&headers) {
        let mut res = (
            StatusCode::UNAUTHORIZED,
            "send the metrics token: Authorization: Bearer <token>",
        )
            .into_response();
        res.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        return res;
    }
    match &state.metrics {
        Some(h) => {
            let mut text = h.render();
            match integration_metrics(&state.store, state.metrics_access.tenant_labels).await {
                Ok(more) => text.push_str(&more),
                Err(e) => tracing::warn!(error = %e, "reading integrations for /metrics failed"),
            }
            let mut res = text.into_response();
            res.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            res
        }
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}

/// Each integration's delivery state, read at scrape time so that the
/// numbers are those of the database every process shares, and removed
/// integrations leave no stale series behind.
async fn integration_metrics(
    store: &auditlake_store::Store,
    tenant_labels: bool,
) -> Result<String, auditlake_store::StoreError> {
    use std::fmt::Write as _;
    let now = auditlake_core::time_fmt::now_micros();
    let mut lines: [(&str, &str, &str, String); 5] = [
        (
            "auditlake_integration_lag_events",
            "gauge",
            "Events waiting for delivery.",
            String::new(),
        ),
        (
            "auditlake_integration_lag_seconds",
            "gauge",
            "Age of the oldest waiting event.",
            String::new(),
        ),
        (
            "auditlake_integration_delivered_events_total",
            "counter",
            "Events the destination acknowledged.",
            String::new(),
        ),
        (
            "auditlake_integration_failed_entries_total",
            "counter",
            "Entries the destination refused (each retried).",
            String::new(),
        ),
        (
            "auditlake_integration_status",
            "gauge",
            "1 for the integration's current status.",
            String::new(),
        ),
    ];
    let mut page = auditlake_store::Page {
        limit: 100,
        ..auditlake_store::Page::default()
    };
    loop {
        let res = store.all_integrations(page).await?;
        for i in &res.items {
            let lag = store.lag(i).await?;
            let level = match i.scope {
                auditlake_core::Scope::Group(_) => "group",
                _ => "org",
            };
            let mut labels = format!("integration=\"{}\",level=\"{level}\"", i.id);
            if tenant_labels {
                let _ = write!(labels, ",external_id=\"{}\"", i.external_id());
            }
            let age = lag.age_us(now) as f64 / 1e6;
            let values = [
                lag.events.to_string(),
                age.to_string(),
                i.delivered.to_string(),
                i.failed.to_string(),
            ];
            for (line, v) in lines.iter_mut().zip(values) {
                let _ = writeln!(line.3, "{}{{{labels}}} {v}", line.0);
            }
            let _ = writeln!(
                lines[4].3,
                "auditlake_integration_status{{{labels},status=\"{}\"}} 1",
                i.status.as_str()
            );
        }
        match (res.has_more, res.items.last()) {
            (true, Some(last)) => page.after = Some(last.id),
            _ => break,
        }
    }
    let mut out = String::new();
    for (name, kind, help, body) in &lines {
        if !body.is_empty() {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{body}");
        }
    }
    Ok(out)
}

/// This OpenAPI document
///
/// No authentication and no `version` parameter.
#[utoipa::path(get, path = "/openapi.json", tag = "Operations", security(()),
    responses((status = 200, description = "The document.", body = Object)))]
async fn openapi() -> Response {
    let mut res = crate::openapi::document().into_response();
    res.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    res
}

/// This OpenAPI document
///
/// No authentication and no `version` parameter. Same as `/openapi.json`.
#[utoipa::path(get, path = "/rest/openapi", tag = "Operations", security(()),
    responses((status = 200, description = "The document.", body = Object)))]
async fn rest_openapi() -> Response {
    openapi().await
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Counts requests and their latency by route and status.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("auditlake_http_requests_total", &labels).increment(1);
    metrics::histogram!("auditlake_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    res
}
