//! The audit log viewer: an org's or a group's events with filters (time
//! range, event name, user), keyset pagination, a chart of events over
//! time, and each event's detail with its payload and, for edits, a
//! before/after table.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use auditlake_core::{time_fmt, AuditEvent, Scope};
use auditlake_store::{SearchCursor, SearchQuery, SortOrder};

use super::pages::{group_for, not_found, org_for, store_failed, uuid_param};
use super::{Page, Signed};
use crate::AppState;

const DAY_US: i64 = 86_400_000_000;
const PAGE_SIZE: u32 = 50;

/// The tenant a route names, after the rights check, with its name, its
/// settings page and the viewer's base path.
async fn tenant(
    state: &AppState,
    s: &Signed,
    p: &HashMap<String, String>,
) -> Result<(Scope, Value, String), Page> {
    if p.contains_key("group_id") {
        let g = group_for(state, s, p).await?;
        let t = json!({"name": g.name, "settings": format!("/groups/{}/settings", g.id)});
        Ok((Scope::Group(g.id), t, format!("/groups/{}/audit", g.id)))
    } else {
        let o = org_for(state, s, p, false).await?;
        let t = json!({"name": o.name, "settings": format!("/orgs/{}/settings", o.id)});
        Ok((Scope::Org(o.id), t, format!("/orgs/{}/audit", o.id)))
    }
}

/// Who and where an event names: users by email, orgs by name (the
/// visitor may read every org of the log they are shown), else the ID.
struct Names {
    /// The tenant whose pages these are: users are named only if they are
    /// or were its members.
    scope: Scope,
    users: HashMap<Uuid, String>,
    orgs: HashMap<Uuid, String>,
}

impl Names {
    fn of(scope: Scope) -> Self {
        Self {
            scope,
            users: HashMap::new(),
            orgs: HashMap::new(),
        }
    }

    async fn org(&mut self, state: &AppState, id: Option<Uuid>) -> String {
        let Some(id) = id else {
            return "—".to_owned();
        };
        if let Some(n) = self.orgs.get(&id) {
            return n.clone();
        }
        let name = match state.store.org(id).await {
            Ok(Some(o)) => o.name,
            _ => id.to_string(),
        };
        self.orgs.insert(id, name.clone());
        name
    }

    async fn user(&mut self, state: &AppState, id: Option<Uuid>) -> String {
        let Some(id) = id else {
            return "system".to_owned();
        };
        if let Some(n) = self.users.get(&id) {
            return n.clone();
        }
        // An event may name any user ID (an ingested one, say); only the
        // tenant's own members, present or past, are named by email.
        let member = matches!(
            state.store.members_ever(self.scope, &[id]).await,
            Ok(found) if found.contains(&id)
        );
        let name = match state.store.user(id).await {
            Ok(Some(u)) if member => u.email,
            _ => id.to_string(),
        };
        self.users.insert(id, name.clone());
        name
    }
}

fn day(us: i64) -> String {
    time_fmt::format_micros(us)[..10].to_owned()
}

pub(crate) async fn log(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let (scope, tenant, base) = match tenant(&state, &s, &p).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let today = time_fmt::start_of_day(time_fmt::now_micros());
    let mut error = None;
    let mut date = |k: &str, default: i64| match get(k) {
        None => default,
        Some(v) => time_fmt::parse_date(v).unwrap_or_else(|| {
            error = Some(format!("{k} must be a date (YYYY-MM-DD), not {v:?}"));
            default
        }),
    };
    let from_us = date("from", today - 6 * DAY_US);
    let to_day = date("to", today);
    let to_us = to_day + DAY_US;
    let event = get("event").map(str::to_owned);
    let include_api = get("api").is_some();
    let mut user_id = None;
    if let Some(u) = get("user") {
        user_id = match Uuid::parse_str(u) {
            Ok(id) => Some(id),
            // Only the tenant's members, present or past, are found by
            // email: another tenant's user looks like no user at all.
            Err(_) => match state.store.member_by_email(scope, u).await {
                Ok(Some(user)) => Some(user.id),
                Ok(None) => {
                    error = Some(format!(
                        "no member of this {} has the email {u:?}",
                        match scope {
                            Scope::Group(_) => "group",
                            _ => "organization",
                        }
                    ));
                    None
                }
                Err(e) => return store_failed(e, Some(&s)),
            },
        };
    }
    let cursor = get("cursor").and_then(SearchCursor::decode);
    let query = SearchQuery {
        scope: Some(scope),
        from_us,
        to_us,
        size: PAGE_SIZE,
        user_id,
        project_id: None,
        events: event.iter().cloned().collect(),
        exclude_events: if include_api || event.as_deref() == Some("api.access") {
            Vec::new()
        } else {
            vec!["api.access".to_owned()]
        },
        sort: SortOrder::Desc,
        cursor,
        offset: 0,
    };
    let bucket = if to_us - from_us > 2 * DAY_US {
        DAY_US
    } else {
        DAY_US / 24
    };
    let found = if error.is_some() {
        Ok((Vec::new(), None, Vec::new()))
    } else {
        match tokio::try_join!(
            state.store.search(&query),
            state.store.histogram(&query, bucket)
        ) {
            Ok((page, hist)) => Ok((page.items, page.next, hist)),
            Err(e) => Err(e),
        }
    };
    let (items, next, hist) = match found {
        Ok(v) => v,
        Err(e) => return store_failed(e, Some(&s)),
    };
    let mut names = Names::of(scope);
    let mut events = Vec::with_capacity(items.len());
    for e in &items {
        events.push(json!({
            "id": e.id,
            "time": time_fmt::format_micros(e.created_us),
            "event": e.event,
            "user": names.user(&state, e.user_id).await,
            "org": names.org(&state, e.org_id).await,
            "ingested": e.ingested_by.is_some(),
        }));
    }
    let shown = json!({
        "from": day(from_us),
        "to": day(to_day),
        "event": event.clone().unwrap_or_default(),
        "user": get("user").unwrap_or_default(),
        "api": include_api,
    });
    let next = next.map(|c| {
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "cursor")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("cursor".into(), c.encode()));
        format!(
            "{base}?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    });
    let mut ctx = s.ctx();
    ctx.insert("tenant".into(), tenant);
    ctx.insert("base".into(), json!(base));
    ctx.insert("q".into(), shown);
    ctx.insert("events".into(), json!(events));
    ctx.insert("next".into(), json!(next));
    ctx.insert("error".into(), json!(error));
    ctx.insert("chart".into(), chart(&hist, from_us, to_us, bucket));
    let status = if ctx["error"].is_null() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Page::render("audit.html", Value::Object(ctx)).status(status)
}

/// Bars of an SVG chart, 120 units high: one per bucket of the range,
/// empty buckets included.
fn chart(hist: &[(i64, i64)], from_us: i64, to_us: i64, bucket: i64) -> Value {
    let counts: HashMap<i64, i64> = hist.iter().copied().collect();
    let first = from_us.div_euclid(bucket) * bucket;
    let n = ((to_us - first) / bucket).clamp(1, 400);
    let max = hist.iter().map(|h| h.1).max().unwrap_or(0).max(1);
    let total: i64 = hist.iter().map(|h| h.1).sum();
    let width = 10 * n;
    let mut bars = Vec::new();
    let mut summary = Vec::new();
    for i in 0..n {
        let start = first + i * bucket;
        let count = counts.get(&start).copied().unwrap_or(0);
        let h = count * 110 / max;
        let label = if bucket >= DAY_US {
            day(start)
        } else {
            time_fmt::format_micros(start)[..16].replace('T', " ")
        };
        if count > 0 {
            summary.push(format!("{label} {count}"));
        }
        bars.push(
            json!({"x": i * 10 + 1, "y": 120 - h, "w": 8, "h": h, "n": count, "label": label}),
        );
    }
    json!({
        "bars": bars,
        "width": width,
        "total": total,
        "unit": if bucket >= DAY_US { "day" } else { "hour" },
        "summary": if summary.is_empty() { "none".to_owned() } else { summary.join(", ") },
    })
}

pub(crate) async fn event(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Path<HashMap<String, String>>,
) -> Page {
    let (scope, _, base) = match tenant(&state, &s, &p).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let id = match uuid_param(&p, "event_id", &s) {
        Ok(id) => id,
        Err(page) => return page,
    };
    let e = match state.store.event_in(scope, id).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found("event", Some(&s)),
        Err(err) => return store_failed(err, Some(&s)),
    };
    let mut names = Names::of(scope);
    let content: Value = serde_json::from_str(&e.content).unwrap_or(Value::Null);
    let mut ctx = s.ctx();
    ctx.insert(
        "e".into(),
        detail(&e, names.user(&state, e.user_id).await, &content),
    );
    ctx.insert("diff".into(), json!(diff(&content)));
    ctx.insert("back".into(), json!(base));
    Page::render("audit_event.html", Value::Object(ctx))
}

fn detail(e: &AuditEvent, user: String, content: &Value) -> Value {
    let id = |v: Option<Uuid>| v.map_or("—".to_owned(), |u| u.to_string());
    json!({
        "id": e.id,
        "event": e.event,
        "time": time_fmt::format_micros(e.created_us),
        "user": user,
        "org": id(e.org_id),
        "group": id(e.group_id),
        "project": e.project_id,
        "ip": e.source_ip,
        "agent": e.user_agent,
        "ingested_by": e.ingested_by,
        "content": serde_json::to_string_pretty(content).unwrap_or_else(|_| e.content.clone()),
    })
}

/// `{key, before, after}` for each key of a payload's `before`/`after`
/// objects, in key order; empty when the payload has none.
fn diff(content: &Value) -> Vec<Value> {
    let empty = Map::new();
    let before = content.get("before").and_then(Value::as_object);
    let after = content.get("after").and_then(Value::as_object);
    if before.is_none() && after.is_none() {
        return Vec::new();
    }
    let (before, after) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&Value>| v.map_or("(unset)".to_owned(), |v| v.to_string());
    keys.into_iter()
        .map(|k| json!({"key": k, "before": show(before.get(k)), "after": show(after.get(k))}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_each_changed_key() {
        let d = diff(&json!({"before": {"a": 1, "b": null}, "after": {"a": 2, "c": "x"}}));
        assert_eq!(
            d,
            vec![
                json!({"key": "a", "before": "1", "after": "2"}),
                json!({"key": "b", "before": "null", "after": "(unset)"}),
                json!({"key": "c", "before": "(unset)", "after": "\"x\""}),
            ]
        );
        assert!(diff(&json!({"url": "/x"})).is_empty());
    }

    #[test]
    fn chart_has_a_bar_per_bucket() {
        let c = chart(&[(DAY_US, 4), (3 * DAY_US, 2)], DAY_US, 5 * DAY_US, DAY_US);
        let bars = c["bars"].as_array().unwrap();
        assert_eq!(bars.len(), 4);
        assert_eq!(bars[0]["h"], 110);
        assert_eq!(bars[1]["h"], 0);
        assert_eq!(bars[2]["h"], 55);
        assert_eq!(c["total"], 6);
    }
}
