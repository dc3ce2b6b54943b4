//! Audit capture: every change made through the API writes its event in
//! the same transaction, and every authenticated request writes
//! `api.access`, attributed to the caller and scoped to the tenant the path
//! names when the caller may see it.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::*;

/// The one `api.access` event among `events`, checked for what every one
/// carries.
#[track_caller]
fn access(events: &[AuditEvent], user: Uuid) -> &AuditEvent {
    let all: Vec<&AuditEvent> = events.iter().filter(|e| e.event == "api.access").collect();
    assert_eq!(all.len(), 1, "{:?}", names(events));
    let e = all[0];
    assert_eq!(e.user_id, Some(user));
    assert_eq!(e.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(e.user_agent.as_deref(), Some(UA));
    assert_eq!(e.project_id, None);
    e
}

api_test!(
    each_change_writes_its_event_then_api_access,
    |h| async move {
        let (bob, _) = h.new_user("bob@example.com").await;
        let org_path = format!("/rest/orgs/{}", h.org.id);
        let steps: Vec<(Method, String, Value, u16, Vec<&str>)> = vec![
            (
                Method::POST,
                "/rest/orgs".into(),
                json!({"data": {"type": "org", "attributes": {"name": "New"}}}),
                201,
                vec!["org.create", "org.user.add"],
            ),
            (
                Method::PATCH,
                org_path.clone(),
                json!({"data": {"type": "org", "attributes": {"name": "Renamed", "settings": {"mfa": true}}}}),
                200,
                vec!["org.edit", "org.settings.edit"],
            ),
            (
                Method::POST,
                format!("{org_path}/memberships"),
                json!({"data": {"type": "org_membership", "relationships": {"user": {"data": {"type": "user", "id": bob.id}}}}}),
                201,
                vec!["org.user.add"],
            ),
            (
                Method::POST,
                format!("/rest/groups/{}/memberships", h.group.id),
                json!({"data": {"type": "group_membership", "relationships": {"user": {"data": {"type": "user", "id": bob.id}}}}}),
                201,
                vec!["group.user.add"],
            ),
            (
                Method::POST,
                "/rest/self/tokens".into(),
                json!({"data": {"type": "token", "attributes": {"name": "n"}}}),
                201,
                vec!["user.token.create"],
            ),
            (
                Method::POST,
                format!("{org_path}/audit_logs/events"),
                json!({"data": event("cap-1", "project.scan.run", json!({"ok": true}))}),
                201,
                vec!["project.scan.run"],
            ),
        ];
        for (method, path, body, status, expected) in steps {
            let head = h.head().await;
            let r = send(
                h.request(method.clone(), &path)
                    .header("content-type", JSONAPI)
                    .body(body.to_string()),
            )
            .await;
            r.expect(status);
            let events = h.log_since(head).await;
            let mut want = expected.clone();
            want.push("api.access");
            assert_eq!(names(&events), want, "{method} {path}");
            for e in &events {
                assert_eq!(e.user_id, Some(h.user.id), "{}", e.event);
                assert_eq!(e.source_ip.as_deref(), Some("127.0.0.1"), "{}", e.event);
                assert_eq!(e.user_agent.as_deref(), Some(UA), "{}", e.event);
            }
            let a = access(&events, h.user.id);
            assert_eq!(
                content(a),
                json!({"url": format!("{path}?version={VERSION}"), "method": method.as_str(), "status": status}),
            );
        }
    }
);

/// Who asks, as which user, what; the status, and the org and group the
/// `api.access` event must carry.
type Case<'a> = (
    &'a Api,
    Uuid,
    Method,
    String,
    u16,
    Option<Uuid>,
    Option<Uuid>,
);

api_test!(
    api_access_is_scoped_to_the_tenant_the_path_names,
    |h| async move {
        let t = h.new_tenant("b@example.com", "Theirs").await;
        let member = {
            let (u, api) = h.new_user("m@example.com").await;
            h.store
                .add_member(
                    Scope::Org(h.org.id),
                    u.id,
                    auditlake_core::Role::OrgMember,
                    &Actor::user(h.user.id),
                )
                .await
                .unwrap();
            (u, api)
        };
        let (g, o) = (Some(h.group.id), Some(h.org.id));
        let cases: Vec<Case> = vec![
            (
                h,
                h.user.id,
                Method::GET,
                "/rest/self".into(),
                200,
                None,
                None,
            ),
            (
                h,
                h.user.id,
                Method::GET,
                "/rest/orgs".into(),
                200,
                None,
                None,
            ),
            (
                h,
                h.user.id,
                Method::GET,
                format!("/rest/orgs/{}", h.org.id),
                200,
                o,
                g,
            ),
            (
                h,
                h.user.id,
                Method::GET,
                format!("/rest/orgs/{}/audit_logs/search", h.org.id),
                200,
                o,
                g,
            ),
            (
                h,
                h.user.id,
                Method::GET,
                format!("/rest/groups/{}", h.group.id),
                200,
                None,
                g,
            ),
            (
                h,
                h.user.id,
                Method::GET,
                format!("/rest/groups/{}/orgs", h.group.id),
                200,
                None,
                g,
            ),
            (
                h,
                h.user.id,
                Method::GET,
                format!("/rest/groups/{}/audit_logs/search", h.group.id),
                200,
                None,
                g,
            ),
            // A path the caller may not see: not scoped, so nothing lands in
            // the other tenant's log.
            (
                h,
                h.user.id,
                Method::GET,
                format!("/rest/orgs/{}", t.org.id),
                404,
                None,
                None,
            ),
            (
                &t.api,
                t.user.id,
                Method::GET,
                format!("/rest/orgs/{}", h.org.id),
                404,
                None,
                None,
            ),
            (
                &t.api,
                t.user.id,
                Method::GET,
                format!("/rest/groups/{}", h.group.id),
                404,
                None,
                None,
            ),
            (
                h,
                h.user.id,
                Method::GET,
                format!("/rest/orgs/{}", Uuid::now_v7()),
                404,
                None,
                None,
            ),
            // Seen but refused: scoped, the org's admins see the attempt.
            (
                &member.1,
                member.0.id,
                Method::PATCH,
                format!("/rest/orgs/{}", h.org.id),
                403,
                o,
                g,
            ),
            // Errors after authentication are recorded with their status.
            (
                h,
                h.user.id,
                Method::GET,
                "/rest/orgs?limit=0".into(),
                400,
                None,
                None,
            ),
            (
                h,
                h.user.id,
                Method::GET,
                "/rest/self?version=2023-01-01".into(),
                404,
                None,
                None,
            ),
        ];
        for (api, user, method, path, status, org, group) in cases {
            let head = h.head().await;
            let r = send(
                api.request(method.clone(), &path)
                    .header("content-type", JSONAPI)
                    .body(
                        json!({"data": {"type": "org", "attributes": {"name": "x"}}}).to_string(),
                    ),
            )
            .await;
            r.expect(status);
            let events = h.log_since(head).await;
            let a = access(&events, user);
            assert_eq!((a.org_id, a.group_id), (org, group), "{method} {path}");
            assert_eq!(content(a)["status"], json!(status), "{method} {path}");
            assert_eq!(content(a)["method"], json!(method.as_str()));
            assert!(
                content(a)["url"]
                    .as_str()
                    .unwrap()
                    .starts_with(path.split('?').next().unwrap()),
                "{}",
                a.content
            );
        }
    }
);

api_test!(
    adding_an_org_to_a_group_is_recorded_on_the_group,
    |h| async move {
        let solo = h.standalone_org("Solo").await;
        let head = h.head().await;
        h.post(
            &format!("/rest/groups/{}/orgs", h.group.id),
            &json!({"data": {"type": "org", "id": solo.id}}),
        )
        .await
        .expect(201);
        let events = h.log_since(head).await;
        assert_eq!(names(&events), ["group.org.add", "api.access"]);
        assert_eq!(
            (events[0].org_id, events[0].group_id),
            (None, Some(h.group.id))
        );
        // The request's path names the group.
        assert_eq!(
            (events[1].org_id, events[1].group_id),
            (None, Some(h.group.id))
        );
    }
);

api_test!(api_access_is_searchable_only_by_name, |h| async move {
    let base = format!("/rest/orgs/{}", h.org.id);
    h.get(&base).await.expect(200);
    h.get(&format!("{base}/memberships")).await.expect(200);

    // Left out by default and by other filters.
    let all = h.search_items(&base, "").await;
    assert_eq!(field(&all, "event"), ["org.create"]);
    let excl = h.search_items(&base, "exclude_events=org.create").await;
    assert!(excl.is_empty(), "{excl:?}");
    let excl = h.search_items(&base, "exclude_events=api.access").await;
    assert_eq!(field(&excl, "event"), ["org.create"]);

    // Asked for by name.
    let acc = h
        .search_items(&base, "events=api.access&sort_order=ASC")
        .await;
    // The two reads above and the three searches; not this one (it is
    // recorded after it answers).
    assert_eq!(acc.len(), 5, "{acc:?}");
    assert_eq!(
        acc[0]["content"],
        json!({"url": format!("{base}?version={VERSION}"), "method": "GET", "status": 200})
    );
    assert_eq!(
        acc[1]["content"]["url"],
        json!(format!("{base}/memberships?version={VERSION}"))
    );
    assert!(acc
        .iter()
        .all(|a| a["user_id"] == json!(h.user.id) && a["org_id"] == json!(h.org.id)));
    let both = h.search_items(&base, "events=api.access,org.create").await;
    assert_eq!(both.len(), 7);
    // The group's log holds them too (the org is in the group).
    let group = h
        .search_items(&format!("/rest/groups/{}", h.group.id), "events=api.access")
        .await;
    assert_eq!(group.len(), 7, "the five, and the two searches since");
});

api_test!(v1_requests_write_api_access, |h| async move {
    let head = h.head().await;
    let path = format!("/v1/org/{}/audit", h.org.id);
    h.v1(&path, &json!({})).await.expect(200);
    let events = h.log_since(head).await;
    let a = access(&events, h.user.id);
    assert_eq!(
        content(a),
        json!({"url": path, "method": "POST", "status": 200})
    );
    assert_eq!((a.org_id, a.group_id), (Some(h.org.id), Some(h.group.id)));
});

api_test!(
    an_ingest_records_one_api_access_with_the_status_it_answered,
    |h| async move {
        // Ingest writes its api.access event in the batch's own transaction
        // (one commit per request); whatever the answer, the request must
        // still leave exactly one, carrying that answer's status.
        let base = format!("/rest/orgs/{}", h.org.id);
        let path = format!("{base}/audit_logs/events?version={VERSION}");
        let cases = [
            // New: stored and answered 201.
            (
                event("acc-1", "project.scan.run", json!({"n": 1})),
                201,
                vec!["project.scan.run", "api.access"],
            ),
            // The same again: a replay, answered 200, nothing stored.
            (
                event("acc-1", "project.scan.run", json!({"n": 1})),
                200,
                vec!["api.access"],
            ),
            // The ID with other content: refused, nothing stored.
            (
                event("acc-1", "project.scan.run", json!({"n": 2})),
                409,
                vec!["api.access"],
            ),
            // A batch of one replay and one new event: 201.
            (
                json!([
                    event("acc-1", "project.scan.run", json!({"n": 1})),
                    event("acc-2", "project.scan.run", json!({"n": 3}))
                ]),
                201,
                vec!["project.scan.run", "api.access"],
            ),
        ];
        for (data, status, want) in cases {
            let head = h.head().await;
            h.ingest(&base, data.clone()).await.expect(status);
            let events = h.log_since(head).await;
            assert_eq!(names(&events), want, "{data}");
            let a = access(&events, h.user.id);
            assert_eq!(
                content(a),
                json!({"url": path, "method": "POST", "status": status}),
                "{data}"
            );
            assert_eq!((a.org_id, a.group_id), (Some(h.org.id), Some(h.group.id)));
        }
    }
);
