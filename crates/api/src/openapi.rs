//! The OpenAPI document of the REST API and API v1, served at
//! `/openapi.json`. Each operation comes from its handler's
//! `#[utoipa::path]` and the types it takes and sends; the routers register
//! handlers through `utoipa_axum::routes!`, so a route cannot be served
//! without being described. What every operation of an API shares (its
//! error answers, the Snyk headers, the JSON:API media type) is added here
//! by rule instead of being written on each; the `version` parameter comes
//! from the releases of each resource (`rest::versioned`).

use std::sync::OnceLock;

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, Object, ObjectBuilder, OpenApi as Document, PathItem, Ref, RefOr, Type,
};
use utoipa::{OpenApi, ToSchema};

use crate::error::{ErrorDocument, V1ErrorBody, JSONAPI};

/// The media type utoipa gives JSON bodies, which `/rest` sends and takes
/// as JSON:API.
const JSON: &str = "application/json";

const INTRO: &str = "Self-hosted audit-log service mirroring Snyk's REST API.

**REST API (`/rest`)**: JSON:API documents (`application/vnd.api+json`). Every request names a \
`version` query parameter (`YYYY-MM-DD` with an optional `~beta`, `~experimental` or `~wip` \
suffix); missing or malformed answers 400, no release of the resource on or before that date at \
that stability answers 404. Every answer, errors included, carries `snyk-request-id`, and \
`snyk-version-requested`, `snyk-version-served` and `snyk-version-lifecycle-stage` once known. \
Lists page with `starting_after`, `ending_before` and `limit` (1 to 100, default 10) and link \
pages in `links`. Unknown query parameters answer 400 on lists and searches.

**API v1 (`/v1`)**: `application/json`, no `version` parameter, errors as \
`{\"code\": 400, \"message\": \"...\", \"error\": \"Invalid parameter\"}`.

**Not listed per operation**: an unknown path answers 404 and a method a path does not support \
answers 405 (`method_not_allowed`), in the error shape of the API concerned (JSON:API outside \
`/v1`).";

#[derive(OpenApi)]
#[openapi(
    info(title = "auditlake", description = INTRO),
    security(("APIToken" = [])),
    tags(
        (name = "Users", description = "The authenticated caller."),
        (name = "Tokens", description = "The caller's personal API tokens."),
        (name = "Orgs", description = "Organizations."),
        (name = "Groups", description = "Groups of organizations."),
        (name = "Memberships", description = "Who holds which role in an org or a group."),
        (name = "Cloud events", description = "Forwarding a group's or an org's audit log to \
            AWS CloudTrail Lake: a group's `group_registrations` (Snyk's experimental resource) \
            and an org's `integrations`. Experimental: only `~experimental` (or `~wip`) \
            versions serve them."),
        (name = "Audit logs", description = "Audit log search (Snyk's GA resource) and ingest \
            (auditlake's own)."),
        (name = "Audit logs v1", description = "Snyk API v1's audit log endpoints."),
        (name = "Operations", description = "Health, metrics and this document."),
    ),
    components(schemas(ErrorDocument, V1ErrorBody)),
)]
struct Base;

/// The document, built once per process.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = Base::openapi();
        doc.merge(prefixed("/rest", crate::rest::router().into_openapi()));
        doc.merge(prefixed("/v1", crate::v1::router().into_openapi()));
        doc.merge(crate::ops::router().into_openapi());
        conventions(&mut doc);
        doc.to_json().expect("the OpenAPI document serializes")
    })
}

/// `doc` with its paths under `prefix`.
fn prefixed(prefix: &str, mut doc: Document) -> Document {
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (format!("{prefix}{path}"), item))
        .collect();
    doc
}

/// The operations of a path item.
pub(crate) fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Which API a path belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    Rest,
    V1,
    Ops,
}

fn conventions(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "APIToken",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "token <API token> (the scheme name is case-insensitive; `Bearer <API token>` is \
             accepted too).",
        ))),
    );
    components.add_security_scheme(
        "MetricsToken",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The token given to the server with `--metrics-token` \
                     (`AUDITLAKE_METRICS_TOKEN`).",
                ))
                .build(),
        ),
    );
    for (name, response) in error_responses() {
        components.responses.insert(name.into(), response.into());
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = if path.starts_with("/rest/openapi") {
            Api::Ops
        } else if path.starts_with("/rest/") {
            Api::Rest
        } else if path.starts_with("/v1/") {
            Api::V1
        } else {
            Api::Ops
        };
        for op in operations(item) {
            shape(api, op);
        }
    }
}

/// Adds what every operation of `api` shares.
fn shape(api: Api, op: &mut Operation) {
    let with_body = op.request_body.is_some();
    if api == Api::Rest {
        if let Some(RefOr::T(body)) = op.request_body.as_mut() {
            if let Some(c) = body.content.remove(JSON) {
                body.content.insert(JSONAPI.into(), c);
            }
        }
    }
    let responses = &mut op.responses.responses;
    if api == Api::Rest {
        for (status, response) in responses.iter_mut() {
            if let RefOr::T(response) = response {
                if let Some(c) = response.content.shift_remove(JSON) {
                    response.content.insert(JSONAPI.into(), c);
                }
                for (name, header) in snyk_headers(true) {
                    response.headers.insert(name.into(), header.into());
                }
                // A created resource has a `location`; a batch of ingested
                // events has none.
                if status == "201" && holds_one_resource(response) {
                    let location = header(string(), "Path of the created resource.", true);
                    response.headers.insert("location".into(), location.into());
                }
            }
        }
    }
    for (apis, status, name, _) in ERRORS {
        if apis.contains(&api) && (with_body || !matches!(*status, "409" | "413") || api == Api::V1)
        {
            responses
                .entry((*status).into())
                .or_insert_with(|| Ref::from_response_name(*name).into());
        }
    }
}

/// Whether `response` holds a [`crate::jsonapi::Document`] of one resource.
fn holds_one_resource(response: &Response) -> bool {
    response.content.values().any(|c| match c {
        RefOr::T(c) => matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.starts_with("#/components/schemas/Document_")),
        RefOr::Ref(_) => false,
    })
}

fn string() -> Object {
    ObjectBuilder::new().schema_type(Type::String).build()
}

/// A response header. utoipa's `Header` has no `required` member, so it
/// goes in through the flattened extension map.
fn header(schema: Object, description: &str, required: bool) -> Header {
    let mut h = HeaderBuilder::new()
        .schema(Some(schema))
        .description(Some(description))
        .build();
    if required {
        h.extensions = Some(Extensions::from_iter([("required", true)]));
    }
    h
}

/// The Snyk headers of a `/rest` answer; `known`: whether the version is
/// known by then (every successful answer), so they are all present.
fn snyk_headers(known: bool) -> Vec<(&'static str, Header)> {
    let version = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(crate::version::PATTERN))
            .build()
    };
    vec![
        (
            "snyk-request-id",
            header(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .build(),
                "A fresh ID for this request.",
                true,
            ),
        ),
        (
            "snyk-version-requested",
            header(
                version(),
                "The version the request asked for, normalised (`~wip` reads \
                 `~experimental`); absent when the `version` parameter itself is missing or \
                 malformed.",
                known,
            ),
        ),
        (
            "snyk-version-served",
            header(
                version(),
                "The release of the resource that was served; absent when none matched or the \
                 request failed before the version was resolved.",
                known,
            ),
        ),
        (
            "snyk-version-lifecycle-stage",
            header(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["experimental", "beta", "ga"]))
                    .build(),
                "Lifecycle stage of the served release; present with `snyk-version-served`.",
                known,
            ),
        ),
    ]
}

const REST: &[Api] = &[Api::Rest];
const V1: &[Api] = &[Api::V1];
const ALL: &[Api] = &[Api::Rest, Api::V1, Api::Ops];

/// The error answers: the APIs whose operations carry them (409 and 413
/// only where a body is sent), their status, component name and
/// description.
const ERRORS: &[(&[Api], &str, &str, &str)] = &[
    (
        REST,
        "400",
        "BadRequest",
        "Bad request: the `version` parameter is missing or \
        malformed, a query or path parameter is invalid or unknown, the content type is not \
        `application/vnd.api+json`, or the body is not valid JSON of the expected shape \
        (`source` says where).",
    ),
    (
        REST,
        "401",
        "Unauthorized",
        "No `Authorization` header, an unsupported scheme, or a \
        token that is invalid, expired or revoked.",
    ),
    (
        REST,
        "403",
        "Forbidden",
        "The caller may see the resource but lacks the right for this \
        action (e.g. a mere org member), or the body names a server-assigned `data.id`.",
    ),
    (
        REST,
        "404",
        "NotFound",
        "The resource does not exist or the caller may not see it \
        (other tenants' IDs answer 404, not 403), or the resource has no release for the \
        requested `version`.",
    ),
    (
        REST,
        "409",
        "Conflict",
        "`data.type` is not this endpoint's type, or the request \
        conflicts with the current state.",
    ),
    (
        REST,
        "413",
        "PayloadTooLarge",
        "The body is larger than the endpoint accepts (1 MiB; \
        16 MiB for event ingest).",
    ),
    (
        REST,
        "429",
        "TooManyRequests",
        "The token used up its requests for the minute \
        (`--rate-limit-per-minute`); retry after `Retry-After` seconds.",
    ),
    (
        REST,
        "500",
        "InternalError",
        "The server failed; details are logged, not sent.",
    ),
    (
        REST,
        "503",
        "Unavailable",
        "The database is not reachable, or the server is busy; \
        retry later.",
    ),
    (
        V1,
        "400",
        "V1BadRequest",
        "A query parameter is invalid or unknown, the path ID is not \
        a UUID, the content type is not `application/json`, or the body is not valid JSON of \
        the expected shape.",
    ),
    (
        V1,
        "401",
        "V1Unauthorized",
        "No `Authorization` header, an unsupported scheme, or a \
        token that is invalid, expired or revoked.",
    ),
    (
        V1,
        "404",
        "V1NotFound",
        "The org or group does not exist or the caller may not read \
        it (groups need the group admin role).",
    ),
    (
        V1,
        "413",
        "V1PayloadTooLarge",
        "The body is larger than 1 MiB.",
    ),
    (
        V1,
        "429",
        "V1TooManyRequests",
        "The token used up its requests for the minute; retry \
        after `Retry-After` seconds.",
    ),
    (
        V1,
        "500",
        "V1InternalError",
        "The server failed; details are logged, not sent.",
    ),
    (
        V1,
        "503",
        "V1Unavailable",
        "The database is not reachable, or the server is busy; \
        retry later.",
    ),
    (
        ALL,
        "408",
        "RequestTimeout",
        "The request took longer than 60 seconds; the body is \
        empty.",
    ),
];

/// The error answers of [`ERRORS`] as response components.
fn error_responses() -> impl Iterator<Item = (&'static str, Response)> {
    ERRORS.iter().map(|(apis, status, name, description)| {
        let mut r = ResponseBuilder::new().description(*description).build();
        let (media, schema) = match apis[0] {
            Api::Rest => (JSONAPI, ErrorDocument::name()),
            Api::V1 => (JSON, V1ErrorBody::name()),
            // The timeout answers before any API shapes the answer.
            Api::Ops => return (*name, r),
        };
        r.content.insert(
            media.into(),
            Content::new(Some(Ref::from_schema_name(schema))).into(),
        );
        if apis[0] == Api::Rest {
            r.headers.extend(
                snyk_headers(false)
                    .into_iter()
                    .map(|(n, h)| (n.to_owned(), h.into())),
            );
        }
        if *status == "429" {
            let seconds = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .build();
            let retry = header(
                seconds,
                "Seconds after which the token may try again.",
                false,
            );
            r.headers.insert("retry-after".into(), retry.into());
        }
        (*name, r)
    })
}
