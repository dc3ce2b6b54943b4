//! Cloud event integrations: a group's `group_registrations` (Snyk's
//! experimental API, the seed's curl) and an org's `integrations` (Snyk has
//! them in its UI only; auditlake exposes them for automation too).
//!
//! Both are the same resource over a different tenant: only the group's
//! admin manages a registration, only the org's admin (or its group's) an
//! org integration. Another tenant's integration is "not found".

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use auditlake_core::integration::{
    check_fields, CloudTrailConfig, KIND_AWS_CLOUDTRAIL, MAX_NAME_LEN,
};
use auditlake_core::{time_fmt, validate, Integration, Scope};
use auditlake_store::IntegrationChange;

use super::body::{GroupRegistrationType, OrgIntegrationType, ReplayType, Request, ResourceType};
use super::params::{GroupId, GroupRegistrationId, IntegrationId, OrgId};
use super::tenancy::ts;
use crate::error::ApiError;
use crate::extract::{Body, Caller, Need, PathParams, QueryParams};
use crate::jsonapi::{self, Collection, Doc, Document, Paging, Resource, PAGING_PARAMS};
use crate::AppState;

/// The JSON:API type and collection path of `scope`'s integrations.
fn kind_and_base(scope: Scope) -> (&'static str, String) {
    match scope {
        Scope::Group(g) => (
            "group_registration",
            format!("/rest/groups/{g}/cloud_events/group_registrations"),
        ),
        Scope::Org(o) => (
            "org_integration",
            format!("/rest/orgs/{o}/cloud_events/integrations"),
        ),
        Scope::User => ("integration", String::new()),
    }
}

/// The path parameter naming one integration.
const ID_PARAMS: &[&str] = &["group_registration_id", "integration_id"];

/// An integration's attributes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IntegrationAttributes {
    /// The destination's kind.
    #[serde(rename = "type")]
    #[schema(example = "aws-cloudtrail")]
    kind: String,
    name: String,
    config: Destination,
    /// The ID CloudTrail Lake's channel policy names: the Organization ID
    /// or Group ID.
    external_id: Uuid,
    /// `pending` until the first delivery, then `active`, or `failing`
    /// while deliveries fail.
    #[schema(example = "active")]
    status: &'static str,
    lag: Lag,
    /// Events the destination acknowledged.
    delivered_count: i64,
    /// Entries the destination refused (each retried).
    failed_count: i64,
    #[schema(format = DateTime)]
    last_success_at: Option<String>,
    last_error: Option<String>,
    #[schema(format = DateTime)]
    last_error_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// Where the events go.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Destination {
    /// The AWS account of the channel.
    #[schema(example = "123456789012")]
    account_id: String,
    /// The CloudTrail Lake channel.
    channel_arn: String,
}

/// What waits for delivery.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Lag {
    /// Events waiting.
    events: i64,
    /// Age of the oldest waiting event (0 when none waits).
    seconds: i64,
}

async fn render(
    state: &AppState,
    i: &Integration,
) -> Result<Resource<IntegrationAttributes>, ApiError> {
    let lag = state.store.lag(i).await?;
    let now = time_fmt::now_micros();
    let (kind, base) = kind_and_base(i.scope);
    Ok(Resource::new(
        kind,
        i.id,
        IntegrationAttributes {
            kind: i.kind.clone(),
            name: i.name.clone(),
            config: Destination {
                account_id: i.config.account_id.clone(),
                channel_arn: i.config.channel_arn.clone(),
            },
            external_id: i.external_id(),
            status: i.status.as_str(),
            lag: Lag {
                events: lag.events,
                seconds: lag.age_us(now) / 1_000_000,
            },
            delivered_count: i.delivered,
            failed_count: i.failed,
            last_success_at: ts(i.last_success_us),
            last_error: i.last_error.clone(),
            last_error_at: ts(i.last_error_us),
            created_at: time_fmt::format_micros(i.created_us),
            updated_at: time_fmt::format_micros(i.updated_us),
        },
        format!("{base}/{}", i.id),
    ))
}

/// An integration in a request: all three to create, any to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Attrs {
    /// The destination's kind.
    #[serde(rename = "type")]
    #[schema(value_type = Option<Kind>)]
    kind: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    config: Option<ConfigAttrs>,
}

/// The channel of the request examples.
const EXAMPLE_CHANNEL: &str = "arn:aws:cloudtrail:us-east-1:123456789012:channel/conformance";

/// The destination kinds.
#[derive(ToSchema)]
#[allow(dead_code)]
enum Kind {
    /// A CloudTrail Lake channel.
    #[schema(rename = "aws-cloudtrail")]
    AwsCloudtrail,
}

/// The destination in a request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigAttrs {
    /// The AWS account of the channel.
    #[schema(pattern = r"^\d{12}$", example = "123456789012")]
    account_id: Option<String>,
    /// `arn:aws:cloudtrail:{region}:{account_id}:channel/{id}`.
    channel_arn: Option<String>,
}

fn check_kind(kind: Option<&str>, required: bool) -> Result<(), ApiError> {
    match kind {
        Some(KIND_AWS_CLOUDTRAIL) => Ok(()),
        None if !required => Ok(()),
        None => Err(ApiError::invalid_body(
            "/data/attributes/type",
            format!("type is required; supported: {KIND_AWS_CLOUDTRAIL:?}"),
        )),
        Some(other) => Err(ApiError::invalid_body(
            "/data/attributes/type",
            format!("type {other:?} is not supported; supported: {KIND_AWS_CLOUDTRAIL:?}"),
        )),
    }
}

/// The JSON pointer of an integration input.
fn pointer(field: &str) -> String {
    match field {
        "name" => "/data/attributes/name".to_owned(),
        other => format!("/data/attributes/config/{other}"),
    }
}

fn check_name(name: &str) -> Result<String, ApiError> {
    validate::text("name", name, MAX_NAME_LEN)
        .map_err(|e| ApiError::invalid_body("/data/attributes/name", e.message))
}

/// Both config fields, checked together (the channel must belong to the
/// account).
fn check_config(account: Option<&str>, arn: Option<&str>) -> Result<CloudTrailConfig, ApiError> {
    let account = account.ok_or_else(|| {
        ApiError::invalid_body(
            "/data/attributes/config/account_id",
            "config.account_id is required",
        )
    })?;
    let arn = arn.ok_or_else(|| {
        ApiError::invalid_body(
            "/data/attributes/config/channel_arn",
            "config.channel_arn is required",
        )
    })?;
    CloudTrailConfig::new(account, arn).map_err(|(field, e)| {
        ApiError::invalid_body(format!("/data/attributes/config/{field}"), e.message)
    })
}

async fn tenant(state: &AppState, caller: &Caller, p: &PathParams) -> Result<Scope, ApiError> {
    caller.path_tenant(state, p, Need::Admin).await
}

async fn one(state: &AppState, scope: Scope, p: &PathParams) -> Result<Integration, ApiError> {
    let name = p
        .name_of(ID_PARAMS)
        .ok_or_else(|| ApiError::internal("the route names no integration"))?;
    let id = p.uuid(name)?;
    state
        .store
        .integration(scope, id)
        .await?
        .ok_or_else(|| not_found(scope, id))
}

fn not_found(scope: Scope, id: Uuid) -> ApiError {
    let what = match scope {
        Scope::Group(_) => "group registration",
        _ => "integration",
    };
    ApiError::not_found(format!("{what} {id} not found"))
}

async fn create<K: ResourceType>(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<K, Attrs>>,
) -> Result<Doc, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let (_, base) = kind_and_base(scope);
    req.data.expect_type()?;
    req.data.no_id()?;
    let a = &req.data.attributes;
    check_kind(a.kind.as_deref(), true)?;
    if a.config.is_none() && a.name.is_some() {
        return Err(ApiError::invalid_body(
            "/data/attributes/config",
            "config with account_id and channel_arn is required",
        ));
    }
    let config = a.config.as_ref();
    let (name, config) = check_fields(
        a.name.as_deref(),
        config.and_then(|c| c.account_id.as_deref()),
        config.and_then(|c| c.channel_arn.as_deref()),
    )
    .map_err(|errors| {
        let (field, message) = errors.into_iter().next().expect("at least one error");
        ApiError::invalid_body(pointer(field), message)
    })?;
    let i = state
        .store
        .create_integration(scope, &name, config, &caller.actor())
        .await?;
    Doc::created(
        &Document::of(render(&state, &i).await?),
        format!("{base}/{}", i.id),
    )
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let scope = tenant(&state, &caller, &p).await?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.integrations_of(scope, page).await?;
    let mut data = Vec::with_capacity(res.items.len());
    for i in &res.items {
        data.push(render(&state, i).await?);
    }
    let (_, base) = kind_and_base(scope);
    jsonapi::list(&res, data, page, &base, &q, |i| i.id)
}

async fn get(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Doc, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let i = one(&state, scope, &p).await?;
    Doc::ok(&Document::of(render(&state, &i).await?))
}

async fn update<K: ResourceType>(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<K, Attrs>>,
) -> Result<Doc, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let current = one(&state, scope, &p).await?;
    req.data.expect_type()?;
    if req.data.id_uuid()? != current.id {
        return Err(ApiError::conflict("data.id does not match the URL")
            .at(crate::error::Source::Pointer("/data/id".into())));
    }
    let a = &req.data.attributes;
    check_kind(a.kind.as_deref(), false)?;
    let name = a.name.as_deref().map(check_name).transpose()?;
    let config = a
        .config
        .as_ref()
        .map(|c| {
            check_config(
                Some(
                    c.account_id
                        .as_deref()
                        .unwrap_or(&current.config.account_id),
                ),
                Some(
                    c.channel_arn
                        .as_deref()
                        .unwrap_or(&current.config.channel_arn),
                ),
            )
        })
        .transpose()?;
    let i = state
        .store
        .update_integration(
            scope,
            current.id,
            IntegrationChange { name, config },
            &caller.actor(),
        )
        .await?;
    Doc::ok(&Document::of(render(&state, &i).await?))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Response, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let current = one(&state, scope, &p).await?;
    state
        .store
        .delete_integration(scope, current.id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Where a replay starts.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayAttrs {
    /// RFC 3339, not in the future; required.
    #[schema(format = DateTime)]
    from: Option<String>,
}

/// `POST .../{id}/replay`: sends the tenant's events from `from` again.
async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<ReplayType, ReplayAttrs>>,
) -> Result<Doc, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let current = one(&state, scope, &p).await?;
    req.data.expect_type()?;
    req.data.no_id()?;
    let from = req.data.attributes.from.as_deref().ok_or_else(|| {
        ApiError::invalid_body(
            "/data/attributes/from",
            "from (an RFC 3339 time) is required",
        )
    })?;
    let from_us = time_fmt::parse_rfc3339(from).ok_or_else(|| {
        ApiError::invalid_body(
            "/data/attributes/from",
            format!("from {from:?} is not an RFC 3339 time"),
        )
    })?;
    if from_us > time_fmt::now_micros() {
        return Err(ApiError::invalid_body(
            "/data/attributes/from",
            "from must not be in the future",
        ));
    }
    let i = state
        .store
        .replay_integration(scope, current.id, from_us, &caller.actor())
        .await?;
    Doc::ok(&Document::of(render(&state, &i).await?))
}

type Handled = Result<Doc, ApiError>;
route! {
    /// Collection<Resource<IntegrationAttributes>> a group's cloud event registrations
    ///
    /// Needs the group admin role; others get 404. Ordered by ID.
    #[utoipa::path(get, path = "/groups/{group_id}/cloud_events/group_registrations",
        tag = "Cloud events", params(GroupId, Paging),
        responses((status = 200, description = "A page of registrations.", body = Collection<Resource<IntegrationAttributes>>)))]
    list_group_registrations => list(s: State<AppState>, c: Caller, p: PathParams, q: QueryParams) -> Handled
}

route! {
    /// Register a CloudTrail Lake channel for a group
    ///
    /// Forwards the group's audit log to a CloudTrail Lake channel. A group
    /// registration receives the group's own events and those of all its
    /// orgs, including orgs added later (from when they join). Starts
    /// forwarding at the head of the log: its own
    /// `group.cloud_events.registration.create` event is the first it sends,
    /// and earlier events go only on a replay. Needs the group admin role;
    /// others get 404. An invalid field answers 400 with `source.pointer`
    /// naming it.
    #[utoipa::path(post, path = "/groups/{group_id}/cloud_events/group_registrations",
        tag = "Cloud events", params(GroupId),
        request_body(content = Request<GroupRegistrationType, Attrs>, example = json!({"data": {
            "type": "group_registration", "attributes": {"type": "aws-cloudtrail", "name": "Audit trail",
            "config": {"account_id": "123456789012", "channel_arn": EXAMPLE_CHANNEL}}}})),
        responses((status = 201, description = "The registration.", body = Document<Resource<IntegrationAttributes>>,
            links(
                ("GetGroupRegistration" = (operation_id = "get_group_registration", parameters(
                    ("group_id" = "$request.path.group_id"),
                    ("group_registration_id" = "$response.body#/data/id"),
                    ("version" = "$request.query.version")))),
                ("UpdateGroupRegistration" = (operation_id = "update_group_registration", parameters(
                    ("group_id" = "$request.path.group_id"),
                    ("group_registration_id" = "$response.body#/data/id"),
                    ("version" = "$request.query.version")))),
                ("DeleteGroupRegistration" = (operation_id = "delete_group_registration", parameters(
                    ("group_id" = "$request.path.group_id"),
                    ("group_registration_id" = "$response.body#/data/id"),
                    ("version" = "$request.query.version"))))))))]
    create_group_registration => create(s: State<AppState>, c: Caller, p: PathParams, b: Body<Request<GroupRegistrationType, Attrs>>) -> Handled
}

route! {
    /// Get a group's cloud event registration
    ///
    /// Needs the group admin role; others get 404. Another tenant's group
    /// registration answers 404.
    #[utoipa::path(get,
        path = "/groups/{group_id}/cloud_events/group_registrations/{group_registration_id}",
        tag = "Cloud events", params(GroupId, GroupRegistrationId),
        responses((status = 200, description = "The registration.", body = Document<Resource<IntegrationAttributes>>)))]
    get_group_registration => get(s: State<AppState>, c: Caller, p: PathParams) -> Handled
}

route! {
    /// Rename a group registration or change its destination
    ///
    /// Needs the group admin role; others get 404. Writes
    /// `group.cloud_events.registration.edit` with `before`/`after` of what
    /// changed (nothing when nothing changes). `data.id` is required and must
    /// be the ID of the path (409 otherwise). A new destination sets `status`
    /// back to `pending`; the events not yet delivered go to it.
    #[utoipa::path(patch,
        path = "/groups/{group_id}/cloud_events/group_registrations/{group_registration_id}",
        tag = "Cloud events", params(GroupId, GroupRegistrationId), request_body = Request<GroupRegistrationType, Attrs>,
        responses((status = 200, description = "The registration.", body = Document<Resource<IntegrationAttributes>>)))]
    update_group_registration => update(s: State<AppState>, c: Caller, p: PathParams, b: Body<Request<GroupRegistrationType, Attrs>>) -> Handled
}

route! {
    /// Remove a group's cloud event registration
    ///
    /// Needs the group admin role; others get 404. Nothing more is forwarded
    /// to it (`group.cloud_events.registration.delete`).
    #[utoipa::path(delete,
        path = "/groups/{group_id}/cloud_events/group_registrations/{group_registration_id}",
        tag = "Cloud events", params(GroupId, GroupRegistrationId),
        responses((status = 204, description = "Removed.")))]
    delete_group_registration => delete(s: State<AppState>, c: Caller, p: PathParams) -> Result<Response, ApiError>
}

route! {
    /// Replay a group's events to a registration
    ///
    /// Sends the group's events from `from` on again, by moving the delivery
    /// point back to the first of them
    /// (`group.cloud_events.registration.replay`). Events delivered before go
    /// again under their own `UID`s; CloudTrail Lake may still store a second
    /// copy. Events stored after that first one with an earlier client-given
    /// time are sent again too: the log's order is arrival, not time. `from`
    /// must be an RFC 3339 time, not in the future (400 otherwise). Needs the
    /// group admin role; others get 404.
    #[utoipa::path(post,
        path = "/groups/{group_id}/cloud_events/group_registrations/{group_registration_id}/replay",
        tag = "Cloud events", params(GroupId, GroupRegistrationId),
        request_body = Request<ReplayType, ReplayAttrs>,
        responses((status = 200, description = "The registration.", body = Document<Resource<IntegrationAttributes>>)))]
    replay_group_registration => replay(s: State<AppState>, c: Caller, p: PathParams, b: Body<Request<ReplayType, ReplayAttrs>>) -> Handled
}

route! {
    /// Collection<Resource<IntegrationAttributes>> an org's cloud event integrations
    ///
    /// Needs the org admin role or admin of its group (a mere member gets
    /// 403, others 404). Ordered by ID.
    #[utoipa::path(get, path = "/orgs/{org_id}/cloud_events/integrations",
        tag = "Cloud events", params(OrgId, Paging),
        responses((status = 200, description = "A page of integrations.", body = Collection<Resource<IntegrationAttributes>>)))]
    list_org_integrations => list(s: State<AppState>, c: Caller, p: PathParams, q: QueryParams) -> Handled
}

route! {
    /// Register a CloudTrail Lake channel for an org
    ///
    /// Forwards the org's audit log to a CloudTrail Lake channel. An org
    /// integration receives the org's events only, not those of its group.
    /// Starts forwarding at the head of the log: its own
    /// `org.cloud_events.integration.create` event is the first it sends, and
    /// earlier events go only on a replay. Needs the org admin role or admin
    /// of its group (a mere member gets 403, others 404). An invalid field
    /// answers 400 with `source.pointer` naming it.
    #[utoipa::path(post, path = "/orgs/{org_id}/cloud_events/integrations",
        tag = "Cloud events", params(OrgId),
        request_body(content = Request<OrgIntegrationType, Attrs>, example = json!({"data": {
            "type": "org_integration", "attributes": {"type": "aws-cloudtrail", "name": "Audit trail",
            "config": {"account_id": "123456789012", "channel_arn": EXAMPLE_CHANNEL}}}})),
        responses((status = 201, description = "The integration.", body = Document<Resource<IntegrationAttributes>>,
            links(
                ("GetOrgIntegration" = (operation_id = "get_org_integration", parameters(
                    ("org_id" = "$request.path.org_id"),
                    ("integration_id" = "$response.body#/data/id"),
                    ("version" = "$request.query.version")))),
                ("UpdateOrgIntegration" = (operation_id = "update_org_integration", parameters(
                    ("org_id" = "$request.path.org_id"),
                    ("integration_id" = "$response.body#/data/id"),
                    ("version" = "$request.query.version")))),
                ("DeleteOrgIntegration" = (operation_id = "delete_org_integration", parameters(
                    ("org_id" = "$request.path.org_id"),
                    ("integration_id" = "$response.body#/data/id"),
                    ("version" = "$request.query.version"))))))))]
    create_org_integration => create(s: State<AppState>, c: Caller, p: PathParams, b: Body<Request<OrgIntegrationType, Attrs>>) -> Handled
}

route! {
    /// Get an org's cloud event integration
    ///
    /// Needs the org admin role or admin of its group (a mere member gets
    /// 403, others 404). Another tenant's org integration answers 404.
    #[utoipa::path(get, path = "/orgs/{org_id}/cloud_events/integrations/{integration_id}",
        tag = "Cloud events", params(OrgId, IntegrationId),
        responses((status = 200, description = "The integration.", body = Document<Resource<IntegrationAttributes>>)))]
    get_org_integration => get(s: State<AppState>, c: Caller, p: PathParams) -> Handled
}

route! {
    /// Rename an org integration or change its destination
    ///
    /// Needs the org admin role or admin of its group (a mere member gets
    /// 403, others 404). Writes `org.cloud_events.integration.edit` with
    /// `before`/`after` of what changed (nothing when nothing changes).
    /// `data.id` is required and must be the ID of the path (409 otherwise).
    /// A new destination sets `status` back to `pending`; the events not yet
    /// delivered go to it.
    #[utoipa::path(patch, path = "/orgs/{org_id}/cloud_events/integrations/{integration_id}",
        tag = "Cloud events", params(OrgId, IntegrationId), request_body = Request<OrgIntegrationType, Attrs>,
        responses((status = 200, description = "The integration.", body = Document<Resource<IntegrationAttributes>>)))]
    update_org_integration => update(s: State<AppState>, c: Caller, p: PathParams, b: Body<Request<OrgIntegrationType, Attrs>>) -> Handled
}

route! {
    /// Remove an org's cloud event integration
    ///
    /// Needs the org admin role or admin of its group (a mere member gets
    /// 403, others 404). Nothing more is forwarded to it
    /// (`org.cloud_events.integration.delete`).
    #[utoipa::path(delete, path = "/orgs/{org_id}/cloud_events/integrations/{integration_id}",
        tag = "Cloud events", params(OrgId, IntegrationId),
        responses((status = 204, description = "Removed.")))]
    delete_org_integration => delete(s: State<AppState>, c: Caller, p: PathParams) -> Result<Response, ApiError>
}

route! {
    /// Replay an org's events to an integration
    ///
    /// Sends the org's events from `from` on again, by moving the delivery
    /// point back to the first of them (`org.cloud_events.integration.replay`).
    /// Events delivered before go again under their own `UID`s; CloudTrail
    /// Lake may still store a second copy. Events stored after that first one
    /// with an earlier client-given time are sent again too: the log's order
    /// is arrival, not time. `from` must be an RFC 3339 time, not in the
    /// future (400 otherwise). Needs the org admin role or admin of its group
    /// (a mere member gets 403, others 404).
    #[utoipa::path(post,
        path = "/orgs/{org_id}/cloud_events/integrations/{integration_id}/replay",
        tag = "Cloud events", params(OrgId, IntegrationId), request_body = Request<ReplayType, ReplayAttrs>,
        responses((status = 200, description = "The integration.", body = Document<Resource<IntegrationAttributes>>)))]
    replay_org_integration => replay(s: State<AppState>, c: Caller, p: PathParams, b: Body<Request<ReplayType, ReplayAttrs>>) -> Handled
}
