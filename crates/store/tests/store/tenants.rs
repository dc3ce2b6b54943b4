//! Users, groups, orgs, settings, memberships and access: each change and
//! the audit event written with it.

use auditlake_core::{Org, Role};
use auditlake_store::{store_test, Page};
use serde_json::{json, Map};

use super::*;

fn settings(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

// ---- users ----

store_test!(create_user_then_look_it_up, |store| async move {
    let u = store
        .create_user("Alice@Example.COM", "Alice")
        .await
        .unwrap();
    assert_eq!(u.email, "alice@example.com", "emails are stored lower-case");
    assert_eq!(u.name, "Alice");

    assert_eq!(store.user(u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        store.user_by_email("alice@example.com").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        store.user_by_email("ALICE@example.Com").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(store.user(Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);

    let log = full_log(&store).await;
    assert_eq!(names(&log), ["user.create"]);
    let e = &log[0];
    assert_eq!(e.seq, 1);
    assert_eq!(e.user_id, Some(u.id));
    assert_eq!((e.org_id, e.group_id), (None, None));
    assert_eq!(
        content(e),
        json!({"userPublicId": u.id, "email": "alice@example.com"})
    );
});

store_test!(
    duplicate_email_is_a_conflict_whatever_the_case,
    |store| async move {
        let u = new_user(&store, "alice@example.com").await;
        let head = store.head().await.unwrap();

        assert_conflict(store.create_user("alice@example.com", "Again").await);
        assert_conflict(store.create_user("ALICE@Example.com", "Shouting").await);

        assert_eq!(
            store.head().await.unwrap(),
            head,
            "a refused user writes no event"
        );
        assert_eq!(
            store.user_by_email("alice@example.com").await.unwrap(),
            Some(u)
        );
        // The store still works after the refused transactions.
        new_user(&store, "bob@example.com").await;
    }
);

store_test!(
    concurrent_signups_with_one_email_make_one_user,
    |store| async move {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .create_user("race@example.com", &format!("r{i}"))
                        .await
                })
            })
            .collect();
        let (mut ok, mut conflicts) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Conflict(_)) => conflicts += 1,
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!((ok, conflicts), (1, 7));
        assert_eq!(names(&full_log(&store).await), ["user.create"]);
    }
);

store_test!(
    user_text_with_sql_metacharacters_round_trips,
    |store| async move {
        let name = "Robert'); DROP TABLE users; --";
        let u = store
            .create_user("o'brien@example.com", name)
            .await
            .unwrap();
        let back = store.user_by_email("O'Brien@example.com").await.unwrap();
        assert_eq!(back, Some(u.clone()));
        assert_eq!(u.name, name);
        new_user(&store, "still-works@example.com").await;
    }
);

// ---- groups ----

store_test!(
    create_group_makes_the_creator_group_admin,
    |store| async move {
        let u = new_user(&store, "g@example.com").await;
        let start = store.head().await.unwrap();

        let g = store.create_group("Acme", &actor(&u)).await.unwrap();
        assert_eq!(g.name, "Acme");
        assert_eq!(store.group(g.id).await.unwrap(), Some(g.clone()));
        assert_eq!(store.group(Uuid::now_v7()).await.unwrap(), None);

        let evs = log_after(&store, start).await;
        assert_eq!(names(&evs), ["group.create", "group.user.add"]);
        for e in &evs {
            assert_eq!(e.group_id, Some(g.id), "{}", e.event);
            assert_eq!(e.org_id, None, "{}", e.event);
            assert_eq!(e.user_id, Some(u.id), "{}", e.event);
        }
        assert_eq!(
            content(&evs[0]),
            json!({"groupPublicId": g.id, "name": "Acme"})
        );
        let add = content(&evs[1]);
        assert_eq!(add["role"], "group_admin");
        assert_eq!(add["userPublicId"], json!(u.id));

        let access = store.access(u.id).await.unwrap();
        assert_eq!(access.group_admin, vec![g.id]);
        assert!(access.org_roles.is_empty());

        let members = store
            .members(Scope::Group(g.id), Page::default())
            .await
            .unwrap();
        assert_eq!(members.items.len(), 1);
        let m = &members.items[0];
        assert_eq!((m.user_id, m.role), (u.id, Role::GroupAdmin));
        assert_eq!(add["membershipPublicId"], json!(m.id));

        let groups = store.groups_of(u.id, Page::default()).await.unwrap();
        assert_eq!(groups.items, vec![g]);
    }
);

store_test!(
    create_group_without_a_user_grants_nothing,
    |store| async move {
        let g = store
            .create_group("Robots", &Actor::default())
            .await
            .unwrap();
        let log = full_log(&store).await;
        assert_eq!(names(&log), ["group.create"]);
        assert_eq!(log[0].user_id, None);
        assert_eq!(log[0].group_id, Some(g.id));
        let members = store
            .members(Scope::Group(g.id), Page::default())
            .await
            .unwrap();
        assert!(members.items.is_empty());
    }
);

// ---- orgs ----

store_test!(
    standalone_org_makes_the_creator_org_admin,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let start = store.head().await.unwrap();

        let o = store.create_org("My Org!", None, &actor(&u)).await.unwrap();
        assert_eq!(o.group_id, None);
        assert!(o.slug.starts_with("my-org-"), "{}", o.slug);
        assert!(o.settings.is_empty());
        assert_eq!(store.org(o.id).await.unwrap(), Some(o.clone()));

        let evs = log_after(&store, start).await;
        assert_eq!(names(&evs), ["org.create", "org.user.add"]);
        for e in &evs {
            assert_eq!(e.org_id, Some(o.id), "{}", e.event);
            assert_eq!(e.group_id, None, "{}", e.event);
            assert_eq!(e.user_id, Some(u.id), "{}", e.event);
        }
        assert_eq!(
            content(&evs[0]),
            json!({"orgPublicId": o.id, "name": "My Org!", "slug": o.slug, "groupPublicId": null})
        );
        let add = content(&evs[1]);
        assert_eq!(add["role"], "org_admin");
        assert_eq!(add["userPublicId"], json!(u.id));

        let access = store.access(u.id).await.unwrap();
        assert_eq!(access.org_roles.get(&o.id), Some(&Role::OrgAdmin));
        assert!(access.can_admin_org(&o));
        assert_eq!(
            store.orgs_of(u.id, Page::default()).await.unwrap().items,
            vec![o]
        );
    }
);

store_test!(
    org_created_in_a_group_carries_the_group,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let start = store.head().await.unwrap();

        let o = store
            .create_org("Inside", Some(g.id), &actor(&u))
            .await
            .unwrap();
        assert_eq!(o.group_id, Some(g.id));
        assert_eq!(store.org(o.id).await.unwrap().unwrap().group_id, Some(g.id));

        let evs = log_after(&store, start).await;
        assert_eq!(
            names(&evs),
            ["org.create"],
            "group admins get no org membership"
        );
        assert_eq!(evs[0].org_id, Some(o.id));
        assert_eq!(evs[0].group_id, Some(g.id));
        assert_eq!(content(&evs[0])["groupPublicId"], json!(g.id));

        let members = store
            .members(Scope::Org(o.id), Page::default())
            .await
            .unwrap();
        assert!(members.items.is_empty());
        // The group admin administers it through the group.
        let access = store.access(u.id).await.unwrap();
        assert!(access.can_admin_org(&o));
        assert_eq!(
            store.group_orgs(g.id, Page::default()).await.unwrap().items,
            vec![o.clone()]
        );
        assert_eq!(
            store.orgs_of(u.id, Page::default()).await.unwrap().items,
            vec![o]
        );
    }
);

store_test!(org_in_an_unknown_group_is_not_found, |store| async move {
    let u = new_user(&store, "o@example.com").await;
    let head = store.head().await.unwrap();
    assert_not_found(
        store
            .create_org("Lost", Some(Uuid::now_v7()), &actor(&u))
            .await,
    );
    assert_eq!(store.head().await.unwrap(), head);
    assert!(store
        .orgs_of(u.id, Page::default())
        .await
        .unwrap()
        .items
        .is_empty());
});

store_test!(
    org_events_carry_the_parent_group_at_the_time_of_the_event,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let o = store.create_org("Mover", None, &actor(&u)).await.unwrap();
        append_one(&store, event_at("project.scan.run", Scope::Org(o.id), T0)).await;

        let moved = store
            .add_org_to_group(g.id, o.id, &actor(&u))
            .await
            .unwrap();
        assert_eq!(moved.group_id, Some(g.id));
        assert_eq!(moved.id, o.id);
        assert_eq!(store.org(o.id).await.unwrap().unwrap().group_id, Some(g.id));

        let add = full_log(&store).await.pop().unwrap();
        assert_eq!(add.event, "group.org.add");
        assert_eq!(add.org_id, None);
        assert_eq!(add.group_id, Some(g.id));
        assert_eq!(add.user_id, Some(u.id));
        assert_eq!(
            content(&add),
            json!({"orgPublicId": o.id, "orgName": "Mover"})
        );

        append_one(&store, event_at("project.scan.run", Scope::Org(o.id), T0)).await;
        store
            .update_org(o.id, Some("Moved"), None, &actor(&u))
            .await
            .unwrap();

        let org_events: Vec<_> = full_log(&store)
            .await
            .into_iter()
            .filter(|e| e.org_id == Some(o.id))
            .collect();
        let (earlier, later): (Vec<_>, Vec<_>) = org_events.iter().partition(|e| e.seq < add.seq);
        assert_eq!(
            names(&earlier.iter().map(|e| (*e).clone()).collect::<Vec<_>>()),
            ["org.create", "org.user.add", "project.scan.run"]
        );
        assert_eq!(
            names(&later.iter().map(|e| (*e).clone()).collect::<Vec<_>>()),
            ["project.scan.run", "org.edit"]
        );
        for e in earlier {
            assert_eq!(
                e.group_id, None,
                "seq {} ({}) predates the move",
                e.seq, e.event
            );
        }
        for e in later {
            assert_eq!(
                e.group_id,
                Some(g.id),
                "seq {} ({}) follows the move",
                e.seq,
                e.event
            );
        }
    }
);

store_test!(
    adding_an_org_already_in_a_group_is_a_conflict,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let g1 = store.create_group("G1", &actor(&u)).await.unwrap();
        let g2 = store.create_group("G2", &actor(&u)).await.unwrap();
        let moved = store.create_org("Moved", None, &actor(&u)).await.unwrap();
        store
            .add_org_to_group(g1.id, moved.id, &actor(&u))
            .await
            .unwrap();
        let born = store
            .create_org("Born", Some(g1.id), &actor(&u))
            .await
            .unwrap();
        let head = store.head().await.unwrap();

        assert_conflict(store.add_org_to_group(g1.id, moved.id, &actor(&u)).await);
        assert_conflict(store.add_org_to_group(g2.id, moved.id, &actor(&u)).await);
        assert_conflict(store.add_org_to_group(g2.id, born.id, &actor(&u)).await);

        assert_eq!(store.head().await.unwrap(), head, "refusals write no event");
        assert_eq!(
            store.org(moved.id).await.unwrap().unwrap().group_id,
            Some(g1.id)
        );
        assert_eq!(
            store.org(born.id).await.unwrap().unwrap().group_id,
            Some(g1.id)
        );
    }
);

store_test!(
    adding_unknown_orgs_or_to_unknown_groups_is_not_found,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let o = store.create_org("Alone", None, &actor(&u)).await.unwrap();
        let head = store.head().await.unwrap();

        assert_not_found(
            store
                .add_org_to_group(g.id, Uuid::now_v7(), &actor(&u))
                .await,
        );
        assert_not_found(
            store
                .add_org_to_group(Uuid::now_v7(), o.id, &actor(&u))
                .await,
        );

        assert_eq!(store.head().await.unwrap(), head);
        assert_eq!(store.org(o.id).await.unwrap().unwrap().group_id, None);
        // Still movable into a real group afterwards.
        store
            .add_org_to_group(g.id, o.id, &actor(&u))
            .await
            .unwrap();
    }
);

store_test!(
    concurrent_moves_of_one_org_let_exactly_one_win,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let mut groups = Vec::new();
        for i in 0..12 {
            groups.push(
                store
                    .create_group(&format!("G{i}"), &actor(&u))
                    .await
                    .unwrap(),
            );
        }
        // Several rounds, each a fresh org contested by every group at once.
        for round in 0..4 {
            let o = store
                .create_org(&format!("Contested {round}"), None, &actor(&u))
                .await
                .unwrap();
            let start = store.head().await.unwrap();

            let go = std::sync::Arc::new(tokio::sync::Barrier::new(groups.len()));
            let tasks: Vec<_> = groups
                .iter()
                .map(|g| {
                    let (store, gid, a, go) = (store.clone(), g.id, actor(&u), go.clone());
                    tokio::spawn(async move {
                        go.wait().await;
                        store.add_org_to_group(gid, o.id, &a).await
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for t in tasks {
                match t.await.unwrap() {
                    Ok(org) => winners.push(org.group_id.unwrap()),
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => panic!("unexpected error {e:?}"),
                }
            }
            assert_eq!(winners.len(), 1, "round {round}: exactly one move succeeds");
            let evs = log_after(&store, start).await;
            assert_eq!(names(&evs), ["group.org.add"], "round {round}");
            assert_eq!(evs[0].group_id, Some(winners[0]));
            assert_eq!(
                store.org(o.id).await.unwrap().unwrap().group_id,
                Some(winners[0])
            );
        }
    }
);

// ---- update_org ----

store_test!(
    rename_writes_org_edit_with_before_and_after,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let o = store.create_org("Old", None, &actor(&u)).await.unwrap();
        let start = store.head().await.unwrap();

        let renamed = store
            .update_org(o.id, Some("New"), None, &actor(&u))
            .await
            .unwrap();
        assert_eq!(renamed.name, "New");
        assert_eq!(renamed.slug, o.slug, "renaming keeps the slug");
        assert_eq!(store.org(o.id).await.unwrap(), Some(renamed.clone()));

        let evs = log_after(&store, start).await;
        assert_eq!(names(&evs), ["org.edit"]);
        assert_eq!(evs[0].org_id, Some(o.id));
        assert_eq!(evs[0].user_id, Some(u.id));
        assert_eq!(
            content(&evs[0]),
            json!({"before": {"name": "Old"}, "after": {"name": "New"}})
        );

        // The same name again changes nothing and writes nothing.
        let head = store.head().await.unwrap();
        let same = store
            .update_org(o.id, Some("New"), None, &actor(&u))
            .await
            .unwrap();
        assert_eq!(same, renamed);
        assert_eq!(store.head().await.unwrap(), head);
    }
);

store_test!(
    settings_patch_writes_the_changed_keys_only,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let o = store.create_org("S", None, &actor(&u)).await.unwrap();
        let a = actor(&u);

        // New keys: before is null.
        let start = store.head().await.unwrap();
        let p1 = settings(json!({"retention_days": 30, "region": "eu"}));
        let org = store.update_org(o.id, None, Some(&p1), &a).await.unwrap();
        assert_eq!(
            Value::Object(org.settings.clone()),
            json!({"retention_days": 30, "region": "eu"})
        );
        let evs = log_after(&store, start).await;
        assert_eq!(names(&evs), ["org.settings.edit"]);
        assert_eq!(evs[0].org_id, Some(o.id));
        assert_eq!(
            content(&evs[0]),
            json!({"before": {"retention_days": null, "region": null},
               "after": {"retention_days": 30, "region": "eu"}})
        );

        // One key changes, one is repeated unchanged: only the change is recorded.
        let start = store.head().await.unwrap();
        let p2 = settings(json!({"retention_days": 90, "region": "eu"}));
        let org = store.update_org(o.id, None, Some(&p2), &a).await.unwrap();
        assert_eq!(
            Value::Object(org.settings.clone()),
            json!({"retention_days": 90, "region": "eu"})
        );
        let evs = log_after(&store, start).await;
        assert_eq!(names(&evs), ["org.settings.edit"]);
        assert_eq!(
            content(&evs[0]),
            json!({"before": {"retention_days": 30}, "after": {"retention_days": 90}})
        );

        // null removes a key.
        let start = store.head().await.unwrap();
        let p3 = settings(json!({"region": null}));
        let org = store.update_org(o.id, None, Some(&p3), &a).await.unwrap();
        assert_eq!(
            Value::Object(org.settings.clone()),
            json!({"retention_days": 90})
        );
        assert_eq!(
            store.org(o.id).await.unwrap().unwrap().settings,
            org.settings
        );
        let evs = log_after(&store, start).await;
        assert_eq!(
            content(&evs[0]),
            json!({"before": {"region": "eu"}, "after": {"region": null}})
        );

        // A patch that changes nothing (same value; null for a missing key)
        // writes no event.
        let head = store.head().await.unwrap();
        let p4 = settings(json!({"retention_days": 90, "region": null}));
        let same = store.update_org(o.id, None, Some(&p4), &a).await.unwrap();
        assert_eq!(same.settings, org.settings);
        let empty = Map::new();
        store
            .update_org(o.id, None, Some(&empty), &a)
            .await
            .unwrap();
        store.update_org(o.id, None, None, &a).await.unwrap();
        assert_eq!(store.head().await.unwrap(), head);
        assert_eq!(
            store.org(o.id).await.unwrap().unwrap().settings,
            org.settings
        );
    }
);

store_test!(
    rename_and_settings_together_write_both_events,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let o = store.create_org("A", None, &actor(&u)).await.unwrap();
        let start = store.head().await.unwrap();
        let patch = settings(json!({"x": true}));
        let org = store
            .update_org(o.id, Some("B"), Some(&patch), &actor(&u))
            .await
            .unwrap();
        assert_eq!(org.name, "B");
        assert_eq!(org.settings, patch);
        let evs = log_after(&store, start).await;
        assert_eq!(names(&evs), ["org.edit", "org.settings.edit"]);
        assert_eq!(
            store.org(o.id).await.unwrap(),
            Some(Org {
                name: "B".into(),
                settings: patch,
                ..o
            })
        );
    }
);

store_test!(update_unknown_org_is_not_found, |store| async move {
    let u = new_user(&store, "o@example.com").await;
    let head = store.head().await.unwrap();
    assert_not_found(
        store
            .update_org(Uuid::now_v7(), Some("X"), None, &actor(&u))
            .await,
    );
    assert_eq!(store.head().await.unwrap(), head);
});

store_test!(
    concurrent_settings_patches_lose_no_update,
    |store| async move {
        let u = new_user(&store, "o@example.com").await;
        let o = store.create_org("Busy", None, &actor(&u)).await.unwrap();
        let start = store.head().await.unwrap();
        const N: usize = 12;
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let (store, a) = (store.clone(), actor(&u));
                tokio::spawn(async move {
                    let patch = settings(json!({ format!("k{i}"): i }));
                    store.update_org(o.id, None, Some(&patch), &a).await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let org = store.org(o.id).await.unwrap().unwrap();
        assert_eq!(
            org.settings.len(),
            N,
            "every key survives: {:?}",
            org.settings
        );
        for i in 0..N {
            assert_eq!(org.settings[&format!("k{i}")], json!(i));
        }
        let evs = log_after(&store, start).await;
        assert_eq!(evs.len(), N);
        for e in &evs {
            let c = content(e);
            let before = c["before"].as_object().unwrap();
            assert_eq!(before.len(), 1);
            assert!(before.values().all(Value::is_null), "{c}");
        }
    }
);

// ---- memberships ----

store_test!(
    add_and_remove_members_with_their_events,
    |store| async move {
        let admin = new_user(&store, "admin@example.com").await;
        let v = new_user(&store, "v@example.com").await;
        let g = store.create_group("G", &actor(&admin)).await.unwrap();
        let o = store.create_org("O", None, &actor(&admin)).await.unwrap();
        let start = store.head().await.unwrap();

        let m = store
            .add_member(Scope::Org(o.id), v.id, Role::OrgMember, &actor(&admin))
            .await
            .unwrap();
        assert_eq!((m.user_id, m.role), (v.id, Role::OrgMember));
        assert_eq!(
            (m.email.as_str(), m.name.as_str()),
            (v.email.as_str(), v.name.as_str())
        );
        let gm = store
            .add_member(Scope::Group(g.id), v.id, Role::GroupAdmin, &actor(&admin))
            .await
            .unwrap();

        let evs = log_after(&store, start).await;
        assert_eq!(names(&evs), ["org.user.add", "group.user.add"]);
        assert_eq!((evs[0].org_id, evs[0].group_id), (Some(o.id), None));
        assert_eq!((evs[1].org_id, evs[1].group_id), (None, Some(g.id)));
        assert_eq!(evs[0].user_id, Some(admin.id), "the actor, not the member");
        assert_eq!(
            content(&evs[0]),
            json!({"role": "org_member", "userPublicId": v.id, "membershipPublicId": m.id})
        );
        assert_eq!(content(&evs[1])["membershipPublicId"], json!(gm.id));
        assert_eq!(m.created_us, evs[0].created_us);

        let members = store
            .members(Scope::Org(o.id), Page::default())
            .await
            .unwrap();
        assert!(members.items.contains(&m));

        let start = store.head().await.unwrap();
        store
            .remove_member(Scope::Org(o.id), v.id, &actor(&admin))
            .await
            .unwrap();
        store
            .remove_member(Scope::Group(g.id), v.id, &actor(&admin))
            .await
            .unwrap();
        let evs = log_after(&store, start).await;
        assert_eq!(names(&evs), ["org.user.remove", "group.user.remove"]);
        assert_eq!((evs[0].org_id, evs[0].group_id), (Some(o.id), None));
        assert_eq!((evs[1].org_id, evs[1].group_id), (None, Some(g.id)));
        assert_eq!(content(&evs[0]), json!({"userPublicId": v.id}));
        let members = store
            .members(Scope::Org(o.id), Page::default())
            .await
            .unwrap();
        assert!(!members.items.iter().any(|x| x.user_id == v.id));
    }
);

store_test!(membership_refusals_write_nothing, |store| async move {
    let admin = new_user(&store, "admin@example.com").await;
    let v = new_user(&store, "v@example.com").await;
    let g = store.create_group("G", &actor(&admin)).await.unwrap();
    let o = store.create_org("O", None, &actor(&admin)).await.unwrap();
    let a = actor(&admin);
    store
        .add_member(Scope::Org(o.id), v.id, Role::OrgMember, &a)
        .await
        .unwrap();
    let head = store.head().await.unwrap();

    // Already a member, whatever the role asked for.
    assert_conflict(
        store
            .add_member(Scope::Org(o.id), v.id, Role::OrgMember, &a)
            .await,
    );
    assert_conflict(
        store
            .add_member(Scope::Org(o.id), v.id, Role::OrgAdmin, &a)
            .await,
    );
    assert_conflict(
        store
            .add_member(Scope::Group(g.id), admin.id, Role::GroupAdmin, &a)
            .await,
    );
    // Roles that do not fit the scope.
    assert_invalid(
        store
            .add_member(Scope::Org(o.id), admin.id, Role::GroupAdmin, &a)
            .await,
    );
    assert_invalid(
        store
            .add_member(Scope::Group(g.id), v.id, Role::OrgAdmin, &a)
            .await,
    );
    assert_invalid(
        store
            .add_member(Scope::Group(g.id), v.id, Role::OrgMember, &a)
            .await,
    );
    assert_invalid(
        store
            .add_member(Scope::User, v.id, Role::OrgMember, &a)
            .await,
    );
    // Unknown user, org or group.
    assert_not_found(
        store
            .add_member(Scope::Org(o.id), Uuid::now_v7(), Role::OrgMember, &a)
            .await,
    );
    assert_not_found(
        store
            .add_member(Scope::Org(Uuid::now_v7()), v.id, Role::OrgMember, &a)
            .await,
    );
    assert_not_found(
        store
            .add_member(Scope::Group(Uuid::now_v7()), v.id, Role::GroupAdmin, &a)
            .await,
    );
    // Removing what is not there.
    assert_not_found(store.remove_member(Scope::Group(g.id), v.id, &a).await);
    assert_not_found(
        store
            .remove_member(Scope::Org(Uuid::now_v7()), v.id, &a)
            .await,
    );
    assert_invalid(store.remove_member(Scope::User, v.id, &a).await);

    assert_eq!(
        store.head().await.unwrap(),
        head,
        "no refusal writes an event"
    );
    let access = store.access(v.id).await.unwrap();
    assert!(access.group_admin.is_empty());
    assert_eq!(access.org_roles.len(), 1);
    assert_eq!(access.org_roles.get(&o.id), Some(&Role::OrgMember));

    // Removing twice: the second is NotFound.
    store
        .remove_member(Scope::Org(o.id), v.id, &a)
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    assert_not_found(store.remove_member(Scope::Org(o.id), v.id, &a).await);
    assert_eq!(store.head().await.unwrap(), head);
});

store_test!(access_follows_memberships, |store| async move {
    let boss = new_user(&store, "boss@example.com").await;
    let v = new_user(&store, "v@example.com").await;
    let g = store.create_group("G", &actor(&boss)).await.unwrap();
    let in_group = store
        .create_org("In", Some(g.id), &actor(&boss))
        .await
        .unwrap();
    let alone = store
        .create_org("Alone", None, &actor(&boss))
        .await
        .unwrap();
    let other = store
        .create_org("Other", None, &actor(&boss))
        .await
        .unwrap();
    let a = actor(&boss);

    let access = store.access(v.id).await.unwrap();
    assert_eq!(access.user_id, v.id);
    for org in [&in_group, &alone, &other] {
        assert!(!access.can_read_org(org), "{}", org.name);
        assert!(!access.can_admin_org(org), "{}", org.name);
    }

    store
        .add_member(Scope::Org(alone.id), v.id, Role::OrgMember, &a)
        .await
        .unwrap();
    store
        .add_member(Scope::Org(other.id), v.id, Role::OrgAdmin, &a)
        .await
        .unwrap();
    let access = store.access(v.id).await.unwrap();
    assert!(access.can_read_org(&alone) && !access.can_admin_org(&alone));
    assert!(access.can_read_org(&other) && access.can_admin_org(&other));
    assert!(!access.can_read_org(&in_group));

    store
        .add_member(Scope::Group(g.id), v.id, Role::GroupAdmin, &a)
        .await
        .unwrap();
    let access = store.access(v.id).await.unwrap();
    assert!(access.is_group_admin(g.id));
    assert!(access.can_read_org(&in_group) && access.can_admin_org(&in_group));
    assert!(
        !access.can_admin_org(&alone),
        "group rights do not reach standalone orgs"
    );

    // An org that joins the group falls under the group admin.
    store.add_org_to_group(g.id, alone.id, &a).await.unwrap();
    let alone = store.org(alone.id).await.unwrap().unwrap();
    assert!(store.access(v.id).await.unwrap().can_admin_org(&alone));

    store
        .remove_member(Scope::Group(g.id), v.id, &a)
        .await
        .unwrap();
    store
        .remove_member(Scope::Org(other.id), v.id, &a)
        .await
        .unwrap();
    let access = store.access(v.id).await.unwrap();
    assert!(!access.can_read_org(&in_group));
    assert!(!access.can_read_org(&other));
    assert!(access.can_read_org(&alone) && !access.can_admin_org(&alone));

    // The orgs list agrees with the access rules.
    let listed: Vec<Uuid> = store
        .orgs_of(
            v.id,
            Page {
                limit: 100,
                ..Page::default()
            },
        )
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(listed, vec![alone.id]);
});
