//! Audit-log search: bounds, filters, order, cursors that survive a
//! growing log, and which events an org's and a group's search hold.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::common::*;

const HOUR: i64 = 3_600_000_000;

fn org_base(h: &Harness) -> String {
    format!("/rest/orgs/{}", h.org.id)
}

/// Ingests `n` events named `name` into `base`, created one second apart
/// from `start`, with idempotency IDs `{prefix}-{i}`; returns their IDs in
/// creation order.
async fn fill(
    api: &Api,
    base: &str,
    name: &str,
    prefix: &str,
    start: i64,
    n: usize,
) -> Vec<String> {
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            event_with(
                &format!("{prefix}-{i}"),
                name,
                json!({"i": i}),
                json!({"created": at(start + i as i64 * 1_000_000)}),
            )
        })
        .collect();
    let r = api.ingest(base, json!(batch)).await;
    r.expect(201);
    field(r.body["data"].as_array().unwrap(), "id")
}

api_test!(items_have_snyks_shape, |h| async move {
    let base = org_base(h);
    let created = at(now_us() - HOUR);
    let r = h
        .ingest(
            &base,
            event_with(
                "s-1",
                "org.project.add",
                json!({"name": "web"}),
                json!({"created": created, "project_id": "p1"}),
            ),
        )
        .await;
    let id = r.body["data"]["id"].clone();
    let page = h.search(&base, "events=org.project.add").await;
    assert_eq!(
        page.body,
        json!({
            "jsonapi": {"version": "1.0"},
            "data": {"items": [{
                "id": id,
                "created": created,
                "event": "org.project.add",
                "org_id": h.org.id,
                "group_id": h.group.id,
                "project_id": "p1",
                "user_id": h.user.id,
                "content": {"name": "web"},
                "ingested_by": h.token_id().await
            }]},
            "links": {}
        })
    );
});

api_test!(from_and_to_bound_the_window, |h| async move {
    let base = org_base(h);
    let t = time_fmt::start_of_day(now_us()) - 2 * HOUR;
    let ids = fill(h, &base, "org.target.create", "w", t, 5).await;
    let q = |from: i64, to: i64| {
        format!(
            "events=org.target.create&sort_order=ASC&from={}&to={}",
            enc(&at(from)),
            enc(&at(to))
        )
    };
    // `from` inclusive, `to` exclusive; times have millisecond precision.
    let got = h
        .search_items(&base, &q(t + 1_000_000, t + 3_000_000))
        .await;
    assert_eq!(field(&got, "id"), ids[1..3]);
    let got = h.search_items(&base, &q(t, t + 1_000)).await;
    assert_eq!(field(&got, "id"), ids[..1]);
    // Any offset is accepted.
    let got = h
        .search_items(
            &base,
            &format!(
                "events=org.target.create&from={}",
                enc(&time_fmt::format_micros(t + 4_000_000).replace('Z', "+00:00"))
            ),
        )
        .await;
    assert_eq!(field(&got, "id"), ids[4..]);

    // The default window starts at the beginning of yesterday (UTC).
    let yesterday = time_fmt::start_of_day(now_us()) - 24 * HOUR;
    let edge = fill(
        h,
        &base,
        "org.target.delete",
        "edge",
        yesterday - 1_000_000,
        2,
    )
    .await;
    let got = h.search_items(&base, "events=org.target.delete").await;
    assert_eq!(field(&got, "id"), edge[1..]);

    for (query, param) in [
        (q(t, t), "to"),
        (q(t + 1_000, t), "to"),
        ("from=yesterday".to_owned(), "from"),
        ("to=2024-01-01".to_owned(), "to"),
        (
            "from=2024-01-01T00:00:00Z&from=2024-01-02T00:00:00Z".to_owned(),
            "from",
        ),
    ] {
        let r = h.get(&format!("{base}/audit_logs/search?{query}")).await;
        r.error_at(400, "parameter", param);
    }
});

api_test!(filters_select_and_exclude, |h| async move {
    let base = org_base(h);
    let (bob, _) = h.new_member("bob@example.com").await;
    let t = now_us() - HOUR;
    let spec = [
        ("a-1", "org.project.add", Some("p1"), false),
        ("a-2", "org.project.add", Some("p2"), true),
        ("a-3", "org.project.delete", Some("p1"), true),
        ("a-4", "org.policy.create", None, false),
    ];
    let batch: Vec<Value> = spec
        .iter()
        .enumerate()
        .map(|(i, (idem, name, project, by_bob))| {
            let mut extra = json!({"created": at(t + i as i64)});
            if let Some(p) = project {
                extra["project_id"] = json!(p);
            }
            if *by_bob {
                extra["user_id"] = json!(bob.id);
            }
            event_with(idem, name, json!({"idem": idem}), extra)
        })
        .collect();
    h.ingest(&base, json!(batch)).await.expect(201);
    let idems = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|i| i["content"]["idem"].as_str().unwrap_or("-").to_owned())
            .collect()
    };
    let s = |q: &'static str| {
        let base = base.clone();
        async move { h.search_items(&base, &format!("sort_order=ASC&{q}")).await }
    };
    assert_eq!(idems(&s("events=org.project.add").await), ["a-1", "a-2"]);
    assert_eq!(
        idems(&s("events=org.project.add,org.policy.create").await),
        ["a-1", "a-2", "a-4"]
    );
    assert_eq!(
        idems(&s("events=org.project.add&events=org.project.delete").await),
        ["a-1", "a-2", "a-3"]
    );
    assert_eq!(
        idems(&s("events=org.project.add,%20org.policy.create,").await),
        ["a-1", "a-2", "a-4"]
    );
    assert_eq!(idems(&s("project_id=p1").await), ["a-1", "a-3"]);
    assert_eq!(
        idems(&s("project_id=p1&events=org.project.delete").await),
        ["a-3"]
    );
    let by_bob = h
        .search_items(&base, &format!("sort_order=ASC&user_id={}", bob.id))
        .await;
    assert_eq!(idems(&by_bob), ["a-2", "a-3"]);
    let by_owner = h
        .search_items(&base, &format!("sort_order=ASC&user_id={}", h.user.id))
        .await;
    assert_eq!(
        idems(&by_owner),
        ["a-1", "a-4", "-", "-"],
        "the owner's events, then org.create and bob's org.user.add (now)"
    );
    assert_eq!(
        idems(&s("exclude_events=org.project.add,org.create,org.user.add").await),
        ["a-3", "a-4"]
    );
    assert!(s("events=org.nothing.here").await.is_empty());
    assert!(s("project_id=p3").await.is_empty());

    let too_many = (0..51)
        .map(|i| format!("org.e{i}.x"))
        .collect::<Vec<_>>()
        .join(",");
    for (query, param) in [
        (
            "events=org.project.add&exclude_events=org.policy.create".to_owned(),
            "exclude_events",
        ),
        ("events=Org.Create".to_owned(), "events"),
        ("exclude_events=nope".to_owned(), "exclude_events"),
        (format!("events={too_many}"), "events"),
        ("user_id=bob".to_owned(), "user_id"),
        ("project_id=a%20b".to_owned(), "project_id"),
        ("size=0".to_owned(), "size"),
        ("size=101".to_owned(), "size"),
        ("size=ten".to_owned(), "size"),
        ("sort_order=up".to_owned(), "sort_order"),
        ("cursor=abc".to_owned(), "cursor"),
        ("limit=5".to_owned(), "limit"),
    ] {
        let r = h.get(&format!("{base}/audit_logs/search?{query}")).await;
        r.error_at(400, "parameter", param);
    }
});

api_test!(order_and_size, |h| async move {
    let base = org_base(h);
    let ids = fill(h, &base, "org.target.create", "o", now_us() - HOUR, 6).await;
    let mut desc = ids.clone();
    desc.reverse();
    for (q, want) in [
        ("sort_order=ASC", &ids),
        ("sort_order=asc", &ids),
        ("sort_order=DESC", &desc),
        ("", &desc),
    ] {
        let got = h
            .search_items(&base, &format!("events=org.target.create&{q}"))
            .await;
        assert_eq!(&field(&got, "id"), want, "{q}");
    }
    let page = h.search(&base, "events=org.target.create&size=4").await;
    assert_eq!(field(&items(&page), "id"), desc[..4]);
    assert!(page.body["links"]["next"].is_string());
    let page = h.search(&base, "events=org.target.create&size=6").await;
    assert_eq!(items(&page).len(), 6);
    assert!(
        page.body["links"].get("next").is_none(),
        "an exactly full last page has no next"
    );
    let page = h.search(&base, "events=org.target.create&size=100").await;
    assert_eq!(items(&page).len(), 6);
});

api_test!(the_cursor_walks_every_item_exactly_once, |h| async move {
    let base = org_base(h);
    let t = now_us() - 2 * HOUR;
    // Pairs with equal times, ingested out of time order.
    let mut all = Vec::new();
    for (k, offset) in [3, 0, 2, 1, 4, 0, 3].into_iter().enumerate() {
        let r = h
            .ingest(
                &base,
                json!([
                    event_with(
                        &format!("c-{k}-a"),
                        "org.target.create",
                        json!({}),
                        json!({"created": at(t + offset * 1_000_000)})
                    ),
                    event_with(
                        &format!("c-{k}-b"),
                        "org.target.create",
                        json!({}),
                        json!({"created": at(t + offset * 1_000_000)})
                    ),
                ]),
            )
            .await;
        r.expect(201);
        for o in r.body["data"].as_array().unwrap() {
            all.push((
                o["attributes"]["created"].as_str().unwrap().to_owned(),
                all.len(),
                o["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    all.sort();
    let asc: Vec<String> = all.iter().map(|(_, _, id)| id.clone()).collect();
    let mut desc = asc.clone();
    desc.reverse();
    for (order, want) in [("ASC", &asc), ("DESC", &desc)] {
        for size in [1, 3, 5, 14, 100] {
            let q = format!("events=org.target.create&sort_order={order}&size={size}");
            let mut r = h.search(&base, &q).await;
            let mut got = field(&items(&r), "id");
            let mut pages = 1;
            while let Some(next) = r.body["links"]["next"].as_str() {
                assert!(
                    next.starts_with(&format!("{base}/audit_logs/search?")),
                    "{next}"
                );
                assert!(
                    next.contains("events=org.target.create")
                        && next.contains(&format!("size={size}")),
                    "{next}"
                );
                assert_eq!(items(&r).len(), size, "only the last page is short");
                r = h.get(next).await;
                r.expect(200);
                got.extend(field(&items(&r), "id"));
                pages += 1;
            }
            assert_eq!(&got, want, "{order} size {size}");
            assert_eq!(pages, want.len().div_ceil(size), "{order} size {size}");
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
        }
    }
});

api_test!(concurrent_ingests_do_not_disturb_a_walk, |h| async move {
    let base = org_base(h);
    let t = now_us() - 3 * HOUR;
    let before = fill(h, &base, "org.target.create", "pre", t, 30).await;
    let mut want = before.clone();
    want.reverse();

    let first = h.search(&base, "events=org.target.create&size=4").await;
    let mut got = field(&items(&first), "id");
    let reader = async {
        let mut r = first;
        while let Some(next) = r.body["links"]["next"].as_str().map(str::to_owned) {
            r = h.get(&next).await;
            r.expect(200);
            got.extend(field(&items(&r), "id"));
        }
    };
    // Writers add events inside the window, before, between and after the
    // items being read, on their own connections.
    let writer = |k: i64| {
        let api: &Api = h;
        let base = base.clone();
        async move {
            for round in 0..5 {
                let batch: Vec<Value> = (0..4)
                    .map(|i| {
                        event_with(
                            &format!("during-{k}-{round}-{i}"),
                            "org.target.create",
                            json!({}),
                            json!({"created": at(t - 1_000_000 + (round * 4 + i) * 2_000_000 + k)}),
                        )
                    })
                    .collect();
                api.ingest(&base, json!(batch)).await.expect(201);
            }
        }
    };
    tokio::join!(reader, writer(0), writer(1), writer(2));
    assert_eq!(
        got, want,
        "the walk saw exactly the events that existed when it began"
    );

    // A new search sees everything.
    let now_all = h
        .search_all(&base, "events=org.target.create&size=100")
        .await;
    assert_eq!(now_all.len(), 30 + 3 * 5 * 4);
});

api_test!(
    group_search_holds_the_group_and_its_orgs_only,
    |h| async move {
        let gbase = format!("/rest/groups/{}", h.group.id);
        let t = now_us() - HOUR;
        let solo = h.standalone_org("Solo").await;
        let solo_base = format!("/rest/orgs/{}", solo.id);
        let in_group = h
        .post("/rest/orgs", &json!({"data": {"type": "org", "attributes": {"name": "Second", "group_id": h.group.id}}}))
        .await;
        in_group.expect(201);
        let second = format!(
            "/rest/orgs/{}",
            in_group.body["data"]["id"].as_str().unwrap()
        );

        let g = fill(h, &gbase, "group.policy.create", "g", t, 2).await;
        let o1 = fill(
            h,
            &org_base(h),
            "org.policy.create",
            "o1",
            t + 10_000_000,
            2,
        )
        .await;
        let o2 = fill(h, &second, "org.policy.create", "o2", t + 20_000_000, 2).await;
        let s_before = fill(h, &solo_base, "org.policy.create", "s", t + 30_000_000, 2).await;

        let q = "events=group.policy.create,org.policy.create&sort_order=ASC";
        let got = field(&h.search_items(&gbase, q).await, "id");
        assert_eq!(got, [g.clone(), o1.clone(), o2.clone()].concat());
        // An org's search holds only the org's.
        assert_eq!(field(&h.search_items(&org_base(h), q).await, "id"), o1);
        assert_eq!(field(&h.search_items(&solo_base, q).await, "id"), s_before);

        // Once the standalone org joins, its new events are the group's too;
        // the old ones stay where they were (the group at the time).
        h.post(
            &format!("{gbase}/orgs"),
            &json!({"data": {"type": "org", "id": solo.id}}),
        )
        .await
        .expect(201);
        let s_after = fill(h, &solo_base, "org.policy.create", "s2", t + 40_000_000, 1).await;
        let got = field(&h.search_items(&gbase, q).await, "id");
        assert_eq!(got, [g, o1, o2, s_after.clone()].concat());
        assert_eq!(
            field(&h.search_items(&solo_base, q).await, "id"),
            [s_before, s_after].concat()
        );
    }
);
