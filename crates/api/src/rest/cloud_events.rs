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
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use auditlake_core::integration::{
    check_fields, CloudTrailConfig, KIND_AWS_CLOUDTRAIL, MAX_NAME_LEN,
};
use auditlake_core::{time_fmt, validate, Integration, Scope};
use auditlake_store::IntegrationChange;

use super::body::Request;
use crate::error::ApiError;
use crate::extract::{Body, Caller, Need, PathParams, QueryParams};
use crate::jsonapi::{self, resource, Doc, PAGING_PARAMS};
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

fn ts(us: Option<i64>) -> Value {
    us.map(|u| json!(time_fmt::format_micros(u)))
        .unwrap_or(Value::Null)
}

async fn render(state: &AppState, i: &Integration) -> Result<Value, ApiError> {
    let lag = state.store.lag(i).await?;
    let now = time_fmt::now_micros();
    let (kind, base) = kind_and_base(i.scope);
    Ok(resource(
        kind,
        i.id,
        json!({
            "type": i.kind,
            "name": i.name,
            "config": { "account_id": i.config.account_id, "channel_arn": i.config.channel_arn },
            "external_id": i.external_id(),
            "status": i.status.as_str(),
            "lag": {
                "events": lag.events,
                "seconds": lag.age_us(now) / 1_000_000,
            },
            "delivered_count": i.delivered,
            "failed_count": i.failed,
            "last_success_at": ts(i.last_success_us),
            "last_error": i.last_error,
            "last_error_at": ts(i.last_error_us),
            "created_at": time_fmt::format_micros(i.created_us),
            "updated_at": time_fmt::format_micros(i.updated_us),
        }),
        &format!("{base}/{}", i.id),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Attrs {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    config: Option<ConfigAttrs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigAttrs {
    account_id: Option<String>,
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

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<Attrs>>,
) -> Result<Doc, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let (kind, base) = kind_and_base(scope);
    req.data.expect_type(kind)?;
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
    Ok(Doc::created(
        json!({ "data": render(&state, &i).await? }),
        format!("{base}/{}", i.id),
    ))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(PAGING_PARAMS)?;
    let scope = tenant(&state, &caller, &p).await?;
    let page = jsonapi::page_of(&q)?;
    let res = state.store.integrations_of(scope, page).await?;
    let mut rendered = std::collections::HashMap::with_capacity(res.items.len());
    for i in &res.items {
        rendered.insert(i.id, render(&state, i).await?);
    }
    let (_, base) = kind_and_base(scope);
    Ok(jsonapi::list(
        &res,
        page,
        &base,
        &q,
        |i| i.id,
        |i| rendered.get(&i.id).cloned().unwrap_or(Value::Null),
    ))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> Result<Doc, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let i = one(&state, scope, &p).await?;
    Ok(Doc::ok(json!({ "data": render(&state, &i).await? })))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<Attrs>>,
) -> Result<Doc, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let current = one(&state, scope, &p).await?;
    let (kind, _) = kind_and_base(scope);
    req.data.expect_type(kind)?;
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
    Ok(Doc::ok(json!({ "data": render(&state, &i).await? })))
}

pub(crate) async fn delete(
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayAttrs {
    from: Option<String>,
}

/// `POST .../{id}/replay`: sends the tenant's events from `from` again.
pub(crate) async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    Body(req): Body<Request<ReplayAttrs>>,
) -> Result<Doc, ApiError> {
    let scope = tenant(&state, &caller, &p).await?;
    let current = one(&state, scope, &p).await?;
    req.data.expect_type("replay")?;
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
    Ok(Doc::ok(json!({ "data": render(&state, &i).await? })))
}
