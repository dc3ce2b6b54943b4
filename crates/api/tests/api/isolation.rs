//! Tenant isolation: another tenant's org, group, log and memberships do
//! not exist for a caller (404, nothing about them in the body), and an
//! org member may read but not change.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// Asserts `r` is a 404 that says nothing of the first tenant beyond the
/// ID the caller sent.
#[track_caller]
fn hidden(h: &Harness, r: &Resp) {
    assert_eq!(r.status, 404, "{}: {}", r.request, r.text);
    for secret in [
        h.org.name.as_str(),
        h.org.slug.as_str(),
        h.group.name.as_str(),
        h.user.email.as_str(),
    ] {
        assert!(
            !r.text.contains(secret),
            "{}: leaks {secret:?}: {}",
            r.request,
            r.text
        );
    }
    assert!(!r.text.contains(&h.user.id.to_string()), "{}", r.text);
}

api_test!(another_tenant_sees_nothing_of_the_first, |h| async move {
    let t = h.new_tenant("eve@example.com", "Eve Org").await;
    let (o, g) = (h.org.id, h.group.id);
    let membership = h.get(&format!("/rest/groups/{g}/memberships")).await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A member of the first tenant's org, to try to remove.
    let (m, _) = h.new_user("m@example.com").await;
    let org_membership = h
        .store
        .add_member(
            Scope::Org(o),
            m.id,
            auditlake_core::Role::OrgMember,
            &Actor::user(h.user.id),
        )
        .await
        .unwrap()
        .id;
    let head = h.head().await;

    let org_patch =
        json!({"data": {"type": "org", "attributes": {"name": "pwned", "settings": {"x": 1}}}});
    let add_member = json!({"data": {"type": "org_membership", "attributes": {"role": "org_admin"},
        "relationships": {"user": {"data": {"type": "user", "id": t.user.id}}}}});
    let add_group_member = json!({"data": {"type": "group_membership",
        "relationships": {"user": {"data": {"type": "user", "id": t.user.id}}}}});
    let ingest = json!({"data": event("eve-1", "org.settings.edit", json!({"forged": true}))});
    let join = json!({"data": {"type": "org", "id": t.org.id}});
    let requests: Vec<(Method, String, Option<&Value>)> = vec![
        (Method::GET, format!("/rest/orgs/{o}"), None),
        (Method::PATCH, format!("/rest/orgs/{o}"), Some(&org_patch)),
        (Method::GET, format!("/rest/orgs/{o}/memberships"), None),
        (
            Method::POST,
            format!("/rest/orgs/{o}/memberships"),
            Some(&add_member),
        ),
        (
            Method::DELETE,
            format!("/rest/orgs/{o}/memberships/{org_membership}"),
            None,
        ),
        (
            Method::GET,
            format!("/rest/orgs/{o}/audit_logs/search?events=api.access"),
            None,
        ),
        (
            Method::GET,
            format!("/rest/orgs/{o}/audit_logs/search"),
            None,
        ),
        (
            Method::POST,
            format!("/rest/orgs/{o}/audit_logs/events"),
            Some(&ingest),
        ),
        (Method::GET, format!("/rest/groups/{g}"), None),
        (Method::GET, format!("/rest/groups/{g}/orgs"), None),
        (Method::POST, format!("/rest/groups/{g}/orgs"), Some(&join)),
        (Method::GET, format!("/rest/groups/{g}/memberships"), None),
        (
            Method::POST,
            format!("/rest/groups/{g}/memberships"),
            Some(&add_group_member),
        ),
        (
            Method::DELETE,
            format!("/rest/groups/{g}/memberships/{membership}"),
            None,
        ),
        (
            Method::GET,
            format!("/rest/groups/{g}/audit_logs/search"),
            None,
        ),
        (
            Method::POST,
            format!("/rest/groups/{g}/audit_logs/events"),
            Some(&ingest),
        ),
    ];
    for (method, path, body) in requests {
        let mut rb = t.api.request(method, &path);
        if let Some(b) = body {
            rb = rb.header("content-type", JSONAPI).body(b.to_string());
        }
        let r = send(rb).await;
        hidden(h, &r);
        r.error(404);
    }
    for path in [format!("/v1/org/{o}/audit"), format!("/v1/group/{g}/audit")] {
        let r = t.api.v1(&path, &json!({})).await;
        hidden(h, &r);
        r.v1_error(404);
    }

    // Nothing changed: only Eve's own (unscoped) api.access events.
    let since = h.log_since(head).await;
    assert!(since
        .iter()
        .all(|e| e.event == "api.access" && e.org_id.is_none() && e.group_id.is_none()));
    assert!(since.iter().all(|e| e.user_id == Some(t.user.id)));
    let org = h.store.org(o).await.unwrap().unwrap();
    assert_eq!((org.name.as_str(), org.settings.len()), ("Acme", 0));
    assert_eq!(
        h.store
            .members(Scope::Org(o), Default::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        h.store
            .members(Scope::Group(g), Default::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Eve's lists hold only Eve's.
    let orgs = t.api.get("/rest/orgs").await;
    assert_eq!(orgs.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(orgs.body["data"][0]["id"], json!(t.org.id));
    assert_eq!(t.api.get("/rest/groups").await.body["data"], json!([]));
    let eve_log = t
        .api
        .search_all(
            &format!("/rest/orgs/{}", t.org.id),
            "events=api.access,org.create,org.user.add&size=5",
        )
        .await;
    assert!(!eve_log.is_empty());
    let text = serde_json::to_string(&eve_log).unwrap();
    assert!(
        !text.contains(&o.to_string()) && !text.contains(&h.user.id.to_string()),
        "{text}"
    );
    assert!(eve_log.iter().all(|i| i["org_id"] == json!(t.org.id)));

    // And the other way round.
    let r = h.get(&format!("/rest/orgs/{}", t.org.id)).await;
    r.error(404);
    assert!(!r.text.contains("Eve Org"));
    h.get(&format!("/rest/orgs/{}/audit_logs/search", t.org.id))
        .await
        .error(404);
    // The first tenant's logs never show Eve's requests.
    for base in [format!("/rest/orgs/{o}"), format!("/rest/groups/{g}")] {
        let all = h
            .search_all(
                &base,
                "events=api.access,org.settings.edit,org.user.add,group.user.add",
            )
            .await;
        assert!(
            all.iter().all(|i| i["user_id"] != json!(t.user.id)),
            "{all:?}"
        );
    }
});

api_test!(an_org_member_reads_but_does_not_change, |h| async move {
    let (m, api) = h.new_user("member@example.com").await;
    h.store
        .add_member(
            Scope::Org(h.org.id),
            m.id,
            auditlake_core::Role::OrgMember,
            &Actor::user(h.user.id),
        )
        .await
        .unwrap();
    let base = format!("/rest/orgs/{}", h.org.id);
    let head = h.head().await;

    api.get(&base).await.expect(200);
    api.get(&format!("{base}/memberships")).await.expect(200);
    let items = api.search_items(&base, "").await;
    assert_eq!(field(&items, "event"), ["org.user.add", "org.create"]);
    assert_eq!(
        api.v1(&format!("/v1/org/{}/audit", h.org.id), &json!({}))
            .await
            .status,
        200
    );

    let r = api
        .patch(
            &base,
            &json!({"data": {"type": "org", "attributes": {"settings": {"x": 1}}}}),
        )
        .await;
    r.error_nowhere(403);
    assert!(r.error(403)["detail"]
        .as_str()
        .unwrap()
        .contains("org admin"));
    api.ingest(&base, event("m-1", "project.scan.run", json!({})))
        .await
        .error_nowhere(403);
    api.post(
        &format!("{base}/memberships"),
        &json!({"data": {"type": "org_membership", "relationships": {"user": {"data": {"type": "user", "id": m.id}}}}}),
    )
    .await
    .error(403);
    let own = h.get(&format!("{base}/memberships")).await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["relationships"]["user"]["data"]["id"] == json!(m.id))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.delete(&format!("{base}/memberships/{own}"))
        .await
        .error(403);
    // Org membership gives nothing on the group.
    api.get(&format!("/rest/groups/{}", h.group.id))
        .await
        .error(404);
    api.get(&format!("/rest/groups/{}/audit_logs/search", h.group.id))
        .await
        .error(404);
    api.ingest(
        &format!("/rest/groups/{}", h.group.id),
        event("m-2", "project.scan.run", json!({})),
    )
    .await
    .error(404);
    api.v1(&format!("/v1/group/{}/audit", h.group.id), &json!({}))
        .await
        .v1_error(404);

    assert!(h.changes_since(head).await.is_empty());
});

api_test!(
    a_group_admin_reaches_every_org_of_the_group,
    |h| async move {
        // The bootstrap user has no direct membership of the org, only the
        // group: everything works through the group.
        let base = format!("/rest/orgs/{}", h.org.id);
        h.patch(
            &base,
            &json!({"data": {"type": "org", "attributes": {"settings": {"a": 1}}}}),
        )
        .await
        .expect(200);
        h.ingest(&base, event("g-1", "project.scan.run", json!({})))
            .await
            .expect(201);
        assert_eq!(
            h.search_items(&base, "events=project.scan.run").await.len(),
            1
        );
        // Another group's admin does not.
        let (other, api) = h.new_user("admin2@example.com").await;
        h.store
            .create_group("Other Group", &Actor::user(other.id))
            .await
            .unwrap();
        api.get(&base).await.error(404);
        assert_eq!(
            api.get("/rest/groups").await.body["data"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(api.get("/rest/orgs").await.body["data"], json!([]));
    }
);
