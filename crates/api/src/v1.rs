//! Snyk API v1 audit logs, kept so users can match a CloudTrail
//! `principalId` to a user as the seed document describes:
//! `POST /v1/org/{orgId}/audit` and `POST /v1/group/{groupId}/audit`.
//! Errors come out in v1's shape through the `/v1` middleware.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use auditlake_core::{time_fmt, EventName};
use auditlake_store::SearchQuery;

use crate::error::ApiError;
use crate::extract::{Body, Caller, Need, PathParams, QueryParams};
use crate::rest::audit::{raw, SortOrder};
use crate::rest::params::{V1GroupId, V1OrgId};
use crate::AppState;

/// v1 pages hold 100 events.
const PAGE: u32 = 100;

/// The request body; it may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct V1Body {
    #[serde(default)]
    filters: V1Filters,
}

/// Which events.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct V1Filters {
    /// Events of this user.
    #[schema(format = Uuid)]
    user_id: Option<String>,
    /// Events of the user with this email; ignored when `userId` is set. No
    /// such user: an empty answer.
    email: Option<String>,
    /// Only this event; not together with `excludeEvent`.
    #[schema(example = "org.settings.edit")]
    event: Option<String>,
    /// All but this event; not together with `event`.
    exclude_event: Option<String>,
    #[schema(min_length = 1, max_length = 128, pattern = "^[-_.:A-Za-z0-9]+$")]
    project_id: Option<String>,
}

/// The query of a v1 page.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
struct V1Params {
    /// First day, inclusive (`YYYY-MM-DD`, UTC). Defaults to 90 days before
    /// today.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, inclusive (`YYYY-MM-DD`, UTC); not before `from`. Defaults
    /// to today.
    #[param(format = Date)]
    to: Option<String>,
    /// Page number; pages hold 100 events.
    #[param(minimum = 1, maximum = 100000, default = 1)]
    page: Option<u32>,
    /// By time, newest first by default; case-insensitive.
    #[param(inline)]
    sort_order: Option<SortOrder>,
}

/// An event as API v1 renders it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct V1Item<'a> {
    group_id: Option<Uuid>,
    org_id: Option<Uuid>,
    user_id: Option<Uuid>,
    project_id: Option<&'a str>,
    #[schema(example = "org.user.add")]
    event: &'a str,
    #[schema(value_type = Object)]
    content: &'a RawValue,
    /// RFC 3339 UTC timestamp.
    #[schema(format = DateTime)]
    created: String,
    /// The API token that ingested the event; the platform's own events
    /// have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    ingested_by: Option<Uuid>,
}

route! {
    /// Org audit logs (API v1)
    ///
    /// API v1, kept to match CloudTrail `principalId`s to users. Needs
    /// membership of the org, or admin of its group. No `version` parameter;
    /// errors come in v1's shape.
    #[utoipa::path(post, path = "/org/{orgId}/audit", tag = "Audit logs v1",
        params(V1OrgId, V1Params), request_body(content = Option<V1Body>),
        responses((status = 200, description = "A page of events.", body = Vec<V1Item>)))]
    org_audit => audit(state: State<AppState>, caller: Caller, p: PathParams, q: QueryParams, body: Body<V1Body, true>) -> Result<Response, ApiError>
}

route! {
    /// Group audit logs (API v1)
    ///
    /// API v1, kept to match CloudTrail `principalId`s to users. Needs the
    /// group admin role; others get 404. No `version` parameter; errors come in
    /// v1's shape.
    #[utoipa::path(post, path = "/group/{groupId}/audit", tag = "Audit logs v1",
        params(V1GroupId, V1Params), request_body(content = Option<V1Body>),
        responses((status = 200, description = "A page of events.", body = Vec<V1Item>)))]
    group_audit => audit(state: State<AppState>, caller: Caller, p: PathParams, q: QueryParams, body: Body<V1Body, true>) -> Result<Response, ApiError>
}

async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    q: QueryParams,
    Body(body): Body<V1Body, true>,
) -> Result<Response, ApiError> {
    q.allow(&["from", "to", "page", "sortOrder"])?;
    let scope = caller.path_tenant(&state, &p, Need::Read).await?;
    let now = time_fmt::now_micros();
    let today = time_fmt::start_of_day(now);
    let day = |name: &str, default: i64| -> Result<i64, ApiError> {
        match q.one(name)? {
            None => Ok(default),
            Some(s) => time_fmt::parse_date(s).ok_or_else(|| {
                ApiError::invalid_param(name, format!("{name} must be a date YYYY-MM-DD"))
            }),
        }
    };
    let from_us = day("from", today - 90 * 86_400_000_000)?;
    // `to` names a day and includes it.
    let to_us = day("to", today)? + 86_400_000_000;
    if from_us >= to_us {
        return Err(ApiError::invalid_param("to", "to must not be before from"));
    }
    let page = q.number("page", 1, 100_000, 1)?;
    let sort = q.sort_order("sortOrder")?;
    let f = body.filters;
    let ptr = |name: &str| format!("/filters/{name}");
    let user_id = match (&f.user_id, &f.email) {
        (Some(u), _) => Some(
            Uuid::parse_str(u)
                .map_err(|_| ApiError::invalid_body(ptr("userId"), "userId must be a UUID"))?,
        ),
        (None, Some(email)) => match state.store.user_by_email(email).await? {
            Some(u) => Some(u.id),
            // No such user: no events can match.
            None => return Ok(Json(Vec::<V1Item>::new()).into_response()),
        },
        (None, None) => None,
    };
    if f.event.is_some() && f.exclude_event.is_some() {
        return Err(ApiError::invalid_body(
            ptr("excludeEvent"),
            "use either event or excludeEvent, not both",
        ));
    }
    let name = |n: &Option<String>, field: &str| -> Result<Vec<String>, ApiError> {
        n.as_deref()
            .map(|s| {
                EventName::parse(s)
                    .map(|e| vec![e.as_str().to_owned()])
                    .map_err(|e| ApiError::invalid_body(ptr(field), e.message))
            })
            .unwrap_or(Ok(Vec::new()))
    };
    let events = name(&f.event, "event")?;
    let exclude_events = name(&f.exclude_event, "excludeEvent")?;
    let project_id = f
        .project_id
        .as_deref()
        .map(|s| {
            auditlake_core::validate::identifier(
                "projectId",
                s,
                auditlake_core::validate::MAX_PROJECT_ID_LEN,
            )
            .map_err(|e| ApiError::invalid_body(ptr("projectId"), e.message))
        })
        .transpose()?;
    let res = state
        .store
        .search(&SearchQuery {
            scope: Some(scope),
            from_us,
            to_us,
            size: PAGE,
            user_id,
            project_id,
            events,
            exclude_events,
            sort,
            cursor: None,
            offset: (page - 1) * u64::from(PAGE),
        })
        .await?;
    let items: Vec<V1Item> = res
        .items
        .iter()
        .map(|e| V1Item {
            group_id: e.group_id,
            org_id: e.org_id,
            user_id: e.user_id,
            project_id: e.project_id.as_deref(),
            event: &e.event,
            content: raw(&e.content),
            created: time_fmt::format_micros(e.created_us),
            ingested_by: e.ingested_by,
        })
        .collect();
    Ok(Json(items).into_response())
}

/// The `/v1` routes (without the prefix).
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(org_audit))
        .routes(utoipa_axum::routes!(group_audit))
}
