//! The append path and `read_log`: gapless, strictly increasing `seq` that
//! follows commit order, also under concurrent writers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use auditlake_store::store_test;

use super::*;

store_test!(empty_log_has_head_zero, |store| async move {
    assert_eq!(store.head().await.unwrap(), 0);
    assert!(full_log(&store).await.is_empty());
    assert!(store.append(&[]).await.unwrap().is_empty());
    assert_eq!(store.head().await.unwrap(), 0);
});

store_test!(
    append_assigns_seq_and_reads_back_verbatim,
    |store| async move {
        let u = new_user(&store, "l@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let o = store.create_org("O", Some(g.id), &actor(&u)).await.unwrap();
        let head = store.head().await.unwrap();
        assert_eq!(
            head, 4,
            "user.create, group.create, group.user.add, org.create"
        );

        let mut full = event_at("project.scan.run", Scope::Org(o.id), T0);
        full.user_id = Some(u.id);
        full.project_id = Some("proj-1".into());
        full.content = r#"{"nested":{"a":[1,2,3]},"s":"é ☃ 'quoted'"}"#.into();
        full.source_ip = Some("2001:db8::1".into());
        full.user_agent = Some("curl/8.0".into());
        let batch = vec![
            full.clone(),
            event_at("group.thing.happen", Scope::Group(g.id), T0 + 1),
            event_at("user.thing.happen", Scope::User, T0 + 2),
        ];
        let stored = store.append(&batch).await.unwrap();
        assert_eq!(
            stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [head + 1, head + 2, head + 3]
        );
        assert_eq!(store.head().await.unwrap(), head + 3);

        let e = &stored[0];
        assert_eq!(e.id, full.id);
        assert_eq!(e.created_us, T0);
        assert_eq!(e.event, "project.scan.run");
        assert_eq!(
            (e.org_id, e.group_id),
            (Some(o.id), Some(g.id)),
            "group filled in"
        );
        assert_eq!(e.user_id, Some(u.id));
        assert_eq!(e.project_id.as_deref(), Some("proj-1"));
        assert_eq!(e.content, full.content);
        assert_eq!(e.source_ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(e.user_agent.as_deref(), Some("curl/8.0"));
        assert_eq!((stored[1].org_id, stored[1].group_id), (None, Some(g.id)));
        assert_eq!((stored[2].org_id, stored[2].group_id), (None, None));

        // What was returned is exactly what the log holds.
        assert_eq!(log_after(&store, head).await, stored);
        assert_eq!(
            store.read_log(head + 1, 1).await.unwrap(),
            stored[1..2].to_vec()
        );
        assert_eq!(
            store.read_log(head, 2).await.unwrap(),
            stored[0..2].to_vec()
        );
        assert!(store.read_log(head + 3, 10).await.unwrap().is_empty());
        assert!(store.read_log(head + 100, 10).await.unwrap().is_empty());
    }
);

store_test!(
    append_for_an_unknown_org_stores_nothing,
    |store| async move {
        let u = new_user(&store, "l@example.com").await;
        let o = store.create_org("O", None, &actor(&u)).await.unwrap();
        let head = store.head().await.unwrap();
        let res = store
            .append(&[
                event_at("a.ok", Scope::Org(o.id), T0),
                event_at("a.bad", Scope::Org(Uuid::now_v7()), T0),
            ])
            .await;
        assert_not_found(res);
        assert_eq!(
            store.head().await.unwrap(),
            head,
            "the whole batch is refused"
        );
        // And seq stays gapless afterwards.
        let next = append_one(&store, event_at("a.ok", Scope::Org(o.id), T0)).await;
        assert_eq!(next.seq, head + 1);
    }
);

store_test!(
    seq_is_gapless_across_every_kind_of_write,
    |store| async move {
        let u = new_user(&store, "l@example.com").await;
        let v = new_user(&store, "v@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let o = store.create_org("O", None, &actor(&u)).await.unwrap();
        store
            .add_org_to_group(g.id, o.id, &actor(&u))
            .await
            .unwrap();
        store
            .add_member(
                Scope::Org(o.id),
                v.id,
                auditlake_core::Role::OrgMember,
                &actor(&u),
            )
            .await
            .unwrap();
        // Refused writes in between must not burn sequence numbers.
        assert_conflict(store.create_user("v@example.com", "again").await);
        assert_not_found(
            store
                .append(&[event_at("a.b", Scope::Org(Uuid::now_v7()), T0)])
                .await,
        );
        store
            .remove_member(Scope::Org(o.id), v.id, &actor(&u))
            .await
            .unwrap();
        store
            .update_org(o.id, Some("O2"), None, &actor(&u))
            .await
            .unwrap();
        let t = store
            .create_token(u.id, "t", None, &actor(&u))
            .await
            .unwrap();
        store
            .revoke_token(u.id, t.token.id, &actor(&u))
            .await
            .unwrap();
        store
            .append(&[event_at("a.b", Scope::User, T0)])
            .await
            .unwrap();

        let log = full_log(&store).await;
        let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=log.len() as i64).collect::<Vec<_>>());
        assert_eq!(store.head().await.unwrap(), log.len() as i64);
        assert_eq!(log.len(), 13);
    }
);

store_test!(
    concurrent_appends_get_exactly_one_to_n,
    |store| async move {
        const TASKS: usize = 8;
        const ROUNDS: usize = 25;
        let u = new_user(&store, "l@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let o = store.create_org("O", Some(g.id), &actor(&u)).await.unwrap();
        let start = store.head().await.unwrap();

        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for r in 0..ROUNDS {
                        let scope = match (t + r) % 3 {
                            0 => Scope::Org(o.id),
                            1 => Scope::Group(g.id),
                            _ => Scope::User,
                        };
                        // Odd tasks append two events per call.
                        let batch: Vec<_> = (0..1 + t % 2)
                            .map(|_| event_at("load.test.run", scope, T0 + r as i64))
                            .collect();
                        let stored = store.append(&batch).await.unwrap();
                        assert_eq!(stored.len(), batch.len());
                        for w in stored.windows(2) {
                            assert_eq!(w[1].seq, w[0].seq + 1, "a batch is contiguous");
                        }
                        mine.extend(stored);
                    }
                    mine
                })
            })
            .collect();
        let mut appended = Vec::new();
        for t in tasks {
            let mine = t.await.unwrap();
            for w in mine.windows(2) {
                assert!(w[1].seq > w[0].seq, "one task's appends are ordered");
            }
            appended.extend(mine);
        }

        let n = (TASKS / 2) * ROUNDS + (TASKS / 2) * ROUNDS * 2;
        assert_eq!(appended.len(), n);
        let log = log_after(&store, start).await;
        let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
        let want: Vec<i64> = (start + 1..=start + n as i64).collect();
        assert_eq!(
            seqs, want,
            "exactly start+1..=start+N, no gap, no duplicate"
        );
        assert_eq!(store.head().await.unwrap(), start + n as i64);

        // Each task got back exactly what the log holds for it.
        appended.sort_by_key(|e| e.seq);
        assert_eq!(appended, log);
        let unique: HashSet<Uuid> = log.iter().map(|e| e.id).collect();
        assert_eq!(unique.len(), n);
    }
);

store_test!(a_follower_never_misses_an_event, |store| async move {
    // A reader that follows the log with a single `seq` cursor while many
    // writers append must end up having seen every event exactly once:
    // seq follows commit order, so nothing commits behind the cursor.
    const TASKS: usize = 8;
    const ROUNDS: usize = 25;
    let u = new_user(&store, "l@example.com").await;
    let o = store.create_org("O", None, &actor(&u)).await.unwrap();
    let start = store.head().await.unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let follower = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = start;
            loop {
                // Read `done` before reading: an empty read after the
                // writers finished means the log is fully seen.
                let finished = done.load(Ordering::SeqCst);
                let batch = store.read_log(cursor, 7).await.unwrap();
                if batch.is_empty() {
                    if finished {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                cursor = batch.last().unwrap().seq;
                seen.extend(batch);
            }
            seen
        })
    };
    let writers: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for r in 0..ROUNDS {
                    store
                        .append(&[event_at("load.test.run", Scope::Org(o.id), T0 + r as i64)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = follower.await.unwrap();

    let log = log_after(&store, start).await;
    assert_eq!(log.len(), TASKS * ROUNDS);
    assert_eq!(
        ids(&seen),
        ids(&log),
        "the follower saw every event, in order"
    );
});

store_test!(
    org_events_racing_a_move_follow_the_scope_rule,
    |store| async move {
        // Writers append org events while the org joins a group. Whatever the
        // interleaving, an org event's group is the org's parent at the event's
        // place in the log: NULL before `group.org.add`, the group after it.
        const TASKS: usize = 6;
        const ROUNDS: usize = 30;
        let u = new_user(&store, "l@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let o = store.create_org("O", None, &actor(&u)).await.unwrap();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(TASKS);

        let writers: Vec<_> = (0..TASKS)
            .map(|_| {
                let (store, started) = (store.clone(), started_tx.clone());
                tokio::spawn(async move {
                    for r in 0..ROUNDS {
                        store
                            .append(&[event_at("load.test.run", Scope::Org(o.id), T0 + r as i64)])
                            .await
                            .unwrap();
                        if r == 0 {
                            started.send(()).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        // Move the org once every writer is under way.
        for _ in 0..TASKS {
            started_rx.recv().await.unwrap();
        }
        store
            .add_org_to_group(g.id, o.id, &actor(&u))
            .await
            .unwrap();
        for w in writers {
            w.await.unwrap();
        }

        let log = full_log(&store).await;
        let add = log.iter().find(|e| e.event == "group.org.add").unwrap().seq;
        let mut before = 0;
        for e in log.iter().filter(|e| e.org_id == Some(o.id)) {
            if e.seq < add {
                before += 1;
                assert_eq!(e.group_id, None, "seq {} precedes the move at {add}", e.seq);
            } else {
                assert_eq!(
                    e.group_id,
                    Some(g.id),
                    "seq {} follows the move at {add}",
                    e.seq
                );
            }
        }
        assert!(before >= TASKS, "each writer appended once before the move");
    }
);

db_test!(
    two_processes_on_one_database_share_one_gapless_order,
    |url, store| async move {
        // Two stores on one database stand for two server processes: each
        // has its own group-commit writer, so only the database's append
        // lock (taken with `BEGIN` on PostgreSQL, the write lock of the
        // file on SQLite) keeps their numbering apart.
        const ROUNDS: usize = 40;
        let u = new_user(&store, "procs@example.com").await;
        let o = store.create_org("O", None, &actor(&u)).await.unwrap().id;
        let start = store.head().await.unwrap();
        let other = Store::connect(&url).await.unwrap();
        let run = |s: Store, name: &'static str| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for r in 0..ROUNDS {
                    let batch: Vec<_> = (0..3)
                        .map(|_| event_at(name, Scope::Org(o), T0 + r as i64))
                        .collect();
                    mine.extend(s.append(&batch).await.unwrap());
                }
                mine
            })
        };
        let (a, b) = (
            run(store.clone(), "proc.one.append"),
            run(other.clone(), "proc.two.append"),
        );
        let mut appended = a.await.unwrap();
        appended.extend(b.await.unwrap());
        appended.sort_by_key(|e| e.seq);

        let n = 2 * ROUNDS * 3;
        let log = log_after(&store, start).await;
        assert_eq!(
            log.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (start + 1..=start + n as i64).collect::<Vec<_>>(),
            "one order, no gap, no duplicate"
        );
        assert_eq!(appended, log, "each append got back what the log holds");
        assert!(store.verify_chain(o).await.unwrap().intact());
        other.close().await;
    }
);
