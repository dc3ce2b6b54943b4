//! The authorization matrix: every tenant-facing endpoint (REST, v1,
//! ingest, integrations, dashboard pages) times every kind of caller, with
//! the status each cell must answer, and never a word of the tenant's data
//! in a refusal.
//!
//! Rights classes: `OrgRead` (any member of the org, or its group's
//! admin), `OrgAdmin` (the org's admin or its group's admin; a mere member
//! gets 403), `GroupAdmin` (the group's admin only). Callers who may not
//! know the tenant get 404, so IDs cannot be probed; callers without valid
//! credentials get 401 (the dashboard sends them to sign in).

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    OrgRead,
    OrgAdmin,
    GroupAdmin,
    /// What the org's readers are refused (400) after the rights check.
    RefusedToOrgReaders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Revoked,
    OtherOrgAdmin,
    OtherGroupAdmin,
    OrgMember,
    OrgAdmin,
    GroupAdmin,
}

const EVERYONE: [Who; 7] = [
    Who::Anonymous,
    Who::Revoked,
    Who::OtherOrgAdmin,
    Who::OtherGroupAdmin,
    Who::OrgMember,
    Who::OrgAdmin,
    Who::GroupAdmin,
];

/// The status class a cell must answer: `2` for success, else the code.
fn expected(need: Need, who: Who) -> u16 {
    match (who, need) {
        (Who::Anonymous | Who::Revoked, _) => 401,
        (Who::OtherOrgAdmin | Who::OtherGroupAdmin, Need::RefusedToOrgReaders) => 404,
        (_, Need::RefusedToOrgReaders) => 400,
        (Who::GroupAdmin, _) => 2,
        (Who::OtherOrgAdmin | Who::OtherGroupAdmin, _) => 404,
        (Who::OrgMember | Who::OrgAdmin, Need::GroupAdmin) => 404,
        (Who::OrgMember, Need::OrgAdmin) => 403,
        (Who::OrgMember | Who::OrgAdmin, _) => 2,
    }
}

struct Actors {
    tokens: Vec<(Who, Option<String>)>,
}

async fn actors(h: &Harness) -> Actors {
    let token = |user: uuid::Uuid| async move {
        h.store
            .create_token(user, "matrix", None, &Actor::user(user))
            .await
            .unwrap()
            .secret
    };
    let mut tokens = vec![
        (Who::Anonymous, None),
        (Who::GroupAdmin, Some(h.token.clone())),
    ];

    let revoked = h
        .store
        .create_user("revoked@example.com", "Revoked")
        .await
        .unwrap();
    let t = h
        .store
        .create_token(revoked.id, "gone", None, &Actor::user(revoked.id))
        .await
        .unwrap();
    h.store
        .add_member(
            Scope::Org(h.org.id),
            revoked.id,
            auditlake_core::Role::OrgAdmin,
            &Actor::user(h.user.id),
        )
        .await
        .unwrap();
    h.store
        .revoke_token(revoked.id, t.token.id, &Actor::user(revoked.id))
        .await
        .unwrap();
    tokens.push((Who::Revoked, Some(t.secret)));

    let other = h.new_tenant("other-org@example.com", "Elsewhere").await;
    tokens.push((Who::OtherOrgAdmin, Some(token(other.user.id).await)));

    let og = h
        .store
        .create_user("other-group@example.com", "OG")
        .await
        .unwrap();
    h.store
        .create_group("Other group", &Actor::user(og.id))
        .await
        .unwrap();
    tokens.push((Who::OtherGroupAdmin, Some(token(og.id).await)));

    for (who, email, role) in [
        (
            Who::OrgMember,
            "member@example.com",
            auditlake_core::Role::OrgMember,
        ),
        (
            Who::OrgAdmin,
            "orgadmin@example.com",
            auditlake_core::Role::OrgAdmin,
        ),
    ] {
        let u = h.store.create_user(email, "M").await.unwrap();
        h.store
            .add_member(Scope::Org(h.org.id), u.id, role, &Actor::user(h.user.id))
            .await
            .unwrap();
        tokens.push((who, Some(token(u.id).await)));
    }
    let kinds: Vec<Who> = tokens.iter().map(|t| t.0).collect();
    assert!(
        EVERYONE.iter().all(|w| kinds.contains(w)),
        "every kind of caller is tried"
    );
    Actors { tokens }
}

/// Words of the tenant that no refusal may contain.
fn secrets(h: &Harness) -> [String; 2] {
    [h.org.name.clone(), h.group.name.clone()]
}

fn integration_body(kind: &str, n: usize) -> Value {
    json!({"data": {"type": kind, "attributes": {"type": "aws-cloudtrail", "name": format!("m{n}"),
        "config": {"account_id": "123456789012",
                   "channel_arn": "arn:aws:cloudtrail:us-east-1:123456789012:channel/m"}}}})
}

/// The path of a case for the caller at an index of `Actors::tokens`:
/// the same for all, or a resource of that caller's own for the cases
/// whose success consumes it (a deletion, a move).
type PathFn = Box<dyn Fn(usize) -> String>;
/// The body of a case for the `n`th cell.
type BodyFn = Box<dyn Fn(usize) -> Option<Value>>;

/// An integration of the harness's org and a registration of its group,
/// both named `name`.
async fn integrations(h: &Harness, name: &str) -> (Uuid, Uuid) {
    let admin = Actor::user(h.user.id);
    let mut ids = Vec::new();
    for scope in [Scope::Org(h.org.id), Scope::Group(h.group.id)] {
        let config = auditlake_core::integration::CloudTrailConfig {
            account_id: "123456789012".into(),
            channel_arn: "arn:aws:cloudtrail:us-east-1:123456789012:channel/m".into(),
        };
        let created = h
            .store
            .create_integration(scope, name, config, &admin)
            .await;
        ids.push(created.unwrap().id);
    }
    (ids[0], ids[1])
}

/// Resources of one caller's own that a successful cell consumes.
struct Doomed {
    org_membership: Uuid,
    group_membership: Uuid,
    integration: Uuid,
    registration: Uuid,
    /// An org outside any group, to be moved into the group.
    standalone: Uuid,
    /// A user in no tenant, to be made a member.
    newcomer: Uuid,
}

fn same(path: String) -> PathFn {
    Box::new(move |_| path.clone())
}

fn no_body() -> BodyFn {
    Box::new(|_| None)
}

fn replay_body() -> BodyFn {
    Box::new(|_| {
        Some(json!({"data": {"type": "replay", "attributes": {"from": "2024-10-01T00:00:00Z"}}}))
    })
}

/// Sends a dashboard request with the caller's session cookie, if they
/// have one; returns the status, the `Location` header and the body.
async fn dashboard_call(
    mut rb: reqwest::RequestBuilder,
    session: Option<&str>,
) -> (u16, Option<String>, String) {
    if let Some(c) = session {
        rb = rb.header("cookie", format!("auditlake_session={c}"));
    }
    let res = rb.send().await.unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, location, res.text().await.unwrap())
}

/// Whether a dashboard answer is the one a cell wants: a sign-in redirect
/// for 401, the page (or, for a form, a page or a redirect onwards) for
/// success, else that status.
fn dashboard_answer_ok(want: u16, status: u16, location: Option<&str>, form: bool) -> bool {
    match want {
        401 => status == 303 && location == Some("/login"),
        2 if form => {
            (200..300).contains(&status)
                || (status == 303 && location.is_some_and(|l| l != "/login"))
        }
        2 => status == 200,
        want => status == want,
    }
}

api_test!(
    every_endpoint_answers_every_caller_as_its_rights_say,
    |h| async move {
        let a = actors(h).await;
        let callers = a.tokens.len();
        let (org, group) = (h.org.id, h.group.id);
        let admin = Actor::user(h.user.id);
        let exp = "version=2023-01-25~experimental";
        let v = "version=2024-10-15";
        let ingest = |n: usize| {
            json!({"data": {"type": "audit_event", "attributes": {
            "idempotency_id": format!("matrix-{n}"), "event": "org.project.test", "content": {"n": n}}}})
        };
        let (integration, registration) = integrations(h, "kept").await;
        // One of each consumed resource per caller, so that every cell that
        // may succeed has something of its own to succeed on.
        let mut doomed = Vec::new();
        for i in 0..callers {
            let u = h
                .store
                .create_user(&format!("doomed-{i}@example.com"), "D")
                .await
                .unwrap();
            let om = h
                .store
                .add_member(
                    Scope::Org(org),
                    u.id,
                    auditlake_core::Role::OrgMember,
                    &admin,
                )
                .await
                .unwrap()
                .id;
            let gm = h
                .store
                .add_member(
                    Scope::Group(group),
                    u.id,
                    auditlake_core::Role::GroupAdmin,
                    &admin,
                )
                .await
                .unwrap()
                .id;
            let (oi, gr) = integrations(h, &format!("doomed-{i}")).await;
            let standalone = h.standalone_org(&format!("Standalone {i}")).await.id;
            let newcomer = h
                .store
                .create_user(&format!("newcomer-{i}@example.com"), "N")
                .await
                .unwrap()
                .id;
            doomed.push(Doomed {
                org_membership: om,
                group_membership: gm,
                integration: oi,
                registration: gr,
                standalone,
                newcomer,
            });
        }
        let doomed = std::sync::Arc::new(doomed);
        let per = |f: fn(&Doomed) -> Uuid, path: String| -> PathFn {
            let doomed = doomed.clone();
            Box::new(move |i| path.replace("{}", &f(&doomed[i]).to_string()))
        };
        let member_body = |kind: &'static str, role: &'static str| -> BodyFn {
            let doomed = doomed.clone();
            Box::new(move |n| {
                Some(json!({"data": {"type": kind, "attributes": {"role": role},
                    "relationships": {"user": {"data": {"type": "user",
                        "id": doomed[n % doomed.len()].newcomer}}}}}))
            })
        };
        let move_body = {
            let doomed = doomed.clone();
            Box::new(move |n: usize| {
                Some(json!({"data": {"type": "org", "id": doomed[n % doomed.len()].standalone}}))
            }) as BodyFn
        };
        let cases: Vec<(Method, PathFn, BodyFn, Need)> = vec![
            (Method::GET, same(format!("/rest/orgs/{org}?{v}")), no_body(), Need::OrgRead),
            (
                Method::PATCH,
                same(format!("/rest/orgs/{org}?{v}")),
                Box::new(move |n| {
                    Some(json!({"data": {"type": "org", "id": org, "attributes": {"settings": {"n": n}}}}))
                }),
                Need::OrgAdmin,
            ),
            (Method::GET, same(format!("/rest/orgs/{org}/memberships?{v}")), no_body(), Need::OrgRead),
            (
                Method::POST,
                same(format!("/rest/orgs/{org}/memberships?{v}")),
                member_body("org_membership", "org_member"),
                Need::OrgAdmin,
            ),
            (
                Method::DELETE,
                per(|d| d.org_membership, format!("/rest/orgs/{org}/memberships/{{}}?{v}")),
                no_body(),
                Need::OrgAdmin,
            ),
            (
                Method::GET,
                same(format!("/rest/orgs/{org}/audit_logs/search?version=2023-09-11")),
                no_body(),
                Need::OrgRead,
            ),
            (
                Method::POST,
                same(format!("/rest/orgs/{org}/audit_logs/events?{v}")),
                Box::new(move |n| Some(ingest(n))),
                Need::OrgAdmin,
            ),
            (
                Method::GET,
                same(format!("/rest/orgs/{org}/cloud_events/integrations?{exp}")),
                no_body(),
                Need::OrgAdmin,
            ),
            (
                Method::POST,
                same(format!("/rest/orgs/{org}/cloud_events/integrations?{exp}")),
                Box::new(|n| Some(integration_body("org_integration", n))),
                Need::OrgAdmin,
            ),
            (
                Method::GET,
                same(format!("/rest/orgs/{org}/cloud_events/integrations/{integration}?{exp}")),
                no_body(),
                Need::OrgAdmin,
            ),
            (
                Method::PATCH,
                same(format!("/rest/orgs/{org}/cloud_events/integrations/{integration}?{exp}")),
                Box::new(move |n| {
                    Some(json!({"data": {"type": "org_integration", "id": integration,
                        "attributes": {"name": format!("renamed-{n}")}}}))
                }),
                Need::OrgAdmin,
            ),
            (
                Method::POST,
                same(format!(
                    "/rest/orgs/{org}/cloud_events/integrations/{integration}/replay?{exp}"
                )),
                replay_body(),
                Need::OrgAdmin,
            ),
            (
                Method::DELETE,
                per(|d| d.integration, format!("/rest/orgs/{org}/cloud_events/integrations/{{}}?{exp}")),
                no_body(),
                Need::OrgAdmin,
            ),
            (Method::GET, same(format!("/rest/groups/{group}?{v}")), no_body(), Need::GroupAdmin),
            (Method::GET, same(format!("/rest/groups/{group}/orgs?{v}")), no_body(), Need::GroupAdmin),
            (
                Method::POST,
                same(format!("/rest/groups/{group}/orgs?{v}")),
                move_body,
                Need::GroupAdmin,
            ),
            (
                Method::GET,
                same(format!("/rest/groups/{group}/memberships?{v}")),
                no_body(),
                Need::GroupAdmin,
            ),
            (
                Method::POST,
                same(format!("/rest/groups/{group}/memberships?{v}")),
                member_body("group_membership", "group_admin"),
                Need::GroupAdmin,
            ),
            (
                Method::DELETE,
                per(|d| d.group_membership, format!("/rest/groups/{group}/memberships/{{}}?{v}")),
                no_body(),
                Need::GroupAdmin,
            ),
            (
                Method::GET,
                same(format!("/rest/groups/{group}/audit_logs/search?version=2023-09-11")),
                no_body(),
                Need::GroupAdmin,
            ),
            (
                Method::POST,
                same(format!("/rest/groups/{group}/audit_logs/events?{v}")),
                Box::new(move |n| Some(ingest(n))),
                Need::GroupAdmin,
            ),
            (
                Method::GET,
                same(format!("/rest/groups/{group}/cloud_events/group_registrations?{exp}")),
                no_body(),
                Need::GroupAdmin,
            ),
            (
                Method::POST,
                same(format!("/rest/groups/{group}/cloud_events/group_registrations?{exp}")),
                Box::new(|n| Some(integration_body("group_registration", n))),
                Need::GroupAdmin,
            ),
            (
                Method::GET,
                same(format!(
                    "/rest/groups/{group}/cloud_events/group_registrations/{registration}?{exp}"
                )),
                no_body(),
                Need::GroupAdmin,
            ),
            (
                Method::PATCH,
                same(format!(
                    "/rest/groups/{group}/cloud_events/group_registrations/{registration}?{exp}"
                )),
                Box::new(move |n| {
                    Some(json!({"data": {"type": "group_registration", "id": registration,
                        "attributes": {"name": format!("renamed-{n}")}}}))
                }),
                Need::GroupAdmin,
            ),
            (
                Method::POST,
                same(format!(
                    "/rest/groups/{group}/cloud_events/group_registrations/{registration}/replay?{exp}"
                )),
                replay_body(),
                Need::GroupAdmin,
            ),
            (
                Method::DELETE,
                per(
                    |d| d.registration,
                    format!("/rest/groups/{group}/cloud_events/group_registrations/{{}}?{exp}"),
                ),
                no_body(),
                Need::GroupAdmin,
            ),
            (
                Method::POST,
                same(format!("/v1/org/{org}/audit")),
                Box::new(|_| Some(json!({"filters": {}}))),
                Need::OrgRead,
            ),
            (
                Method::POST,
                same(format!("/v1/group/{group}/audit")),
                Box::new(|_| Some(json!({"filters": {}}))),
                Need::GroupAdmin,
            ),
        ];
        let http = reqwest::Client::new();
        let mut n = 0;
        let mut table = Vec::new();
        for (method, path, body, need) in &cases {
            for (i, (who, token)) in a.tokens.iter().enumerate() {
                n += 1;
                let path = path(i);
                let mut rb = http.request(method.clone(), format!("{}{path}", h.base));
                if let Some(t) = token {
                    rb = rb.header("authorization", format!("token {t}"));
                }
                // Bodies that name a consumed resource take the caller's.
                if let Some(b) = body(if *method == Method::POST { i } else { n }) {
                    let ct = if path.starts_with("/v1") {
                        "application/json"
                    } else {
                        JSONAPI
                    };
                    rb = rb.header("content-type", ct).body(b.to_string());
                }
                let res = rb.send().await.unwrap();
                let status = res.status().as_u16();
                let text = res.text().await.unwrap();
                let want = expected(*need, *who);
                let ok = if want == 2 {
                    (200..300).contains(&status)
                } else {
                    status == want
                };
                if !ok {
                    table.push(format!(
                        "{method} {path} as {who:?}: want {want}, got {status}: {text}"
                    ));
                }
                if status >= 400 {
                    for s in secrets(h) {
                        assert!(
                            !text.contains(&s),
                            "{method} {path} as {who:?} leaked {s:?}: {text}"
                        );
                    }
                }
            }
        }
        assert!(table.is_empty(), "cells that differ:\n{}", table.join("\n"));
    }
);

api_test!(
    every_dashboard_page_answers_every_caller_as_its_rights_say,
    with_lake,
    |h| async move {
        let a = actors(h).await;
        let (org, group) = (h.org.id, h.group.id);
        let (integration, registration) = integrations(h, "kept").await;
        let log = h.log_since(0).await;
        let org_event = log.iter().find(|e| e.org_id == Some(org)).unwrap().id;
        let group_event = log
            .iter()
            .find(|e| e.org_id.is_none() && e.group_id == Some(group))
            .unwrap()
            .id;
        // The lake console queries the stores the org's integrations feed
        // in the local lake: one here, whose ID only the org's readers see.
        let lake = h.lake.as_ref().expect("a test declared with_lake");
        let feed = auditlake_cloudtrail::client::setup(
            &lake.control(OWNER),
            "console",
            &org.to_string(),
            OWNER,
            7,
        )
        .await
        .unwrap();
        let config = auditlake_core::integration::CloudTrailConfig {
            account_id: OWNER.into(),
            channel_arn: feed.channel_arn.clone(),
        };
        h.store
            .create_integration(Scope::Org(org), "console", config, &Actor::user(h.user.id))
            .await
            .unwrap();
        // And a channel the org names but whose policy admits another
        // tenant's External ID: its store is nobody's here.
        let foreign = auditlake_cloudtrail::client::setup(
            &lake.control(OWNER),
            "foreign",
            &uuid::Uuid::now_v7().to_string(),
            OWNER,
            7,
        )
        .await
        .unwrap();
        h.store
            .create_integration(
                Scope::Org(org),
                "foreign",
                auditlake_core::integration::CloudTrailConfig {
                    account_id: OWNER.into(),
                    channel_arn: foreign.channel_arn.clone(),
                },
                &Actor::user(h.user.id),
            )
            .await
            .unwrap();
        let foreign_store = foreign.event_data_store_id;
        let lake_store = feed.event_data_store_id;
        let hidden: Vec<String> = secrets(h).into_iter().chain([lake_store.clone()]).collect();
        let console_query = format!("select eventdata.eventname from {lake_store} limit 1");
        let foreign_query = format!("select eventdata.eventname from {foreign_store} limit 1");
        let pages = [
            (format!("/orgs/{org}/lake"), Need::OrgRead),
            (format!("/orgs/{org}/settings"), Need::OrgRead),
            (format!("/orgs/{org}/audit"), Need::OrgRead),
            (format!("/orgs/{org}/integrations"), Need::OrgAdmin),
            (
                format!("/orgs/{org}/integrations/cloudtrail"),
                Need::OrgAdmin,
            ),
            (
                format!("/orgs/{org}/integrations/cloudtrail/new"),
                Need::OrgAdmin,
            ),
            (
                format!("/orgs/{org}/integrations/cloudtrail/{integration}"),
                Need::OrgAdmin,
            ),
            (
                format!("/orgs/{org}/integrations/cloudtrail/{integration}/remove"),
                Need::OrgAdmin,
            ),
            (format!("/orgs/{org}/audit/{org_event}"), Need::OrgRead),
            (format!("/groups/{group}/settings"), Need::GroupAdmin),
            (format!("/groups/{group}/audit"), Need::GroupAdmin),
            (
                format!("/groups/{group}/audit/{group_event}"),
                Need::GroupAdmin,
            ),
            (
                format!("/groups/{group}/registrations/{registration}"),
                Need::GroupAdmin,
            ),
            (
                format!("/groups/{group}/registrations/{registration}/remove"),
                Need::GroupAdmin,
            ),
        ];
        let http = no_redirects();
        // One integration and registration per caller for the removal forms.
        let mut doomed = Vec::new();
        for i in 0..a.tokens.len() {
            doomed.push(integrations(h, &format!("dash-doomed-{i}")).await);
        }
        let arn = "arn:aws:cloudtrail:us-east-1:123456789012:channel/dash";
        let mut table = Vec::new();
        for (i, (who, token)) in a.tokens.iter().enumerate() {
            // Sign in as the caller (the anonymous and the revoked cannot).
            let cookie = match token {
                None => None,
                Some(t) => set_cookie(
                    &sign_in_answer(&http, &h.base, &[("token", t)]).await,
                    "auditlake_session",
                )
                .map(|(value, _)| value),
            };
            assert_eq!(
                cookie.is_some(),
                !matches!(who, Who::Anonymous | Who::Revoked),
                "{who:?} signs in exactly when their token is valid"
            );
            for (path, need) in &pages {
                let (status, location, text) =
                    dashboard_call(http.get(format!("{}{path}", h.base)), cookie.as_deref()).await;
                let ok =
                    dashboard_answer_ok(expected(*need, *who), status, location.as_deref(), false);
                if !ok {
                    table.push(format!("GET {path} as {who:?}: got {status}"));
                }
                if status == 200 && path.ends_with("/lake") {
                    assert!(text.contains(&lake_store), "{who:?} sees the org's store");
                    assert!(
                        !text.contains(&foreign_store),
                        "{who:?} sees a store the channel's policy does not bind to the org"
                    );
                }
                if status >= 300 {
                    for s in &hidden {
                        assert!(
                            !text.contains(s.as_str()),
                            "GET {path} as {who:?} leaked {s:?}"
                        );
                    }
                }
            }

            // The forms, each with the caller's own session CSRF token
            // (from the sign-out form every signed-in page carries).
            let csrf = match &cookie {
                None => String::new(),
                Some(c) => {
                    let home = http
                        .get(format!("{}/", h.base))
                        .header("cookie", format!("auditlake_session={c}"))
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    let at = home.find(r#"name="csrf" value=""#).expect("a CSRF field");
                    let rest = &home[at + r#"name="csrf" value=""#.len()..];
                    rest[..rest.find('"').unwrap()].to_owned()
                }
            };
            let name = format!("dash-{i}");
            let create = vec![
                ("name", name.as_str()),
                ("account_id", "123456789012"),
                ("channel_arn", arn),
            ];
            let (own_integration, own_registration) = doomed[i];
            let forms = [
                // A query that runs (an error would answer 400).
                (
                    format!("/orgs/{org}/lake"),
                    vec![("sql", console_query.as_str())],
                    Need::OrgRead,
                ),
                // One of the foreign store, refused to everyone.
                (
                    format!("/orgs/{org}/lake"),
                    vec![("sql", foreign_query.as_str())],
                    Need::RefusedToOrgReaders,
                ),
                (
                    format!("/orgs/{org}/integrations/cloudtrail"),
                    create.clone(),
                    Need::OrgAdmin,
                ),
                (
                    format!("/orgs/{org}/integrations/cloudtrail/{own_integration}/remove"),
                    vec![],
                    Need::OrgAdmin,
                ),
                (
                    format!("/groups/{group}/registrations"),
                    create.clone(),
                    Need::GroupAdmin,
                ),
                (
                    format!("/groups/{group}/registrations/{own_registration}/remove"),
                    vec![],
                    Need::GroupAdmin,
                ),
            ];
            for (path, fields, need) in &forms {
                let mut fields = fields.clone();
                fields.push(("csrf", csrf.as_str()));
                let (status, location, text) = dashboard_call(
                    http.post(format!("{}{path}", h.base)).form(&fields),
                    cookie.as_deref(),
                )
                .await;
                let ok =
                    dashboard_answer_ok(expected(*need, *who), status, location.as_deref(), true);
                if !ok {
                    table.push(format!("POST {path} as {who:?}: got {status} {location:?}"));
                }
                // A refusal shown to a reader is a page of the org itself.
                if !(200..400).contains(&status) && expected(*need, *who) != 400 {
                    for s in &hidden {
                        assert!(
                            !text.contains(s.as_str()),
                            "POST {path} as {who:?} leaked {s:?}"
                        );
                    }
                }
            }
        }
        assert!(table.is_empty(), "cells that differ:\n{}", table.join("\n"));

        // Exactly the permitted forms took effect: two callers may create
        // and remove in the org (its admin and the group's), one in the group.
        let org_side = h
            .store
            .integrations_of(
                Scope::Org(org),
                auditlake_store::Page {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .items;
        let names: Vec<&str> = org_side.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("dash-doomed-"))
                .count(),
            a.tokens.len() - 2,
            "{names:?}"
        );
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("dash-") && !n.contains("doomed"))
                .count(),
            2,
            "{names:?}"
        );
    }
);
