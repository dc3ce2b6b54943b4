//! JSON:API documents: single resources, collections with cursor
//! pagination (`starting_after`, `ending_before`, `limit`, `links`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};
use uuid::Uuid;

use auditlake_store::{Page, PageOf};

use crate::error::{ApiError, JSONAPI};
use crate::extract::QueryParams;

/// Largest page of a list.
pub const MAX_LIMIT: u32 = 100;
/// Default page of a list.
pub const DEFAULT_LIMIT: u32 = 10;

/// A JSON:API response.
#[derive(Debug)]
pub struct Doc {
    status: StatusCode,
    body: Body,
    location: Option<String>,
}

#[derive(Debug)]
enum Body {
    Tree(Value),
    /// Serialized already (typed documents on hot paths).
    Text(String),
}

impl Doc {
    /// 200 with `body` (the `jsonapi` member is added).
    pub fn ok(mut body: Value) -> Self {
        body["jsonapi"] = json!({"version": "1.0"});
        Self {
            status: StatusCode::OK,
            body: Body::Tree(body),
            location: None,
        }
    }

    /// A typed document, which must carry its own `jsonapi` member.
    pub fn serialize(status: StatusCode, doc: &impl serde::Serialize) -> Self {
        let body = match serde_json::to_string(doc) {
            Ok(text) => Body::Text(text),
            Err(e) => {
                let err = crate::error::ApiError::internal(e);
                return Self {
                    status: err.status,
                    body: Body::Tree(
                        json!({"jsonapi": {"version": "1.0"}, "errors": [err.to_json()]}),
                    ),
                    location: None,
                };
            }
        };
        Self {
            status,
            body,
            location: None,
        }
    }

    /// 201 with a `location` header.
    pub fn created(body: Value, location: String) -> Self {
        let mut d = Self::ok(body);
        d.status = StatusCode::CREATED;
        d.location = Some(location);
        d
    }
}

impl IntoResponse for Doc {
    fn into_response(self) -> Response {
        let text = match self.body {
            Body::Tree(v) => v.to_string(),
            Body::Text(t) => t,
        };
        let mut res = (self.status, text).into_response();
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static(JSONAPI));
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            res.headers_mut().insert("location", loc);
        }
        res
    }
}

/// A resource object.
pub fn resource(
    kind: &str,
    id: impl std::fmt::Display,
    attributes: Value,
    self_link: &str,
) -> Value {
    json!({ "type": kind, "id": id.to_string(), "attributes": attributes, "links": { "self": self_link } })
}

/// Encodes a list cursor (opaque to clients).
pub fn encode_cursor(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Reads a cursor made by [`encode_cursor`]; `name` is the parameter.
pub(crate) fn decode_cursor(name: &str, s: &str) -> Result<Uuid, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| {
            ApiError::invalid_param(name, format!("{name} is not a cursor this API issued"))
        })
}

/// Reads `starting_after`, `ending_before` and `limit`.
pub fn page_of(q: &QueryParams) -> Result<Page, ApiError> {
    let after = q
        .one("starting_after")?
        .map(|s| decode_cursor("starting_after", s))
        .transpose()?;
    let before = q
        .one("ending_before")?
        .map(|s| decode_cursor("ending_before", s))
        .transpose()?;
    if after.is_some() && before.is_some() {
        return Err(ApiError::invalid_param(
            "ending_before",
            "starting_after and ending_before cannot be combined",
        ));
    }
    let limit = q.number("limit", 1, u64::from(MAX_LIMIT), u64::from(DEFAULT_LIMIT))? as u32;
    Ok(Page {
        after,
        before,
        limit,
    })
}

/// Query parameters every list accepts.
pub const PAGING_PARAMS: &[&str] = &["version", "starting_after", "ending_before", "limit"];

/// A collection document with `links.self/first/next/prev`.
pub fn list<T>(
    page: &PageOf<T>,
    asked: Page,
    path: &str,
    q: &QueryParams,
    id_of: impl Fn(&T) -> Uuid,
    render: impl Fn(&T) -> Value,
) -> Doc {
    let data: Vec<Value> = page.items.iter().map(render).collect();
    let keep: Vec<(String, String)> =
        q.0.iter()
            .filter(|(k, _)| k != "starting_after" && k != "ending_before")
            .cloned()
            .collect();
    let url = |extra: Option<(&str, String)>| {
        let mut pairs = keep.clone();
        if let Some((k, v)) = extra {
            pairs.push((k.to_owned(), v));
        }
        let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if qs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{qs}")
        }
    };
    let backwards = asked.after.is_none() && asked.before.is_some();
    let mut links = serde_json::Map::new();
    let self_qs = serde_urlencoded::to_string(&q.0).unwrap_or_default();
    links.insert(
        "self".into(),
        json!(if self_qs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{self_qs}")
        }),
    );
    links.insert("first".into(), json!(url(None)));
    if let (Some(first), Some(last)) = (page.items.first(), page.items.last()) {
        let more_after = if backwards { true } else { page.has_more };
        let more_before = if backwards {
            page.has_more
        } else {
            asked.after.is_some()
        };
        if more_after {
            links.insert(
                "next".into(),
                json!(url(Some(("starting_after", encode_cursor(id_of(last)))))),
            );
        }
        if more_before {
            links.insert(
                "prev".into(),
                json!(url(Some(("ending_before", encode_cursor(id_of(first)))))),
            );
        }
    }
    Doc::ok(json!({ "data": data, "links": links }))
}
