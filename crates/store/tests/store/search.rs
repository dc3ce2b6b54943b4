//! Audit-log search: scopes, bounds, filters, order, cursor and offset
//! paging, and the stability of a cursor while the log grows.

use std::collections::HashSet;

use auditlake_core::Org;
use auditlake_store::{store_test, SearchCursor, SearchQuery, SortOrder};

use super::*;

/// A search of `scope` over `[from, to)`.
fn query(scope: Scope, from_us: i64, to_us: i64, size: u32) -> SearchQuery {
    SearchQuery {
        scope: Some(scope),
        from_us,
        to_us,
        size,
        ..SearchQuery::default()
    }
}

/// All results of `q`, page by page through the opaque cursor. Checks that
/// no page is larger than asked, that only the last page lacks a cursor,
/// and that no event comes twice.
async fn walk(store: &Store, mut q: SearchQuery) -> (Vec<AuditEvent>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.search(&q).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= q.size as usize);
        all.extend(page.items.iter().cloned());
        match page.next {
            Some(c) => {
                assert_eq!(
                    page.items.len(),
                    q.size as usize,
                    "only the last page is short"
                );
                let opaque = c.encode();
                q.cursor = Some(SearchCursor::decode(&opaque).expect("cursor round-trips"));
            }
            None => break,
        }
        assert!(pages < 10_000, "paging does not end");
    }
    let unique: HashSet<Uuid> = all.iter().map(|e| e.id).collect();
    assert_eq!(unique.len(), all.len(), "an event came twice");
    (all, pages)
}

/// Events of `log` that `keep` selects, in the order a search returns them.
fn expected(log: &[AuditEvent], sort: SortOrder, keep: impl Fn(&AuditEvent) -> bool) -> Vec<Uuid> {
    let mut v: Vec<&AuditEvent> = log.iter().filter(|e| keep(e)).collect();
    v.sort_by_key(|e| (e.created_us, e.seq));
    if sort == SortOrder::Desc {
        v.reverse();
    }
    v.iter().map(|e| e.id).collect()
}

async fn org(store: &Store, u: &User, name: &str, group: Option<Uuid>) -> Org {
    store.create_org(name, group, &actor(u)).await.unwrap()
}

/// Appends `n` events to `org` in `[T0, T0 + 5)` with many equal times and
/// times out of append order.
async fn fill(store: &Store, org: Uuid, n: usize) -> Vec<AuditEvent> {
    let batch: Vec<_> = (0..n)
        .map(|i| {
            event_at(
                "project.scan.run",
                Scope::Org(org),
                T0 + ((i * 7) % 5) as i64,
            )
        })
        .collect();
    store.append(&batch).await.unwrap()
}

store_test!(org_and_group_scopes, |store| async move {
    let u = new_user(&store, "s@example.com").await;
    let g = store.create_group("G", &actor(&u)).await.unwrap();
    let other_g = store.create_group("Other", &actor(&u)).await.unwrap();
    let a = org(&store, &u, "A", None).await;
    let b = org(&store, &u, "B", Some(g.id)).await;
    let c = org(&store, &u, "C", None).await;
    let x = org(&store, &u, "X", Some(other_g.id)).await;

    let a1 = append_one(&store, event_at("e.one", Scope::Org(a.id), T0 + 1)).await;
    let a2 = append_one(&store, event_at("e.two", Scope::Org(a.id), T0 + 2)).await;
    let b1 = append_one(&store, event_at("e.one", Scope::Org(b.id), T0 + 3)).await;
    let g1 = append_one(&store, event_at("e.group", Scope::Group(g.id), T0 + 4)).await;
    let c1 = append_one(&store, event_at("e.one", Scope::Org(c.id), T0 + 5)).await;
    append_one(&store, event_at("e.user", Scope::User, T0 + 6)).await;
    append_one(&store, event_at("e.one", Scope::Org(x.id), T0 + 6)).await;
    append_one(
        &store,
        event_at("e.group", Scope::Group(other_g.id), T0 + 6),
    )
    .await;
    store
        .add_org_to_group(g.id, c.id, &actor(&u))
        .await
        .unwrap();
    let c2 = append_one(&store, event_at("e.two", Scope::Org(c.id), T0 + 7)).await;

    let window = |scope| query(scope, T0, T0 + 100, 50);
    let asc = |mut q: SearchQuery| {
        q.sort = SortOrder::Asc;
        q
    };
    let run = |q: SearchQuery| {
        let store = store.clone();
        async move { ids(&store.search(&q).await.unwrap().items) }
    };

    assert_eq!(run(asc(window(Scope::Org(a.id)))).await, ids(&[a1, a2]));
    assert_eq!(
        run(asc(window(Scope::Org(b.id)))).await,
        ids(std::slice::from_ref(&b1))
    );
    assert_eq!(
        run(asc(window(Scope::Org(c.id)))).await,
        ids(&[c1, c2.clone()]),
        "an org's own search spans its move"
    );
    // The group sees its own events and its orgs' events from the time they
    // belonged to it; not the standalone org, not another group's.
    assert_eq!(
        run(asc(window(Scope::Group(g.id)))).await,
        ids(&[b1, g1, c2])
    );
    assert!(run(window(Scope::Org(Uuid::now_v7()))).await.is_empty());

    // Over all time, the group search is exactly the events carrying the group.
    let log = full_log(&store).await;
    let all_time = query(Scope::Group(g.id), 0, i64::MAX, 1000);
    let got: HashSet<Uuid> = run(all_time).await.into_iter().collect();
    let want: HashSet<Uuid> = log
        .iter()
        .filter(|e| e.group_id == Some(g.id))
        .map(|e| e.id)
        .collect();
    assert_eq!(got, want);
    let got_names: HashSet<&str> = log
        .iter()
        .filter(|e| got.contains(&e.id))
        .map(|e| e.event.as_str())
        .collect();
    for n in [
        "group.create",
        "group.user.add",
        "org.create",
        "group.org.add",
        "e.group",
    ] {
        assert!(got_names.contains(n), "{n} missing from the group search");
    }
    let a_create = log
        .iter()
        .find(|e| e.event == "org.create" && e.org_id == Some(a.id))
        .unwrap();
    assert!(!got.contains(&a_create.id));

    // A search needs a tenant.
    assert_invalid(store.search(&query(Scope::User, T0, T0 + 100, 10)).await);
    assert_invalid(
        store
            .search(&SearchQuery {
                scope: None,
                ..query(Scope::User, T0, T0 + 100, 10)
            })
            .await,
    );
});

store_test!(
    time_bounds_are_from_inclusive_to_exclusive,
    |store| async move {
        let u = new_user(&store, "s@example.com").await;
        let a = org(&store, &u, "A", None).await;
        let mut at = Vec::new();
        for t in [T0 - 1, T0, T0 + 5, T0 + 10, T0 + 11] {
            at.push(append_one(&store, event_at("e.at", Scope::Org(a.id), t)).await);
        }
        let run = |from, to| {
            let store = store.clone();
            async move {
                let mut q = query(Scope::Org(a.id), from, to, 100);
                q.sort = SortOrder::Asc;
                store
                    .search(&q)
                    .await
                    .unwrap()
                    .items
                    .iter()
                    .map(|e| e.created_us)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(run(T0, T0 + 10).await, [T0, T0 + 5]);
        assert_eq!(run(T0 + 10, T0 + 11).await, [T0 + 10]);
        assert_eq!(
            run(T0 - 1, T0 + 12).await,
            [T0 - 1, T0, T0 + 5, T0 + 10, T0 + 11]
        );
        assert_eq!(run(T0 + 1, T0 + 5).await, Vec::<i64>::new());
        assert_eq!(run(T0, T0).await, Vec::<i64>::new());
        assert_eq!(run(T0 + 11, T0).await, Vec::<i64>::new());
    }
);

store_test!(user_project_and_event_filters, |store| async move {
    let u1 = new_user(&store, "u1@example.com").await;
    let u2 = new_user(&store, "u2@example.com").await;
    let a = org(&store, &u1, "A", None).await;
    let mut batch = Vec::new();
    for (i, (user, project, name)) in [
        (Some(u1.id), Some("p1"), "e.create"),
        (Some(u1.id), Some("p2"), "e.delete"),
        (Some(u2.id), Some("p1"), "e.create"),
        (Some(u2.id), None, "api.access"),
        (None, Some("p1"), "e.edit"),
        (Some(u1.id), Some("p1"), "api.access"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event_at(name, Scope::Org(a.id), T0 + i as i64);
        e.user_id = user;
        e.project_id = project.map(str::to_owned);
        batch.push(e);
    }
    store.append(&batch).await.unwrap();
    let log: Vec<AuditEvent> = full_log(&store)
        .await
        .into_iter()
        .filter(|e| e.created_us >= T0 && e.created_us < T0 + 100)
        .collect();
    assert_eq!(log.len(), 6);
    let base = || {
        let mut q = query(Scope::Org(a.id), T0, T0 + 100, 100);
        q.sort = SortOrder::Asc;
        q
    };
    let run = |q: SearchQuery| {
        let store = store.clone();
        async move { ids(&store.search(&q).await.unwrap().items) }
    };
    let want = |keep: &dyn Fn(&AuditEvent) -> bool| expected(&log, SortOrder::Asc, keep);

    let q = SearchQuery {
        user_id: Some(u1.id),
        ..base()
    };
    assert_eq!(run(q).await, want(&|e| e.user_id == Some(u1.id)));
    let q = SearchQuery {
        project_id: Some("p1".into()),
        ..base()
    };
    assert_eq!(
        run(q).await,
        want(&|e| e.project_id.as_deref() == Some("p1"))
    );
    let q = SearchQuery {
        user_id: Some(u2.id),
        project_id: Some("p1".into()),
        ..base()
    };
    assert_eq!(
        run(q).await,
        want(&|e| e.user_id == Some(u2.id) && e.project_id.as_deref() == Some("p1"))
    );
    let q = SearchQuery {
        user_id: Some(Uuid::now_v7()),
        ..base()
    };
    assert!(run(q).await.is_empty());

    let q = SearchQuery {
        events: vec!["e.create".into(), "e.edit".into()],
        ..base()
    };
    assert_eq!(
        run(q).await,
        want(&|e| e.event == "e.create" || e.event == "e.edit")
    );
    let q = SearchQuery {
        exclude_events: vec!["api.access".into()],
        ..base()
    };
    assert_eq!(run(q).await, want(&|e| e.event != "api.access"));
    let q = SearchQuery {
        exclude_events: vec!["api.access".into(), "e.create".into()],
        ..base()
    };
    assert_eq!(
        run(q).await,
        want(&|e| e.event == "e.delete" || e.event == "e.edit")
    );
    let q = SearchQuery {
        events: vec!["e.create".into(), "api.access".into()],
        exclude_events: vec!["api.access".into()],
        user_id: Some(u1.id),
        ..base()
    };
    assert_eq!(
        run(q).await,
        want(&|e| e.event == "e.create" && e.user_id == Some(u1.id))
    );
    let q = SearchQuery {
        events: vec!["no.such".into()],
        ..base()
    };
    assert!(run(q).await.is_empty());
});

store_test!(
    sql_metacharacters_in_filters_match_nothing,
    |store| async move {
        let u = new_user(&store, "s@example.com").await;
        let a = org(&store, &u, "A", None).await;
        let mut e = event_at("e.one", Scope::Org(a.id), T0);
        e.project_id = Some("p1".into());
        let mut quoted = event_at("e.two", Scope::Org(a.id), T0 + 1);
        quoted.project_id = Some("it's".into());
        store.append(&[e, quoted.clone()]).await.unwrap();
        let base = || query(Scope::Org(a.id), T0, T0 + 100, 100);
        let run = |q: SearchQuery| {
            let store = store.clone();
            async move {
                store
                    .search(&q)
                    .await
                    .expect("metacharacters are plain data")
                    .items
            }
        };

        for evil in [
            "x' OR '1'='1",
            "x\" OR \"1\"=\"1",
            "p1' --",
            "'; DROP TABLE audit_events; --",
            "%",
            "p_",
            "$1",
            "?",
            "\\",
        ] {
            let q = SearchQuery {
                project_id: Some(evil.into()),
                ..base()
            };
            assert!(run(q).await.is_empty(), "project_id {evil:?}");
            let q = SearchQuery {
                events: vec![evil.into()],
                ..base()
            };
            assert!(run(q).await.is_empty(), "events {evil:?}");
            let q = SearchQuery {
                exclude_events: vec![evil.into()],
                ..base()
            };
            assert_eq!(run(q).await.len(), 2, "exclude_events {evil:?}");
        }
        // A quote in stored data is matched literally.
        let q = SearchQuery {
            project_id: Some("it's".into()),
            ..base()
        };
        assert_eq!(ids(&run(q).await), vec![quoted.id]);
        // The table is still there.
        assert_eq!(run(base()).await.len(), 2);
        assert!(store.head().await.unwrap() >= 4);
    }
);

store_test!(results_are_ordered_by_time_then_seq, |store| async move {
    let u = new_user(&store, "s@example.com").await;
    let a = org(&store, &u, "A", None).await;
    // Appended out of time order, with ties.
    let mut appended = Vec::new();
    for dt in [5, 1, 3, 1, 5, 2, 1, 0, 5] {
        appended.push(append_one(&store, event_at("e.one", Scope::Org(a.id), T0 + dt)).await);
    }
    let mut q = query(Scope::Org(a.id), T0, T0 + 100, 100);
    q.sort = SortOrder::Asc;
    let asc = store.search(&q).await.unwrap();
    assert!(asc.next.is_none());
    let keys: Vec<(i64, i64)> = asc.items.iter().map(|e| (e.created_us, e.seq)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(
        ids(&asc.items),
        expected(&appended, SortOrder::Asc, |_| true)
    );

    q.sort = SortOrder::Desc;
    let desc = store.search(&q).await.unwrap();
    let mut rev = ids(&asc.items);
    rev.reverse();
    assert_eq!(ids(&desc.items), rev);
    // Desc is the default.
    let default = store
        .search(&query(Scope::Org(a.id), T0, T0 + 100, 100))
        .await
        .unwrap();
    assert_eq!(ids(&default.items), rev);
});

store_test!(cursor_paging_visits_every_item_once, |store| async move {
    let u = new_user(&store, "s@example.com").await;
    let a = org(&store, &u, "A", None).await;
    let b = org(&store, &u, "B", None).await;
    let stored = fill(&store, a.id, 23).await;
    fill(&store, b.id, 5).await;

    for sort in [SortOrder::Asc, SortOrder::Desc] {
        let want = expected(&stored, sort, |_| true);
        for size in [1u32, 4, 5, 22, 23, 24, 100] {
            let mut q = query(Scope::Org(a.id), T0, T0 + 100, size);
            q.sort = sort;
            let (got, pages) = walk(&store, q).await;
            assert_eq!(ids(&got), want, "{sort:?} size {size}");
            assert_eq!(
                pages,
                23usize.div_ceil(size as usize),
                "{sort:?} size {size}"
            );
        }
    }

    // A page that ends exactly on the last item has no next cursor.
    let page = store
        .search(&query(Scope::Org(a.id), T0, T0 + 100, 23))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 23);
    assert!(page.next.is_none());
    let page = store
        .search(&query(Scope::Org(a.id), T0, T0 + 100, 22))
        .await
        .unwrap();
    assert!(page.next.is_some());
});

store_test!(
    a_cursor_keeps_its_result_set_while_the_log_grows,
    |store| async move {
        let u = new_user(&store, "s@example.com").await;
        for sort in [SortOrder::Asc, SortOrder::Desc] {
            let a = org(&store, &u, &format!("{sort:?}"), None).await;
            let stored = fill(&store, a.id, 20).await;
            let want = expected(&stored, sort, |_| true);
            let mut q = query(Scope::Org(a.id), T0, T0 + 100, 6);
            q.sort = sort;
            let first = store.search(&q).await.unwrap();
            assert_eq!(ids(&first.items), want[..6].to_vec());
            let cursor = first.next.expect("more pages");

            // New events inside the window: back-dated before everything, tied
            // with the cursor's position, between items, and at the end.
            let last = first.items.last().unwrap().created_us;
            let mut late = Vec::new();
            for t in [T0, T0 + 1, last, last, T0 + 2, T0 + 4, T0 + 50, T0 + 99] {
                late.push(event_at("late.arrival", Scope::Org(a.id), t));
            }
            store.append(&late).await.unwrap();

            let mut rest = q.clone();
            rest.cursor = Some(cursor);
            let (tail, _) = walk(&store, rest).await;
            let mut got = ids(&first.items);
            got.extend(ids(&tail));
            assert_eq!(
                got, want,
                "{sort:?}: the cursor sees exactly the original results"
            );

            // A new search does see the late events.
            let (fresh, _) = walk(&store, q.clone()).await;
            assert!(fresh.len() >= want.len() + late.len());
        }
    }
);

store_test!(offset_paging, |store| async move {
    let u = new_user(&store, "s@example.com").await;
    let a = org(&store, &u, "A", None).await;
    let stored = fill(&store, a.id, 18).await;

    for sort in [SortOrder::Asc, SortOrder::Desc] {
        let want = expected(&stored, sort, |_| true);
        let mut got = Vec::new();
        for page in 0..4u64 {
            let mut q = query(Scope::Org(a.id), T0, T0 + 100, 5);
            q.sort = sort;
            q.offset = page * 5;
            let p = store.search(&q).await.unwrap();
            let from = (page * 5) as usize;
            let to = (from + 5).min(want.len());
            assert_eq!(
                ids(&p.items),
                want[from..to].to_vec(),
                "{sort:?} page {page}"
            );
            assert_eq!(p.next.is_some(), to < want.len(), "{sort:?} page {page}");
            got.extend(ids(&p.items));
        }
        assert_eq!(got, want);

        let mut q = query(Scope::Org(a.id), T0, T0 + 100, 5);
        q.sort = sort;
        q.offset = 18;
        let p = store.search(&q).await.unwrap();
        assert!(p.items.is_empty() && p.next.is_none());
        q.offset = 1_000;
        assert!(store.search(&q).await.unwrap().items.is_empty());
    }
});
