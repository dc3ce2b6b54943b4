//! Cloud event integrations over REST: the seed's group registration
//! request as written, org integrations, validation pointing at the field,
//! rights and tenant isolation, edits, replay and removal with their
//! audit events.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::*;

const V: &str = "version=2023-01-25~experimental";
const ACCOUNT: &str = "123456789012";

fn arn(account: &str) -> String {
    format!("arn:aws:cloudtrail:us-east-1:{account}:channel/01234567-89ab-cdef-0123-456789abcdef")
}

fn registrations(group: Uuid) -> String {
    format!("/rest/groups/{group}/cloud_events/group_registrations?{V}")
}

fn org_integrations(org: Uuid) -> String {
    format!("/rest/orgs/{org}/cloud_events/integrations?{V}")
}

fn one(collection: &str, id: &str) -> String {
    let (path, q) = collection.split_once('?').unwrap();
    format!("{path}/{id}?{q}")
}

/// The seed's body, placeholders filled in.
fn seed_body(name: &str, account: &str, channel_arn: &str) -> Value {
    json!({
        "data": {
            "type": "group_registration",
            "attributes": {
                "type": "aws-cloudtrail",
                "name": name,
                "config": { "account_id": account, "channel_arn": channel_arn }
            }
        }
    })
}

fn org_body(attrs: Value) -> Value {
    json!({"data": {"type": "org_integration", "attributes": attrs}})
}

api_test!(
    the_seeds_group_registration_request_works_as_written,
    |h| async move {
        let head = h.head().await;
        // The seed's curl: POST, these two headers, this body, nothing else.
        let r = send(
            h.raw(reqwest::Method::POST, &registrations(h.group.id))
                .header("Content-Type", "application/vnd.api+json")
                .body(
                    r#"{
"data": {
"type": "group_registration",
"attributes": {
"type": "aws-cloudtrail",
"name": "security lake",
"config": {
"account_id": "123456789012",
"channel_arn": "arn:aws:cloudtrail:us-east-1:123456789012:channel/01234567-89ab-cdef-0123-456789abcdef"
}
}
}
}"#,
                ),
        )
        .await;
        r.expect(201);
        let id = r.body["data"]["id"].as_str().unwrap().to_owned();
        assert!(Uuid::parse_str(&id).is_ok());
        let self_link = format!(
            "/rest/groups/{}/cloud_events/group_registrations/{id}",
            h.group.id
        );
        assert_eq!(r.body["data"]["links"]["self"], self_link);
        assert_eq!(r.headers["location"], self_link.as_str());
        let a = &r.body["data"]["attributes"];
        assert_eq!(a["type"], "aws-cloudtrail");
        assert_eq!(a["name"], "security lake");
        assert_eq!(a["config"]["account_id"], ACCOUNT);
        assert_eq!(a["external_id"], h.group.id.to_string());
        assert_eq!(a["status"], "pending");
        assert_eq!(a["lag"]["events"], 1, "its own creation event waits");
        assert_eq!(r.headers["snyk-version-served"], "2023-01-25~experimental");

        let changes = h.changes_since(head).await;
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].event, "group.cloud_events.registration.create");
        assert_eq!(changes[0].group_id, Some(h.group.id));
        assert_eq!(changes[0].user_id, Some(h.user.id));

        // The id gets, lists, updates and deletes it.
        let got = h.get(&one(&registrations(h.group.id), &id)).await;
        got.expect(200);
        assert_eq!(got.body["data"]["id"], id);
        let list = h.get(&registrations(h.group.id)).await;
        list.expect(200);
        assert_eq!(list.body["data"][0]["id"], id);

        let r = h
            .patch(
                &one(&registrations(h.group.id), &id),
                &json!({"data": {"type": "group_registration", "id": id,
                        "attributes": {"name": "renamed"}}}),
            )
            .await;
        r.expect(200);
        assert_eq!(r.body["data"]["attributes"]["name"], "renamed");
        assert_eq!(
            r.body["data"]["attributes"]["config"]["account_id"],
            ACCOUNT
        );

        let head = h.head().await;
        h.delete(&one(&registrations(h.group.id), &id))
            .await
            .expect(204);
        h.get(&one(&registrations(h.group.id), &id))
            .await
            .error(404);
        let changes = h.changes_since(head).await;
        assert_eq!(changes[0].event, "group.cloud_events.registration.delete");
    }
);

api_test!(
    org_integrations_are_created_viewed_and_removed,
    |h| async move {
        let r = h
            .post(
                &org_integrations(h.org.id),
                &org_body(json!({"type": "aws-cloudtrail", "name": "org lake",
                    "config": {"account_id": ACCOUNT, "channel_arn": arn(ACCOUNT)}})),
            )
            .await;
        r.expect(201);
        let id = r.body["data"]["id"].as_str().unwrap().to_owned();
        assert_eq!(r.body["data"]["type"], "org_integration");
        assert_eq!(
            r.body["data"]["attributes"]["external_id"],
            h.org.id.to_string()
        );
        let stored = h
            .store
            .integration(Scope::Org(h.org.id), Uuid::parse_str(&id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.name, "org lake");

        // A group registration's ID is not an org integration's.
        h.get(&one(&registrations(h.group.id), &id))
            .await
            .error(404);

        let r = h
            .post(
                &format!(
                    "/rest/orgs/{}/cloud_events/integrations/{id}/replay?{V}",
                    h.org.id
                ),
                &json!({"data": {"type": "replay", "attributes": {"from": "2020-01-01T00:00:00Z"}}}),
            )
            .await;
        r.expect(200);
        assert!(
            r.body["data"]["attributes"]["lag"]["events"]
                .as_i64()
                .unwrap()
                >= 2
        );

        h.delete(&one(&org_integrations(h.org.id), &id))
            .await
            .expect(204);
        let list = h.get(&org_integrations(h.org.id)).await;
        list.expect(200);
        assert_eq!(list.body["data"], json!([]));
    }
);

api_test!(
    bad_input_gets_an_error_pointing_at_the_field,
    |h| async move {
        let head = h.head().await;
        let base = registrations(h.group.id);
        let ok = seed_body("n", ACCOUNT, &arn(ACCOUNT));
        let with = |pointer: &str, value: Value| {
            let mut b = ok.clone();
            *b.pointer_mut(pointer).unwrap() = value;
            b
        };
        let cases: Vec<(Value, u16, &str)> = vec![
            (
                with("/data/attributes/type", json!("gcp-scc")),
                400,
                "/data/attributes/type",
            ),
            (
                with("/data/attributes/name", json!("")),
                400,
                "/data/attributes/name",
            ),
            (
                with("/data/attributes/name", json!("x".repeat(101))),
                400,
                "/data/attributes/name",
            ),
            (
                with("/data/attributes/name", json!(7)),
                400,
                "/data/attributes/name",
            ),
            (
                with("/data/attributes/config/account_id", json!("1234")),
                400,
                "/data/attributes/config/account_id",
            ),
            (
                with("/data/attributes/config/account_id", json!(123456789012u64)),
                400,
                "/data/attributes/config/account_id",
            ),
            (
                with(
                    "/data/attributes/config/channel_arn",
                    json!("arn:aws:s3:::bucket"),
                ),
                400,
                "/data/attributes/config/channel_arn",
            ),
            (
                with(
                    "/data/attributes/config/channel_arn",
                    json!(arn("210987654321")),
                ),
                400,
                "/data/attributes/config/channel_arn",
            ),
            (
                with("/data/attributes/config", json!({"account_id": ACCOUNT})),
                400,
                "/data/attributes/config/channel_arn",
            ),
            (
                with(
                    "/data/attributes/config",
                    json!({"account_id": ACCOUNT, "channel_arn": arn(ACCOUNT), "region": "x"}),
                ),
                400,
                "/data/attributes/config/region",
            ),
            (
                with(
                    "/data/attributes",
                    json!({"type": "aws-cloudtrail", "name": "n"}),
                ),
                400,
                "/data/attributes/config",
            ),
            (
                with("/data/type", json!("org_integration")),
                409,
                "/data/type",
            ),
        ];
        for (body, status, pointer) in cases {
            let r = h.post(&base, &body).await;
            r.error_at(status, "pointer", pointer);
        }
        let e = h
            .post(
                &base,
                &with(
                    "/data/attributes/config/channel_arn",
                    json!(arn("210987654321")),
                ),
            )
            .await;
        let detail = e.error(400)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("210987654321"), "{detail}");
        assert!(h.changes_since(head).await.is_empty(), "nothing stored");

        // Without the experimental version there is no such resource.
        let r = h
            .post(
                &format!(
                    "/rest/groups/{}/cloud_events/group_registrations",
                    h.group.id
                ),
                &ok,
            )
            .await;
        r.error(404);
    }
);

api_test!(
    only_the_tenants_admins_see_or_manage_integrations,
    |h| async move {
        let reg = h
            .post(
                &registrations(h.group.id),
                &seed_body("g", ACCOUNT, &arn(ACCOUNT)),
            )
            .await;
        reg.expect(201);
        let reg_id = reg.body["data"]["id"].as_str().unwrap().to_owned();
        let oi = h
            .post(
                &org_integrations(h.org.id),
                &org_body(json!({"type": "aws-cloudtrail", "name": "o",
                    "config": {"account_id": ACCOUNT, "channel_arn": arn(ACCOUNT)}})),
            )
            .await;
        oi.expect(201);
        let oi_id = oi.body["data"]["id"].as_str().unwrap().to_owned();

        // Another tenant: everything of ours is "not found".
        let other = h.new_tenant("other@example.com", "Other").await;
        for path in [
            registrations(h.group.id),
            one(&registrations(h.group.id), &reg_id),
            org_integrations(h.org.id),
            one(&org_integrations(h.org.id), &oi_id),
        ] {
            let r = other.api.get(&path).await;
            r.error(404);
            assert!(!r.text.contains(&reg_id) && !r.text.contains(&oi_id));
        }
        other
            .api
            .delete(&one(&org_integrations(h.org.id), &oi_id))
            .await
            .error(404);
        // Their own org does not reach ours by ID.
        other
            .api
            .get(&one(&org_integrations(other.org.id), &oi_id))
            .await
            .error(404);

        // A mere member of the org may not manage its integrations.
        let (member, api) = h.new_user("member@example.com").await;
        h.store
            .add_member(
                Scope::Org(h.org.id),
                member.id,
                auditlake_core::Role::OrgMember,
                &Actor::user(h.user.id),
            )
            .await
            .unwrap();
        api.get(&org_integrations(h.org.id)).await.error(403);
        api.post(
            &org_integrations(h.org.id),
            &org_body(json!({"type": "aws-cloudtrail", "name": "x",
                "config": {"account_id": ACCOUNT, "channel_arn": arn(ACCOUNT)}})),
        )
        .await
        .error(403);
        // Nor see the group's registrations.
        api.get(&registrations(h.group.id)).await.error(404);

        h.anonymous()
            .get(&registrations(h.group.id))
            .await
            .error(401);
    }
);

api_test!(
    updates_are_validated_and_audited_with_before_and_after,
    |h| async move {
        let reg = h
            .post(
                &registrations(h.group.id),
                &seed_body("g", ACCOUNT, &arn(ACCOUNT)),
            )
            .await;
        let id = reg.body["data"]["id"].as_str().unwrap().to_owned();
        let path = one(&registrations(h.group.id), &id);
        let patch = |attrs: Value| json!({"data": {"type": "group_registration", "id": id, "attributes": attrs}});

        // The new account alone does not match the channel's.
        h.patch(
            &path,
            &patch(json!({"config": {"account_id": "210987654321"}})),
        )
        .await
        .error_at(400, "pointer", "/data/attributes/config/channel_arn");
        h.patch(&path, &json!({"data": {"type": "group_registration", "id": Uuid::now_v7(), "attributes": {}}}))
            .await
            .error_at(409, "pointer", "/data/id");

        let head = h.head().await;
        let r = h
            .patch(
                &path,
                &patch(json!({"config": {"account_id": "210987654321", "channel_arn": arn("210987654321")}})),
            )
            .await;
        r.expect(200);
        assert_eq!(r.body["data"]["attributes"]["status"], "pending");
        let changes = h.changes_since(head).await;
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].event, "group.cloud_events.registration.edit");
        let c: Value = serde_json::from_str(&changes[0].content).unwrap();
        assert_eq!(c["before"]["config"]["account_id"], ACCOUNT);
        assert_eq!(c["after"]["config"]["account_id"], "210987654321");

        let replay = format!(
            "/rest/groups/{}/cloud_events/group_registrations/{id}/replay?{V}",
            h.group.id
        );
        h.post(
            &replay,
            &json!({"data": {"type": "replay", "attributes": {"from": "yesterday"}}}),
        )
        .await
        .error_at(400, "pointer", "/data/attributes/from");
        h.post(
            &replay,
            &json!({"data": {"type": "replay", "attributes": {"from": "2999-01-01T00:00:00Z"}}}),
        )
        .await
        .error_at(400, "pointer", "/data/attributes/from");
    }
);
