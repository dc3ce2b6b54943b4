//! The web dashboard: server-rendered pages (minijinja templates and one
//! stylesheet and script, all embedded in the binary), so the README's two
//! commands need no front-end build.
//!
//! # Security
//!
//! - Sign-in with an API token opens a session: a random secret in an
//!   `HttpOnly`, `SameSite=Strict` cookie (`Secure` unless the host is a
//!   loopback name), stored hashed (`Store::create_session`).
//! - Every form carries the session's CSRF token, checked in constant time
//!   before anything changes; the sign-in form uses a double-submit cookie.
//! - Failed sign-ins are limited per client address and per email
//!   (`guard`).
//! - Pages check rights with the same rules as the API: another tenant's
//!   org or group is "not found".

mod audit;
mod console;
mod guard;
mod pages;

pub use console::LakeConsole;
pub use guard::SignInGuard;

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use subtle::ConstantTimeEq;

use auditlake_store::Session;

use crate::AppState;

/// The session cookie's name.
const SESSION_COOKIE: &str = "auditlake_session";
/// The sign-in form's double-submit cookie.
const LOGIN_COOKIE: &str = "auditlake_login_csrf";

/// The dashboard's routes.
pub(crate) fn router() -> Router<AppState> {
    use pages::*;
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/orgs/{org_id}/settings", get(org_settings))
        .route("/orgs/{org_id}/integrations", get(org_integrations))
        .route(
            "/orgs/{org_id}/integrations/cloudtrail",
            get(cloudtrail_list).post(cloudtrail_create),
        )
        .route(
            "/orgs/{org_id}/integrations/cloudtrail/new",
            get(cloudtrail_new),
        )
        .route(
            "/orgs/{org_id}/integrations/cloudtrail/{integration_id}",
            get(integration_detail),
        )
        .route(
            "/orgs/{org_id}/integrations/cloudtrail/{integration_id}/remove",
            get(integration_remove_page).post(integration_remove),
        )
        .route(
            "/orgs/{org_id}/lake",
            get(console::page).post(console::query),
        )
        .route("/orgs/{org_id}/audit", get(audit::log))
        .route("/orgs/{org_id}/audit/{event_id}", get(audit::event))
        .route("/groups/{group_id}/audit", get(audit::log))
        .route("/groups/{group_id}/audit/{event_id}", get(audit::event))
        .route("/groups/{group_id}/settings", get(group_settings))
        .route(
            "/groups/{group_id}/registrations",
            post(registration_create),
        )
        .route(
            "/groups/{group_id}/registrations/{integration_id}",
            get(integration_detail),
        )
        .route(
            "/groups/{group_id}/registrations/{integration_id}/remove",
            get(integration_remove_page).post(integration_remove),
        )
}

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, text) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("login.html", include_str!("../../templates/login.html")),
            ("home.html", include_str!("../../templates/home.html")),
            ("error.html", include_str!("../../templates/error.html")),
            (
                "org_settings.html",
                include_str!("../../templates/org_settings.html"),
            ),
            (
                "group_settings.html",
                include_str!("../../templates/group_settings.html"),
            ),
            (
                "integrations.html",
                include_str!("../../templates/integrations.html"),
            ),
            (
                "integration_table.html",
                include_str!("../../templates/integration_table.html"),
            ),
            (
                "integration_form.html",
                include_str!("../../templates/integration_form.html"),
            ),
            (
                "cloudtrail_new.html",
                include_str!("../../templates/cloudtrail_new.html"),
            ),
            (
                "cloudtrail_created.html",
                include_str!("../../templates/cloudtrail_created.html"),
            ),
            (
                "cloudtrail_list.html",
                include_str!("../../templates/cloudtrail_list.html"),
            ),
            (
                "cloudtrail_detail.html",
                include_str!("../../templates/cloudtrail_detail.html"),
            ),
            (
                "cloudtrail_remove.html",
                include_str!("../../templates/cloudtrail_remove.html"),
            ),
            ("audit.html", include_str!("../../templates/audit.html")),
            ("console.html", include_str!("../../templates/console.html")),
            (
                "audit_event.html",
                include_str!("../../templates/audit_event.html"),
            ),
        ] {
            env.add_template(name, text)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env
    })
}

/// A rendered page.
pub(crate) struct Page {
    status: StatusCode,
    html: String,
    headers: Vec<(header::HeaderName, String)>,
}

impl Page {
    /// Renders `template` with `ctx` (200).
    fn render(template: &str, ctx: Value) -> Page {
        let html = templates()
            .get_template(template)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| {
                tracing::error!(template, error = %e, "rendering a page failed");
                "<!doctype html><title>Error</title><p>This page could not be shown.".to_owned()
            });
        Page {
            status: StatusCode::OK,
            html,
            headers: Vec::new(),
        }
    }

    fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }

    fn header(mut self, name: header::HeaderName, value: String) -> Page {
        self.headers.push((name, value));
        self
    }

    /// An error page with `status`.
    fn error(status: StatusCode, title: &str, detail: &str, signed: Option<&Signed>) -> Page {
        let mut ctx = serde_json::json!({"title": title, "detail": detail});
        if let Some(s) = signed {
            ctx["user"] = serde_json::json!({"email": s.session.user.email});
            ctx["csrf"] = Value::String(s.session.csrf.clone());
        }
        Page::render("error.html", ctx).status(status)
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.html).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Nothing is loaded from elsewhere, and no one frames the pages.
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        );
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(name, v);
            }
        }
        res
    }
}

/// A redirect after a form (303 See Other), with extra headers.
fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// The dashboard session secret the headers carry, if any.
pub(crate) fn session_secret(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `Set-Cookie` for `name`; `max_age` 0 deletes it.
fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    // Browsers keep Secure cookies only from secure origins; loopback
    // names are the exception a local dashboard runs on.
    let secure = if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
        ""
    } else {
        "; Secure"
    };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A signed-in visitor. Pages that need one redirect others to sign in.
pub(crate) struct Signed {
    session: Session,
    secret: String,
    origin: crate::ctx::Origin,
}

impl Signed {
    fn actor(&self) -> auditlake_core::Actor {
        auditlake_core::Actor {
            user_id: Some(self.session.user.id),
            source_ip: self.origin.ip.clone(),
            user_agent: self.origin.user_agent.clone(),
        }
    }

    /// The base template context: who, and the CSRF token for forms.
    fn ctx(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert(
            "user".into(),
            serde_json::json!({"email": self.session.user.email}),
        );
        m.insert("csrf".into(), Value::String(self.session.csrf.clone()));
        m
    }

    /// Checks a form's CSRF token.
    fn check_csrf(&self, form: &Form) -> Result<(), Page> {
        if same(form.get("csrf"), &self.session.csrf) {
            Ok(())
        } else {
            Err(Page::error(
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form was not sent from this session. Reload the page and try again.",
                Some(self),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || see_other("/login", &[]);
        let secret = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        let session = state
            .store
            .session(&secret)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "reading a session failed");
                Page::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "The dashboard cannot reach its database. Try again shortly.",
                    None,
                )
                .into_response()
            })?
            .ok_or_else(to_login)?;
        let origin = crate::ctx::Origin::of_parts(parts);
        Ok(Signed {
            session,
            secret,
            origin,
        })
    }
}

/// Where a request came from, for the events of the sign-in.
pub(crate) struct Visitor(crate::ctx::Origin);

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Visitor(crate::ctx::Origin::of_parts(parts)))
    }
}

/// A URL-encoded form body (at most the app's body limit).
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or("")
    }

    /// A trimmed field, `None` when empty.
    fn field(&self, key: &str) -> Option<&str> {
        Some(self.get(key).trim()).filter(|v| !v.is_empty())
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .map(|pairs| Form(pairs.into_iter().collect()))
            .map_err(|_| {
                Page::error(
                    StatusCode::BAD_REQUEST,
                    "Bad form",
                    "The form could not be read.",
                    None,
                )
                .into_response()
            })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_file_is_registered_and_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                super::templates().get_template(&name).is_ok(),
                "{name} is not registered in templates()"
            );
        }
    }
}
