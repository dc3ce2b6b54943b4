//! Tenancy resources: the caller (`/self`), tokens, orgs, groups and
//! memberships.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use auditlake_core::{time_fmt, validate, Group, Org, Role, Scope, Token, User};
use auditlake_store::Member;

use super::body::{NoAttributes, Request};
use crate::error::ApiError;
use crate::extract::{Body, Caller, Need, PathParams, QueryParams};
use crate::jsonapi::{self, resource, Doc, PAGING_PARAMS};
use crate::AppState;

const NAME_MAX: usize = 100;

fn ts(us: Option<i64>) -> Value {
    us.map(|u| json!(time_fmt::format_micros(u)))
        .unwrap_or(Value::Null)
}

pub(crate) fn org_json(o: &Org) -> Value {
    resource(
        "org",
        o.id,
        json!({
            "name": o.name,
            "slug": o.slug,
            "group_id": o.group_id,
            "settings": o.settings,
            "created_at": time_fmt::format_micros(o.created_us),
        }),
        &format!("/rest/orgs/{}", o.id),
    )
}

fn group_json(g: &Group) -> Value {
    resource(
        "group",
        g.id,
        json!({ "name": g.name, "created_at": time_fmt::format_micros(g.created_us) }),
        &format!("/rest/groups/{}", g.id),
    )
}

fn user_json(u: &User) -> Value {
    resource(
        "user",
        u.id,
        json!({ "name": u.name, "email": u.email, "username": u.email }),
        "/rest/self",
    )
}

fn token_json(t: &Token) -> Value {
    resource(
        "token",
        t.id,
        json!({
            "name": t.name,
            "prefix": t.prefix,
            "created_at": time_fmt::format_micros(t.created_us),
            "expires_at": ts(t.expires_us),
            "revoked_at": ts(t.revoked_us),
        }),
        &format!("/rest/self/tokens/{}", t.id),
    )
}

fn member_json(scope: Scope, m: &Member) -> Value {
    let (kind, base) = match scope {
        Scope::Group(g) => ("group_membership", format!("/rest/groups/{g}")),
        Scope::Org(o) => ("org_membership", format!("/rest/orgs/{o}")),
        Scope::User => ("membership", String::new()),
    };
    let mut r = resource(
        kind,
        m.id,
        json!({
            "role": m.role.as_str(),
            "user_email": m.email,
            "user_name": m.name,
            "created_at": time_fmt::format_micros(m.created_us),
        }),
        &format!("{base}/memberships/{}", m.id),
    );
    r["relationships"] = json!({ "user": { "data": { "type": "user", "id": m.user_id } } });
    r
}

// ---- self and tokens ----

pub(crate) async fn get_self(caller: Caller) -> Result<Doc, ApiError> {
    Ok(Doc::ok(json!({ "data": user_json(&caller.user) })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenAttrs {
    name: Option<String>,
    expires_at: Option<String>,
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<Request<TokenAttrs>>,
) -> Result<Doc, ApiError> {
    req.data.expect_type("token")?;
    req.data.no_id()?;
    let a = &req.data.attributes;
    let name = a
        .name
        .as_deref()
        .ok_or_else(|| ApiError::invalid_body("/data/attributes/name", "name is required"))?;
    let name = validate::text("name", name, NAME_MAX)
        .map_err(|e| ApiError::invalid_body("/data/attributes/name", e.message))?;
    let expires = match &a.expires_at {
        None => None,
        Some(s) => {
            let us = time_fmt::parse_rfc3339(s).ok_or_else(|| {
                ApiError::invalid_body(
                    "/data/attributes/expires_at",
                    "expires_at must be an RFC 3339 timestamp",
                )
            })?;
            if us <= time_fmt::now_micros() {
                return Err(ApiError::invalid_body(
                    "/data/attributes/expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(us)
        }
    };
    let new = state
        .store
        .create_token(caller.user.id, &name, expires, &caller.actor())
        .await?;
    let mut data = token_json(&new.token);
    data["attributes"]["token"] = json!(new.secret);
    Ok(Doc::created(
        json!({ "data": data }),
        format!("/rest/self/tokens/{}", new.token.id),
    ))
}

pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.tokens(caller.user.id, page).await?;
    Ok(jsonapi::list(
        &res,
        page,
        "/rest/self/tokens",
        &q,
        |t| t.id,
        token_json,
    ))
}

pub(crate) async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Doc, ApiError> {
    let id = p.uuid("token_id")?;
    let t = state
        .store
        .token(caller.user.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("token {id} not found")))?;
    Ok(Doc::ok(json!({ "data": token_json(&t) })))
}

pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Response, ApiError> {
    let id = p.uuid("token_id")?;
    state
        .store
        .revoke_token(caller.user.id, id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- orgs ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrgAttrs {
    name: Option<String>,
    group_id: Option<String>,
    settings: Option<Map<String, Value>>,
}

fn org_name(a: &OrgAttrs) -> Result<Option<String>, ApiError> {
    a.name
        .as_deref()
        .map(|n| validate::text("name", n, NAME_MAX))
        .transpose()
        .map_err(|e| ApiError::invalid_body("/data/attributes/name", e.message))
}

pub(crate) async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<Request<OrgAttrs>>,
) -> Result<Doc, ApiError> {
    req.data.expect_type("org")?;
    req.data.no_id()?;
    let a = &req.data.attributes;
    if a.settings.is_some() {
        return Err(ApiError::invalid_body(
            "/data/attributes/settings",
            "settings are set with PATCH after the org exists",
        ));
    }
    let name = org_name(a)?
        .ok_or_else(|| ApiError::invalid_body("/data/attributes/name", "name is required"))?;
    let group = match &a.group_id {
        None => None,
        Some(g) => {
            let id = uuid::Uuid::parse_str(g).map_err(|_| {
                ApiError::invalid_body("/data/attributes/group_id", "group_id must be a UUID")
            })?;
            caller.admin_group(&state, id).await.map_err(|e| {
                e.at(crate::error::Source::Pointer(
                    "/data/attributes/group_id".into(),
                ))
            })?;
            Some(id)
        }
    };
    let org = state
        .store
        .create_org(&name, group, &caller.actor())
        .await?;
    Ok(Doc::created(
        json!({ "data": org_json(&org) }),
        format!("/rest/orgs/{}", org.id),
    ))
}

pub(crate) async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.orgs_of(caller.user.id, page).await?;
    Ok(jsonapi::list(
        &res,
        page,
        "/rest/orgs",
        &q,
        |o| o.id,
        org_json,
    ))
}

pub(crate) async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Doc, ApiError> {
    let org = caller.read_org(&state, p.uuid("org_id")?).await?;
    Ok(Doc::ok(json!({ "data": org_json(&org) })))
}

pub(crate) async fn update_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<OrgAttrs>>,
) -> Result<Doc, ApiError> {
    let id = p.uuid("org_id")?;
    req.data.expect_type("org")?;
    if let Some(given) = &req.data.id {
        if given != &id.to_string() {
            return Err(
                ApiError::conflict("data.id does not match the org in the path")
                    .at(crate::error::Source::Pointer("/data/id".into())),
            );
        }
    }
    let a = &req.data.attributes;
    if a.group_id.is_some() {
        return Err(ApiError::invalid_body(
            "/data/attributes/group_id",
            "an org joins a group with POST /rest/groups/{group_id}/orgs",
        ));
    }
    let name = org_name(a)?;
    if let Some(s) = &a.settings {
        for (k, _) in s {
            validate::identifier("setting name", k, 64).map_err(|e| {
                ApiError::invalid_body(format!("/data/attributes/settings/{k}"), e.message)
            })?;
        }
        if Value::Object(s.clone()).to_string().len() > 16_384 {
            return Err(ApiError::invalid_body(
                "/data/attributes/settings",
                "settings may hold at most 16 KiB",
            ));
        }
    }
    caller.admin_org(&state, id).await?;
    let org = state
        .store
        .update_org(id, name.as_deref(), a.settings.as_ref(), &caller.actor())
        .await?;
    Ok(Doc::ok(json!({ "data": org_json(&org) })))
}

// ---- groups ----

pub(crate) async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.groups_of(caller.user.id, page).await?;
    Ok(jsonapi::list(
        &res,
        page,
        "/rest/groups",
        &q,
        |g| g.id,
        group_json,
    ))
}

pub(crate) async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Doc, ApiError> {
    let g = caller.admin_group(&state, p.uuid("group_id")?).await?;
    Ok(Doc::ok(json!({ "data": group_json(&g) })))
}

pub(crate) async fn list_group_orgs(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let g = caller.admin_group(&state, p.uuid("group_id")?).await?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.group_orgs(g.id, page).await?;
    Ok(jsonapi::list(
        &res,
        page,
        &format!("/rest/groups/{}/orgs", g.id),
        &q,
        |o| o.id,
        org_json,
    ))
}

pub(crate) async fn add_group_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<NoAttributes>>,
) -> Result<Doc, ApiError> {
    let g = caller.admin_group(&state, p.uuid("group_id")?).await?;
    req.data.expect_type("org")?;
    let org_id = req.data.id_uuid()?;
    caller
        .admin_org(&state, org_id)
        .await
        .map_err(|e| e.at(crate::error::Source::Pointer("/data/id".into())))?;
    let org = state
        .store
        .add_org_to_group(g.id, org_id, &caller.actor())
        .await?;
    Ok(Doc::created(
        json!({ "data": org_json(&org) }),
        format!("/rest/orgs/{}", org.id),
    ))
}

// ---- memberships ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberAttrs {
    role: Option<String>,
}

fn scope_base(scope: Scope) -> String {
    match scope {
        Scope::Group(g) => format!("/rest/groups/{g}"),
        Scope::Org(o) => format!("/rest/orgs/{o}"),
        Scope::User => String::new(),
    }
}

pub(crate) async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let scope = caller.path_tenant(&state, &p, Need::Read).await?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.members(scope, page).await?;
    let path = format!("{}/memberships", scope_base(scope));
    Ok(jsonapi::list(
        &res,
        page,
        &path,
        &q,
        |m| m.id,
        |m| member_json(scope, m),
    ))
}

pub(crate) async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<MemberAttrs>>,
) -> Result<Doc, ApiError> {
    let scope = caller.path_tenant(&state, &p, Need::Admin).await?;
    let (kind, default_role) = match scope {
        Scope::Group(_) => ("group_membership", Role::GroupAdmin),
        _ => ("org_membership", Role::OrgMember),
    };
    req.data.expect_type(kind)?;
    req.data.no_id()?;
    let role = match req.data.attributes.role.as_deref() {
        None => default_role,
        Some(r) => Role::parse(r)
            .filter(|r| r.is_org_role() == matches!(scope, Scope::Org(_)))
            .ok_or_else(|| {
                ApiError::invalid_body(
                    "/data/attributes/role",
                    match scope {
                        Scope::Group(_) => "role must be \"group_admin\"",
                        _ => "role must be \"org_admin\" or \"org_member\"",
                    },
                )
            })?,
    };
    let user = req.data.user_id()?;
    // User IDs are platform-wide, and anyone may make an org of their own:
    // unless the operator allows any add, a user may be added by an admin
    // of the tenant's group (whom the operator appointed), or by the
    // tenant's admin if they already belong to that group. Anyone else is
    // "not found", as a user who does not exist, so that nothing is
    // revealed.
    if state.membership_adds == crate::MembershipAdds::WithinGroup
        && !caller.administers_group_of(&state, scope).await?
        && !state.store.in_group_of(scope, user).await?
    {
        return Err(
            ApiError::from(auditlake_store::StoreError::NotFound("user")).at(
                crate::error::Source::Pointer("/data/relationships/user/data/id".into()),
            ),
        );
    }
    let m = state
        .store
        .add_member(scope, user, role, &caller.actor())
        .await
        .map_err(|e| {
            let e: ApiError = e.into();
            if e.status == StatusCode::NOT_FOUND {
                e.at(crate::error::Source::Pointer(
                    "/data/relationships/user/data/id".into(),
                ))
            } else {
                e
            }
        })?;
    Ok(Doc::created(
        json!({ "data": member_json(scope, &m) }),
        format!("{}/memberships/{}", scope_base(scope), m.id),
    ))
}

pub(crate) async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Response, ApiError> {
    let scope = caller.path_tenant(&state, &p, Need::Admin).await?;
    let id = p.uuid("membership_id")?;
    let m = state
        .store
        .member(scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("membership {id} not found")))?;
    state
        .store
        .remove_member(scope, m.user_id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
