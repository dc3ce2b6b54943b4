//! Audit logs: search (Snyk's GA resource, version 2023-09-11) and ingest
//! (auditlake's own, for other applications of the platform).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use auditlake_core::{time_fmt, validate, AuditEvent, EventName, NewEvent, Scope};
use auditlake_store::{IngestItem, IngestOutcome, SearchCursor, SearchQuery};

use super::params::{GroupId, OrgId};
use crate::ctx::Origin;
use crate::error::{ApiError, Source};
use crate::extract::{parse_json, Caller, Need, PathParams, QueryParams};
use crate::jsonapi::{Doc, JsonApi, SelfLink, JSONAPI_1};
use crate::AppState;

fn base_path(scope: Scope) -> String {
    match scope {
        Scope::Group(g) => format!("/rest/groups/{g}/audit_logs"),
        Scope::Org(o) => format!("/rest/orgs/{o}/audit_logs"),
        Scope::User => String::new(),
    }
}

/// Parses `events`-style lists, each a valid event name.
pub(crate) fn event_names(param: &str, names: Vec<String>) -> Result<Vec<String>, ApiError> {
    if names.len() > 50 {
        return Err(ApiError::invalid_param(
            param,
            format!("{param} may list at most 50 events"),
        ));
    }
    names
        .into_iter()
        .map(|n| {
            EventName::parse(&n)
                .map(|e| e.as_str().to_owned())
                .map_err(|e| ApiError::invalid_param(param, e.message))
        })
        .collect()
}

/// An event as Snyk's search renders it (snake_case), with its `id`.
// Serialized straight from the stored row: the content is embedded as the
// stored JSON text, never parsed into a tree (the hot path of search and
// ingest answers).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Item<'a> {
    /// In search items; an ingest answer has it as the resource's `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    /// Ingest answers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_id: Option<&'a str>,
    /// Ingest answers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed: Option<bool>,
    /// When it happened (RFC 3339, microseconds).
    #[schema(format = DateTime)]
    created: String,
    /// The event's name.
    #[schema(example = "org.settings.edit")]
    event: &'a str,
    org_id: Option<Uuid>,
    group_id: Option<Uuid>,
    project_id: Option<&'a str>,
    /// Who did it.
    user_id: Option<Uuid>,
    /// What happened, as recorded.
    #[schema(value_type = Object)]
    content: &'a RawValue,
    /// The API token that ingested the event; absent on the platform's
    /// own events.
    #[serde(skip_serializing_if = "Option::is_none")]
    ingested_by: Option<Uuid>,
}

impl<'a> Item<'a> {
    pub(crate) fn of(e: &'a AuditEvent) -> Self {
        Self {
            id: Some(e.id),
            idempotency_id: None,
            replayed: None,
            created: time_fmt::format_micros(e.created_us),
            event: &e.event,
            org_id: e.org_id,
            group_id: e.group_id,
            project_id: e.project_id.as_deref(),
            user_id: e.user_id,
            content: raw(&e.content),
            ingested_by: e.ingested_by,
        }
    }
}

/// Stored content is JSON text already; embed it as it is.
pub(crate) fn raw(content: &str) -> &RawValue {
    serde_json::from_str(content).unwrap_or(RawValue::NULL)
}

/// A page of search results.
#[derive(Serialize, ToSchema)]
pub(crate) struct SearchDoc<'a> {
    jsonapi: JsonApi,
    data: SearchData<'a>,
    links: SearchLinks,
}

/// The events found.
#[derive(Serialize, ToSchema)]
struct SearchData<'a> {
    items: Vec<Item<'a>>,
}

/// `next`: the following page, while there is one.
#[derive(Serialize, ToSchema)]
struct SearchLinks {
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The search parameters, for the OpenAPI document (the handler reads
/// them itself, to answer a bad one with a 400 naming it).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct SearchParams {
    /// The page after the one that gave this cursor (`links.next`).
    cursor: Option<String>,
    /// RFC 3339; default: the start of yesterday (UTC).
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339, exclusive; default: now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Events per page.
    #[param(minimum = 1, maximum = 100, default = 100)]
    size: Option<u32>,
    /// By time, newest first by default; case-insensitive.
    #[param(inline)]
    sort_order: Option<SortOrder>,
    /// Only events of this user.
    user_id: Option<Uuid>,
    /// Only events of this project.
    #[param(min_length = 1, max_length = 128, pattern = "^[-_.:A-Za-z0-9]+$")]
    project_id: Option<String>,
    /// Only these events: comma-separated (the parameter may also be
    /// repeated), at most 50. Not together with `exclude_events`.
    /// `api.access` is left out unless listed here.
    #[param(style = Form, explode = false, max_items = 50)]
    events: Option<Vec<String>>,
    /// All but these events: comma-separated (the parameter may also be
    /// repeated), at most 50. Not together with `events`.
    #[param(style = Form, explode = false, max_items = 50)]
    exclude_events: Option<Vec<String>>,
}

/// The order of a search or a v1 page, by time.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub(crate) enum SortOrder {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

const SEARCH_PARAMS: &[&str] = &[
    "version",
    "cursor",
    "from",
    "to",
    "size",
    "sort_order",
    "user_id",
    "project_id",
    "events",
    "exclude_events",
];

route! {
    /// Search an org's audit log
    ///
    /// Newest first by default. Needs membership of the org, or admin of its
    /// group. `api.access` events are left out unless listed in `events`.
    #[utoipa::path(get, path = "/orgs/{org_id}/audit_logs/search", tag = "Audit logs",
        params(OrgId, SearchParams),
        responses((status = 200, description = "A page of events.", body = SearchDoc)))]
    search_org => search(state: State<AppState>, caller: Caller, p: PathParams, q: QueryParams) -> Result<Doc, ApiError>
}

route! {
    /// Search a group's audit log
    ///
    /// Newest first by default. Needs the group admin role; others get 404.
    /// Covers the group's own events and those of its orgs. `api.access`
    /// events are left out unless listed in `events`.
    #[utoipa::path(get, path = "/groups/{group_id}/audit_logs/search", tag = "Audit logs",
        params(GroupId, SearchParams),
        responses((status = 200, description = "A page of events.", body = SearchDoc)))]
    search_group => search(state: State<AppState>, caller: Caller, p: PathParams, q: QueryParams) -> Result<Doc, ApiError>
}

async fn search(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    q: QueryParams,
) -> Result<Doc, ApiError> {
    q.allow(SEARCH_PARAMS)?;
    let scope = caller.path_tenant(&state, &p, Need::Read).await?;
    let now = time_fmt::now_micros();
    let time_param = |name: &str, default: i64| -> Result<i64, ApiError> {
        match q.one(name)? {
            None => Ok(default),
            Some(s) => time_fmt::parse_rfc3339(s).ok_or_else(|| {
                ApiError::invalid_param(
                    name,
                    format!("{name} must be an RFC 3339 timestamp, e.g. 2024-01-31T00:00:00Z"),
                )
            }),
        }
    };
    let from_us = time_param("from", time_fmt::start_of_day(now) - 86_400_000_000)?;
    let to_us = time_param("to", now + 1)?;
    if from_us >= to_us {
        return Err(ApiError::invalid_param("to", "to must be later than from"));
    }
    let size = q.number("size", 1, 100, 100)? as u32;
    let sort = q.sort_order("sort_order")?;
    let user_id = q
        .one("user_id")?
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| ApiError::invalid_param("user_id", "user_id must be a UUID"))
        })
        .transpose()?;
    let project_id = q
        .one("project_id")?
        .map(|s| {
            validate::identifier("project_id", s, validate::MAX_PROJECT_ID_LEN)
                .map_err(|e| ApiError::invalid_param("project_id", e.message))
        })
        .transpose()?;
    let events = event_names("events", q.list("events"))?;
    let mut exclude_events = event_names("exclude_events", q.list("exclude_events"))?;
    if !events.is_empty() && !exclude_events.is_empty() {
        return Err(ApiError::invalid_param(
            "exclude_events",
            "use either events or exclude_events, not both",
        ));
    }
    if events.is_empty() && !exclude_events.iter().any(|e| e == EventName::API_ACCESS) {
        // Snyk leaves api.access out unless asked for by name.
        exclude_events.push(EventName::API_ACCESS.to_owned());
    }
    let cursor = q
        .one("cursor")?
        .map(|s| {
            SearchCursor::decode(s).ok_or_else(|| {
                ApiError::invalid_param("cursor", "cursor is not one this API issued")
            })
        })
        .transpose()?;
    let page = state
        .store
        .search(&SearchQuery {
            scope: Some(scope),
            from_us,
            to_us,
            size,
            user_id,
            project_id,
            events,
            exclude_events,
            sort,
            cursor,
            offset: 0,
        })
        .await?;
    let items: Vec<Item> = page.items.iter().map(Item::of).collect();
    let next = page.next.map(|next| {
        let mut pairs: Vec<(String, String)> =
            q.0.iter().filter(|(k, _)| k != "cursor").cloned().collect();
        pairs.push(("cursor".into(), next.encode()));
        format!(
            "{}/search?{}",
            base_path(scope),
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    });
    Doc::ok(&SearchDoc {
        jsonapi: JSONAPI_1,
        data: SearchData { items },
        links: SearchLinks { next },
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestDoc {
    /// Kept as text: each item is parsed straight into its typed form, and
    /// its content is stored as sent, without building a JSON tree.
    pub(crate) data: Box<RawValue>,
}

/// The ingest request, for the OpenAPI document: the handler reads `data`
/// item by item ([`IngestDoc`]).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct IngestRequest {
    /// One event, or a batch of 1 to 1,000.
    data: OneOrMany<IngestData>,
}

/// An event to ingest.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IngestData {
    /// Another type answers 409.
    #[serde(rename = "type")]
    #[schema(value_type = AuditEventType)]
    kind: String,
    attributes: IngestAttrs,
}

/// `data.type` of an event.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum AuditEventType {
    /// An event.
    AuditEvent,
}

/// What an ingested event says.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IngestAttrs {
    /// The client's ID of the event: a retry with the same ID and the same
    /// event is answered with the stored one (`replayed`), with another
    /// event 409.
    #[schema(min_length = 1, max_length = 128, pattern = "^[-_.:A-Za-z0-9]+$")]
    idempotency_id: String,
    /// The event's name: 2 to 8 dot-separated lowercase segments, not one
    /// of the platform's own.
    #[schema(
        max_length = 128,
        pattern = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,7}$",
        example = "org.project.deploy"
    )]
    event: String,
    /// Any JSON object.
    #[schema(value_type = Object)]
    content: Box<RawValue>,
    /// RFC 3339; default: now.
    #[serde(default)]
    #[schema(format = DateTime)]
    created: Option<String>,
    /// A member, current or former, of the tenant; default: the caller.
    #[serde(default)]
    #[schema(format = Uuid)]
    user_id: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[-_.:A-Za-z0-9]+$")]
    project_id: Option<String>,
    /// Default: the caller's address.
    #[serde(default)]
    source_ip: Option<String>,
    /// Default: the caller's user agent.
    #[serde(default)]
    user_agent: Option<String>,
}

/// Who submits events, for the defaults of `user_id`, `source_ip` and
/// `user_agent`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Submitter<'a> {
    pub(crate) user_id: Uuid,
    /// The API token sending the events: their mark of origin.
    pub(crate) token_id: Uuid,
    pub(crate) origin: &'a Origin,
    /// The earliest `created` allowed: the tenant's creation, less the
    /// operator's import window.
    pub(crate) earliest_us: i64,
}

/// Reads an ingest document's `data` (one event or an array of them) into
/// checked items, before anything is stored. `bool`: whether it was a
/// single event (answered as one resource).
pub(crate) fn ingest_items(
    data: &RawValue,
    scope: Scope,
    by: Submitter<'_>,
    now: i64,
) -> Result<(bool, Vec<IngestItem>), ApiError> {
    let text = data.get();
    let (single, raw_items): (bool, Vec<&RawValue>) = match text.as_bytes().first() {
        Some(b'[') => (
            false,
            serde_json::from_str(text)
                .map_err(|e| ApiError::invalid_body("/data", e.to_string()))?,
        ),
        Some(b'{') => (true, vec![data]),
        _ => {
            return Err(ApiError::invalid_body(
                "/data",
                "data must be an audit_event object or an array of them",
            ))
        }
    };
    if raw_items.is_empty() || raw_items.len() > validate::MAX_BATCH {
        return Err(ApiError::invalid_body(
            "/data",
            format!(
                "a batch holds 1 to {} events, not {}",
                validate::MAX_BATCH,
                raw_items.len()
            ),
        ));
    }
    let mut items = Vec::with_capacity(raw_items.len());
    let mut ids = std::collections::HashSet::new();
    for (i, v) in raw_items.into_iter().enumerate() {
        let at = if single {
            "/data".to_owned()
        } else {
            format!("/data/{i}")
        };
        let item = ingest_item(&at, v, scope, by, now)?;
        if !ids.insert(item.idempotency_id.clone()) {
            return Err(ApiError::invalid_body(
                format!("{at}/attributes/idempotency_id"),
                format!(
                    "idempotency_id {:?} appears twice in this batch",
                    item.idempotency_id
                ),
            ));
        }
        items.push(item);
    }
    Ok((single, items))
}

/// Checks one submitted event; `at` is its JSON pointer.
fn ingest_item(
    at: &str,
    v: &RawValue,
    scope: Scope,
    by: Submitter<'_>,
    now: i64,
) -> Result<IngestItem, ApiError> {
    let data: IngestData = parse_json(v.get().as_bytes()).map_err(|mut e| {
        if let Some(Source::Pointer(p)) = &mut e.source {
            *p = format!("{at}{p}");
        }
        e
    })?;
    if data.kind != "audit_event" {
        return Err(ApiError::conflict("type must be \"audit_event\"")
            .at(Source::Pointer(format!("{at}/type"))));
    }
    let a = data.attributes;
    let field = |name: &str| format!("{at}/attributes/{name}");
    let bad = |name: &str, msg: String| ApiError::invalid_body(field(name), msg);
    let idempotency_id = validate::identifier(
        "idempotency_id",
        &a.idempotency_id,
        validate::MAX_IDEMPOTENCY_ID_LEN,
    )
    .map_err(|e| bad("idempotency_id", e.message))?;
    let event = EventName::parse(&a.event).map_err(|e| bad("event", e.message))?;
    if event.is_platform() {
        return Err(bad(
            "event",
            format!(
                "{event} is an event the platform records itself; ingested events need names of their own"
            ),
        ));
    }
    let content = validate::content_text(a.content.get()).map_err(|e| bad("content", e.message))?;
    let created_us = match &a.created {
        None => now,
        Some(s) => {
            let us = time_fmt::parse_rfc3339(s)
                .ok_or_else(|| bad("created", "created must be an RFC 3339 timestamp".into()))?;
            validate::client_time(us, now).map_err(|e| bad("created", e.message))?;
            if us < by.earliest_us {
                return Err(bad(
                    "created",
                    "created is before the tenant existed; the operator can open an import window for older events".into(),
                ));
            }
            us
        }
    };
    let user_id = match &a.user_id {
        None => by.user_id,
        Some(s) => {
            Uuid::parse_str(s).map_err(|_| bad("user_id", "user_id must be a UUID".into()))?
        }
    };
    let project_id = a
        .project_id
        .as_deref()
        .map(|s| validate::identifier("project_id", s, validate::MAX_PROJECT_ID_LEN))
        .transpose()
        .map_err(|e| bad("project_id", e.message))?;
    let source_ip = a
        .source_ip
        .as_deref()
        .map(validate::source_ip)
        .transpose()
        .map_err(|e| bad("source_ip", e.message))?;
    let user_agent = a
        .user_agent
        .as_deref()
        .map(|s| validate::text("user_agent", s, validate::MAX_USER_AGENT_LEN))
        .transpose()
        .map_err(|e| bad("user_agent", e.message))?;
    // The hash covers what the client said, not what the server defaulted.
    let request_hash = request_hash(
        &HashedFields {
            created: a.created.as_deref(),
            event: event.as_str(),
            project_id: project_id.as_deref(),
            source_ip: source_ip.as_deref(),
            user_agent: user_agent.as_deref(),
            user_id: a.user_id.as_deref(),
        },
        &content,
    );
    Ok(IngestItem {
        idempotency_id,
        request_hash,
        event: NewEvent {
            id: auditlake_core::new_id(),
            created_us,
            event,
            scope,
            user_id: Some(user_id),
            project_id,
            content,
            source_ip: source_ip.or_else(|| by.origin.ip.clone()),
            user_agent: user_agent.or_else(|| by.origin.user_agent.clone()),
            ingested_by: Some(by.token_id),
        },
    })
}

/// What an item's idempotency hash covers besides its content: what the
/// client sent, not what the server defaulted. Serialized as JSON with the
/// keys in this (sorted) order, which is the text `validate::canonical_json`
/// gives for the same object: a retry must hash to what was stored with
/// the original, whichever build stored it.
#[derive(Serialize)]
struct HashedFields<'a> {
    created: Option<&'a str>,
    event: &'a str,
    project_id: Option<&'a str>,
    source_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    user_id: Option<&'a str>,
}

/// The idempotency hash of an item: its fields, a newline and the content
/// by its exact text, as it is stored. Written straight into the hasher: it
/// runs for every ingested event.
fn request_hash(fields: &HashedFields<'_>, content: &str) -> String {
    let mut hasher = Sha256::new();
    serde_json::to_writer(&mut hasher, fields).expect("hashing cannot fail");
    hasher.update(b"\n");
    hasher.update(content.as_bytes());
    hex::encode(hasher.finalize())
}

/// An ingested event as a JSON:API resource.
#[derive(Serialize, ToSchema)]
struct Outcome<'a> {
    /// `audit_event`.
    #[serde(rename = "type")]
    kind: &'static str,
    id: Uuid,
    attributes: Item<'a>,
    links: SelfLink,
}

/// One item, or an array of them.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// The answer to an ingest: each event as stored, in the order sent.
#[derive(Serialize, ToSchema)]
pub(crate) struct IngestAnswer<'a> {
    jsonapi: JsonApi,
    data: OneOrMany<Outcome<'a>>,
}

fn outcome<'a>(scope: Scope, idem: &'a str, o: &'a IngestOutcome) -> Outcome<'a> {
    let e = o.event();
    Outcome {
        kind: "audit_event",
        id: e.id,
        attributes: Item {
            id: None,
            idempotency_id: Some(idem),
            replayed: Some(matches!(o, IngestOutcome::Replayed(_))),
            ..Item::of(e)
        },
        links: SelfLink {
            this: format!("{}/events/{}", base_path(scope), e.id),
        },
    }
}

/// An event's `user_id` must name a member, current or former, of the
/// tenant it is ingested into (the caller is one): nobody can attribute an
/// event to a user of another tenant.
async fn check_users(
    state: &AppState,
    scope: Scope,
    caller: Uuid,
    single: bool,
    items: &[IngestItem],
) -> Result<(), ApiError> {
    let mut named: Vec<Uuid> = items
        .iter()
        .filter_map(|i| i.event.user_id)
        .filter(|u| *u != caller)
        .collect();
    named.sort_unstable();
    named.dedup();
    if named.is_empty() {
        return Ok(());
    }
    let members = state.store.members_ever(scope, &named).await?;
    let stranger = items.iter().position(|i| {
        i.event
            .user_id
            .is_some_and(|u| u != caller && !members.contains(&u))
    });
    match stranger {
        None => Ok(()),
        Some(i) => Err(ApiError::invalid_body(
            if single {
                "/data/attributes/user_id".to_owned()
            } else {
                format!("/data/{i}/attributes/user_id")
            },
            format!(
                "user_id must name a member, current or former, of this {}",
                match scope {
                    Scope::Group(_) => "group",
                    _ => "organization",
                }
            ),
        )),
    }
}

route! {
    /// Ingest events into an org's audit log
    ///
    /// Appends events from another application to the org's audit log. Needs
    /// the org admin role (a mere member gets 403). One event or a batch of up
    /// to 1000, stored atomically: any invalid event fails the whole request,
    /// with `source.pointer` naming it (`/data/...` or `/data/{index}/...`).
    /// Reusing an idempotency ID for a different event answers 409.
    #[utoipa::path(post, path = "/orgs/{org_id}/audit_logs/events", tag = "Audit logs",
        params(OrgId), request_body = IngestRequest,
        responses(
            (status = 201, description = "Stored; some events are new.", body = IngestAnswer),
            (status = 200, description = "Every event was stored before (a retry).", body = IngestAnswer)))]
    ingest_org => ingest(state: State<AppState>, caller: Caller, p: PathParams, doc: crate::extract::Body<IngestDoc>) -> Result<Doc, ApiError>
}

route! {
    /// Ingest events into a group's audit log
    ///
    /// Appends events from another application to the group's audit log.
    /// Needs the group admin role; others get 404. One event or a batch of up
    /// to 1000, stored atomically: any invalid event fails the whole request,
    /// with `source.pointer` naming it (`/data/...` or `/data/{index}/...`).
    /// Reusing an idempotency ID for a different event answers 409.
    #[utoipa::path(post, path = "/groups/{group_id}/audit_logs/events", tag = "Audit logs",
        params(GroupId), request_body = IngestRequest,
        responses(
            (status = 201, description = "Stored; some events are new.", body = IngestAnswer),
            (status = 200, description = "Every event was stored before (a retry).", body = IngestAnswer)))]
    ingest_group => ingest(state: State<AppState>, caller: Caller, p: PathParams, doc: crate::extract::Body<IngestDoc>) -> Result<Doc, ApiError>
}

async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    crate::extract::Body(doc): crate::extract::Body<IngestDoc>,
) -> Result<Doc, ApiError> {
    let scope = caller.path_tenant(&state, &p, Need::Admin).await?;
    let scope_id = match scope {
        Scope::Org(id) | Scope::Group(id) => id,
        Scope::User => return Err(ApiError::internal("ingest without a tenant")),
    };
    let now = time_fmt::now_micros();
    let earliest_us = caller
        .tenant_created_us(&state, scope)
        .await?
        .saturating_sub(state.ingest_import_window_us);
    let (user_id, token_id, origin) = (caller.user.id, caller.token_id, caller.origin.clone());
    let len = doc.data.get().len();
    let (single, items) = crate::extract::off_runtime(len, move || {
        let by = Submitter {
            user_id,
            token_id,
            origin: &origin,
            earliest_us,
        };
        ingest_items(&doc.data, scope, by, now)
    })
    .await?;
    check_users(&state, scope, user_id, single, &items).await?;
    let idems: Vec<String> = items.iter().map(|i| i.idempotency_id.clone()).collect();
    // The request's api.access event commits with the batch (one commit per
    // request instead of two); the status it records is the one below.
    let outcomes = state
        .store
        .ingest_recorded(scope_id, items, caller.ingest_access())
        .await?;
    caller.access_recorded();
    metrics::counter!("auditlake_events_ingested_total").increment(
        outcomes
            .iter()
            .filter(|o| matches!(o, IngestOutcome::Created(_)))
            .count() as u64,
    );
    let any_created = outcomes
        .iter()
        .any(|o| matches!(o, IngestOutcome::Created(_)));
    let mut rendered: Vec<Outcome> = idems
        .iter()
        .zip(&outcomes)
        .map(|(i, o)| outcome(scope, i, o))
        .collect();
    let data = match (single, rendered.pop()) {
        (true, Some(one)) => OneOrMany::One(one),
        (_, last) => {
            rendered.extend(last);
            OneOrMany::Many(rendered)
        }
    };
    let status = if any_created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Doc::with(
        status,
        &IngestAnswer {
            jsonapi: JSONAPI_1,
            data,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The idempotency hash written out from its definition (canonical
    /// JSON of the fields, a newline, the content): stored hashes depend on
    /// it, so `request_hash` must give the same.
    fn reference_hash(f: &HashedFields<'_>, content: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(
            validate::canonical_json(&json!({
                "event": f.event,
                "created": f.created,
                "user_id": f.user_id,
                "project_id": f.project_id,
                "source_ip": f.source_ip,
                "user_agent": f.user_agent,
            }))
            .as_bytes(),
        );
        hasher.update(b"\n");
        hasher.update(content.as_bytes());
        hex::encode(hasher.finalize())
    }

    #[test]
    fn request_hashes_match_the_canonical_json_formula() {
        let full = HashedFields {
            created: Some("2026-11-27T10:00:00.123456Z"),
            event: "org.project.test",
            project_id: Some("p/\"é\"\\1"),
            source_ip: Some("2001:db8::1"),
            user_agent: Some("agent\t/1.0 \u{1f980}\u{7}"),
            user_id: Some("0190b3a0-0000-7000-8000-000000000001"),
        };
        let bare = HashedFields {
            created: None,
            event: "a.b",
            project_id: None,
            source_ip: None,
            user_agent: None,
            user_id: None,
        };
        for (f, content) in [(&full, r#"{"a":"\u0000 x"}"#), (&bare, "{}")] {
            assert_eq!(request_hash(f, content), reference_hash(f, content));
        }
        // And the fields count: a hash is not the content's alone.
        assert_ne!(request_hash(&full, "{}"), request_hash(&bare, "{}"));
    }
}
