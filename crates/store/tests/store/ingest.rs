//! Ingest: batches stored all or none, idempotency IDs per tenant.

use auditlake_core::Org;
use auditlake_store::{store_test, IngestItem, IngestOutcome};

use super::*;

fn item(idem: &str, hash: &str, org: Uuid, created_us: i64) -> IngestItem {
    let mut event = event_at("project.scan.run", Scope::Org(org), created_us);
    event.project_id = Some(format!("p-{idem}"));
    event.content = format!(r#"{{"idem":"{idem}","hash":"{hash}"}}"#);
    IngestItem {
        idempotency_id: idem.to_owned(),
        request_hash: hash.to_owned(),
        event,
    }
}

async fn setup(store: &Store) -> (User, Org) {
    let u = new_user(store, "i@example.com").await;
    let o = store.create_org("O", None, &actor(&u)).await.unwrap();
    (u, o)
}

fn created(out: &IngestOutcome) -> &AuditEvent {
    match out {
        IngestOutcome::Created(e) => e,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn replayed(out: &IngestOutcome) -> &AuditEvent {
    match out {
        IngestOutcome::Replayed(e) => e,
        other => panic!("expected Replayed, got {other:?}"),
    }
}

store_test!(a_batch_is_stored_in_order, |store| async move {
    let (_, o) = setup(&store).await;
    let head = store.head().await.unwrap();
    let items = vec![
        item("a", "h1", o.id, T0 + 3),
        item("b", "h2", o.id, T0 + 1),
        item("c", "h3", o.id, T0 + 2),
    ];
    let out = store.ingest(o.id, items.clone()).await.unwrap();
    assert_eq!(out.len(), 3);
    for (i, (o_, it)) in out.iter().zip(&items).enumerate() {
        let e = created(o_);
        assert_eq!(e.seq, head + 1 + i as i64);
        assert_eq!(e.id, it.event.id);
        assert_eq!(e.created_us, it.event.created_us);
        assert_eq!(e.content, it.event.content);
        assert_eq!(e.org_id, Some(o.id));
    }
    let log = log_after(&store, head).await;
    assert_eq!(
        log,
        out.iter().map(|o| o.event().clone()).collect::<Vec<_>>()
    );
});

// On PostgreSQL the writer sends rows in the binary COPY format: every field
// must come back byte for byte, NULLs as NULLs, with its idempotency ID.
store_test!(every_field_is_stored_exactly_as_given, |store| async move {
    let (u, o) = setup(&store).await;
    let head = store.head().await.unwrap();
    let mut full = item("full", "h1", o.id, T0);
    full.event.user_id = Some(u.id);
    full.event.project_id = Some("proj/é-1".into());
    full.event.content =
            r#"{"q":"\"quoted\"","b":"back\\slash","n":"line\nbreak","u":"é ✓ 🦀","nul":"\u0000","empty":{}}"#
                .into();
    full.event.source_ip = Some("2001:db8::1".into());
    full.event.user_agent = Some("agent\t/1.0 (é)".into());
    let mut bare = item("bare-\u{e9}", "h2", o.id, T0 - 1);
    bare.event.project_id = None;
    bare.event.content = "{}".into();
    let items = vec![full, bare];
    let out = store.ingest(o.id, items.clone()).await.unwrap();
    let stored = log_after(&store, head).await;
    assert_eq!(stored.len(), 2);
    for ((e, it), o_) in stored.iter().zip(&items).zip(&out) {
        assert_eq!(e, created(o_));
        let n = &it.event;
        assert_eq!(e.id, n.id);
        assert_eq!(e.created_us, n.created_us);
        assert_eq!(e.event, n.event.as_str());
        assert_eq!(e.org_id, Some(o.id));
        assert_eq!(e.group_id, None);
        assert_eq!(e.user_id, n.user_id);
        assert_eq!(e.project_id, n.project_id);
        assert_eq!(e.content, n.content);
        assert_eq!(e.source_ip, n.source_ip);
        assert_eq!(e.user_agent, n.user_agent);
    }
    // The recorded idempotency IDs and hashes answer retries.
    let again = store.ingest(o.id, items).await.unwrap();
    assert_eq!(replayed(&again[0]), &stored[0]);
    assert_eq!(replayed(&again[1]), &stored[1]);
    let report = store.verify_chain(o.id).await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.head_seq, Some(stored[1].seq));
});

store_test!(a_failing_batch_stores_nothing, |store| async move {
    let (_, o) = setup(&store).await;
    let head = store.head().await.unwrap();
    // The last event names an org that does not exist.
    let items = vec![
        item("a", "h", o.id, T0),
        item("b", "h", o.id, T0),
        item("c", "h", Uuid::now_v7(), T0),
    ];
    assert_not_found(store.ingest(o.id, items).await);
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "no event of the batch is stored"
    );
    // Nor its idempotency IDs: the same IDs with other hashes are new.
    let out = store
        .ingest(
            o.id,
            vec![item("a", "other", o.id, T0), item("b", "other", o.id, T0)],
        )
        .await
        .unwrap();
    assert!(out.iter().all(|o| matches!(o, IngestOutcome::Created(_))));
    assert_eq!(store.head().await.unwrap(), head + 2);
});

store_test!(a_repeat_replays_the_original_event, |store| async move {
    let (_, o) = setup(&store).await;
    let first = store
        .ingest(o.id, vec![item("a", "h", o.id, T0)])
        .await
        .unwrap();
    let original = created(&first[0]).clone();
    let head = store.head().await.unwrap();

    // The retry is a new NewEvent (new ID, new time), same idempotency ID and
    // hash: the stored original comes back and nothing is written.
    let retry = item("a", "h", o.id, T0 + 999);
    assert_ne!(retry.event.id, original.id);
    let again = store.ingest(o.id, vec![retry]).await.unwrap();
    assert_eq!(replayed(&again[0]), &original);
    assert_eq!(store.head().await.unwrap(), head, "no new row");

    // Mixed batch: replays and new items, in the caller's order.
    let mixed = store
        .ingest(
            o.id,
            vec![
                item("b", "h", o.id, T0),
                item("a", "h", o.id, T0),
                item("c", "h", o.id, T0),
            ],
        )
        .await
        .unwrap();
    let b = created(&mixed[0]);
    assert_eq!(replayed(&mixed[1]), &original);
    let c = created(&mixed[2]);
    assert_eq!((b.seq, c.seq), (head + 1, head + 2));
    assert_eq!(store.head().await.unwrap(), head + 2);
    assert_eq!(
        log_after(&store, original.seq).await,
        vec![b.clone(), c.clone()]
    );
});

store_test!(
    a_reused_id_with_another_hash_is_a_conflict,
    |store| async move {
        let (_, o) = setup(&store).await;
        store
            .ingest(o.id, vec![item("a", "h", o.id, T0)])
            .await
            .unwrap();
        let head = store.head().await.unwrap();

        assert_conflict(
            store
                .ingest(o.id, vec![item("a", "different", o.id, T0)])
                .await,
        );
        // A conflict anywhere in the batch refuses all of it.
        assert_conflict(
            store
                .ingest(
                    o.id,
                    vec![
                        item("fresh", "h", o.id, T0),
                        item("a", "different", o.id, T0),
                    ],
                )
                .await,
        );
        assert_eq!(
            store.head().await.unwrap(),
            head,
            "nothing of the batch is stored"
        );
        // `fresh` was not recorded: it is still free to use with any hash.
        let out = store
            .ingest(o.id, vec![item("fresh", "x", o.id, T0)])
            .await
            .unwrap();
        assert_eq!(created(&out[0]).seq, head + 1);
    }
);

store_test!(idempotency_ids_are_per_tenant, |store| async move {
    let (u, o) = setup(&store).await;
    let o2 = store.create_org("O2", None, &actor(&u)).await.unwrap();
    let a = store
        .ingest(o.id, vec![item("same", "h", o.id, T0)])
        .await
        .unwrap();
    let b = store
        .ingest(o2.id, vec![item("same", "h", o2.id, T0)])
        .await
        .unwrap();
    assert_ne!(created(&a[0]).id, created(&b[0]).id);
    assert_eq!(created(&b[0]).org_id, Some(o2.id));
});

store_test!(ingest_for_an_unknown_org_is_not_found, |store| async move {
    let (_, o) = setup(&store).await;
    let head = store.head().await.unwrap();
    let ghost = Uuid::now_v7();
    assert_not_found(store.ingest(ghost, vec![item("a", "h", ghost, T0)]).await);
    assert_eq!(store.head().await.unwrap(), head);
    // The ID was not recorded for the ghost tenant either.
    assert_not_found(
        store
            .ingest(ghost, vec![item("a", "other", ghost, T0)])
            .await,
    );
    // The real org is unaffected.
    store
        .ingest(o.id, vec![item("a", "h", o.id, T0)])
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), head + 1);
});

store_test!(
    an_id_twice_in_one_batch_is_refused_cleanly,
    |store| async move {
        let (_, o) = setup(&store).await;
        let head = store.head().await.unwrap();
        let res = store
            .ingest(
                o.id,
                vec![item("dup", "h", o.id, T0), item("dup", "h", o.id, T0)],
            )
            .await;
        let e = err(res);
        assert!(
            matches!(e, StoreError::Invalid(_) | StoreError::Conflict(_)),
            "a client error, not a database failure: {e:?}"
        );
        assert_eq!(store.head().await.unwrap(), head);
        let out = store
            .ingest(o.id, vec![item("dup", "h", o.id, T0)])
            .await
            .unwrap();
        created(&out[0]);
    }
);

store_test!(concurrent_retries_store_one_event, |store| async move {
    // A client retrying the same request in parallel: exactly one attempt
    // stores the event, every other one replays it.
    let (_, o) = setup(&store).await;
    // Several rounds, each a new request retried by many tasks at once.
    for round in 0..4 {
        let head = store.head().await.unwrap();
        let go = std::sync::Arc::new(tokio::sync::Barrier::new(12));
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (store, go) = (store.clone(), go.clone());
                let batch = vec![
                    item(&format!("retry-{round}"), "h", o.id, T0),
                    item(&format!("other-{round}"), "h", o.id, T0),
                ];
                tokio::spawn(async move {
                    go.wait().await;
                    store.ingest(o.id, batch).await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap().expect("a retry never fails"));
        }
        let fresh: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o[0], IngestOutcome::Created(_)))
            .collect();
        assert_eq!(fresh.len(), 1, "round {round}: one attempt stores");
        let first: Vec<AuditEvent> = fresh[0].iter().map(|o| o.event().clone()).collect();
        for o in &outcomes {
            let got: Vec<AuditEvent> = o.iter().map(|x| x.event().clone()).collect();
            assert_eq!(
                got, first,
                "round {round}: every attempt sees the same events"
            );
        }
        assert_eq!(store.head().await.unwrap(), head + 2, "round {round}");
    }
});

// Jobs submitted together are committed together by the group-commit
// writer; a job that fails for its own reasons must not take the others
// down with it, and each job must get its own answer.
store_test!(
    failing_jobs_do_not_fail_their_neighbours_in_a_group_commit,
    |store| async move {
        let (_, o) = setup(&store).await;
        store
            .ingest(o.id, vec![item("taken", "h-original", o.id, T0)])
            .await
            .unwrap();
        let head = store.head().await.unwrap();
        let mut tasks = Vec::new();
        for n in 0..60u32 {
            let store = store.clone();
            let org = o.id;
            tasks.push(tokio::spawn(async move {
                let res = match n % 3 {
                    // Clashes with the stored "taken".
                    0 => {
                        store
                            .ingest(org, vec![item("taken", &format!("h{n}"), org, T0)])
                            .await
                    }
                    // An org that does not exist.
                    1 => {
                        let ghost = Uuid::now_v7();
                        store
                            .ingest(ghost, vec![item(&format!("g{n}"), "h", ghost, T0)])
                            .await
                    }
                    _ => {
                        store
                            .ingest(org, vec![item(&format!("ok{n}"), "h", org, T0)])
                            .await
                    }
                };
                (n, res)
            }));
        }
        let mut stored = 0;
        for t in tasks {
            let (n, res) = t.await.unwrap();
            match n % 3 {
                0 => assert!(matches!(res, Err(StoreError::Conflict(_))), "{n}: {res:?}"),
                1 => assert!(matches!(res, Err(StoreError::NotFound(_))), "{n}: {res:?}"),
                _ => {
                    let out = res.unwrap_or_else(|e| panic!("{n}: {e}"));
                    assert_eq!(
                        created(&out[0]).content,
                        format!(r#"{{"idem":"ok{n}","hash":"h"}}"#)
                    );
                    stored += 1;
                }
            }
        }
        let log = log_after(&store, head).await;
        assert_eq!(log.len(), stored);
        assert_eq!(
            log.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (head + 1..=head + stored as i64).collect::<Vec<_>>()
        );
    }
);

/// Runs `sql` (several statements allowed) on the test database.
async fn exec_raw(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

// A database error inside a group commit (here a trigger refusing one event;
// on PostgreSQL it strikes in the middle of the binary COPY) fails that job
// alone: the transaction rolls back, the writer retries the group's jobs one
// by one on its connection, and the others commit. The jobs are submitted
// together so that they usually share a group; the outcome asserted does not
// depend on how they were grouped.
db_test!(
    a_database_error_fails_only_its_own_job,
    |url, store| async move {
        let (_, o) = setup(&store).await;
        let refuse = if url.starts_with("sqlite:") {
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
         WHEN NEW.content LIKE '%refuse-me%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        } else {
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.content LIKE '%refuse-me%' THEN RAISE EXCEPTION 'refused'; END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
           FOR EACH ROW EXECUTE FUNCTION refuse()"
        };
        exec_raw(&url, refuse).await;
        let head = store.head().await.unwrap();
        let mut bad = item("bad", "h", o.id, T0);
        bad.event.content = r#"{"refuse-me":true}"#.into();
        let mut jobs = Vec::new();
        for i in 0..12 {
            let items = if i == 6 {
                vec![bad.clone()]
            } else {
                vec![item(&format!("ok-{i}"), "h", o.id, T0)]
            };
            let (store, org) = (store.clone(), o.id);
            jobs.push(tokio::spawn(async move { store.ingest(org, items).await }));
        }
        let mut stored = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            let result = job.await.unwrap();
            if i == 6 {
                let e = err(result);
                assert!(
                    matches!(e, StoreError::Database(_)) && e.to_string().contains("refused"),
                    "{e:?}"
                );
            } else {
                stored.push(created(&result.unwrap()[0]).id);
            }
        }
        let log = log_after(&store, head).await;
        assert_eq!(log.len(), 11, "every other job committed");
        let mut logged = ids(&log);
        logged.sort_unstable();
        stored.sort_unstable();
        assert_eq!(logged, stored);

        // The refused job left nothing behind, not even its idempotency ID, and
        // the writer's connection still works.
        let sqlite = url.starts_with("sqlite:");
        exec_raw(
            &url,
            if sqlite {
                "DROP TRIGGER refuse"
            } else {
                "DROP TRIGGER refuse ON audit_events"
            },
        )
        .await;
        let again = store.ingest(o.id, vec![bad]).await.unwrap();
        assert_eq!(created(&again[0]).seq, head + 12);
        let report = store.verify_chain(o.id).await.unwrap();
        assert!(report.intact(), "{report:?}");
    }
);
