//! Ingest: single events and batches, idempotent per tenant, all or none,
//! and exact about every way a body can be wrong.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn org_base(h: &Harness) -> String {
    format!("/rest/orgs/{}", h.org.id)
}

/// Stored events other than `api.access` since `seq`.
async fn stored_since(h: &Harness, seq: i64) -> Vec<AuditEvent> {
    h.changes_since(seq).await
}

api_test!(a_single_event_is_stored_once_and_replayed, |h| async move {
    let base = org_base(h);
    let head = h.head().await;
    let created = at(now_us() - 3_600_000_000);
    let project = "proj-1";
    let body = event_with(
        "evt-0001",
        "org.project.test",
        json!({"result": "pass", "issues": 0}),
        json!({"created": created, "project_id": project, "source_ip": "2001:db8::1", "user_agent": "scanner/2"}),
    );
    let r = h.ingest(&base, body.clone()).await;
    r.expect(201);
    let d = &r.body["data"];
    let id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(
        d,
        &json!({
            "type": "audit_event",
            "id": id,
            "attributes": {
                "created": created,
                "event": "org.project.test",
                "org_id": h.org.id,
                "group_id": h.group.id,
                "project_id": project,
                "user_id": h.user.id,
                "content": {"result": "pass", "issues": 0},
                "ingested_by": h.token_id().await,
                "idempotency_id": "evt-0001",
                "replayed": false
            },
            "links": {"self": format!("{base}/audit_logs/events/{id}")}
        })
    );
    let stored = stored_since(h, head).await;
    assert_eq!(stored.len(), 1);
    let e = &stored[0];
    assert_eq!(e.id.to_string(), id);
    assert_eq!(e.source_ip.as_deref(), Some("2001:db8::1"));
    assert_eq!(e.user_agent.as_deref(), Some("scanner/2"));

    // The same again: 200, the same event, nothing new.
    let again = h.ingest(&base, body.clone()).await;
    again.expect(200);
    assert_eq!(again.body["data"]["id"], json!(id));
    assert_eq!(again.body["data"]["attributes"]["replayed"], true);
    let mut same = d.clone();
    same["attributes"]["replayed"] = json!(true);
    assert_eq!(again.body["data"], same);
    // Key order in the content does not make it a different event.
    let reordered = event_with(
        "evt-0001",
        "org.project.test",
        json!({"issues": 0, "result": "pass"}),
        json!({"user_agent": "scanner/2", "source_ip": "2001:db8::1", "project_id": project, "created": created}),
    );
    h.ingest(&base, reordered).await.expect(200);
    assert_eq!(stored_since(h, head).await.len(), 1);
    assert_eq!(
        h.search_items(&base, "events=org.project.test&from=2000-01-01T00:00:00Z")
            .await
            .len(),
        1
    );

    // The same ID with other content is a conflict, and writes nothing.
    let r = h
        .ingest(
            &base,
            event_with(
                "evt-0001",
                "org.project.test",
                json!({"result": "fail"}),
                json!({"created": created}),
            ),
        )
        .await;
    let e = r.error(409);
    assert!(
        e["detail"].as_str().unwrap().contains("evt-0001"),
        "{}",
        r.text
    );
    h.ingest(
        &base,
        event(
            "evt-0001",
            "org.project.test",
            json!({"result": "pass", "issues": 0}),
        ),
    )
    .await
    .error(409);
    assert_eq!(stored_since(h, head).await.len(), 1);
});

api_test!(defaults_come_from_the_request, |h| async move {
    let head = h.head().await;
    let before = now_us();
    let r = h
        .ingest(&org_base(h), event("d-1", "org.webhook.add", json!({})))
        .await;
    r.expect(201);
    let e = &stored_since(h, head).await[0];
    assert_eq!(e.user_id, Some(h.user.id));
    assert_eq!(e.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(e.user_agent.as_deref(), Some(UA));
    assert_eq!(e.project_id, None);
    assert!(e.created_us >= before && e.created_us <= now_us());
    assert_eq!(r.body["data"]["attributes"]["project_id"], Value::Null);
});

api_test!(
    batches_are_stored_in_order_and_replayed_per_item,
    |h| async move {
        let base = org_base(h);
        let head = h.head().await;
        let batch: Vec<Value> = (0..5)
            .map(|i| event(&format!("b-{i}"), "org.target.create", json!({"i": i})))
            .collect();
        let r = h.ingest(&base, json!(batch.clone())).await;
        r.expect(201);
        let out = r.body["data"].as_array().unwrap();
        assert_eq!(out.len(), 5);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o["attributes"]["idempotency_id"], json!(format!("b-{i}")));
            assert_eq!(o["attributes"]["content"], json!({"i": i}));
            assert_eq!(o["attributes"]["replayed"], false);
        }
        let stored = stored_since(h, head).await;
        assert_eq!(
            stored.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
            field(out, "id")
        );

        // All repeats: 200. Some new: 201, the repeats flagged.
        let again = h.ingest(&base, json!(batch.clone())).await;
        again.expect(200);
        assert_eq!(
            field(again.body["data"].as_array().unwrap(), "id"),
            field(out, "id")
        );
        assert!(again.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["attributes"]["replayed"] == true));
        let mixed = json!([
            batch[3].clone(),
            event("b-new", "org.target.create", json!({"i": 9})),
            batch[0].clone()
        ]);
        let r = h.ingest(&base, mixed).await;
        r.expect(201);
        let got = r.body["data"].as_array().unwrap();
        assert_eq!(
            got.iter()
                .map(|o| o["attributes"]["replayed"].as_bool().unwrap())
                .collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(got[0]["id"], out[3]["id"]);
        assert_eq!(got[2]["id"], out[0]["id"]);
        assert_eq!(stored_since(h, head).await.len(), 6);

        // A batch of one is still an array.
        let r = h
            .ingest(
                &base,
                json!([event("b-one", "org.target.create", json!({}))]),
            )
            .await;
        r.expect(201);
        assert!(r.body["data"].is_array());
    }
);

api_test!(a_conflict_anywhere_fails_the_whole_batch, |h| async move {
    let base = org_base(h);
    h.ingest(&base, event("c-1", "org.target.create", json!({"v": 1})))
        .await
        .expect(201);
    let head = h.head().await;
    let r = h
        .ingest(
            &base,
            json!([
                event("c-2", "org.target.create", json!({})),
                event("c-1", "org.target.create", json!({"v": 2})),
                event("c-3", "org.target.create", json!({})),
            ]),
        )
        .await;
    r.error(409);
    assert!(stored_since(h, head).await.is_empty());
    // The new IDs were not used up.
    h.ingest(
        &base,
        event("c-2", "org.target.create", json!({"other": true})),
    )
    .await
    .expect(201);
});

api_test!(one_bad_item_fails_the_whole_batch, |h| async move {
    let base = org_base(h);
    let head = h.head().await;
    let good = |i: usize| event(&format!("g-{i}"), "org.target.create", json!({}));
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!([good(0), good(1), event("g-2", "Not.Valid", json!({}))]),
            400,
            "/data/2/attributes/event",
        ),
        (
            json!([good(0), good(1), good(0)]),
            400,
            "/data/2/attributes/idempotency_id",
        ),
        (
            json!([good(0), good(0)]),
            400,
            "/data/1/attributes/idempotency_id",
        ),
        (json!([good(0), {"type": "audit_event"}]), 400, "/data/1"),
        (
            json!([good(0), {"type": "event", "attributes": good(1)["attributes"]}]),
            409,
            "/data/1/type",
        ),
        (
            json!([good(0), event("g-1", "org.target.create", json!([]))]),
            400,
            "/data/1/attributes/content",
        ),
        (json!([good(0), 7]), 400, "/data/1"),
        (
            json!([good(0), ["audit_event", good(1)["attributes"]]]),
            400,
            "/data/1",
        ),
        (json!([]), 400, "/data"),
        (json!((0..1001).map(good).collect::<Vec<_>>()), 400, "/data"),
    ];
    for (data, status, pointer) in cases {
        let r = h.ingest(&base, data).await;
        r.error_at(status, "pointer", pointer);
    }
    assert!(stored_since(h, head).await.is_empty());

    // The largest batch is fine.
    let r = h
        .ingest(&base, json!((0..1000).map(good).collect::<Vec<_>>()))
        .await;
    r.expect(201);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1000);
    assert_eq!(stored_since(h, head).await.len(), 1000);
});

api_test!(each_field_is_checked_with_its_pointer, |h| async move {
    let base = org_base(h);
    let head = h.head().await;
    let now = now_us();
    let with = |extra: Value| event_with("f-1", "org.target.create", json!({}), extra);
    let max_ok = json!({"x": "a".repeat(28_000 - 8)});
    assert_eq!(max_ok.to_string().len(), 28_000);
    let too_big = json!({"x": "a".repeat(28_000 - 7)});
    let cases: Vec<(Value, u16, &str)> = vec![
        (event("f-1", "", json!({})), 400, "/data/attributes/event"),
        (
            event("f-1", "single", json!({})),
            400,
            "/data/attributes/event",
        ),
        (
            event("f-1", "Org.create", json!({})),
            400,
            "/data/attributes/event",
        ),
        (
            event("f-1", "org..create", json!({})),
            400,
            "/data/attributes/event",
        ),
        (
            event("f-1", "org.create'; DROP TABLE audit_events;--", json!({})),
            400,
            "/data/attributes/event",
        ),
        (
            event("f-1", &format!("a.{}", "b".repeat(200)), json!({})),
            400,
            "/data/attributes/event",
        ),
        (
            event("f-1", "api.access", json!({})),
            400,
            "/data/attributes/event",
        ),
        (
            event("f-1", "org.target.create", json!([1])),
            400,
            "/data/attributes/content",
        ),
        (
            event("f-1", "org.target.create", json!("text")),
            400,
            "/data/attributes/content",
        ),
        (
            event("f-1", "org.target.create", Value::Null),
            400,
            "/data/attributes/content",
        ),
        (
            event("f-1", "org.target.create", too_big),
            400,
            "/data/attributes/content",
        ),
        (
            event("", "org.target.create", json!({})),
            400,
            "/data/attributes/idempotency_id",
        ),
        (
            event("a b", "org.target.create", json!({})),
            400,
            "/data/attributes/idempotency_id",
        ),
        (
            event(&"i".repeat(129), "org.target.create", json!({})),
            400,
            "/data/attributes/idempotency_id",
        ),
        (
            with(json!({"created": at(now + 10 * 60_000_000)})),
            400,
            "/data/attributes/created",
        ),
        (
            with(json!({"created": at(now - 367 * 86_400_000_000)})),
            400,
            "/data/attributes/created",
        ),
        (
            with(json!({"created": "yesterday"})),
            400,
            "/data/attributes/created",
        ),
        (
            with(json!({"created": 1_700_000_000})),
            400,
            "/data/attributes/created",
        ),
        (
            with(json!({"user_id": "bob"})),
            400,
            "/data/attributes/user_id",
        ),
        (
            with(json!({"user_id": 12})),
            400,
            "/data/attributes/user_id",
        ),
        (
            with(json!({"project_id": "p/1"})),
            400,
            "/data/attributes/project_id",
        ),
        (
            with(json!({"source_ip": "10.0.0.256"})),
            400,
            "/data/attributes/source_ip",
        ),
        (
            with(json!({"user_agent": "a\nb"})),
            400,
            "/data/attributes/user_agent",
        ),
        (
            with(json!({"severity": "high"})),
            400,
            "/data/attributes/severity",
        ),
        (
            json!({"type": "audit_event", "id": "x", "attributes": with(json!({}))["attributes"]}),
            400,
            "/data/id",
        ),
        (
            json!({"type": "org", "attributes": with(json!({}))["attributes"]}),
            409,
            "/data/type",
        ),
        (
            json!({"attributes": with(json!({}))["attributes"]}),
            400,
            "/data",
        ),
        (json!("event"), 400, "/data"),
        (Value::Null, 400, "/data"),
    ];
    for (data, status, pointer) in cases {
        let r = h.ingest(&base, data.clone()).await;
        let e = r.error(status);
        assert_eq!(
            e["source"],
            json!({"pointer": pointer}),
            "{data}: {}",
            r.text
        );
    }
    let r = h
        .post(
            &format!("{base}/audit_logs/events"),
            &json!({"data": with(json!({})), "meta": {}}),
        )
        .await;
    r.error_at(400, "pointer", "/meta");
    let r = h
        .post(&format!("{base}/audit_logs/events"), &json!({}))
        .await;
    r.error(400);
    assert!(stored_since(h, head).await.is_empty());

    // The edges that are allowed; other offsets are normalised to UTC.
    let month_ago = now - 30 * 86_400_000_000;
    let (member, _) = h.new_member("member@example.com").await;
    let plus_two = time_fmt::from_micros(month_ago)
        .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(plus_two.ends_with("+02:00"), "{plus_two}");
    for (i, (extra, created)) in [
        (
            json!({"created": at(now + 4 * 60_000_000)}),
            Some(at(now + 4 * 60_000_000)),
        ),
        (
            json!({"created": at(now - 365 * 86_400_000_000)}),
            Some(at(now - 365 * 86_400_000_000)),
        ),
        (
            json!({"created": plus_two, "user_id": member.id}),
            Some(at(month_ago)),
        ),
        (json!({"project_id": "a-b_c.d:e"}), None),
    ]
    .into_iter()
    .enumerate()
    {
        let r = h
            .ingest(
                &base,
                event_with(
                    &format!("ok-{i}"),
                    "org.target.create",
                    json!({}),
                    extra.clone(),
                ),
            )
            .await;
        r.expect(201);
        if let Some(c) = created {
            assert_eq!(r.body["data"]["attributes"]["created"], json!(c));
        }
    }
    let r = h
        .ingest(&base, event("ok-max", "org.target.create", max_ok.clone()))
        .await;
    r.expect(201);
    assert_eq!(r.body["data"]["attributes"]["content"], max_ok);
});

api_test!(
    the_body_must_be_json_api_text_of_bounded_size,
    |h| async move {
        let url = format!("{}/audit_logs/events", org_base(h));
        let head = h.head().await;
        let good = json!({"data": event("x-1", "org.target.create", json!({}))}).to_string();
        for ct in [
            None,
            Some("application/json"),
            Some("text/plain"),
            Some("application/vnd.api+jsonx"),
        ] {
            let mut rb = h.request(Method::POST, &url).body(good.clone());
            if let Some(ct) = ct {
                rb = rb.header("content-type", ct);
            }
            let r = send(rb).await;
            let e = r.error_at(400, "header", "content-type");
            assert_eq!(e["code"], "invalid_content_type");
        }
        // Parameters and case of the media type do not matter.
        let r = send(
            h.request(Method::POST, &url)
                .header("content-type", "Application/VND.API+JSON; charset=utf-8")
                .body(good.clone()),
        )
        .await;
        r.expect(201);

        // The pointer says how far the parser got.
        for (bytes, says, pointer) in [
        (b"{\"data\": ".to_vec(), "not valid JSON", "/data"),
        (b"{\"data\": {\"type\": \"audit_event\",}}".to_vec(), "not valid JSON", "/data"),
        (b"".to_vec(), "not valid JSON", ""),
        (b"data=1".to_vec(), "not valid JSON", ""),
        (b"{\"data\": {}} trailing".to_vec(), "not valid JSON", ""),
        (format!("{good} {good}").into_bytes(), "not valid JSON", ""),
        (b"{\"data\": {\"type\": \"audit_event\", \"attributes\": {\"event\": \"\xff\xfe\"}}}".to_vec(), "not valid UTF-8", ""),
    ] {
        let r = send(h.request(Method::POST, &url).header("content-type", JSONAPI).body(bytes)).await;
        let e = r.error_at(400, "pointer", pointer);
        assert!(e["detail"].as_str().unwrap().contains(says), "{}", r.text);
    }

        // Over 16 MiB: 413.
        let huge = vec![b' '; auditlake_api::INGEST_BODY_LIMIT + 1];
        let r = send(
            h.request(Method::POST, &url)
                .header("content-type", JSONAPI)
                .body(huge),
        )
        .await;
        let e = r.error_nowhere(413);
        assert_eq!(e["code"], "payload_too_large");
        assert_eq!(stored_since(h, head).await.len(), 1);

        // Between the general 1 MiB limit and 16 MiB: fine for ingest only.
        let batch: Vec<Value> = (0..100)
            .map(|i| {
                event(
                    &format!("big-{i}"),
                    "org.target.create",
                    json!({"pad": "p".repeat(27_000)}),
                )
            })
            .collect();
        let body = json!({ "data": batch });
        assert!(body.to_string().len() > 2 * 1024 * 1024);
        h.post(&url, &body).await.expect(201);
        let r = h
        .post("/rest/self/tokens", &json!({"data": {"type": "token", "attributes": {"name": "p".repeat(2 * 1024 * 1024)}}}))
        .await;
        r.error(413);
    }
);

api_test!(sql_metacharacters_are_stored_verbatim, |h| async move {
    let base = org_base(h);
    let nasty = "'; DROP TABLE audit_events; -- \" OR 1=1 /* \\ ` $1 %_ \u{0}";
    let content = json!({
        nasty: nasty,
        "nested": {"q": "Robert'); DELETE FROM orgs WHERE ('1'='1", "list": [nasty, 1, null]},
    });
    let r = h
        .ingest(
            &base,
            event_with(
                "sql-'1",
                "org.target.create",
                content.clone(),
                json!({"user_agent": nasty.trim_end_matches('\u{0}')}),
            ),
        )
        .await;
    // Quotes are not allowed in idempotency IDs.
    r.error_at(400, "pointer", "/data/attributes/idempotency_id");
    let r = h
        .ingest(
            &base,
            event_with(
                "sql-1",
                "org.target.create",
                content.clone(),
                json!({"user_agent": "ua'; DROP TABLE users;--"}),
            ),
        )
        .await;
    r.expect(201);
    let items = h.search_items(&base, "events=org.target.create").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["content"], content);
    let stored = &h
        .log_since(0)
        .await
        .into_iter()
        .find(|e| e.event == "org.target.create")
        .unwrap();
    assert_eq!(
        stored.user_agent.as_deref(),
        Some("ua'; DROP TABLE users;--")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&stored.content).unwrap(),
        content
    );
    // Filters with metacharacters are refused, not run.
    for q in [
        format!("events={}", enc("org.create') OR ('1'='1")),
        format!("project_id={}", enc("x' OR '1'='1")),
        format!("user_id={}", enc("' OR 1=1 --")),
        format!("cursor={}", enc("' OR 1=1 --")),
    ] {
        let r = h.get(&format!("{base}/audit_logs/search?{q}")).await;
        r.error(400);
    }
    // Everything still works.
    h.get("/rest/orgs").await.expect(200);
    assert_eq!(h.store.org(h.org.id).await.unwrap().unwrap().name, "Acme");
});

api_test!(group_ingest_and_idempotency_per_tenant, |h| async move {
    let gbase = format!("/rest/groups/{}", h.group.id);
    let r = h
        .ingest(
            &gbase,
            event("same-id", "group.policy.create", json!({"p": 1})),
        )
        .await;
    r.expect(201);
    assert_eq!(r.body["data"]["attributes"]["org_id"], Value::Null);
    assert_eq!(r.body["data"]["attributes"]["group_id"], json!(h.group.id));
    assert_eq!(
        r.body["data"]["links"]["self"],
        json!(format!(
            "{gbase}/audit_logs/events/{}",
            r.body["data"]["id"].as_str().unwrap()
        ))
    );
    // The same idempotency ID in another tenant is another event.
    let o = h
        .ingest(
            &org_base(h),
            event("same-id", "org.policy.create", json!({"p": 2})),
        )
        .await;
    o.expect(201);
    assert_ne!(o.body["data"]["id"], r.body["data"]["id"]);
    let items = h
        .search_items(
            &gbase,
            "events=group.policy.create,org.policy.create&sort_order=ASC",
        )
        .await;
    assert_eq!(
        field(&items, "event"),
        ["group.policy.create", "org.policy.create"]
    );
    let orgs = h
        .search_items(&org_base(h), "events=group.policy.create,org.policy.create")
        .await;
    assert_eq!(field(&orgs, "event"), ["org.policy.create"]);
});

// Content that no reader can parse (too deep, or a number past a
// double's range) was stored, forwarded and shown as `null`; it is
// refused with a 400 that names the field, and nothing is stored.
api_test!(
    content_must_parse_as_every_reader_parses_it,
    |h| async move {
        let url = format!("{}/audit_logs/events", org_base(h));
        let head = h.head().await;
        let body = |content: &str| {
            format!(
                r#"{{"data":{{"type":"audit_event","attributes":{{"idempotency_id":"r-1","event":"org.target.create","content":{content}}}}}}}"#
            )
        };
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(64), "]".repeat(64));
        for content in [deep.as_str(), r#"{"n":1e999}"#, r#"{"n":[-1e400]}"#] {
            let r = send(
                h.request(Method::POST, &url)
                    .header("content-type", JSONAPI)
                    .body(body(content)),
            )
            .await;
            let e = r.error_at(400, "pointer", "/data/attributes/content");
            assert!(
                e["detail"].as_str().unwrap().contains("must parse as JSON"),
                "{}",
                r.text
            );
        }
        assert!(stored_since(h, head).await.is_empty());
        // Within the limits, the same shapes are stored as sent.
        let fine = format!(r#"{{"a":{}1{}}}"#, "[".repeat(63), "]".repeat(63));
        send(
            h.request(Method::POST, &url)
                .header("content-type", JSONAPI)
                .body(body(&fine)),
        )
        .await
        .expect(201);
    }
);

// An org admin could ingest `group.user.add` attributed to the group's
// admin, dated before the org existed, and it showed like the platform's
// own event everywhere. Platform names are reserved, every ingested event
// carries the token that sent it, `created` cannot precede the tenant (no
// import window by default), and `user_id` must name a member, current or
// former.
api_test!(
    an_ingested_event_cannot_pass_for_the_platforms,
    with_defaults,
    |h| async move {
        let base = org_base(h);
        let head = h.head().await;
        for name in [
            "group.user.add",
            "org.user.add",
            "org.settings.edit",
            "org.create",
            "user.login",
            "user.token.create",
            "org.cloud_events.integration.create",
            "api.access",
        ] {
            let r = h.ingest(&base, event("f-1", name, json!({}))).await;
            let e = r.error_at(400, "pointer", "/data/attributes/event");
            assert!(
                e["detail"]
                    .as_str()
                    .unwrap()
                    .contains("platform records itself"),
                "{name}: {}",
                r.text
            );
        }
        let before_org = at(h.org.created_us - 3_600_000_000);
        let r = h
            .ingest(
                &base,
                event_with(
                    "f-2",
                    "org.project.test",
                    json!({}),
                    json!({"created": before_org}),
                ),
            )
            .await;
        r.error_at(400, "pointer", "/data/attributes/created");

        // Another tenant's user, and one who never was a member.
        let other = h.new_tenant("eve@example.com", "Eve Org").await;
        let (never, _) = h.new_user("never@example.com").await;
        for user in [other.user.id, never.id] {
            let r = h
                .ingest(
                    &base,
                    event_with(
                        "f-3",
                        "org.project.test",
                        json!({}),
                        json!({"user_id": user}),
                    ),
                )
                .await;
            let e = r.error_at(400, "pointer", "/data/attributes/user_id");
            assert!(
                e["detail"].as_str().unwrap().contains("member"),
                "{}",
                r.text
            );
        }
        // In a batch, the pointer names the item.
        let batch = json!([
            event("b-1", "org.project.test", json!({})),
            event_with(
                "b-2",
                "org.project.test",
                json!({}),
                json!({"user_id": never.id})
            ),
        ]);
        h.ingest(&base, batch)
            .await
            .error_at(400, "pointer", "/data/1/attributes/user_id");
        assert!(
            stored_since(h, head)
                .await
                .iter()
                .all(|e| e.ingested_by.is_none()),
            "nothing was ingested"
        );

        // A former member, and a current one, may be named.
        let (former, _) = h.new_member("former@example.com").await;
        h.store
            .remove_member(Scope::Org(h.org.id), former.id, &Actor::user(h.user.id))
            .await
            .unwrap();
        let (current, _) = h.new_member("current@example.com").await;
        let token = h.token_id().await;
        for (i, user) in [former.id, current.id].into_iter().enumerate() {
            let r = h
                .ingest(
                    &base,
                    event_with(
                        &format!("ok-{i}"),
                        "org.project.test",
                        json!({}),
                        json!({"user_id": user}),
                    ),
                )
                .await;
            r.expect(201);
            // The mark of origin, in the answer, in search and in v1.
            assert_eq!(r.body["data"]["attributes"]["ingested_by"], json!(token));
        }
        let found = h.search_items(&base, "events=org.project.test").await;
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|i| i["ingested_by"] == json!(token)));
        let platform = h.search_items(&base, "events=org.user.add").await;
        assert!(!platform.is_empty());
        assert!(platform.iter().all(|i| i.get("ingested_by").is_none()));
        let v1 = h
            .v1(
                &format!("/v1/org/{}/audit", h.org.id),
                &json!({"filters": {"event": "org.project.test"}}),
            )
            .await;
        assert!(v1
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ingestedBy"] == json!(token)));
        // The chain covers the mark: the log still verifies.
        let report = h.store.verify_chain(h.org.id).await.unwrap();
        assert!(report.intact(), "{report:?}");
    }
);
