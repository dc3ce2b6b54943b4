//! HTTP errors, mapped in one place.
//!
//! [`ApiError`] is what every handler returns on failure. It renders as a
//! JSON:API error document for the REST API and, through [`V1Error`], in
//! API v1's shape. Store errors map here too; internal details are logged,
//! never sent.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use auditlake_store::StoreError;

/// JSON:API media type.
pub const JSONAPI: &str = "application/vnd.api+json";

/// Where in the request the error lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A JSON pointer into the body, e.g. `/data/attributes/name`.
    Pointer(String),
    /// A query or path parameter name.
    Parameter(String),
    /// A request header name.
    Header(String),
}

/// A failed request.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code, stable across versions.
    pub code: &'static str,
    /// Short summary of the kind of problem.
    pub title: &'static str,
    /// What exactly is wrong, for a human.
    pub detail: String,
    /// Where, when known.
    pub source: Option<Source>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            source: None,
            retry_after: None,
        }
    }

    /// 429: the caller's token has used up its request rate.
    pub fn rate_limited(retry_after_secs: u64, per_minute: u32) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            format!(
                "this token may make {per_minute} requests per minute; retry in {retry_after_secs} s"
            ),
        );
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// 400 with a pointer into the body.
    pub fn invalid_body(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "Invalid request body",
            detail,
        )
        .at(Source::Pointer(pointer.into()))
    }

    /// 400 for a query or path parameter.
    pub fn invalid_param(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "Invalid parameter",
            detail,
        )
        .at(Source::Parameter(name.into()))
    }

    /// 400 for a bad request header.
    pub fn invalid_header(name: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            "Invalid header",
            detail,
        )
        .at(Source::Header(name.to_owned()))
    }

    /// 401: no credentials, or credentials that do not work.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403: known caller without the right.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this method is not supported on this path",
        )
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
            detail,
        )
    }

    /// 415-style content-type problems answer 400 per the Snyk conventions.
    pub fn content_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_content_type",
            "Invalid content type",
            detail,
        )
        .at(Source::Header("content-type".into()))
    }

    /// 500; `cause` is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
            "the server failed to handle the request; it has been logged",
        )
    }

    /// 503; `cause` is logged, not sent.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "service unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "the database is not reachable; retry later",
        )
    }

    /// 503 for a request that found the server's budget for it spent.
    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Service busy",
            "too many requests without credentials are in flight; retry later",
        )
    }

    /// Sets where the error lies.
    pub fn at(mut self, source: Source) -> Self {
        self.source = Some(source);
        self
    }

    /// The JSON:API error object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut obj = json!({
            "id": uuid::Uuid::new_v4(),
            "status": self.status.as_u16().to_string(),
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
        });
        match &self.source {
            Some(Source::Pointer(p)) => obj["source"] = json!({ "pointer": p }),
            Some(Source::Parameter(p)) => obj["source"] = json!({ "parameter": p }),
            Some(Source::Header(h)) => obj["source"] = json!({ "header": h }),
            None => {}
        }
        obj
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict(msg) => ApiError::conflict(msg),
            StoreError::Invalid(msg) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                "Unprocessable request",
                msg,
            ),
            StoreError::Unavailable(why) => ApiError::unavailable(why),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "jsonapi": { "version": "1.0" }, "errors": [self.to_json()] });
        let mut res = (self.status, body.to_string()).into_response();
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static(JSONAPI));
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        res.extensions_mut().insert(self);
        res
    }
}

/// An [`ApiError`] rendered in API v1's shape:
/// `{"code": 400, "message": "...", "error": "Invalid parameter"}`.
#[derive(Debug)]
pub struct V1Error(pub ApiError);

impl From<ApiError> for V1Error {
    fn from(e: ApiError) -> Self {
        V1Error(e)
    }
}

impl From<StoreError> for V1Error {
    fn from(e: StoreError) -> Self {
        V1Error(e.into())
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = json!({ "code": e.status.as_u16(), "message": e.detail, "error": e.title });
        let mut res = (e.status, axum::Json(body)).into_response();
        if let Some(secs) = e.retry_after {
            res.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        res.extensions_mut().insert(e);
        res
    }
}
