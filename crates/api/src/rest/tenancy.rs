//! Tenancy resources: the caller (`/self`), tokens, orgs, groups and
//! memberships.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use auditlake_core::{time_fmt, validate, Group, Org, Role, Scope, Token, User};
use auditlake_store::Member;

use super::body::{
    GroupMembershipType, NoAttributes, OrgMembershipType, OrgType, Request, ResourceType, TokenType,
};
use super::params::{GroupId, MembershipId, OrgId, TokenId};
use crate::error::ApiError;
use crate::extract::{Body, Caller, Need, PathParams, QueryParams};
use crate::jsonapi::{
    self, Collection, Doc, Document, Paging, Relationships, Resource, PAGING_PARAMS,
};
use crate::AppState;

const NAME_MAX: usize = 100;

/// Formats an optional time, as `null` when absent.
pub(crate) fn ts(us: Option<i64>) -> Option<String> {
    us.map(time_fmt::format_micros)
}

/// An org's attributes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrgAttributes {
    name: String,
    /// URL-friendly unique name.
    #[schema(example = "acme-7c9e2f")]
    slug: String,
    /// Parent group; null for a standalone org.
    group_id: Option<Uuid>,
    /// Setting name (1 to 64 of `[-_.:A-Za-z0-9]`) to any JSON value.
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
    /// RFC 3339 UTC timestamp with millisecond precision.
    #[schema(format = DateTime, example = "2024-10-15T09:30:00.000Z")]
    created_at: String,
}

/// An org.
pub(crate) fn org_resource(o: &Org) -> Resource<OrgAttributes> {
    Resource::new(
        "org",
        o.id,
        OrgAttributes {
            name: o.name.clone(),
            slug: o.slug.clone(),
            group_id: o.group_id,
            settings: o.settings.clone(),
            created_at: time_fmt::format_micros(o.created_us),
        },
        format!("/rest/orgs/{}", o.id),
    )
}

/// A group's attributes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupAttributes {
    name: String,
    /// RFC 3339 UTC timestamp.
    #[schema(format = DateTime)]
    created_at: String,
}

fn group_resource(g: &Group) -> Resource<GroupAttributes> {
    Resource::new(
        "group",
        g.id,
        GroupAttributes {
            name: g.name.clone(),
            created_at: time_fmt::format_micros(g.created_us),
        },
        format!("/rest/groups/{}", g.id),
    )
}

/// The caller's attributes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserAttributes {
    name: String,
    email: String,
    /// The email, as Snyk's `username`.
    username: String,
}

fn user_resource(u: &User) -> Resource<UserAttributes> {
    Resource::new(
        "user",
        u.id,
        UserAttributes {
            name: u.name.clone(),
            email: u.email.clone(),
            username: u.email.clone(),
        },
        "/rest/self".into(),
    )
}

/// An API token's attributes. The secret is shown once, when the token is
/// created.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenAttributes {
    name: String,
    /// The first characters of the secret, to recognise it by.
    prefix: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// Null: the token does not expire.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    /// The secret, in the answer that creates the token only.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

fn token_resource(t: &Token) -> Resource<TokenAttributes> {
    Resource::new(
        "token",
        t.id,
        TokenAttributes {
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            created_at: time_fmt::format_micros(t.created_us),
            expires_at: ts(t.expires_us),
            revoked_at: ts(t.revoked_us),
            token: None,
        },
        format!("/rest/self/tokens/{}", t.id),
    )
}

/// A membership's attributes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MembershipAttributes {
    /// `org_admin` or `org_member` in an org, `group_admin` in a group.
    role: &'static str,
    user_email: String,
    user_name: String,
    #[schema(format = DateTime)]
    created_at: String,
}

fn member_resource(scope: Scope, m: &Member) -> Resource<MembershipAttributes> {
    let kind = match scope {
        Scope::Group(_) => "group_membership",
        _ => "org_membership",
    };
    let mut r = Resource::new(
        kind,
        m.id,
        MembershipAttributes {
            role: m.role.as_str(),
            user_email: m.email.clone(),
            user_name: m.name.clone(),
            created_at: time_fmt::format_micros(m.created_us),
        },
        format!("{}/memberships/{}", scope_base(scope), m.id),
    );
    r.relationships = Some(Relationships::user(m.user_id));
    r
}

// ---- self and tokens ----

/// Get the caller
///
/// The user the API token belongs to.
#[utoipa::path(get, path = "/self", tag = "Users",
    responses((status = 200, description = "The caller.", body = Document<Resource<UserAttributes>>)))]
pub(crate) async fn get_self(caller: Caller) -> Result<Doc, ApiError> {
    Doc::ok(&Document::of(user_resource(&caller.user)))
}

route! {
    /// Get the caller (Snyk's older path)
    ///
    /// The same as `GET /rest/self`.
    #[utoipa::path(get, path = "/users/self", tag = "Users",
        responses((status = 200, description = "The caller.", body = Document<Resource<UserAttributes>>)))]
    get_users_self => get_self(caller: Caller) -> Result<Doc, ApiError>
}

/// A new token: a name and, optionally, when it expires.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenAttrs {
    /// Required.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    /// RFC 3339, in the future; absent: the token does not expire.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Create an API token
///
/// The answer holds the secret (`attributes.token`), which is shown only
/// here. Writes `user.token.create`.
#[utoipa::path(post, path = "/self/tokens", tag = "Tokens",
    request_body = Request<TokenType, TokenAttrs>,
    responses((status = 201, description = "The token, with its secret.", body = Document<Resource<TokenAttributes>>,
        links(
            ("GetToken" = (operation_id = "get_token", parameters(
                ("token_id" = "$response.body#/data/id"), ("version" = "$request.query.version")))),
            ("RevokeToken" = (operation_id = "revoke_token", parameters(
                ("token_id" = "$response.body#/data/id"), ("version" = "$request.query.version"))))))))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<Request<TokenType, TokenAttrs>>,
) -> Result<Doc, ApiError> {
    req.data.expect_type()?;
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
    let mut data = token_resource(&new.token);
    data.attributes.token = Some(new.secret);
    Doc::created(
        &Document::of(data),
        format!("/rest/self/tokens/{}", new.token.id),
    )
}

/// List the caller's API tokens
///
/// Revoked and expired tokens too, without their secrets.
#[utoipa::path(get, path = "/self/tokens", tag = "Tokens", params(Paging),
    responses((status = 200, description = "A page of tokens.", body = Collection<Resource<TokenAttributes>>)))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.tokens(caller.user.id, page).await?;
    jsonapi::list(
        &res,
        res.items.iter().map(token_resource).collect(),
        page,
        "/rest/self/tokens",
        &q,
        |t| t.id,
    )
}

/// Get an API token
#[utoipa::path(get, path = "/self/tokens/{token_id}", tag = "Tokens", params(TokenId),
    responses((status = 200, description = "The token, without its secret.", body = Document<Resource<TokenAttributes>>)))]
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
    Doc::ok(&Document::of(token_resource(&t)))
}

/// Revoke one of the caller's tokens
///
/// The token stays listed, with `revoked_at` set (`user.token.revoke`);
/// revoking a revoked token changes nothing and also answers 204.
#[utoipa::path(delete, path = "/self/tokens/{token_id}", tag = "Tokens", params(TokenId),
    responses((status = 204, description = "Revoked.")))]
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

/// An org's attributes in a request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrgAttrs {
    /// Required to create; absent or null keeps the current one.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    /// To create the org in a group the caller administers; not changed
    /// with PATCH (an org joins a group with `POST /rest/groups/{group_id}/orgs`).
    #[schema(format = Uuid)]
    group_id: Option<String>,
    /// PATCH only: a JSON merge patch of the settings. Each key (1 to 64 of
    /// `[-_.:A-Za-z0-9]`) is set to its value, or removed when the value is
    /// null. At most 16 KiB serialized.
    #[schema(value_type = Option<Object>)]
    settings: Option<Map<String, Value>>,
}

fn org_name(a: &OrgAttrs) -> Result<Option<String>, ApiError> {
    a.name
        .as_deref()
        .map(|n| validate::text("name", n, NAME_MAX))
        .transpose()
        .map_err(|e| ApiError::invalid_body("/data/attributes/name", e.message))
}

/// Create an org
///
/// Standalone, or in a group the caller administers (`group_id`). The
/// caller becomes its admin. Writes `org.create`.
#[utoipa::path(post, path = "/orgs", tag = "Orgs", request_body = Request<OrgType, OrgAttrs>,
    responses((status = 201, description = "The org.", body = Document<Resource<OrgAttributes>>,
        links(
            ("GetOrg" = (operation_id = "get_org", parameters(
                ("org_id" = "$response.body#/data/id"), ("version" = "$request.query.version")))),
            ("UpdateOrg" = (operation_id = "update_org", parameters(
                ("org_id" = "$response.body#/data/id"), ("version" = "$request.query.version"))))))))]
pub(crate) async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<Request<OrgType, OrgAttrs>>,
) -> Result<Doc, ApiError> {
    req.data.expect_type()?;
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
            let id = Uuid::parse_str(g).map_err(|_| {
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
    Doc::created(
        &Document::of(org_resource(&org)),
        format!("/rest/orgs/{}", org.id),
    )
}

/// List the caller's orgs
///
/// Orgs the caller is a member of, and the orgs of groups they administer.
#[utoipa::path(get, path = "/orgs", tag = "Orgs", params(Paging),
    responses((status = 200, description = "A page of orgs.", body = Collection<Resource<OrgAttributes>>)))]
pub(crate) async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.orgs_of(caller.user.id, page).await?;
    jsonapi::list(
        &res,
        res.items.iter().map(org_resource).collect(),
        page,
        "/rest/orgs",
        &q,
        |o| o.id,
    )
}

/// Get an org
///
/// Needs membership of the org, or admin of its group.
#[utoipa::path(get, path = "/orgs/{org_id}", tag = "Orgs", params(OrgId),
    responses((status = 200, description = "The org.", body = Document<Resource<OrgAttributes>>)))]
pub(crate) async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Doc, ApiError> {
    let org = caller.read_org(&state, p.uuid("org_id")?).await?;
    Doc::ok(&Document::of(org_resource(&org)))
}

/// Rename an org or change its settings
///
/// Needs the org admin role (a mere member gets 403). Writes `org.edit`
/// for a new name and `org.settings.edit` with `before`/`after` of the
/// changed settings.
#[utoipa::path(patch, path = "/orgs/{org_id}", tag = "Orgs", params(OrgId),
    request_body = Request<OrgType, OrgAttrs>,
    responses((status = 200, description = "The updated org.", body = Document<Resource<OrgAttributes>>)))]
pub(crate) async fn update_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<OrgType, OrgAttrs>>,
) -> Result<Doc, ApiError> {
    let id = p.uuid("org_id")?;
    req.data.expect_type()?;
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
    Doc::ok(&Document::of(org_resource(&org)))
}

// ---- groups ----

/// List the groups the caller administers
#[utoipa::path(get, path = "/groups", tag = "Groups", params(Paging),
    responses((status = 200, description = "A page of groups.", body = Collection<Resource<GroupAttributes>>)))]
pub(crate) async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.groups_of(caller.user.id, page).await?;
    jsonapi::list(
        &res,
        res.items.iter().map(group_resource).collect(),
        page,
        "/rest/groups",
        &q,
        |g| g.id,
    )
}

/// Get a group
///
/// Needs the group admin role.
#[utoipa::path(get, path = "/groups/{group_id}", tag = "Groups", params(GroupId),
    responses((status = 200, description = "The group.", body = Document<Resource<GroupAttributes>>)))]
pub(crate) async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Doc, ApiError> {
    let g = caller.admin_group(&state, p.uuid("group_id")?).await?;
    Doc::ok(&Document::of(group_resource(&g)))
}

/// List a group's orgs
#[utoipa::path(get, path = "/groups/{group_id}/orgs", tag = "Groups", params(GroupId, Paging),
    responses((status = 200, description = "A page of the group's orgs.", body = Collection<Resource<OrgAttributes>>)))]
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
    let path = format!("/rest/groups/{}/orgs", g.id);
    jsonapi::list(
        &res,
        res.items.iter().map(org_resource).collect(),
        page,
        &path,
        &q,
        |o| o.id,
    )
}

/// Move a standalone org into a group
///
/// `data` names the org (`{"type": "org", "id": ...}`). Needs the group
/// admin role and the org admin role on the org (`group.org.add`). An org
/// already in a group answers 409.
#[utoipa::path(post, path = "/groups/{group_id}/orgs", tag = "Groups", params(GroupId),
    request_body = Request<OrgType, NoAttributes>,
    responses((status = 201, description = "The org, now in the group.", body = Document<Resource<OrgAttributes>>,
        links(("GetOrg" = (operation_id = "get_org", parameters(
            ("org_id" = "$response.body#/data/id"), ("version" = "$request.query.version"))))))))]
pub(crate) async fn add_group_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<OrgType, NoAttributes>>,
) -> Result<Doc, ApiError> {
    let g = caller.admin_group(&state, p.uuid("group_id")?).await?;
    req.data.expect_type()?;
    let org_id = req.data.id_uuid()?;
    caller
        .admin_org(&state, org_id)
        .await
        .map_err(|e| e.at(crate::error::Source::Pointer("/data/id".into())))?;
    let org = state
        .store
        .add_org_to_group(g.id, org_id, &caller.actor())
        .await?;
    Doc::created(
        &Document::of(org_resource(&org)),
        format!("/rest/orgs/{}", org.id),
    )
}

// ---- memberships ----

/// A new membership: the user is in `relationships.user`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberAttrs {
    /// In an org `org_admin` or `org_member` (the default), in a group
    /// `group_admin` (the default).
    #[schema(value_type = Option<RoleName>)]
    role: Option<String>,
}

/// The roles.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum RoleName {
    /// Administers an org.
    OrgAdmin,
    /// Reads an org.
    OrgMember,
    /// Administers a group and its orgs.
    GroupAdmin,
}

fn scope_base(scope: Scope) -> String {
    match scope {
        Scope::Group(g) => format!("/rest/groups/{g}"),
        Scope::Org(o) => format!("/rest/orgs/{o}"),
        Scope::User => String::new(),
    }
}

route! {
    /// List an org's members
    #[utoipa::path(get, path = "/orgs/{org_id}/memberships", tag = "Memberships",
        params(OrgId, Paging),
        responses((status = 200, description = "A page of memberships.", body = Collection<Resource<MembershipAttributes>>)))]
    list_org_members => list_members(state: State<AppState>, caller: Caller, p: PathParams, q: QueryParams) -> Result<Doc, ApiError>
}

route! {
    /// List a group's admins
    #[utoipa::path(get, path = "/groups/{group_id}/memberships", tag = "Memberships",
        params(GroupId, Paging),
        responses((status = 200, description = "A page of memberships.", body = Collection<Resource<MembershipAttributes>>)))]
    list_group_members => list_members(state: State<AppState>, caller: Caller, p: PathParams, q: QueryParams) -> Result<Doc, ApiError>
}

async fn list_members(
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
    jsonapi::list(
        &res,
        res.items
            .iter()
            .map(|m| member_resource(scope, m))
            .collect(),
        page,
        &path,
        &q,
        |m| m.id,
    )
}

route! {
    /// Add a member to an org
    ///
    /// Needs the org admin role (`org.user.add`). An unknown user answers 404
    /// pointing at `/data/relationships/user/data/id`; an existing member, 409.
    #[utoipa::path(post, path = "/orgs/{org_id}/memberships", tag = "Memberships", params(OrgId),
        request_body = Request<OrgMembershipType, MemberAttrs>,
        responses((status = 201, description = "The membership.", body = Document<Resource<MembershipAttributes>>,
            links(("DeleteOrgMembership" = (operation_id = "remove_org_member", parameters(
                ("org_id" = "$request.path.org_id"), ("membership_id" = "$response.body#/data/id"),
                ("version" = "$request.query.version"))))))))]
    add_org_member => add_member(state: State<AppState>, caller: Caller, p: PathParams, body: Body<Request<OrgMembershipType, MemberAttrs>>) -> Result<Doc, ApiError>
}

route! {
    /// Add an admin to a group
    ///
    /// Needs the group admin role (`group.user.add`). An unknown user answers
    /// 404 pointing at `/data/relationships/user/data/id`; an existing member,
    /// 409.
    #[utoipa::path(post, path = "/groups/{group_id}/memberships", tag = "Memberships",
        params(GroupId), request_body = Request<GroupMembershipType, MemberAttrs>,
        responses((status = 201, description = "The membership.", body = Document<Resource<MembershipAttributes>>,
            links(("DeleteGroupMembership" = (operation_id = "remove_group_member", parameters(
                ("group_id" = "$request.path.group_id"), ("membership_id" = "$response.body#/data/id"),
                ("version" = "$request.query.version"))))))))]
    add_group_member => add_member(state: State<AppState>, caller: Caller, p: PathParams, body: Body<Request<GroupMembershipType, MemberAttrs>>) -> Result<Doc, ApiError>
}

async fn add_member<K: ResourceType>(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<K, MemberAttrs>>,
) -> Result<Doc, ApiError> {
    let scope = caller.path_tenant(&state, &p, Need::Admin).await?;
    let default_role = match scope {
        Scope::Group(_) => Role::GroupAdmin,
        _ => Role::OrgMember,
    };
    req.data.expect_type()?;
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
    Doc::created(
        &Document::of(member_resource(scope, &m)),
        format!("{}/memberships/{}", scope_base(scope), m.id),
    )
}

route! {
    /// Remove a member from an org
    ///
    /// Needs the org admin role. Writes `org.user.remove`.
    #[utoipa::path(delete, path = "/orgs/{org_id}/memberships/{membership_id}", tag = "Memberships",
        params(OrgId, MembershipId), responses((status = 204, description = "Removed.")))]
    remove_org_member => remove_member(state: State<AppState>, caller: Caller, p: PathParams) -> Result<Response, ApiError>
}

route! {
    /// Remove an admin from a group
    ///
    /// Needs the group admin role. Writes `group.user.remove`.
    #[utoipa::path(delete, path = "/groups/{group_id}/memberships/{membership_id}",
        tag = "Memberships", params(GroupId, MembershipId),
        responses((status = 204, description = "Removed.")))]
    remove_group_member => remove_member(state: State<AppState>, caller: Caller, p: PathParams) -> Result<Response, ApiError>
}

async fn remove_member(
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
