//! JSON:API documents as types: resources, one-resource documents and
//! collections with cursor pagination (`starting_after`, `ending_before`,
//! `limit`, `links`). The OpenAPI document is derived from these same
//! types, so what it describes is what the handlers send.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use auditlake_store::{Page, PageOf};

use crate::error::{ApiError, JSONAPI};
use crate::extract::QueryParams;

/// Largest page of a list.
pub const MAX_LIMIT: u32 = 100;
/// Default page of a list.
pub const DEFAULT_LIMIT: u32 = 10;

/// The `jsonapi` member of every document.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct JsonApi {
    /// Always `1.0`.
    #[schema(example = "1.0")]
    pub version: &'static str,
}

/// JSON:API 1.0.
pub const JSONAPI_1: JsonApi = JsonApi { version: "1.0" };

/// A document holding one resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct Document<T> {
    /// The JSON:API version.
    pub jsonapi: JsonApi,
    /// The resource.
    pub data: T,
}

impl<T> Document<T> {
    /// A document of `data`.
    pub fn of(data: T) -> Self {
        Self {
            jsonapi: JSONAPI_1,
            data,
        }
    }
}

/// A page of a collection.
#[derive(Debug, Serialize, ToSchema)]
pub struct Collection<T> {
    /// The JSON:API version.
    pub jsonapi: JsonApi,
    /// The page's resources.
    pub data: Vec<T>,
    /// Links to this page and its neighbours.
    pub links: ListLinks,
}

/// Collection links: `self` and `first` always; `next` when more items
/// follow, `prev` when items precede. Cursors are opaque.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListLinks {
    /// This page.
    #[serde(rename = "self")]
    pub this: String,
    /// The first page.
    pub first: String,
    /// The next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

/// A resource object.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resource<A> {
    /// The resource's type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its ID.
    pub id: Uuid,
    /// Its attributes.
    pub attributes: A,
    /// The user a membership grants rights to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationships: Option<Relationships>,
    /// Where it lives.
    pub links: SelfLink,
}

impl<A> Resource<A> {
    /// The resource `kind`/`id` with `attributes`, found at `link`.
    pub fn new(kind: &'static str, id: Uuid, attributes: A, link: String) -> Self {
        Self {
            kind,
            id,
            attributes,
            relationships: None,
            links: SelfLink { this: link },
        }
    }
}

/// `links.self`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SelfLink {
    /// The resource's own path.
    #[serde(rename = "self")]
    pub this: String,
}

/// Relationships the API knows: the user of a membership.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Relationships {
    /// A user.
    pub user: Option<Linkage>,
}

/// `{"data": {"type", "id"}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Linkage {
    /// The identified resource.
    pub data: Identifier,
}

/// `{"type", "id"}` of a user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// Type.
    #[serde(rename = "type")]
    #[schema(value_type = UserType)]
    pub kind: String,
    /// ID.
    #[schema(format = Uuid)]
    pub id: String,
}

/// The one type a relationship names.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum UserType {
    /// A user.
    User,
}

impl Relationships {
    /// A relationship to the user `id`.
    pub fn user(id: Uuid) -> Self {
        Self {
            user: Some(Linkage {
                data: Identifier {
                    kind: "user".into(),
                    id: id.to_string(),
                },
            }),
        }
    }
}

/// A JSON:API response: a serialized document, its status and, for a
/// created resource, its `location`.
#[derive(Debug)]
pub struct Doc {
    status: StatusCode,
    body: String,
    location: Option<String>,
}

impl Doc {
    /// `doc` with `status`.
    pub fn with(status: StatusCode, doc: &impl Serialize) -> Result<Self, ApiError> {
        Ok(Self {
            status,
            body: serde_json::to_string(doc).map_err(ApiError::internal)?,
            location: None,
        })
    }

    /// 200 with `doc`.
    pub fn ok(doc: &impl Serialize) -> Result<Self, ApiError> {
        Self::with(StatusCode::OK, doc)
    }

    /// 201 with `doc` and a `location` header.
    pub fn created(doc: &impl Serialize, location: String) -> Result<Self, ApiError> {
        let mut d = Self::with(StatusCode::CREATED, doc)?;
        d.location = Some(location);
        Ok(d)
    }
}

impl IntoResponse for Doc {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body).into_response();
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static(JSONAPI));
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            res.headers_mut().insert("location", loc);
        }
        res
    }
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

/// The paging parameters of a list, for the OpenAPI document (the handler
/// reads them with [`page_of`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Paging {
    /// Items after this cursor (from `links.next`).
    starting_after: Option<String>,
    /// Items before this cursor (from `links.prev`); not with
    /// `starting_after`.
    ending_before: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<u32>,
}

/// `page`, rendered as `data`, as a collection document with `links.self`,
/// `first`, `next` and `prev`.
pub fn list<T, R: Serialize>(
    page: &PageOf<T>,
    data: Vec<R>,
    asked: Page,
    path: &str,
    q: &QueryParams,
    id_of: impl Fn(&T) -> Uuid,
) -> Result<Doc, ApiError> {
    let keep: Vec<(String, String)> =
        q.0.iter()
            .filter(|(k, _)| k != "starting_after" && k != "ending_before")
            .cloned()
            .collect();
    let url = |pairs: &[(String, String)], extra: Option<(&str, String)>| {
        let mut pairs = pairs.to_vec();
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
    let ends = page.items.first().zip(page.items.last());
    let more_after = if backwards { true } else { page.has_more };
    let more_before = if backwards {
        page.has_more
    } else {
        asked.after.is_some()
    };
    let links = ListLinks {
        this: url(&q.0, None),
        first: url(&keep, None),
        next: ends
            .filter(|_| more_after)
            .map(|(_, last)| url(&keep, Some(("starting_after", encode_cursor(id_of(last)))))),
        prev: ends
            .filter(|_| more_before)
            .map(|(first, _)| url(&keep, Some(("ending_before", encode_cursor(id_of(first)))))),
    };
    Doc::ok(&Collection {
        jsonapi: JSONAPI_1,
        data,
        links,
    })
}
