//! The lake's HTTP listener: one address serving the data plane
//! (`POST /PutAuditEvents`, REST-JSON, signing name `cloudtrail-data`) and
//! the control plane (`POST /` with `X-Amz-Target`, JSON 1.1, signing name
//! `cloudtrail`), as the AWS SDKs expect when their endpoint URL points
//! here. Errors are rendered here, once, in the shape each protocol's SDK
//! parses: JSON 1.1 `{"__type", "message"}` and REST-JSON
//! `x-amzn-ErrorType` with `{"message"}`.

use std::time::{Instant, SystemTime};

use axum::body::{Body, HttpBody as _};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use serde_json::json;

use crate::error::LakeError;
use crate::wire::control::operation_of;
use crate::wire::data::PutParams;
use crate::wire::sigv4;
use crate::Lake;
use crate::MAX_BODY;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Plane {
    Control,
    Data,
}

fn render(
    plane: Plane,
    request_id: &str,
    result: Result<serde_json::Value, LakeError>,
) -> Response {
    let (status, body, error_type) = match result {
        Ok(value) => (StatusCode::OK, value, None),
        Err(e) => {
            if e.status() >= 500 {
                tracing::error!(error = %e, request_id, "lake request failed");
            }
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = match plane {
                Plane::Control => json!({"__type": e.code(), "message": e.client_message()}),
                Plane::Data => json!({"message": e.client_message()}),
            };
            (status, body, Some(e.code()))
        }
    };
    let content_type = match plane {
        Plane::Control => "application/x-amz-json-1.1",
        Plane::Data => "application/json",
    };
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(code) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    }
    response
}

async fn handle(
    State(lake): State<Lake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Result<Query<PutParams>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    if method == Method::GET && uri.path() == "/healthz" {
        return (StatusCode::OK, "ok").into_response();
    }
    let plane = if uri.path() == "/PutAuditEvents" {
        Plane::Data
    } else {
        Plane::Control
    };
    let operation = match plane {
        Plane::Data => "PutAuditEvents".to_owned(),
        Plane::Control => headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(operation_of)
            .unwrap_or("")
            .to_owned(),
    };
    let result = async {
        if method != Method::POST || (plane == Plane::Control && (uri.path() != "/" || operation.is_empty())) {
            return Err(LakeError::with_status(
                404,
                "UnknownOperationException",
                "Unknown operation: send POST /PutAuditEvents, or POST / with an X-Amz-Target of CloudTrail_20131101.",
            ));
        }
        let service = match plane {
            Plane::Data => "cloudtrail-data",
            Plane::Control => "cloudtrail",
        };
        // What the headers alone can show is checked before any of the
        // body budget is taken or the body read: a client without a key
        // of this lake holds nothing.
        sigv4::check_headers(lake.keys(), service, &headers, SystemTime::now())?;
        let _held = lake.bodies().hold(&headers, !body.is_end_stream()).await;
        let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
            if auditlake_http::is_read_timeout(&e) {
                LakeError::with_status(
                    408,
                    "RequestTimeoutException",
                    "The request body stopped arriving.",
                )
            } else {
                LakeError::with_status(
                    413,
                    "RequestEntityTooLargeException",
                    format!("The request body is larger than {MAX_BODY} bytes."),
                )
            }
        })?;
        let caller = sigv4::verify(lake.keys(), service, &method, &uri, &headers, &bytes, SystemTime::now())?;
        match plane {
            Plane::Data => {
                let Query(params) = params.map_err(|e| {
                    LakeError::bad("ValidationException", format!("the query string is not valid: {e}"))
                })?;
                lake.put_audit_events(&caller, params, &bytes).await
            }
            Plane::Control => lake.control(&caller, &operation, &bytes).await,
        }
    }
    .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    metrics::counter!("auditlake_lake_requests_total", "operation" => operation.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("auditlake_lake_request_seconds", "operation" => operation.clone())
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(
        operation,
        outcome,
        ms = started.elapsed().as_millis() as u64,
        "lake request"
    );
    render(plane, &request_id, result)
}

/// The lake's routes.
pub fn router(lake: Lake) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(lake)
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Serves the lake on `listener` until `shutdown` resolves, under the
/// lake's [`ServeLimits`](crate::ServeLimits).
pub async fn serve(
    listener: tokio::net::TcpListener,
    lake: Lake,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = lake.serve_limits();
    auditlake_http::serve(listener, router(lake), limits, shutdown).await
}
