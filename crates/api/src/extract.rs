//! Extractors that turn a request into checked values, failing with
//! [`ApiError`]s that say exactly what is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use auditlake_core::tenant::Access;
use auditlake_core::{Actor, Group, Org, Scope, User};
use auditlake_store::{IngestAccess, NamedTenant, TenantRef};

use crate::ctx::{Origin, RequestCtx};
use crate::error::{ApiError, JSONAPI};
use crate::AppState;

/// The authenticated caller with their memberships.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub user: User,
    /// Memberships, for rights checks.
    pub access: Access,
    /// Where the request came from.
    pub origin: Origin,
    /// The API token the request authenticated with.
    pub token_id: Uuid,
    /// The tenant the path names, read with the authentication.
    named: Option<NamedTenant>,
    ctx: RequestCtx,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let named = path_tenant_ref(parts, state).await;
        let secret = bearer(&parts.headers)?;
        let auth = state
            .store
            .authenticate_request(secret, named)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token is invalid, expired or revoked"))?;
        if let Some(limits) = &state.limits {
            limits.check(auth.token.id)?;
        }
        let user = auth.user;
        let ctx = parts
            .extensions
            .get::<RequestCtx>()
            .cloned()
            .unwrap_or_default();
        ctx.set_user(user.id);
        ctx.serve_release()?;
        let origin = parts
            .extensions
            .get::<Origin>()
            .cloned()
            .unwrap_or_default();
        Ok(Caller {
            user,
            access: auth.access,
            origin,
            token_id: auth.token.id,
            named: auth.tenant,
            ctx,
        })
    }
}

/// The API token of an `Authorization: token <secret>` (or `bearer`)
/// header, or why there is none.
fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let header = headers.get("authorization").ok_or_else(|| {
        ApiError::unauthorized(
            "missing Authorization header; send `Authorization: token <API token>`",
        )
    })?;
    let header = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let (scheme, secret) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("use `Authorization: token <API token>`"))?;
    if !scheme.eq_ignore_ascii_case("token") && !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(format!(
            "unsupported authorization scheme {scheme:?}; use `token` or `bearer`"
        )));
    }
    Ok(secret.trim())
}

/// The API token the headers carry, if any.
pub(crate) fn token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    bearer(headers).ok()
}

/// The tenant a route's path names ([`PathParams::tenant`]), when its ID is
/// a UUID; a bad ID is left for the handler to refuse with its own error.
async fn path_tenant_ref(parts: &mut Parts, state: &AppState) -> Option<TenantRef> {
    let p = PathParams::from_request_parts(parts, state).await.ok()?;
    p.tenant()?.ok()
}

impl Caller {
    /// The request's `api.access` event for each answer an ingest can give
    /// (201 with something stored, 200 when all replays), for the store to
    /// write with the batch; see [`Caller::access_recorded`].
    pub fn ingest_access(&self) -> Option<IngestAccess> {
        Some(IngestAccess {
            created: self.ctx.access_event(StatusCode::CREATED.as_u16())?,
            replayed: self.ctx.access_event(StatusCode::OK.as_u16())?,
        })
    }

    /// Says the request's `api.access` event is committed already.
    pub fn access_recorded(&self) {
        self.ctx.access_recorded();
    }

    /// The actor stamped on events this request causes.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user.id),
            source_ip: self.origin.ip.clone(),
            user_agent: self.origin.user_agent.clone(),
        }
    }

    /// The org, if the caller may read it. Others' orgs are "not found" so
    /// that IDs of other tenants cannot be probed.
    pub async fn read_org(&self, state: &AppState, id: Uuid) -> Result<Org, ApiError> {
        let org = match &self.named {
            Some(NamedTenant::Org(named, org)) if *named == id => org.clone(),
            _ => state.store.org(id).await?,
        };
        match org {
            Some(org) if self.access.can_read_org(&org) => {
                self.ctx.set_scope(Scope::Org(org.id));
                Ok(org)
            }
            _ => Err(ApiError::not_found(format!("organization {id} not found"))),
        }
    }

    /// The org, if the caller administers it (403 for a mere member).
    pub async fn admin_org(&self, state: &AppState, id: Uuid) -> Result<Org, ApiError> {
        let org = self.read_org(state, id).await?;
        if self.access.can_admin_org(&org) {
            Ok(org)
        } else {
            Err(ApiError::forbidden("this action needs the org admin role"))
        }
    }

    /// The group, if the caller administers it; otherwise "not found".
    pub async fn admin_group(&self, state: &AppState, id: Uuid) -> Result<Group, ApiError> {
        let group = match &self.named {
            Some(NamedTenant::Group(named, group)) if *named == id => group.clone(),
            _ => state.store.group(id).await?,
        };
        match group {
            Some(g) if self.access.is_group_admin(g.id) => {
                self.ctx.set_scope(Scope::Group(g.id));
                Ok(g)
            }
            _ => Err(ApiError::not_found(format!("group {id} not found"))),
        }
    }

    /// Whether the caller administers the group `scope` belongs to (the
    /// group itself, or an org's parent group).
    pub async fn administers_group_of(
        &self,
        state: &AppState,
        scope: Scope,
    ) -> Result<bool, ApiError> {
        Ok(match scope {
            Scope::Group(id) => self.access.is_group_admin(id),
            Scope::Org(id) => self
                .read_org(state, id)
                .await?
                .group_id
                .is_some_and(|g| self.access.is_group_admin(g)),
            Scope::User => false,
        })
    }

    /// When `scope`'s tenant was created, for a caller who passed the
    /// rights check on it (read from the authentication when the path named
    /// it).
    pub async fn tenant_created_us(&self, state: &AppState, scope: Scope) -> Result<i64, ApiError> {
        match scope {
            Scope::Org(id) => Ok(self.read_org(state, id).await?.created_us),
            Scope::Group(id) => Ok(self.admin_group(state, id).await?.created_us),
            Scope::User => Err(ApiError::internal("a user has no tenant")),
        }
    }

    /// The tenant the route's path names (`org_id`/`orgId` or
    /// `group_id`/`groupId`), after the rights check: a group always needs
    /// its admin; an org needs membership, or its admin for [`Need::Admin`].
    pub async fn path_tenant(
        &self,
        state: &AppState,
        p: &PathParams,
        need: Need,
    ) -> Result<Scope, ApiError> {
        let named = p
            .tenant()
            .ok_or_else(|| ApiError::internal("the route names no tenant"))??;
        match named {
            TenantRef::Group(id) => Ok(Scope::Group(self.admin_group(state, id).await?.id)),
            TenantRef::Org(id) => {
                let org = match need {
                    Need::Read => self.read_org(state, id).await?,
                    Need::Admin => self.admin_org(state, id).await?,
                };
                Ok(Scope::Org(org.id))
            }
        }
    }
}

/// What a request needs of an org it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Membership.
    Read,
    /// The org admin role (or the parent group's admin).
    Admin,
}

/// A path parameter that must be a UUID.
pub fn uuid_param(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::invalid_param(name, format!("{name} must be a UUID, got {raw:?}")))
}

/// Path parameters as strings, with rejections in the API's error format.
pub struct PathParams(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::invalid_param("path", e.body_text()))?;
        Ok(PathParams(params))
    }
}

impl PathParams {
    /// The first of `names` that the route has.
    pub fn name_of(&self, names: &[&'static str]) -> Option<&'static str> {
        names
            .iter()
            .copied()
            .find(|n| self.0.iter().any(|(k, _)| k == n))
    }

    /// The tenant the route names: `group_id`/`groupId` before
    /// `org_id`/`orgId`; `None` when it names neither, `Err` when the ID is
    /// not a UUID.
    pub fn tenant(&self) -> Option<Result<TenantRef, ApiError>> {
        if let Some(name) = self.name_of(&["group_id", "groupId"]) {
            return Some(self.uuid(name).map(TenantRef::Group));
        }
        let name = self.name_of(&["org_id", "orgId"])?;
        Some(self.uuid(name).map(TenantRef::Org))
    }

    /// The named parameter parsed as a UUID.
    pub fn uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        let raw = self
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::internal(format!("route has no {name} parameter")))?;
        uuid_param(name, raw)
    }
}

/// The query string as pairs, keeping repeated keys; unknown keys refused.
pub struct QueryParams(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let pairs = serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(|_| {
            ApiError::invalid_param("query", "the query string is not valid UTF-8 form encoding")
        })?;
        Ok(QueryParams(pairs))
    }
}

impl QueryParams {
    /// Fails on a key outside `allowed`.
    pub fn allow(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (k, _) in &self.0 {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::invalid_param(
                    k.clone(),
                    format!(
                        "unknown query parameter {k:?}; allowed: {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The single value of `key`; repeated keys are refused.
    pub fn one(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut it = self.0.iter().filter(|(k, _)| k == key);
        match (it.next(), it.next()) {
            (Some((_, v)), None) => Ok(Some(v.as_str())),
            (None, _) => Ok(None),
            _ => Err(ApiError::invalid_param(
                key,
                format!("{key} is given more than once"),
            )),
        }
    }

    /// `key` as a whole number in `lo..=hi`, or `default` when absent.
    pub fn number(&self, key: &str, lo: u64, hi: u64, default: u64) -> Result<u64, ApiError> {
        match self.one(key)? {
            None => Ok(default),
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        key,
                        format!("{key} must be a whole number from {lo} to {hi}"),
                    )
                }),
        }
    }

    /// `key` as a sort order (`ASC` or `DESC`, any case; default `DESC`).
    pub fn sort_order(&self, key: &str) -> Result<auditlake_store::SortOrder, ApiError> {
        use auditlake_store::SortOrder;
        match self.one(key)?.map(str::to_ascii_uppercase).as_deref() {
            None | Some("DESC") => Ok(SortOrder::Desc),
            Some("ASC") => Ok(SortOrder::Asc),
            Some(_) => Err(ApiError::invalid_param(
                key,
                format!("{key} must be ASC or DESC"),
            )),
        }
    }

    /// All values of `key`, each split on commas, empty items dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A JSON body: checks the content type (`application/vnd.api+json` for
/// REST, `application/json` where the API says so), the size, UTF-8 and the
/// shape, reporting the JSON pointer of the first bad field.
pub struct Body<T, const V1: bool = false>(pub T);

impl<T, S, const V1: bool> FromRequest<S> for Body<T, V1>
where
    T: DeserializeOwned + Send + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let want = if V1 { "application/json" } else { JSONAPI };
        // API v1 clients often POST without a body when they set no filter:
        // `Content-Length: 0`, or no length and no chunked body at all.
        if V1 && axum::body::HttpBody::size_hint(req.body()).exact() == Some(0) {
            return parse_json(b"{}").map(Body);
        }
        let ct = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case(want) {
            return Err(ApiError::content_type(format!(
                "send the body as {want}, not {:?}",
                if ct.is_empty() { "nothing" } else { ct }
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == 413 {
                ApiError::too_large(format!(
                    "the body is larger than this endpoint accepts ({})",
                    e.body_text()
                ))
            } else {
                ApiError::invalid_body("", format!("could not read the body: {}", e.body_text()))
            }
        })?;
        off_runtime(bytes.len(), move || parse_json(&bytes))
            .await
            .map(Body)
    }
}

/// Bodies above this size are parsed and checked on the blocking pool.
const LARGE_BODY: usize = 64 * 1024;

/// Runs `work` over `len` bytes of input: inline when small, on the
/// blocking pool when large. Parsing and validating a 16 MiB ingest batch
/// takes long enough that a few at once on the async workers would stall
/// every other request, `/healthz` included.
pub(crate) async fn off_runtime<T: Send + 'static>(
    len: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    if len <= LARGE_BODY {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Parses JSON with the failing field's pointer in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::invalid_body("", "the body is not valid UTF-8"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let pointer = pointer_of(e.path());
        let inner = e.into_inner();
        let msg = if inner.is_syntax() || inner.is_eof() {
            format!("the body is not valid JSON: {inner}")
        } else {
            inner.to_string()
        };
        ApiError::invalid_body(pointer, msg)
    })?;
    // Only whitespace may follow the document (as `serde_json::from_slice`
    // checks); without this, `{..} garbage` would be accepted.
    de.end()
        .map_err(|e| ApiError::invalid_body("", format!("the body is not valid JSON: {e}")))?;
    // Every body is an object. serde would also fill a struct from an
    // array, by position: `[]` would pass for an empty filter.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid_body("", "the body must be a JSON object"));
    }
    Ok(value)
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    out
}
