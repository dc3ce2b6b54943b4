//! API v1 audit logs: `POST /v1/org/{orgId}/audit` and
//! `POST /v1/group/{groupId}/audit`, a bare camelCase array, v1 errors.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const DAY: i64 = 86_400_000_000;

fn day(us: i64) -> String {
    at(us)[..10].to_owned()
}

/// Ingests events named `name`, `n` of them, one second apart from
/// `start`, optionally by `user`.
async fn fill(
    h: &Harness,
    base: &str,
    name: &str,
    prefix: &str,
    start: i64,
    n: usize,
    extra: Value,
) -> Vec<String> {
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            let mut x = extra.clone();
            x["created"] = json!(at(start + i as i64 * 1_000_000));
            event_with(&format!("{prefix}-{i}"), name, json!({"i": i}), x)
        })
        .collect();
    let r = h.ingest(base, json!(batch)).await;
    r.expect(201);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["attributes"]["created"].as_str().unwrap().to_owned())
        .collect()
}

api_test!(org_audit_is_a_bare_camel_case_array, |h| async move {
    let base = format!("/rest/orgs/{}", h.org.id);
    let created = at(now_us() - 3_600_000);
    h.ingest(
        &base,
        event_with(
            "v-1",
            "org.project.add",
            json!({"name": "web"}),
            json!({"created": created, "project_id": "p1"}),
        ),
    )
    .await
    .expect(201);
    let r = h
        .v1(
            &format!("/v1/org/{}/audit", h.org.id),
            &json!({"filters": {"event": "org.project.add"}}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body,
        json!([{
            "groupId": h.group.id,
            "orgId": h.org.id,
            "userId": h.user.id,
            "projectId": "p1",
            "event": "org.project.add",
            "content": {"name": "web"},
            "created": created,
            "ingestedBy": h.token_id().await
        }])
    );
    // No body at all (no length, no type): no filters.
    let all = send(h.raw(Method::POST, &format!("/v1/org/{}/audit", h.org.id))).await;
    all.expect(200);
    let events: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"org.create") && events.contains(&"org.project.add"),
        "{events:?}"
    );
    let empty = send(
        h.raw(Method::POST, &format!("/v1/org/{}/audit", h.org.id))
            .header("content-length", "0"),
    )
    .await;
    empty.expect(200);
    let changes = |r: &Resp| -> Vec<Value> {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] != "api.access")
            .cloned()
            .collect()
    };
    assert_eq!(changes(&empty), changes(&all));
    assert_eq!(changes(&all).len(), 2);
});

api_test!(filters_dates_pages_and_order, |h| async move {
    let base = format!("/rest/orgs/{}", h.org.id);
    let path = format!("/v1/org/{}/audit", h.org.id);
    let (bob, _) = h.new_member("bob@example.com").await;
    let today = time_fmt::start_of_day(now_us());
    let old = fill(
        h,
        &base,
        "org.target.create",
        "old",
        today - 10 * DAY,
        3,
        json!({}),
    )
    .await;
    let bobs = fill(
        h,
        &base,
        "org.target.create",
        "bob",
        today - 2 * DAY,
        2,
        json!({"user_id": bob.id, "project_id": "pb"}),
    )
    .await;
    let many = fill(
        h,
        &base,
        "org.policy.create",
        "many",
        today - DAY,
        150,
        json!({}),
    )
    .await;

    let created = |r: &Resp| -> Vec<String> {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["created"].as_str().unwrap().to_owned())
            .collect()
    };
    // Pages of 100, newest first by default.
    let p1 = h
        .v1(&path, &json!({"filters": {"event": "org.policy.create"}}))
        .await;
    let p2 = h
        .v1(
            &format!("{path}?page=2"),
            &json!({"filters": {"event": "org.policy.create"}}),
        )
        .await;
    let p3 = h
        .v1(
            &format!("{path}?page=3"),
            &json!({"filters": {"event": "org.policy.create"}}),
        )
        .await;
    let mut desc = many.clone();
    desc.reverse();
    assert_eq!(created(&p1), desc[..100]);
    assert_eq!(created(&p2), desc[100..]);
    assert_eq!(p3.body, json!([]));
    let asc = h
        .v1(
            &format!("{path}?sortOrder=ASC&page=2"),
            &json!({"filters": {"event": "org.policy.create"}}),
        )
        .await;
    assert_eq!(created(&asc), many[100..]);

    // `from` and `to` are days; `to` includes its day.
    let window = h
        .v1(
            &format!(
                "{path}?from={}&to={}&sortOrder=asc",
                day(today - 10 * DAY),
                day(today - 2 * DAY)
            ),
            &json!({"filters": {"excludeEvent": "org.create"}}),
        )
        .await;
    assert_eq!(created(&window), [old.clone(), bobs.clone()].concat());
    let one_day = h
        .v1(
            &format!("{path}?from={0}&to={0}", day(today - 10 * DAY)),
            &json!({}),
        )
        .await;
    assert_eq!(one_day.body.as_array().unwrap().len(), 3);
    // The default window reaches back three months.
    let default = h
        .v1(&path, &json!({"filters": {"event": "org.target.create"}}))
        .await;
    assert_eq!(default.body.as_array().unwrap().len(), 5);

    // By user ID, by email (userId wins), by project.
    let by_id = h
        .v1(
            &format!("{path}?sortOrder=ASC"),
            &json!({"filters": {"userId": bob.id}}),
        )
        .await;
    assert_eq!(created(&by_id), bobs);
    assert!(by_id
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["userId"] == json!(bob.id) && e["projectId"] == "pb"));
    let by_email = h
        .v1(
            &format!("{path}?sortOrder=ASC"),
            &json!({"filters": {"email": "BOB@example.com"}}),
        )
        .await;
    assert_eq!(created(&by_email), bobs);
    let both = h
        .v1(
            &format!("{path}?sortOrder=ASC"),
            &json!({"filters": {"userId": bob.id, "email": "owner@example.com"}}),
        )
        .await;
    assert_eq!(created(&both), bobs);
    let nobody = h
        .v1(&path, &json!({"filters": {"email": "' OR '1'='1"}}))
        .await;
    assert_eq!(nobody.body, json!([]));
    let by_project = h
        .v1(
            &path,
            &json!({"filters": {"projectId": "pb", "event": "org.target.create"}}),
        )
        .await;
    assert_eq!(by_project.body.as_array().unwrap().len(), 2);
    let excluded = h
        .v1(
            &path,
            &json!({"filters": {"excludeEvent": "org.policy.create"}}),
        )
        .await;
    assert!(excluded
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"] != "org.policy.create"));
    assert!(excluded.body.as_array().unwrap().len() >= 5);
});

api_test!(group_audit_holds_the_group_and_its_orgs, |h| async move {
    let t = now_us() - 3_600_000_000;
    let solo = h.standalone_org("Solo").await;
    fill(
        h,
        &format!("/rest/groups/{}", h.group.id),
        "group.policy.create",
        "g",
        t,
        1,
        json!({}),
    )
    .await;
    fill(
        h,
        &format!("/rest/orgs/{}", h.org.id),
        "org.policy.create",
        "o",
        t + 1_000_000,
        1,
        json!({}),
    )
    .await;
    fill(
        h,
        &format!("/rest/orgs/{}", solo.id),
        "org.policy.create",
        "s",
        t + 2_000_000,
        1,
        json!({}),
    )
    .await;
    let r = h
        .v1(
            &format!("/v1/group/{}/audit?sortOrder=ASC", h.group.id),
            &json!({}),
        )
        .await;
    r.expect(200);
    let got: Vec<(Value, Value, Value)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"].as_str().unwrap().ends_with("policy.create"))
        .map(|e| (e["event"].clone(), e["orgId"].clone(), e["groupId"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!("group.policy.create"), Value::Null, json!(h.group.id)),
            (
                json!("org.policy.create"),
                json!(h.org.id),
                json!(h.group.id)
            ),
        ]
    );
    // Not the standalone org's.
    assert!(!r.text.contains(&solo.id.to_string()));
});

api_test!(errors_have_the_v1_shape, |h| async move {
    let path = format!("/v1/org/{}/audit", h.org.id);
    let r = send(
        h.anonymous()
            .raw(Method::POST, &path)
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    let msg = r.v1_error(401);
    assert!(msg.contains("Authorization"), "{msg}");
    assert_eq!(r.body["error"], "Unauthorized");
    let r = send(
        h.anonymous()
            .raw(Method::POST, &path)
            .header("authorization", "token alk_unknown")
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    r.v1_error(401);

    for (query, body, says) in [
        ("?from=2024-13-01", json!({}), "from must be a date"),
        ("?from=yesterday", json!({}), "from must be a date"),
        ("?to=2024-01-01T00:00:00Z", json!({}), "to must be a date"),
        (
            "?from=2024-02-02&to=2024-02-01",
            json!({}),
            "to must not be before from",
        ),
        ("?page=0", json!({}), "page"),
        ("?page=x", json!({}), "page"),
        ("?sortOrder=sideways", json!({}), "sortOrder"),
        ("?size=5", json!({}), "unknown query parameter"),
        (
            "",
            json!({"filters": {"userId": "bob"}}),
            "userId must be a UUID",
        ),
        ("", json!({"filters": {"event": "Bad Event"}}), "event name"),
        (
            "",
            json!({"filters": {"event": "org.create", "excludeEvent": "org.edit"}}),
            "either event or excludeEvent",
        ),
        ("", json!({"filters": {"projectId": "a b"}}), "projectId"),
        ("", json!({"filters": {"user": "x"}}), "unknown field"),
        ("", json!({"filter": {}}), "unknown field"),
        ("", json!([]), "must be a JSON object"),
        (
            "",
            json!([{"event": "org.create"}]),
            "must be a JSON object",
        ),
    ] {
        let r = h.v1(&format!("{path}{query}"), &body).await;
        let msg = r.v1_error(400);
        assert!(msg.contains(says), "{query} {body}: {msg}");
    }
    for (ct, body) in [
        (JSONAPI, "{}".to_owned()),
        ("text/plain", "{}".to_owned()),
        ("application/json", "{".to_owned()),
        ("application/json", "{} {}".to_owned()),
    ] {
        let r = send(
            h.raw(Method::POST, &path)
                .header("content-type", ct)
                .body(body.clone()),
        )
        .await;
        r.v1_error(400);
    }
    h.v1(
        &format!("/v1/org/{}/audit", uuid::Uuid::now_v7()),
        &json!({}),
    )
    .await
    .v1_error(404);
    h.v1("/v1/org/nope/audit", &json!({})).await.v1_error(400);
    h.v1(
        &format!("/v1/group/{}/audit", uuid::Uuid::now_v7()),
        &json!({}),
    )
    .await
    .v1_error(404);
    h.v1("/v1/nothing", &json!({})).await.v1_error(404);
    let r = send(h.raw(Method::GET, &path)).await;
    r.v1_error(405);
});
