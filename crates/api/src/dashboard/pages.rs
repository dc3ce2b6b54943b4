//! The dashboard's pages: sign-in, the start page, org and group settings
//! (with the IDs the seed uses as External IDs), and the AWS CloudTrail
//! Lake integration flow (tile, form, success, settings, detail, removal).

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use auditlake_core::integration::check_fields;
use auditlake_core::{time_fmt, Group, Integration, Org, Scope};
use auditlake_store::{Page as Window, SignedInWith, StoreError};

use super::{
    cookie, guard, same, see_other, set_cookie, Form, Page, Signed, Visitor, LOGIN_COOKIE,
    SESSION_COOKIE,
};
use crate::AppState;

type Params = Path<HashMap<String, String>>;

pub(crate) async fn css() -> Response {
    asset(
        include_str!("../../assets/app.css"),
        "text/css; charset=utf-8",
    )
}

pub(crate) async fn js() -> Response {
    asset(
        include_str!("../../assets/app.js"),
        "text/javascript; charset=utf-8",
    )
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

pub(super) fn store_failed(e: StoreError, s: Option<&Signed>) -> Page {
    tracing::warn!(error = %e, "a dashboard page failed");
    match e {
        StoreError::NotFound(what) => not_found(what, s),
        _ => Page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "Something went wrong reading the data. Try again shortly.",
            s,
        ),
    }
}

pub(super) fn not_found(what: &str, s: Option<&Signed>) -> Page {
    Page::error(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no such {what}, or you may not see it."),
        s,
    )
}

pub(super) fn uuid_param(
    p: &HashMap<String, String>,
    name: &str,
    s: &Signed,
) -> Result<Uuid, Page> {
    p.get(name)
        .and_then(|v| Uuid::parse_str(v).ok())
        .ok_or_else(|| not_found("page", Some(s)))
}

// ---- sign-in ----

fn login_form(
    csrf: &str,
    error: Option<&str>,
    email: &str,
    status: StatusCode,
    headers: &HeaderMap,
) -> Page {
    Page::render(
        "login.html",
        json!({"csrf": csrf, "error": error, "email": email}),
    )
    .status(status)
    .header(
        header::SET_COOKIE,
        set_cookie(headers, LOGIN_COOKIE, csrf, 3600),
    )
}

pub(crate) async fn login_page(headers: HeaderMap) -> Page {
    login_form(&random_hex(), None, "", StatusCode::OK, &headers)
}

fn random_hex() -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub(crate) async fn login(
    State(state): State<AppState>,
    Visitor(origin): Visitor,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let email = form.get("email").trim().to_owned();
    if !same(form.get("csrf"), &expected) {
        return login_form(
            &random_hex(),
            Some("The sign-in form expired. Try again."),
            &email,
            StatusCode::FORBIDDEN,
            &headers,
        )
        .into_response();
    }
    // The token form, or the password form.
    let token = form.get("token").trim();
    let keys = guard::keys(
        origin.ip.as_deref(),
        if token.is_empty() { email.as_str() } else { "" },
    );
    if let Err(wait) = state.sign_ins.begin(&keys, Instant::now()) {
        let minutes = wait.as_secs().div_ceil(60);
        return login_form(
            &random_hex(),
            Some(&format!(
                "Too many failed sign-ins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
            &email,
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
        )
        .header(header::RETRY_AFTER, (wait.as_secs() + 1).to_string())
        .into_response();
    }
    let (found, refusal) = if !token.is_empty() {
        (
            state
                .store
                .authenticate_caller(token)
                .await
                .map(|f| f.map(|(user, token, _)| (user, SignedInWith::Token(token.id)))),
            "That token is invalid, expired or revoked.",
        )
    } else {
        (
            state
                .store
                .check_password(&email, form.get("password"))
                .await
                .map(|f| f.map(|user| (user, SignedInWith::Password))),
            "The email or the password is wrong.",
        )
    };
    let (user, with) = match found {
        Ok(Some(found)) => {
            state.sign_ins.succeeded(&keys);
            found
        }
        Ok(None) => {
            return login_form(
                &random_hex(),
                Some(refusal),
                &email,
                StatusCode::UNAUTHORIZED,
                &headers,
            )
            .into_response();
        }
        Err(e) => return store_failed(e, None).into_response(),
    };
    let actor = auditlake_core::Actor {
        user_id: Some(user.id),
        source_ip: origin.ip,
        user_agent: origin.user_agent,
    };
    match state.store.create_session(&user, with, &actor).await {
        Ok(new) => see_other(
            "/",
            &[
                set_cookie(
                    &headers,
                    SESSION_COOKIE,
                    &new.secret,
                    auditlake_store::SESSION_SECS,
                ),
                set_cookie(&headers, LOGIN_COOKIE, "", 0),
            ],
        ),
        Err(e) => store_failed(e, None).into_response(),
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    form: Form,
) -> Response {
    if let Err(p) = s.check_csrf(&form) {
        return p.into_response();
    }
    if let Err(e) = state.store.delete_session(&s.secret, &s.actor()).await {
        return store_failed(e, Some(&s)).into_response();
    }
    see_other("/login", &[set_cookie(&headers, SESSION_COOKIE, "", 0)])
}

// ---- tenants ----

fn all() -> Window {
    Window {
        limit: 100,
        ..Window::default()
    }
}

pub(crate) async fn home(State(state): State<AppState>, s: Signed) -> Page {
    let user = s.session.user.id;
    let (groups, orgs) = match tokio::try_join!(
        state.store.groups_of(user, all()),
        state.store.orgs_of(user, all())
    ) {
        Ok(v) => v,
        Err(e) => return store_failed(e, Some(&s)),
    };
    let mut ctx = s.ctx();
    ctx.insert(
        "groups".into(),
        json!(groups.items.iter().map(group_view).collect::<Vec<_>>()),
    );
    ctx.insert(
        "orgs".into(),
        json!(orgs.items.iter().map(org_view).collect::<Vec<_>>()),
    );
    Page::render("home.html", Value::Object(ctx))
}

fn org_view(o: &Org) -> Value {
    json!({"id": o.id, "name": o.name})
}

fn group_view(g: &Group) -> Value {
    json!({"id": g.id, "name": g.name})
}

/// The org, when the visitor may read it (and administer it, if `admin`).
pub(super) async fn org_for(
    state: &AppState,
    s: &Signed,
    p: &HashMap<String, String>,
    admin: bool,
) -> Result<Org, Page> {
    let id = uuid_param(p, "org_id", s)?;
    let org = state
        .store
        .org(id)
        .await
        .map_err(|e| store_failed(e, Some(s)))?
        .filter(|o| s.session.access.can_read_org(o))
        .ok_or_else(|| not_found("organization", Some(s)))?;
    if admin && !s.session.access.can_admin_org(&org) {
        return Err(Page::error(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Integrations are managed by the organization's admins.",
            Some(s),
        ));
    }
    Ok(org)
}

pub(super) async fn group_for(
    state: &AppState,
    s: &Signed,
    p: &HashMap<String, String>,
) -> Result<Group, Page> {
    let id = uuid_param(p, "group_id", s)?;
    state
        .store
        .group(id)
        .await
        .map_err(|e| store_failed(e, Some(s)))?
        .filter(|g| s.session.access.is_group_admin(g.id))
        .ok_or_else(|| not_found("group", Some(s)))
}

pub(crate) async fn org_settings(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
) -> Page {
    let org = match org_for(&state, &s, &p, false).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    let mut ctx = s.ctx();
    ctx.insert("org".into(), org_view(&org));
    if let Some(g) = org.group_id.filter(|g| s.session.access.is_group_admin(*g)) {
        if let Ok(Some(group)) = state.store.group(g).await {
            ctx.insert("group".into(), group_view(&group));
        }
    }
    Page::render("org_settings.html", Value::Object(ctx))
}

pub(crate) async fn org_integrations(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
) -> Page {
    match org_for(&state, &s, &p, true).await {
        Ok(org) => {
            let mut ctx = s.ctx();
            ctx.insert("org".into(), org_view(&org));
            Page::render("integrations.html", Value::Object(ctx))
        }
        Err(page) => page,
    }
}

// ---- integrations ----

async fn view(state: &AppState, i: &Integration) -> Result<Value, StoreError> {
    let lag = state.store.lag(i).await?;
    let now = time_fmt::now_micros();
    let at = |us: Option<i64>| us.map(time_fmt::format_micros);
    Ok(json!({
        "id": i.id,
        "name": i.name,
        "status": i.status.as_str(),
        "account_id": i.config.account_id,
        "channel_arn": i.config.channel_arn,
        "external_id": i.external_id(),
        "lag_events": lag.events,
        "lag_seconds": lag.age_us(now) / 1_000_000,
        "delivered": i.delivered,
        "failed": i.failed,
        "last_success": at(i.last_success_us),
        "last_error": i.last_error,
        "last_error_at": at(i.last_error_us),
        "created_at": time_fmt::format_micros(i.created_us),
    }))
}

async fn views(state: &AppState, scope: Scope) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::new();
    for i in state.store.integrations_of(scope, all()).await?.items {
        out.push(view(state, &i).await?);
    }
    Ok(out)
}

fn org_base(org: Uuid) -> String {
    format!("/orgs/{org}/integrations/cloudtrail")
}

fn group_base(group: Uuid) -> String {
    format!("/groups/{group}/registrations")
}

/// Validates the three fields of the form; the errors by field.
fn checked(
    form: &Form,
) -> Result<(String, auditlake_core::integration::CloudTrailConfig), Map<String, Value>> {
    check_fields(
        form.field("name"),
        form.field("account_id"),
        form.field("channel_arn"),
    )
    .map_err(|errors| {
        errors
            .into_iter()
            .map(|(field, message)| (field.to_owned(), Value::String(message)))
            .collect()
    })
}

fn form_values(form: &Form) -> Value {
    json!({"name": form.get("name"), "account_id": form.get("account_id"), "channel_arn": form.get("channel_arn")})
}

pub(crate) async fn cloudtrail_new(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
) -> Page {
    match org_for(&state, &s, &p, true).await {
        Ok(org) => {
            let mut ctx = s.ctx();
            ctx.insert("org".into(), org_view(&org));
            ctx.insert("base".into(), json!(org_base(org.id)));
            ctx.insert("form".into(), json!({}));
            ctx.insert("errors".into(), json!({}));
            Page::render("cloudtrail_new.html", Value::Object(ctx))
        }
        Err(page) => page,
    }
}

pub(crate) async fn cloudtrail_create(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
    form: Form,
) -> Page {
    let org = match org_for(&state, &s, &p, true).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    if let Err(page) = s.check_csrf(&form) {
        return page;
    }
    let mut ctx = s.ctx();
    ctx.insert("org".into(), org_view(&org));
    ctx.insert("base".into(), json!(org_base(org.id)));
    let (name, config) = match checked(&form) {
        Ok(v) => v,
        Err(errors) => {
            ctx.insert("form".into(), form_values(&form));
            ctx.insert("errors".into(), Value::Object(errors));
            return Page::render("cloudtrail_new.html", Value::Object(ctx))
                .status(StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    match state
        .store
        .create_integration(Scope::Org(org.id), &name, config, &s.actor())
        .await
    {
        Ok(i) => {
            ctx.insert(
                "integration".into(),
                json!({"id": i.id, "channel_arn": i.config.channel_arn}),
            );
            Page::render("cloudtrail_created.html", Value::Object(ctx)).status(StatusCode::CREATED)
        }
        Err(e) => store_failed(e, Some(&s)),
    }
}

pub(crate) async fn cloudtrail_list(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let org = match org_for(&state, &s, &p, true).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    let items = match views(&state, Scope::Org(org.id)).await {
        Ok(v) => v,
        Err(e) => return store_failed(e, Some(&s)),
    };
    let mut ctx = s.ctx();
    ctx.insert("org".into(), org_view(&org));
    ctx.insert("base".into(), json!(org_base(org.id)));
    ctx.insert("integrations".into(), json!(items));
    if q.contains_key("removed") {
        ctx.insert("flash".into(), json!("The integration was removed."));
    }
    Page::render("cloudtrail_list.html", Value::Object(ctx))
}

pub(crate) async fn group_settings(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let group = match group_for(&state, &s, &p).await {
        Ok(g) => g,
        Err(page) => return page,
    };
    let mut ctx = s.ctx();
    if q.contains_key("saved") {
        ctx.insert(
            "flash".into(),
            json!("The registration was saved; forwarding starts now."),
        );
    }
    if q.contains_key("removed") {
        ctx.insert("flash".into(), json!("The registration was removed."));
    }
    render_group(
        &state,
        &s,
        &group,
        ctx,
        json!({}),
        json!({}),
        StatusCode::OK,
    )
    .await
}

async fn render_group(
    state: &AppState,
    s: &Signed,
    group: &Group,
    mut ctx: Map<String, Value>,
    form: Value,
    errors: Value,
    status: StatusCode,
) -> Page {
    let (orgs, items) = match tokio::try_join!(
        state.store.group_orgs(group.id, all()),
        views(state, Scope::Group(group.id))
    ) {
        Ok(v) => v,
        Err(e) => return store_failed(e, Some(s)),
    };
    ctx.insert("group".into(), group_view(group));
    ctx.insert(
        "orgs".into(),
        json!(orgs.items.iter().map(org_view).collect::<Vec<_>>()),
    );
    ctx.insert("integrations".into(), json!(items));
    ctx.insert("base".into(), json!(group_base(group.id)));
    ctx.insert("form".into(), form);
    ctx.insert("errors".into(), errors);
    Page::render("group_settings.html", Value::Object(ctx)).status(status)
}

pub(crate) async fn registration_create(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
    form: Form,
) -> Response {
    let group = match group_for(&state, &s, &p).await {
        Ok(g) => g,
        Err(page) => return page.into_response(),
    };
    if let Err(page) = s.check_csrf(&form) {
        return page.into_response();
    }
    match checked(&form) {
        Err(errors) => render_group(
            &state,
            &s,
            &group,
            s.ctx(),
            form_values(&form),
            Value::Object(errors),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await
        .into_response(),
        Ok((name, config)) => match state
            .store
            .create_integration(Scope::Group(group.id), &name, config, &s.actor())
            .await
        {
            Ok(_) => see_other(&format!("/groups/{}/settings?saved=1", group.id), &[]),
            Err(e) => store_failed(e, Some(&s)).into_response(),
        },
    }
}

/// The integration a detail or removal route names, with where it lives:
/// (integration, its page path, the page to go back to, its label).
async fn integration_for(
    state: &AppState,
    s: &Signed,
    p: &HashMap<String, String>,
) -> Result<(Integration, String, String, String), Page> {
    let id = uuid_param(p, "integration_id", s)?;
    let (scope, base, back, label) = if p.contains_key("group_id") {
        let g = group_for(state, s, p).await?;
        (
            Scope::Group(g.id),
            group_base(g.id),
            format!("/groups/{}/settings", g.id),
            g.name,
        )
    } else {
        let o = org_for(state, s, p, true).await?;
        (
            Scope::Org(o.id),
            org_base(o.id),
            org_base(o.id),
            "AWS CloudTrail Lake settings".to_owned(),
        )
    };
    let i = state
        .store
        .integration(scope, id)
        .await
        .map_err(|e| store_failed(e, Some(s)))?
        .ok_or_else(|| not_found("integration", Some(s)))?;
    Ok((i, format!("{base}/{id}"), back, label))
}

pub(crate) async fn integration_detail(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
) -> Page {
    let (i, self_path, back, label) = match integration_for(&state, &s, &p).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let v = match view(&state, &i).await {
        Ok(v) => v,
        Err(e) => return store_failed(e, Some(&s)),
    };
    let mut ctx = s.ctx();
    ctx.insert("i".into(), v);
    ctx.insert("self_path".into(), json!(self_path));
    ctx.insert("back".into(), json!(back));
    ctx.insert("back_label".into(), json!(label));
    Page::render("cloudtrail_detail.html", Value::Object(ctx))
}

pub(crate) async fn integration_remove_page(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
) -> Page {
    let (i, self_path, _, _) = match integration_for(&state, &s, &p).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let mut ctx = s.ctx();
    ctx.insert(
        "i".into(),
        json!({"name": i.name, "channel_arn": i.config.channel_arn}),
    );
    ctx.insert("self_path".into(), json!(self_path));
    Page::render("cloudtrail_remove.html", Value::Object(ctx))
}

pub(crate) async fn integration_remove(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Params,
    form: Form,
) -> Response {
    let (i, _, back, _) = match integration_for(&state, &s, &p).await {
        Ok(v) => v,
        Err(page) => return page.into_response(),
    };
    if let Err(page) = s.check_csrf(&form) {
        return page.into_response();
    }
    match state
        .store
        .delete_integration(i.scope, i.id, &s.actor())
        .await
    {
        Ok(()) => see_other(&format!("{back}?removed=1"), &[]),
        Err(e) => store_failed(e, Some(&s)).into_response(),
    }
}
