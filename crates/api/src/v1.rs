//! Snyk API v1 audit logs, kept so users can match a CloudTrail
//! `principalId` to a user as the seed document describes:
//! `POST /v1/org/{orgId}/audit` and `POST /v1/group/{groupId}/audit`.
//! Errors come out in v1's shape through the `/v1` middleware.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use auditlake_core::{time_fmt, EventName};
use auditlake_store::SearchQuery;

use crate::error::ApiError;
use crate::extract::{Body, Caller, Need, PathParams, QueryParams};
use crate::rest::audit::raw;
use crate::AppState;

/// v1 pages hold 100 events.
const PAGE: u32 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct V1Body {
    #[serde(default)]
    filters: V1Filters,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct V1Filters {
    user_id: Option<String>,
    email: Option<String>,
    event: Option<String>,
    exclude_event: Option<String>,
    project_id: Option<String>,
}

pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    q: QueryParams,
    Body(body): Body<V1Body, true>,
) -> Result<Json<Value>, ApiError> {
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
            None => return Ok(Json(json!([]))),
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
    let items: Vec<Value> = res
        .items
        .iter()
        .map(|e| {
            let mut item = json!({
                "groupId": e.group_id,
                "orgId": e.org_id,
                "userId": e.user_id,
                "projectId": e.project_id,
                "event": e.event,
                "content": serde_json::to_value(raw(&e.content)).unwrap_or(Value::Null),
                "created": time_fmt::format_micros(e.created_us),
            });
            // The API token that ingested it; the platform's own events
            // have none.
            if let Some(token) = e.ingested_by {
                item["ingestedBy"] = json!(token);
            }
            item
        })
        .collect();
    Ok(Json(Value::Array(items)))
}
