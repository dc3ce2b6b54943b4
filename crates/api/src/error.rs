//! HTTP errors, mapped in one place.
//!
//! [`ApiError`] is what every handler returns on failure. It renders as a
//! JSON:API error document for the REST API and, through [`V1Error`], in
//! API v1's shape. Store errors map here too; internal details are logged,
//! never sent.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use auditlake_store::StoreError;

use crate::jsonapi::{JsonApi, JSONAPI_1};

/// JSON:API media type.
pub const JSONAPI: &str = "application/vnd.api+json";

/// Where in the request the error lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A JSON pointer into the body, e.g. `/data/attributes/name`.
    Pointer(String),
    /// A query or path parameter name.
    Parameter(String),
    /// A request header name.
    Header(String),
}

/// What kind of problem an error is: machine-readable, stable across
/// versions, with one title each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not what the endpoint takes.
    InvalidBody,
    /// 400: a query or path parameter.
    InvalidParameter,
    /// 400: a request header.
    InvalidHeader,
    /// 400: the body's media type.
    InvalidContentType,
    /// 401: no credentials, or ones that do not work.
    Unauthorized,
    /// 403: a known caller without the right.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 409: the wrong `data.type`, or a clash with what is stored.
    Conflict,
    /// 413.
    PayloadTooLarge,
    /// 429: the token's request rate is used up.
    RateLimited,
    /// 422: the store refused the change.
    Unprocessable,
    /// 500; the cause is logged, not sent.
    InternalError,
    /// 503: the database is not reachable.
    Unavailable,
    /// 503: the server's budget for such requests is spent.
    Busy,
}

impl ErrorCode {
    /// The short summary of the kind of problem.
    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidBody => "Invalid request body",
            Self::InvalidParameter => "Invalid parameter",
            Self::InvalidHeader => "Invalid header",
            Self::InvalidContentType => "Invalid content type",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::PayloadTooLarge => "Payload too large",
            Self::RateLimited => "Too many requests",
            Self::Unprocessable => "Unprocessable request",
            Self::InternalError => "Internal server error",
            Self::Unavailable => "Service unavailable",
            Self::Busy => "Service busy",
        }
    }
}

/// A failed request.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What kind of problem it is.
    pub code: ErrorCode,
    /// What exactly is wrong, for a human.
    pub detail: String,
    /// Where, when known.
    pub source: Option<Source>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            source: None,
            retry_after: None,
        }
    }

    /// 429: the caller's token has used up its request rate.
    pub fn rate_limited(retry_after_secs: u64, per_minute: u32) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "this token may make {per_minute} requests per minute; retry in {retry_after_secs} s"
            ),
        );
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// 400 with a pointer into the body.
    pub fn invalid_body(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidBody, detail)
            .at(Source::Pointer(pointer.into()))
    }

    /// 400 for a query or path parameter.
    pub fn invalid_param(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidParameter, detail)
            .at(Source::Parameter(name.into()))
    }

    /// 400 for a bad request header.
    pub fn invalid_header(name: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidHeader, detail)
            .at(Source::Header(name.to_owned()))
    }

    /// 401: no credentials, or credentials that do not work.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail)
    }

    /// 403: known caller without the right.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, detail)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "this method is not supported on this path",
        )
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, detail)
    }

    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            detail,
        )
    }

    /// 415-style content-type problems answer 400 per the Snyk conventions.
    pub fn content_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidContentType,
            detail,
        )
        .at(Source::Header("content-type".into()))
    }

    /// 500; `cause` is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "the server failed to handle the request; it has been logged",
        )
    }

    /// 503; `cause` is logged, not sent.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "service unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the database is not reachable; retry later",
        )
    }

    /// 503 for a request that found the server's budget for it spent.
    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            "too many requests without credentials are in flight; retry later",
        )
    }

    /// Sets where the error lies.
    pub fn at(mut self, source: Source) -> Self {
        self.source = Some(source);
        self
    }

    /// The JSON:API error object.
    pub fn object(&self) -> ErrorObject {
        ErrorObject {
            id: uuid::Uuid::new_v4(),
            status: self.status.as_u16().to_string(),
            code: self.code,
            title: self.code.title(),
            detail: self.detail.clone(),
            source: self.source.clone(),
        }
    }
}

/// A JSON:API error object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// A fresh ID for this occurrence of the problem.
    pub id: uuid::Uuid,
    /// The HTTP status as a string.
    #[schema(pattern = r"^\d{3}$", example = "400")]
    pub status: String,
    /// What kind of problem it is.
    pub code: ErrorCode,
    /// The short summary of the kind of problem (one per `code`).
    pub title: &'static str,
    /// What exactly is wrong, for a human.
    pub detail: String,
    /// Where in the request, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// A JSON:API error document; it always holds exactly one error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDocument {
    /// The JSON:API version.
    pub jsonapi: JsonApi,
    /// The error.
    #[schema(min_items = 1, max_items = 1)]
    pub errors: Vec<ErrorObject>,
}

/// An error in API v1's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct V1ErrorBody {
    /// The HTTP status.
    pub code: u16,
    /// What exactly is wrong, for a human.
    pub message: String,
    /// The short summary of the kind of problem.
    pub error: &'static str,
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict(msg) => ApiError::conflict(msg),
            StoreError::Invalid(msg) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::Unprocessable,
                msg,
            ),
            StoreError::Unavailable(why) => ApiError::unavailable(why),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorDocument {
            jsonapi: JSONAPI_1,
            errors: vec![self.object()],
        };
        let body = serde_json::to_string(&body).expect("an error document serializes");
        let mut res = (self.status, body).into_response();
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
        let body = V1ErrorBody {
            code: e.status.as_u16(),
            message: e.detail.clone(),
            error: e.code.title(),
        };
        let mut res = (e.status, axum::Json(body)).into_response();
        if let Some(secs) = e.retry_after {
            res.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        res.extensions_mut().insert(e);
        res
    }
}
