//! Tenancy resources: the caller, tokens, orgs, groups and memberships,
//! with their validation errors and the events their changes write.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::*;

fn token_body(attrs: Value) -> Value {
    json!({"data": {"type": "token", "attributes": attrs}})
}

fn org_body(attrs: Value) -> Value {
    json!({"data": {"type": "org", "attributes": attrs}})
}

fn member_body(kind: &str, user: Uuid, role: Option<&str>) -> Value {
    let mut b = json!({"data": {
        "type": kind,
        "relationships": {"user": {"data": {"type": "user", "id": user}}}
    }});
    if let Some(r) = role {
        b["data"]["attributes"] = json!({ "role": r });
    }
    b
}

/// IDs of the `data` array of a list answer.
fn ids(r: &Resp) -> Vec<String> {
    r.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array: {}", r.text))
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

api_test!(self_describes_the_caller, |h| async move {
    for path in ["/rest/self", "/rest/users/self"] {
        let r = h.get(path).await;
        r.expect(200);
        assert_eq!(
            r.body,
            json!({
                "jsonapi": {"version": "1.0"},
                "data": {
                    "type": "user",
                    "id": h.user.id,
                    "attributes": {"name": "Owner", "email": "owner@example.com", "username": "owner@example.com"},
                    "links": {"self": "/rest/self"}
                }
            })
        );
    }
});

api_test!(tokens_are_created_listed_read_and_revoked, |h| async move {
    let head = h.head().await;
    let r = h
        .post(
            "/rest/self/tokens",
            &token_body(json!({"name": "  deploy  ", "expires_at": "2999-01-01T00:00:00+01:00"})),
        )
        .await;
    r.expect(201);
    let data = &r.body["data"];
    let id = data["id"].as_str().unwrap().to_owned();
    let secret = data["attributes"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/rest/self/tokens/{id}").as_str())
    );
    assert_eq!(data["type"], "token");
    assert!(secret.starts_with("alk_") && secret.len() > 40, "{secret}");
    assert_eq!(data["attributes"]["name"], "deploy");
    assert_eq!(data["attributes"]["prefix"], json!(&secret[..10]));
    assert_eq!(data["attributes"]["expires_at"], "2998-12-31T23:00:00.000Z");
    assert_eq!(data["attributes"]["revoked_at"], Value::Null);
    assert_eq!(
        data["links"]["self"],
        json!(format!("/rest/self/tokens/{id}"))
    );

    // The secret is shown once: never in the list or on reads.
    let list = h.get("/rest/self/tokens").await;
    list.expect(200);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    assert!(!list.text.contains(&secret));
    assert!(list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["attributes"].get("token").is_none()));
    assert!(ids(&list).contains(&id));
    let one = h.get(&format!("/rest/self/tokens/{id}")).await;
    one.expect(200);
    assert!(!one.text.contains(&secret));
    let mut without_secret = data.clone();
    without_secret["attributes"]
        .as_object_mut()
        .unwrap()
        .remove("token");
    assert_eq!(one.body["data"], without_secret);

    h.delete(&format!("/rest/self/tokens/{id}"))
        .await
        .expect(204);
    let revoked = h.get(&format!("/rest/self/tokens/{id}")).await;
    assert!(revoked.body["data"]["attributes"]["revoked_at"].is_string());
    // Revoking twice changes nothing and writes no second event.
    h.delete(&format!("/rest/self/tokens/{id}"))
        .await
        .expect(204);

    let changes = h.changes_since(head).await;
    assert_eq!(names(&changes), ["user.token.create", "user.token.revoke"]);
    assert_eq!(content(&changes[0])["tokenPublicId"], json!(id));
    assert!(changes
        .iter()
        .all(|e| e.user_id == Some(h.user.id) && e.org_id.is_none()));

    // Unknown and malformed IDs; another user's token is unknown.
    let e = h
        .get(&format!("/rest/self/tokens/{}", Uuid::now_v7()))
        .await;
    e.error_nowhere(404);
    h.delete(&format!("/rest/self/tokens/{}", Uuid::now_v7()))
        .await
        .error(404);
    h.get("/rest/self/tokens/nope")
        .await
        .error_at(400, "parameter", "token_id");
    let (_, other) = h.new_user("other@example.com").await;
    other
        .get(&format!("/rest/self/tokens/{id}"))
        .await
        .error(404);
    other
        .delete(&format!("/rest/self/tokens/{id}"))
        .await
        .error(404);
});

api_test!(token_creation_is_validated, |h| async move {
    let head = h.head().await;
    let cases = [
        (token_body(json!({})), 400, "/data/attributes/name"),
        (
            token_body(json!({"name": "   "})),
            400,
            "/data/attributes/name",
        ),
        (
            token_body(json!({"name": "a\u{7}b"})),
            400,
            "/data/attributes/name",
        ),
        (
            token_body(json!({"name": "x".repeat(101)})),
            400,
            "/data/attributes/name",
        ),
        (token_body(json!({"name": 7})), 400, "/data/attributes/name"),
        (
            token_body(json!({"name": "t", "expires_at": "tomorrow"})),
            400,
            "/data/attributes/expires_at",
        ),
        (
            token_body(json!({"name": "t", "expires_at": "2001-01-01T00:00:00Z"})),
            400,
            "/data/attributes/expires_at",
        ),
        (
            token_body(json!({"name": "t", "scopes": ["all"]})),
            400,
            "/data/attributes/scopes",
        ),
        (
            json!({"data": {"type": "key", "attributes": {"name": "t"}}}),
            409,
            "/data/type",
        ),
        (
            json!({"data": {"type": "token", "id": Uuid::now_v7(), "attributes": {"name": "t"}}}),
            403,
            "/data/id",
        ),
        (json!({"data": {"attributes": {"name": "t"}}}), 400, "/data"),
        (
            json!({"data": {"type": "token", "attributes": {"name": "t"}}, "meta": {}}),
            400,
            "/meta",
        ),
        (json!([]), 400, ""),
        (
            json!([{"type": "token", "attributes": {"name": "t"}}]),
            400,
            "",
        ),
    ];
    for (body, status, pointer) in cases {
        let r = h.post("/rest/self/tokens", &body).await;
        let e = r.error(status);
        assert_eq!(e["source"]["pointer"], json!(pointer), "{body}: {}", r.text);
    }
    assert!(h.changes_since(head).await.is_empty());
});

api_test!(a_standalone_org_makes_its_creator_admin, |h| async move {
    let r = h
        .post("/rest/orgs", &org_body(json!({"name": "Side Project"})))
        .await;
    r.expect(201);
    let org = r.body["data"].clone();
    let id = org["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/rest/orgs/{id}").as_str())
    );
    assert_eq!(org["type"], "org");
    assert_eq!(org["attributes"]["name"], "Side Project");
    assert!(org["attributes"]["slug"]
        .as_str()
        .unwrap()
        .starts_with("side-project-"));
    assert_eq!(org["attributes"]["group_id"], Value::Null);
    assert_eq!(org["attributes"]["settings"], json!({}));
    assert_eq!(org["links"]["self"], json!(format!("/rest/orgs/{id}")));

    let got = h.get(&format!("/rest/orgs/{id}")).await;
    got.expect(200);
    assert_eq!(got.body["data"], org);
    let members = h.get(&format!("/rest/orgs/{id}/memberships")).await;
    members.expect(200);
    let m = &members.body["data"].as_array().unwrap()[0];
    assert_eq!(members.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(m["type"], "org_membership");
    assert_eq!(m["attributes"]["role"], "org_admin");
    assert_eq!(m["attributes"]["user_email"], "owner@example.com");
    assert_eq!(
        m["relationships"]["user"]["data"],
        json!({"type": "user", "id": h.user.id})
    );

    let items = h
        .search_items(&format!("/rest/orgs/{id}"), "sort_order=ASC")
        .await;
    assert_eq!(field(&items, "event"), ["org.create", "org.user.add"]);
    assert_eq!(items[0]["content"]["name"], "Side Project");
    assert_eq!(items[1]["content"]["role"], "org_admin");
    assert_eq!(items[1]["content"]["userPublicId"], json!(h.user.id));
    assert!(items
        .iter()
        .all(|i| i["org_id"] == json!(id) && i["group_id"].is_null()));
});

api_test!(an_org_in_a_group_needs_the_group_admin, |h| async move {
    let r = h
        .post(
            "/rest/orgs",
            &org_body(json!({"name": "Team B", "group_id": h.group.id})),
        )
        .await;
    r.expect(201);
    let id = r.body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["data"]["attributes"]["group_id"], json!(h.group.id));
    // Group admins administer it through the group; no direct membership.
    let members = h.get(&format!("/rest/orgs/{id}/memberships")).await;
    assert_eq!(members.body["data"], json!([]));
    let items = h
        .search_items(&format!("/rest/groups/{}", h.group.id), "events=org.create")
        .await;
    assert_eq!(items.len(), 2, "the bootstrap org and this one");
    assert_eq!(items[0]["org_id"], json!(id));
    assert_eq!(items[0]["group_id"], json!(h.group.id));

    // Someone who does not administer the group cannot, and learns nothing.
    let t = h.new_tenant("b@example.com", "B").await;
    let r = t
        .api
        .post(
            "/rest/orgs",
            &org_body(json!({"name": "Sneaky", "group_id": h.group.id})),
        )
        .await;
    r.error_at(404, "pointer", "/data/attributes/group_id");
    assert!(!r.text.contains("Acme"));
    h.post(
        "/rest/orgs",
        &org_body(json!({"name": "X", "group_id": "nope"})),
    )
    .await
    .error_at(400, "pointer", "/data/attributes/group_id");
    h.post(
        "/rest/orgs",
        &org_body(json!({"name": "X", "group_id": Uuid::now_v7()})),
    )
    .await
    .error_at(404, "pointer", "/data/attributes/group_id");
    h.post("/rest/orgs", &org_body(json!({"group_id": h.group.id})))
        .await
        .error_at(400, "pointer", "/data/attributes/name");
    h.post(
        "/rest/orgs",
        &org_body(json!({"name": "X", "settings": {"a": 1}})),
    )
    .await
    .error_at(400, "pointer", "/data/attributes/settings");
    h.post(
        "/rest/orgs",
        &json!({"data": {"type": "org", "id": Uuid::now_v7(), "attributes": {"name": "X"}}}),
    )
    .await
    .error_at(403, "pointer", "/data/id");
});

api_test!(org_lists_page_both_ways, |h| async move {
    let mut all = vec![h.org.id.to_string()];
    for i in 0..4 {
        all.push(h.standalone_org(&format!("Org {i}")).await.id.to_string());
    }
    // An org the caller cannot see stays out.
    let _ = h.new_tenant("b@example.com", "Hidden").await;

    let first = h.get("/rest/orgs?limit=2").await;
    first.expect(200);
    assert_eq!(ids(&first), all[..2]);
    let links = &first.body["links"];
    assert_eq!(
        links["self"],
        json!(format!("/rest/orgs?limit=2&version={VERSION}"))
    );
    assert_eq!(links["first"], links["self"]);
    assert!(links.get("prev").is_none(), "{links}");

    let second = h.get(links["next"].as_str().unwrap()).await;
    assert_eq!(ids(&second), all[2..4]);
    assert!(second.body["links"]["prev"].is_string());
    let third = h.get(second.body["links"]["next"].as_str().unwrap()).await;
    assert_eq!(ids(&third), all[4..]);
    assert!(third.body["links"].get("next").is_none(), "{}", third.text);

    let back = h.get(third.body["links"]["prev"].as_str().unwrap()).await;
    assert_eq!(ids(&back), all[2..4]);
    let back = h.get(back.body["links"]["prev"].as_str().unwrap()).await;
    assert_eq!(ids(&back), all[..2]);
    assert!(back.body["links"].get("prev").is_none(), "{}", back.text);
    assert!(back.body["links"]["next"].is_string());

    let everything = h.get("/rest/orgs").await;
    assert_eq!(ids(&everything), all);
    assert!(everything.body["links"].get("next").is_none());
    let max = h.get("/rest/orgs?limit=100").await;
    assert_eq!(ids(&max), all);

    for (q, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=1&limit=2", "limit"),
        ("starting_after=bogus", "starting_after"),
        ("starting_after=%27%20OR%201%3D1", "starting_after"),
        ("ending_before=AAAA", "ending_before"),
        (
            "starting_after=AAAAAAAAAAAAAAAAAAAAAA&ending_before=AAAAAAAAAAAAAAAAAAAAAA",
            "ending_before",
        ),
        ("sort=name", "sort"),
    ] {
        let r = h.get(&format!("/rest/orgs?{q}")).await;
        r.error_at(400, "parameter", param);
    }
});

api_test!(
    org_settings_and_name_are_patched_with_events,
    |h| async move {
        let path = format!("/rest/orgs/{}", h.org.id);
        let patch =
            |attrs: Value| json!({"data": {"type": "org", "id": h.org.id, "attributes": attrs}});

        let r = h
            .patch(
                &path,
                &patch(json!({"settings": {"sso_required": true, "retention_days": 90}})),
            )
            .await;
        r.expect(200);
        assert_eq!(
            r.body["data"]["attributes"]["settings"],
            json!({"sso_required": true, "retention_days": 90})
        );
        let r = h
            .patch(
                &path,
                &patch(json!({"settings": {"retention_days": 30, "sso_required": null}})),
            )
            .await;
        r.expect(200);
        assert_eq!(
            r.body["data"]["attributes"]["settings"],
            json!({"retention_days": 30})
        );
        assert_eq!(
            h.get(&path).await.body["data"]["attributes"]["settings"],
            json!({"retention_days": 30})
        );

        let edits = h
            .search_items(&path, "events=org.settings.edit&sort_order=ASC")
            .await;
        assert_eq!(edits.len(), 2);
        assert_eq!(
            edits[0]["content"],
            json!({"before": {"sso_required": null, "retention_days": null}, "after": {"sso_required": true, "retention_days": 90}})
        );
        assert_eq!(
            edits[1]["content"],
            json!({"before": {"retention_days": 90, "sso_required": true}, "after": {"retention_days": 30, "sso_required": null}})
        );
        assert_eq!(edits[1]["user_id"], json!(h.user.id));
        assert_eq!(edits[1]["org_id"], json!(h.org.id));
        assert_eq!(edits[1]["group_id"], json!(h.group.id));

        // The name, without an ID in the body.
        let r = h
            .patch(
                &path,
                &json!({"data": {"type": "org", "attributes": {"name": "Acme Corp"}}}),
            )
            .await;
        r.expect(200);
        assert_eq!(r.body["data"]["attributes"]["name"], "Acme Corp");
        let edits = h.search_items(&path, "events=org.edit").await;
        assert_eq!(edits.len(), 1);
        assert_eq!(
            edits[0]["content"],
            json!({"before": {"name": "Acme"}, "after": {"name": "Acme Corp"}})
        );

        // Changing nothing writes nothing.
        let head = h.head().await;
        h.patch(
            &path,
            &patch(json!({"name": "Acme Corp", "settings": {"retention_days": 30}})),
        )
        .await
        .expect(200);
        assert!(h.changes_since(head).await.is_empty());

        for (body, status, pointer) in [
            (
                json!({"data": {"type": "org", "id": Uuid::now_v7(), "attributes": {"name": "x"}}}),
                409,
                "/data/id",
            ),
            (
                json!({"data": {"type": "group", "attributes": {"name": "x"}}}),
                409,
                "/data/type",
            ),
            (
                patch(json!({"group_id": h.group.id})),
                400,
                "/data/attributes/group_id",
            ),
            (patch(json!({"name": ""})), 400, "/data/attributes/name"),
            (
                patch(json!({"settings": {"bad key": 1}})),
                400,
                "/data/attributes/settings/bad key",
            ),
            (
                patch(json!({"settings": {"big": "x".repeat(17_000)}})),
                400,
                "/data/attributes/settings",
            ),
            (
                patch(json!({"settings": [1]})),
                400,
                "/data/attributes/settings",
            ),
            (
                patch(json!({"colour": "red"})),
                400,
                "/data/attributes/colour",
            ),
        ] {
            let r = h.patch(&path, &body).await;
            let e = r.error(status);
            assert_eq!(e["source"]["pointer"], json!(pointer), "{body}: {}", r.text);
        }
        assert!(h.changes_since(head).await.is_empty());
        h.patch("/rest/orgs/nope", &patch(json!({"name": "x"})))
            .await
            .error_at(400, "parameter", "org_id");
    }
);

api_test!(groups_list_and_read_with_their_orgs, |h| async move {
    let list = h.get("/rest/groups").await;
    list.expect(200);
    assert_eq!(ids(&list), [h.group.id.to_string()]);
    let g = &list.body["data"][0];
    assert_eq!(g["type"], "group");
    assert_eq!(g["attributes"]["name"], "Acme Group");
    assert_eq!(
        g["links"]["self"],
        json!(format!("/rest/groups/{}", h.group.id))
    );

    let one = h.get(&format!("/rest/groups/{}", h.group.id)).await;
    one.expect(200);
    assert_eq!(&one.body["data"], g);

    let orgs = h.get(&format!("/rest/groups/{}/orgs", h.group.id)).await;
    orgs.expect(200);
    assert_eq!(ids(&orgs), [h.org.id.to_string()]);
    assert_eq!(
        orgs.body["data"][0]["attributes"]["group_id"],
        json!(h.group.id)
    );
    h.get(&format!("/rest/groups/{}/orgs?limit=0", h.group.id))
        .await
        .error_at(400, "parameter", "limit");
    h.get(&format!("/rest/groups/{}", Uuid::now_v7()))
        .await
        .error_nowhere(404);
    h.get("/rest/groups/x")
        .await
        .error_at(400, "parameter", "group_id");
});

api_test!(a_standalone_org_joins_a_group, |h| async move {
    let solo = h.standalone_org("Solo").await;
    let path = format!("/rest/groups/{}/orgs", h.group.id);
    let r = h
        .post(&path, &json!({"data": {"type": "org", "id": solo.id}}))
        .await;
    r.expect(201);
    assert_eq!(
        r.header("location"),
        Some(format!("/rest/orgs/{}", solo.id).as_str())
    );
    assert_eq!(r.body["data"]["attributes"]["group_id"], json!(h.group.id));
    assert_eq!(
        h.get(&format!("/rest/orgs/{}", solo.id)).await.body["data"]["attributes"]["group_id"],
        json!(h.group.id)
    );
    let orgs = h.get(&path).await;
    assert_eq!(ids(&orgs), [h.org.id.to_string(), solo.id.to_string()]);

    let added = h
        .search_items(
            &format!("/rest/groups/{}", h.group.id),
            "events=group.org.add",
        )
        .await;
    assert_eq!(added.len(), 1);
    assert_eq!(
        added[0]["content"],
        json!({"orgPublicId": solo.id, "orgName": "Solo"})
    );
    assert_eq!(added[0]["org_id"], Value::Null);
    assert_eq!(added[0]["group_id"], json!(h.group.id));
    assert_eq!(added[0]["user_id"], json!(h.user.id));

    // From now on the org's events carry the group.
    h.patch(
        &format!("/rest/orgs/{}", solo.id),
        &json!({"data": {"type": "org", "attributes": {"name": "Solo 2"}}}),
    )
    .await
    .expect(200);
    let edits = h
        .search_items(&format!("/rest/groups/{}", h.group.id), "events=org.edit")
        .await;
    assert_eq!(edits.len(), 1);
    assert_eq!(edits[0]["org_id"], json!(solo.id));

    let t = h.new_tenant("b@example.com", "Theirs").await;
    let head = h.head().await;
    h.post(&path, &json!({"data": {"type": "org", "id": solo.id}}))
        .await
        .error(409);
    h.post(&path, &json!({"data": {"type": "org", "id": h.org.id}}))
        .await
        .error(409);
    let r = h
        .post(&path, &json!({"data": {"type": "org", "id": t.org.id}}))
        .await;
    r.error_at(404, "pointer", "/data/id");
    assert!(!r.text.contains("Theirs"));
    h.post(&path, &json!({"data": {"type": "org"}}))
        .await
        .error_at(400, "pointer", "/data/id");
    h.post(&path, &json!({"data": {"type": "org", "id": "x"}}))
        .await
        .error_at(400, "pointer", "/data/id");
    h.post(&path, &json!({"data": {"type": "group", "id": solo.id}}))
        .await
        .error_at(409, "pointer", "/data/type");
    h.post(
        &path,
        &json!({"data": {"type": "org", "id": solo.id, "attributes": {"name": "x"}}}),
    )
    .await
    .error_at(400, "pointer", "/data/attributes/name");
    assert!(h.changes_since(head).await.is_empty());
    assert_eq!(h.get(&format!("/rest/orgs/{}", t.org.id)).await.status, 404);
    // The other tenant's org did not move.
    assert_eq!(h.store.org(t.org.id).await.unwrap().unwrap().group_id, None);
});

api_test!(
    org_memberships_are_added_listed_and_removed,
    |h| async move {
        let (bob, bob_api) = h.new_user("bob@example.com").await;
        let path = format!("/rest/orgs/{}/memberships", h.org.id);
        bob_api
            .get(&format!("/rest/orgs/{}", h.org.id))
            .await
            .error(404);

        let r = h
            .post(&path, &member_body("org_membership", bob.id, None))
            .await;
        r.expect(201);
        let m = r.body["data"].clone();
        let mid = m["id"].as_str().unwrap().to_owned();
        assert_eq!(r.header("location"), Some(format!("{path}/{mid}").as_str()));
        assert_eq!(m["type"], "org_membership");
        assert_eq!(m["attributes"]["role"], "org_member");
        assert_eq!(m["attributes"]["user_email"], "bob@example.com");
        assert_eq!(m["attributes"]["user_name"], "User bob@example.com");
        assert_eq!(
            m["relationships"]["user"]["data"],
            json!({"type": "user", "id": bob.id})
        );
        assert_eq!(m["links"]["self"], json!(format!("{path}/{mid}")));
        bob_api
            .get(&format!("/rest/orgs/{}", h.org.id))
            .await
            .expect(200);

        let list = h.get(&path).await;
        assert_eq!(ids(&list), [mid.as_str()]);
        assert_eq!(list.body["data"][0], m);
        // Members may read the list.
        assert_eq!(ids(&bob_api.get(&path).await), [mid.as_str()]);

        let head = h.head().await;
        for (body, status, pointer) in [
            (
                member_body("org_membership", bob.id, Some("org_admin")),
                409,
                None,
            ),
            (
                member_body("org_membership", Uuid::now_v7(), None),
                404,
                Some("/data/relationships/user/data/id"),
            ),
            (
                member_body("org_membership", bob.id, Some("group_admin")),
                400,
                Some("/data/attributes/role"),
            ),
            (
                member_body("org_membership", bob.id, Some("root")),
                400,
                Some("/data/attributes/role"),
            ),
            (
                member_body("group_membership", bob.id, None),
                409,
                Some("/data/type"),
            ),
            (
                json!({"data": {"type": "org_membership"}}),
                400,
                Some("/data/relationships/user"),
            ),
            (
                json!({"data": {"type": "org_membership", "relationships": {}}}),
                400,
                Some("/data/relationships/user"),
            ),
            (
                json!({"data": {"type": "org_membership", "relationships": {"user": {"data": {"type": "org", "id": bob.id}}}}}),
                400,
                Some("/data/relationships/user/data/type"),
            ),
            (
                json!({"data": {"type": "org_membership", "relationships": {"user": {"data": {"type": "user", "id": "bob"}}}}}),
                400,
                Some("/data/relationships/user/data/id"),
            ),
            (
                json!({"data": {"type": "org_membership", "relationships": {"user": {"data": {"type": "user"}}}}}),
                400,
                Some("/data/relationships/user/data"),
            ),
        ] {
            let r = h.post(&path, &body).await;
            let e = r.error(status);
            if let Some(p) = pointer {
                assert_eq!(e["source"]["pointer"], json!(p), "{body}: {}", r.text);
            }
        }
        assert!(h.changes_since(head).await.is_empty());

        h.delete(&format!("{path}/{mid}")).await.expect(204);
        assert_eq!(h.get(&path).await.body["data"], json!([]));
        bob_api
            .get(&format!("/rest/orgs/{}", h.org.id))
            .await
            .error(404);
        h.delete(&format!("{path}/{mid}")).await.error(404);
        h.delete(&format!("{path}/x"))
            .await
            .error_at(400, "parameter", "membership_id");

        let events = h
            .search_items(
                &format!("/rest/orgs/{}", h.org.id),
                "events=org.user.add,org.user.remove&sort_order=ASC",
            )
            .await;
        assert_eq!(field(&events, "event"), ["org.user.add", "org.user.remove"]);
        assert_eq!(events[0]["content"]["role"], "org_member");
        assert_eq!(events[0]["content"]["userPublicId"], json!(bob.id));
        assert_eq!(events[0]["content"]["membershipPublicId"], json!(mid));
        assert_eq!(events[1]["content"], json!({"userPublicId": bob.id}));
        assert!(events.iter().all(|e| e["group_id"] == json!(h.group.id)));
    }
);

api_test!(
    group_memberships_are_added_listed_and_removed,
    |h| async move {
        let (carol, carol_api) = h.new_user("carol@example.com").await;
        let path = format!("/rest/groups/{}/memberships", h.group.id);
        let list = h.get(&path).await;
        assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
        assert_eq!(list.body["data"][0]["attributes"]["role"], "group_admin");

        h.post(
            &path,
            &member_body("group_membership", carol.id, Some("org_admin")),
        )
        .await
        .error_at(400, "pointer", "/data/attributes/role");
        h.post(&path, &member_body("org_membership", carol.id, None))
            .await
            .error_at(409, "pointer", "/data/type");
        h.post(
            &path,
            &member_body("group_membership", Uuid::now_v7(), None),
        )
        .await
        .error_at(404, "pointer", "/data/relationships/user/data/id");

        let r = h
            .post(
                &path,
                &member_body("group_membership", carol.id, Some("group_admin")),
            )
            .await;
        r.expect(201);
        let mid = r.body["data"]["id"].as_str().unwrap().to_owned();
        assert_eq!(r.body["data"]["type"], "group_membership");
        assert_eq!(r.body["data"]["attributes"]["role"], "group_admin");
        assert_eq!(r.header("location"), Some(format!("{path}/{mid}").as_str()));
        // Carol now administers the group and reads its orgs.
        carol_api
            .get(&format!("/rest/groups/{}", h.group.id))
            .await
            .expect(200);
        carol_api
            .get(&format!("/rest/orgs/{}", h.org.id))
            .await
            .expect(200);
        assert_eq!(h.get(&path).await.body["data"].as_array().unwrap().len(), 2);

        h.delete(&format!("{path}/{mid}")).await.expect(204);
        carol_api
            .get(&format!("/rest/groups/{}", h.group.id))
            .await
            .error(404);
        carol_api
            .get(&format!("/rest/orgs/{}", h.org.id))
            .await
            .error(404);

        let events = h
            .search_items(
                &format!("/rest/groups/{}", h.group.id),
                "events=group.user.add,group.user.remove&sort_order=ASC",
            )
            .await;
        // The bootstrap grant, Carol's, and Carol's removal.
        assert_eq!(
            field(&events, "event"),
            ["group.user.add", "group.user.add", "group.user.remove"]
        );
        assert_eq!(events[1]["content"]["userPublicId"], json!(carol.id));
        assert!(events
            .iter()
            .all(|e| e["org_id"].is_null() && e["group_id"] == json!(h.group.id)));
    }
);

// Anyone could make a standalone org and add any platform user by ID to
// it, which answered with the user's email and name. By default an admin
// of the tenant's group adds anyone (the seed's flow), while a tenant's
// own admin adds only users of its group; anyone else is "not found"
// exactly as a user who does not exist.
api_test!(
    only_users_of_the_group_can_be_added_directly,
    with_defaults,
    |h| async move {
        let path = format!("/rest/orgs/{}/memberships", h.org.id);
        // An admin of the org alone.
        let (org_admin, org_admin_api) = h.new_user("orgadmin@example.com").await;
        h.store
            .add_member(
                Scope::Org(h.org.id),
                org_admin.id,
                auditlake_core::Role::OrgAdmin,
                &Actor::user(h.user.id),
            )
            .await
            .unwrap();
        // A member of another org of the same group may be added by them.
        let sibling = h
            .store
            .create_org("Sibling", Some(h.group.id), &Actor::user(h.user.id))
            .await
            .unwrap();
        let (colleague, _) = h.new_user("colleague@example.com").await;
        h.store
            .add_member(
                Scope::Org(sibling.id),
                colleague.id,
                auditlake_core::Role::OrgMember,
                &Actor::user(h.user.id),
            )
            .await
            .unwrap();
        org_admin_api
            .post(&path, &member_body("org_membership", colleague.id, None))
            .await
            .expect(201);

        // A user of no group of theirs, and a user who does not exist.
        let (stranger, _) = h.new_user("stranger@example.com").await;
        let head = h.head().await;
        let refused = org_admin_api
            .post(&path, &member_body("org_membership", stranger.id, None))
            .await;
        let missing = org_admin_api
            .post(&path, &member_body("org_membership", Uuid::now_v7(), None))
            .await;
        for r in [&refused, &missing] {
            r.error_at(404, "pointer", "/data/relationships/user/data/id");
        }
        assert_eq!(
            refused.body["errors"][0]["detail"],
            missing.body["errors"][0]["detail"]
        );
        assert!(
            !refused.text.contains("stranger@example.com"),
            "{}",
            refused.text
        );
        assert!(!refused.text.contains("User stranger"), "{}", refused.text);
        assert!(h.changes_since(head).await.is_empty(), "nothing was added");

        // The group's admin, whom the operator appointed, adds anyone.
        h.post(&path, &member_body("org_membership", stranger.id, None))
            .await
            .expect(201);

        // A standalone org's admin cannot add the first tenant's user.
        let other = h.new_tenant("eve@example.com", "Eve Org").await;
        let r = other
            .api
            .post(
                &format!("/rest/orgs/{}/memberships", other.org.id),
                &member_body("org_membership", h.user.id, None),
            )
            .await;
        r.error_at(404, "pointer", "/data/relationships/user/data/id");
        assert!(!r.text.contains(&h.user.email), "{}", r.text);
    }
);
