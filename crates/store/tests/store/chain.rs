//! The per-tenant hash chain: every write path links its events, a chain
//! verifies while appends run, and each kind of tampering with the stored
//! rows is caught at the right event.

use std::collections::HashMap;

use auditlake_core::chain;
use auditlake_store::{store_test, ChainReport};
use sqlx::Connection as _;

use super::*;

/// Three tenants and the platform, with events in each chain: org A alone,
/// org B in group G, G's own events, and user-scoped events. Returns the
/// chains with the seqs of their events, from the log itself.
async fn world(store: &Store) -> (Uuid, Uuid, Uuid, HashMap<Uuid, Vec<i64>>) {
    let u = new_user(store, "chain@example.com").await;
    let g = store.create_group("G", &actor(&u)).await.unwrap();
    let a = store.create_org("A", None, &actor(&u)).await.unwrap();
    let b = store.create_org("B", Some(g.id), &actor(&u)).await.unwrap();
    let mut batch = Vec::new();
    for i in 0..30 {
        let scope = match i % 4 {
            0 => Scope::Org(a.id),
            1 => Scope::Org(b.id),
            2 => Scope::Group(g.id),
            _ => Scope::User,
        };
        batch.push(event_at("chain.test.event", scope, T0 + i));
    }
    store.append(&batch).await.unwrap();
    // Through the ingest path as well, and an org moved into the group
    // later: its chain is still the org's.
    store
        .ingest(a.id, vec![ingest_item("k1", Scope::Org(a.id))])
        .await
        .unwrap();
    store
        .add_org_to_group(g.id, a.id, &actor(&u))
        .await
        .unwrap();
    append_one(store, event_at("chain.after.move", Scope::Org(a.id), T0)).await;

    let mut chains: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for e in full_log(store).await {
        chains.entry(chain::chain_of(&e)).or_default().push(e.seq);
    }
    (a.id, b.id, g.id, chains)
}

fn ingest_item(key: &str, scope: Scope) -> auditlake_store::IngestItem {
    auditlake_store::IngestItem {
        idempotency_id: key.into(),
        request_hash: format!("hash-{key}"),
        event: event_at("chain.ingest.event", scope, T0),
    }
}

async fn exec(url: &str, sql: &str) {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

#[track_caller]
fn assert_broken_at(report: &ChainReport, seq: i64, words: &str) {
    let b = report
        .first_break
        .as_ref()
        .unwrap_or_else(|| panic!("expected a break at seq {seq}: {report:?}"));
    assert_eq!(b.seq, seq, "{report:?}");
    assert!(b.problem.contains(words), "{:?} lacks {words:?}", b.problem);
}

db_test!(
    every_chain_of_an_untouched_log_holds,
    |_url, store| async move {
        let (a, b, g, chains) = world(&store).await;
        assert_eq!(
            store.chains().await.unwrap().len(),
            4,
            "A, B, G and the platform"
        );
        for id in [a, b, g, Uuid::nil()] {
            let report = store.verify_chain(id).await.unwrap();
            assert!(report.intact(), "{report:?}");
            assert_eq!(report.events as usize, chains[&id].len(), "{id}");
            assert_eq!(report.head_seq, chains[&id].last().copied());
        }
        let unknown = store.verify_chain(Uuid::from_u128(42)).await.unwrap();
        assert!(unknown.intact() && unknown.events == 0 && unknown.head_seq.is_none());
    }
);

db_test!(an_altered_event_is_the_break, |url, store| async move {
    let (a, b, _g, chains) = world(&store).await;
    let target = chains[&a][3];
    exec(
        &url,
        &format!("UPDATE audit_events SET content = '{{\"k\":\"w\"}}' WHERE seq = {target}"),
    )
    .await;
    let report = store.verify_chain(a).await.unwrap();
    assert_broken_at(&report, target, "does not match its chain hash");
    assert_eq!(report.events, 3, "the events before it verified");
    assert!(
        store.verify_chain(b).await.unwrap().intact(),
        "B is untouched"
    );
});

db_test!(
    an_altered_event_with_a_recomputed_link_breaks_the_next,
    |url, store| async move {
        let (_a, b, _g, chains) = world(&store).await;
        let (target, next) = (chains[&b][2], chains[&b][3]);
        let mut log = full_log(&store).await;
        let prev_link = {
            let mut link = chain::GENESIS;
            for e in log
                .iter()
                .filter(|e| chain::chain_of(e) == b && e.seq < target)
            {
                link = chain::link(&link, e);
            }
            link
        };
        let forged = log.iter_mut().find(|e| e.seq == target).unwrap();
        forged.user_agent = Some("forged".into());
        let link = chain::to_hex(&chain::link(&prev_link, forged));
        exec(
            &url,
            &format!(
                "UPDATE audit_events SET user_agent = 'forged', chain_hash = '{link}' \
                 WHERE seq = {target}"
            ),
        )
        .await;
        assert_broken_at(
            &store.verify_chain(b).await.unwrap(),
            next,
            "does not match its chain hash",
        );
    }
);

db_test!(a_removed_event_breaks_the_next, |url, store| async move {
    let (_a, _b, g, chains) = world(&store).await;
    let (target, next) = (chains[&g][1], chains[&g][2]);
    exec(
        &url,
        &format!("DELETE FROM audit_events WHERE seq = {target}"),
    )
    .await;
    assert_broken_at(
        &store.verify_chain(g).await.unwrap(),
        next,
        "does not match its chain hash",
    );
});

db_test!(
    a_removed_tail_is_caught_by_the_head,
    |url, store| async move {
        let (a, _b, _g, chains) = world(&store).await;
        let last = *chains[&a].last().unwrap();
        exec(
            &url,
            &format!("DELETE FROM audit_events WHERE seq = {last}"),
        )
        .await;
        let report = store.verify_chain(a).await.unwrap();
        assert_broken_at(&report, last, "events at its end were removed");
        assert_eq!(report.events as usize, chains[&a].len() - 1);
    }
);

db_test!(
    an_event_slipped_in_past_the_head_is_caught,
    |url, store| async move {
        let (_a, _b, _g, chains) = world(&store).await;
        let platform = Uuid::nil();
        let copied = *chains[&platform].last().unwrap();
        exec(
            &url,
            &format!(
                "INSERT INTO audit_events (seq, id, created_us, event, content, chain_hash) \
                 SELECT 1000000, '0190a000-0000-7000-8000-000000000001', created_us, event, content, chain_hash \
                 FROM audit_events WHERE seq = {copied}"
            ),
        )
        .await;
        assert_broken_at(
            &store.verify_chain(platform).await.unwrap(),
            1_000_000,
            "beyond the chain's recorded head",
        );
    }
);

db_test!(
    missing_links_and_missing_heads_are_breaks,
    |url, store| async move {
        let (a, b, _g, chains) = world(&store).await;
        let target = chains[&a][0];
        exec(
            &url,
            &format!("UPDATE audit_events SET chain_hash = NULL WHERE seq = {target}"),
        )
        .await;
        assert_broken_at(
            &store.verify_chain(a).await.unwrap(),
            target,
            "has no chain hash",
        );
        exec(
            &url,
            &format!("DELETE FROM chain_heads WHERE chain_id = '{b}'"),
        )
        .await;
        assert_broken_at(
            &store.verify_chain(b).await.unwrap(),
            chains[&b][0],
            "no recorded head",
        );
        assert!(
            store.chains().await.unwrap().contains(&b),
            "a tenant whose head is gone is still checked"
        );
    }
);

store_test!(
    verifying_while_appends_commit_finds_no_false_break,
    |store| async move {
        let u = new_user(&store, "busy@example.com").await;
        let o = store.create_org("Busy", None, &actor(&u)).await.unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    let batch: Vec<_> = (0..5)
                        .map(|j| event_at("chain.busy.event", Scope::Org(o.id), T0 + i * 5 + j))
                        .collect();
                    store.append(&batch).await.unwrap();
                }
            })
        };
        let mut checks = 0;
        while !writer.is_finished() {
            let report = store.verify_chain(o.id).await.unwrap();
            assert!(report.intact(), "{report:?}");
            checks += 1;
        }
        writer.await.unwrap();
        let report = store.verify_chain(o.id).await.unwrap();
        assert!(report.intact(), "{report:?}");
        assert_eq!(
            report.events,
            1 + 1 + 1000,
            "org.create, org.user.add, the batches"
        );
        assert!(checks > 0);
    }
);

db_test!(
    a_database_reopens_as_it_was_created_with_one_migration,
    |url, store| async move {
        let (a, b, g, _chains) = world(&store).await;
        let before = full_log(&store).await;
        store.close().await;
        let store = Store::connect(&url).await.unwrap();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        assert_eq!(versions, [1], "the schema is one initial migration");
        if url.starts_with("sqlite:") {
            // The log order is SQLite's rowid, not a second index.
            let ddl = events_ddl(&url).await;
            assert!(ddl.contains("seq         INTEGER PRIMARY KEY"), "{ddl}");
        }
        assert_eq!(full_log(&store).await, before);
        for id in [a, b, g, Uuid::nil()] {
            let report = store.verify_chain(id).await.unwrap();
            assert!(report.intact() && report.events > 0, "{report:?}");
        }
        let next = append_one(&store, event_at("chain.after.reopen", Scope::Org(a), T0)).await;
        assert_eq!(next.seq, before.last().unwrap().seq + 1);
        assert!(store.verify_chain(a).await.unwrap().intact());
        store.close().await;

        // A database that records a migration this build lacks (a
        // pre-release one) is refused in words, untouched.
        exec(
            &url,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             SELECT 2, 'integrations', success, checksum, execution_time \
             FROM _sqlx_migrations WHERE version = 1",
        )
        .await;
        let err = Store::connect(&url).await.unwrap_err().to_string();
        assert!(
            err.contains("migration 2") && err.contains("new database"),
            "{err}"
        );
    }
);

/// SQLite's stored `CREATE TABLE` statement of the event log.
async fn events_ddl(url: &str) -> String {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let ddl: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'audit_events'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    ddl
}
