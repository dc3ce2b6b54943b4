//! Per-request context and the middleware around the REST and v1 APIs.
//!
//! [`RequestCtx`] is a slot the middleware puts in each request. Extractors
//! and handlers fill it as they learn things: who the caller is, which
//! tenant the request touched (once authorized), which version was served.
//! After the handler the middleware reads it to write the response headers
//! and the request's `api.access` audit event.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use uuid::Uuid;

use auditlake_core::{EventName, NewEvent, Scope};

use crate::error::{ApiError, V1Error};
use crate::version::Version;
use crate::AppState;

#[derive(Debug, Default)]
struct Inner {
    user_id: Option<Uuid>,
    scope: Option<Scope>,
    /// The version the request asked for (`/rest` only).
    requested: Option<Version>,
    /// The releases of the resource its route serves (`/rest` only).
    releases: Option<&'static [Version]>,
    served: Option<Version>,
    /// What `api.access` records of the request.
    request: Option<RequestLine>,
    /// The handler wrote `api.access` itself, with its own change.
    recorded: bool,
}

/// The parts of a request its `api.access` event holds.
#[derive(Debug, Clone)]
struct RequestLine {
    method: String,
    url: String,
    origin: Origin,
}

/// What the handler learned about the request; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct RequestCtx(Arc<Mutex<Inner>>);

impl RequestCtx {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The context of `req`, with what its `api.access` event records. The
    /// origin also goes in the request's extensions for the extractors.
    fn for_request(req: &mut Request) -> Self {
        let origin = Origin::of(req);
        req.extensions_mut().insert(origin.clone());
        let line = RequestLine {
            method: req.method().to_string(),
            url: original_url(req),
            origin,
        };
        let ctx = RequestCtx::default();
        ctx.with(|i| i.request = Some(line));
        ctx
    }

    /// Records the authenticated caller.
    pub fn set_user(&self, user: Uuid) {
        self.with(|i| i.user_id = Some(user));
    }

    /// Records the tenant the caller was authorized for. The first one
    /// wins: handlers resolve the tenant their path names before any other
    /// they check (the org of `POST /groups/{id}/orgs`, say), and the
    /// request belongs to the path's tenant.
    pub fn set_scope(&self, scope: Scope) {
        self.with(|i| {
            i.scope.get_or_insert(scope);
        });
    }

    /// Resolves the requested version against the route's releases, once
    /// the caller is known (so that the refusal is recorded as their
    /// `api.access`); 404 on the `version` parameter when none fits.
    /// Routes without releases (`/v1`) pass.
    pub fn serve_release(&self) -> Result<(), ApiError> {
        let (requested, releases) = self.with(|i| (i.requested, i.releases));
        let (Some(requested), Some(releases)) = (requested, releases) else {
            return Ok(());
        };
        let served = requested.resolve(releases).ok_or_else(|| {
            ApiError::not_found(format!(
                "this resource has no release for version {requested}; the first is {}",
                releases.first().map(|r| r.to_string()).unwrap_or_default()
            ))
            .at(crate::error::Source::Parameter("version".into()))
        })?;
        self.with(|i| i.served = Some(served));
        Ok(())
    }

    /// The request's `api.access` event as it would be with `status`:
    /// `None` before authentication (no user to attribute it to).
    pub fn access_event(&self, status: u16) -> Option<NewEvent> {
        let (user, scope, line) = self.with(|i| (i.user_id, i.scope, i.request.clone()));
        let (user, line) = (user?, line?);
        let mut ev = NewEvent::now(
            EventName::API_ACCESS,
            scope.unwrap_or(Scope::User),
            Some(user),
            json!({ "url": line.url, "method": line.method, "status": status }),
        );
        ev.source_ip = line.origin.ip;
        ev.user_agent = line.origin.user_agent;
        Some(ev)
    }

    /// Says the handler committed the request's `api.access` event with
    /// its own change, so the middleware must not write a second one.
    pub fn access_recorded(&self) {
        self.with(|i| i.recorded = true);
    }
}

/// Where the request came from, for audit events.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Peer address.
    pub ip: Option<String>,
    /// `User-Agent` header, bounded.
    pub user_agent: Option<String>,
}

impl Origin {
    fn of(req: &Request) -> Self {
        Self::from(req.extensions(), req.headers())
    }

    /// The origin of a request whose parts are being extracted.
    pub fn of_parts(parts: &axum::http::request::Parts) -> Self {
        Self::from(&parts.extensions, &parts.headers)
    }

    fn from(ext: &axum::http::Extensions, headers: &HeaderMap) -> Self {
        let ip = ext
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                s.chars()
                    .take(auditlake_core::validate::MAX_USER_AGENT_LEN)
                    .collect()
            });
        Self { ip, user_agent }
    }
}

/// Middleware of `/rest`: the version parameter, the version headers and
/// the `api.access` event.
pub async fn rest(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = Uuid::new_v4();
    let requested = match requested_version(req.uri().query()) {
        Ok(v) => v,
        Err(e) => {
            let mut res = e.into_response();
            set_headers(res.headers_mut(), request_id, None, None);
            return res;
        }
    };
    let ctx = RequestCtx::for_request(&mut req);
    ctx.with(|i| i.requested = Some(requested));
    req.extensions_mut().insert(ctx.clone());
    let mut res = next.run(req).await;
    let served = ctx.with(|i| i.served);
    set_headers(res.headers_mut(), request_id, Some(requested), served);
    record_access(&state, &ctx, res.status().as_u16()).await;
    res
}

/// Route layer of one versioned resource's handlers (see
/// `rest::router`): names the resource's `releases`, which the
/// `Caller` extractor resolves the requested version
/// against right after authentication, before the handler's own work.
pub async fn with_releases(releases: &'static [Version], req: Request, next: Next) -> Response {
    let ctx = req.extensions().get::<RequestCtx>().cloned();
    if let Some(ctx) = &ctx {
        ctx.with(|i| i.releases = Some(releases));
    }
    let res = next.run(req).await;
    debug_assert!(
        !res.status().is_success() || ctx.is_none_or(|c| c.with(|i| i.served.is_some())),
        "a versioned handler answered without the release check of its Caller"
    );
    res
}

/// Middleware of `/v1`: the `api.access` event, and errors in v1's shape.
pub async fn v1(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ctx = RequestCtx::for_request(&mut req);
    req.extensions_mut().insert(ctx.clone());
    let mut res = next.run(req).await;
    if let Some(err) = res.extensions_mut().remove::<ApiError>() {
        res = V1Error(err).into_response();
    }
    record_access(&state, &ctx, res.status().as_u16()).await;
    res
}

/// The URL as the client sent it: the routers these middlewares wrap are
/// nested, so `req.uri()` has lost its `/rest` or `/v1` prefix.
fn original_url(req: &Request) -> String {
    req.extensions()
        .get::<OriginalUri>()
        .map(|u| u.0.to_string())
        .unwrap_or_else(|| req.uri().to_string())
}

fn requested_version(query: Option<&str>) -> Result<Version, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| ApiError::invalid_param("version", "the query string is not valid"))?;
    let mut found = pairs.iter().filter(|(k, _)| k == "version");
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Version::parse(v),
        (Some(_), Some(_)) => Err(ApiError::invalid_param(
            "version",
            "version is given more than once",
        )),
        (None, _) => Err(ApiError::invalid_param(
            "version",
            "the version query parameter is required, e.g. ?version=2024-10-15",
        )),
    }
}

fn set_headers(
    h: &mut HeaderMap,
    request_id: Uuid,
    requested: Option<Version>,
    served: Option<Version>,
) {
    let val = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("invalid"));
    h.insert("snyk-request-id", val(request_id.to_string()));
    if let Some(r) = requested {
        h.insert("snyk-version-requested", val(r.to_string()));
    }
    if let Some(s) = served {
        h.insert("snyk-version-served", val(s.to_string()));
        h.insert(
            "snyk-version-lifecycle-stage",
            HeaderValue::from_static(s.stability.stage()),
        );
    }
}

/// Writes `api.access` for an authenticated request, unless its handler
/// did. Unauthenticated requests have no user to attribute and are counted
/// in metrics only.
async fn record_access(state: &AppState, ctx: &RequestCtx, status: u16) {
    if ctx.with(|i| i.recorded) {
        return;
    }
    let Some(ev) = ctx.access_event(status) else {
        return;
    };
    if let Err(e) = state.store.append(std::slice::from_ref(&ev)).await {
        metrics::counter!("auditlake_api_access_record_failures_total").increment(1);
        tracing::error!(error = %e, "failed to record api.access");
    }
}
