//! Cloud event integrations: registration with its audit event, the start
//! at the head of the log, tenant checks, edits, replay, and the
//! forwarder's leases and fenced acknowledgements.

use auditlake_core::integration::{CloudTrailConfig, Status};
use auditlake_core::Integration;
use auditlake_store::{store_test, Delivery, IntegrationChange, Page};
use serde_json::json;

use super::*;

fn config(account: &str) -> CloudTrailConfig {
    CloudTrailConfig::new(
        account,
        &format!("arn:aws:cloudtrail:us-east-1:{account}:channel/c-{account}"),
    )
    .unwrap()
}

async fn world(store: &Store) -> (User, Uuid, Uuid) {
    let admin = new_user(store, "admin@example.com").await;
    let group = store.create_group("G", &actor(&admin)).await.unwrap();
    let org = store
        .create_org("O", Some(group.id), &actor(&admin))
        .await
        .unwrap();
    (admin, group.id, org.id)
}

async fn lease(store: &Store, i: &Integration, owner: &str) -> auditlake_store::Lease {
    let now = auditlake_core::time_fmt::now_micros();
    store
        .lease_integration(i.id, owner, now, now + 30_000_000)
        .await
        .unwrap()
        .expect("lease is free")
}

store_test!(
    creation_starts_at_its_own_event_and_is_audited,
    |store| async move {
        let (admin, group, org) = world(&store).await;
        let before = store.head().await.unwrap();
        let i = store
            .create_integration(
                Scope::Group(group),
                "to aws",
                config("123456789012"),
                &actor(&admin),
            )
            .await
            .unwrap();
        assert_eq!(i.cursor, before, "starts at the head, before its own event");
        assert_eq!(i.status, Status::Pending);
        assert_eq!((i.delivered, i.failed), (0, 0));
        let log = log_after(&store, before).await;
        assert_eq!(names(&log), ["group.cloud_events.registration.create"]);
        assert_eq!(log[0].group_id, Some(group));
        assert_eq!(content(&log[0])["integrationPublicId"], json!(i.id));
        assert_eq!(content(&log[0])["config"]["account_id"], "123456789012");

        let o = store
            .create_integration(
                Scope::Org(org),
                "org one",
                config("123456789012"),
                &actor(&admin),
            )
            .await
            .unwrap();
        let ev = log_after(&store, o.cursor).await;
        assert_eq!(ev[0].event, "org.cloud_events.integration.create");
        assert_eq!(ev[0].org_id, Some(org));

        assert_not_found(
            store
                .create_integration(
                    Scope::Org(Uuid::now_v7()),
                    "x",
                    config("123456789012"),
                    &actor(&admin),
                )
                .await,
        );
        assert_invalid(
            store
                .create_integration(Scope::User, "x", config("123456789012"), &actor(&admin))
                .await,
        );
    }
);

store_test!(
    reads_and_writes_are_bound_to_the_owning_tenant,
    |store| async move {
        let (admin, group, org) = world(&store).await;
        let other = store
            .create_org("Other", None, &actor(&admin))
            .await
            .unwrap();
        let i = store
            .create_integration(
                Scope::Org(org),
                "mine",
                config("123456789012"),
                &actor(&admin),
            )
            .await
            .unwrap();

        assert_eq!(
            store.integration(Scope::Org(org), i.id).await.unwrap(),
            Some(i.clone())
        );
        for wrong in [Scope::Org(other.id), Scope::Group(group)] {
            assert_eq!(
                store.integration(wrong, i.id).await.unwrap(),
                None,
                "{wrong:?}"
            );
            assert!(store
                .integrations_of(wrong, Page::default())
                .await
                .unwrap()
                .items
                .is_empty());
            assert_not_found(
                store
                    .update_integration(wrong, i.id, IntegrationChange::default(), &actor(&admin))
                    .await,
            );
            assert_not_found(store.delete_integration(wrong, i.id, &actor(&admin)).await);
            assert_not_found(
                store
                    .replay_integration(wrong, i.id, 0, &actor(&admin))
                    .await,
            );
        }
        let page = store
            .integrations_of(Scope::Org(org), Page::default())
            .await
            .unwrap();
        assert_eq!(page.items, vec![i]);
    }
);

store_test!(
    edits_are_audited_with_before_and_after,
    |store| async move {
        let (admin, _group, org) = world(&store).await;
        let i = store
            .create_integration(
                Scope::Org(org),
                "old",
                config("123456789012"),
                &actor(&admin),
            )
            .await
            .unwrap();
        let head = store.head().await.unwrap();
        let unchanged = store
            .update_integration(
                Scope::Org(org),
                i.id,
                IntegrationChange {
                    name: Some("old".into()),
                    config: Some(config("123456789012")),
                },
                &actor(&admin),
            )
            .await
            .unwrap();
        assert_eq!(unchanged, i);
        assert_eq!(
            store.head().await.unwrap(),
            head,
            "a no-op edit writes no event"
        );

        let changed = store
            .update_integration(
                Scope::Org(org),
                i.id,
                IntegrationChange {
                    name: Some("new".into()),
                    config: Some(config("210987654321")),
                },
                &actor(&admin),
            )
            .await
            .unwrap();
        assert_eq!(changed.name, "new");
        assert_eq!(changed.config.account_id, "210987654321");
        assert_eq!(
            changed.cursor, i.cursor,
            "the backlog follows to the new channel"
        );
        let log = log_after(&store, head).await;
        assert_eq!(names(&log), ["org.cloud_events.integration.edit"]);
        let c = content(&log[0]);
        assert_eq!(c["before"]["name"], "old");
        assert_eq!(c["after"]["name"], "new");
        assert_eq!(c["before"]["config"]["account_id"], "123456789012");
        assert_eq!(c["after"]["config"]["account_id"], "210987654321");

        store
            .delete_integration(Scope::Org(org), i.id, &actor(&admin))
            .await
            .unwrap();
        assert_eq!(
            store.integration(Scope::Org(org), i.id).await.unwrap(),
            None
        );
        assert_eq!(
            names(&log_after(&store, head + 1).await),
            ["org.cloud_events.integration.delete"]
        );
    }
);

store_test!(
    events_for_follow_the_scope_rule_including_orgs_added_later,
    |store| async move {
        let (admin, group, org) = world(&store).await;
        let reg = store
            .create_integration(
                Scope::Group(group),
                "g",
                config("123456789012"),
                &actor(&admin),
            )
            .await
            .unwrap();
        let oi = store
            .create_integration(Scope::Org(org), "o", config("123456789012"), &actor(&admin))
            .await
            .unwrap();
        let later = store
            .create_org("Later", None, &actor(&admin))
            .await
            .unwrap();
        append_one(&store, event_at("org.thing.edit", Scope::Org(later.id), T0)).await;
        store
            .add_org_to_group(group, later.id, &actor(&admin))
            .await
            .unwrap();
        append_one(&store, event_at("org.thing.edit", Scope::Org(later.id), T0)).await;
        append_one(&store, event_at("org.thing.edit", Scope::Org(org), T0)).await;
        append_one(
            &store,
            event_at("group.thing.edit", Scope::Group(group), T0),
        )
        .await;

        let all = full_log(&store).await;
        for i in [&reg, &oi] {
            let got = store.events_for(i, i.cursor, 1_000).await.unwrap();
            let want: Vec<_> = all
                .iter()
                .filter(|e| e.seq > i.cursor && i.receives(e))
                .cloned()
                .collect();
            assert_eq!(got, want, "{:?}", i.scope);
        }
        let group_names = names(&store.events_for(&reg, reg.cursor, 1_000).await.unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        assert_eq!(
            group_names,
            [
                "group.cloud_events.registration.create",
                "org.cloud_events.integration.create",
                "group.org.add",
                "org.thing.edit",
                "org.thing.edit",
                "group.thing.edit"
            ],
            "the later org's events before it joined stay out"
        );
        let lag = store.lag(&reg).await.unwrap();
        assert_eq!(lag.events, 6);
        assert!(lag.oldest_us.is_some());
    }
);

store_test!(
    acknowledgements_are_fenced_by_lease_and_revision,
    |store| async move {
        let (admin, _group, org) = world(&store).await;
        let i = store
            .create_integration(Scope::Org(org), "o", config("123456789012"), &actor(&admin))
            .await
            .unwrap();
        let a = lease(&store, &i, "worker-a").await;
        let now = auditlake_core::time_fmt::now_micros();
        assert!(
            store
                .lease_integration(i.id, "worker-b", now, now + 1)
                .await
                .unwrap()
                .is_none(),
            "a live lease is not taken over"
        );
        let ack = Delivery::Acknowledged {
            cursor: i.cursor + 1,
            delivered: 1,
            failed: 0,
        };
        assert!(store.record_delivery(&a, &ack).await.unwrap());
        let now_i = store
            .integration(Scope::Org(org), i.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now_i.cursor, i.cursor + 1);
        assert_eq!(now_i.status, Status::Healthy);
        assert_eq!(now_i.delivered, 1);
        assert!(now_i.last_success_us.is_some());

        // An expired lease is taken over; the old holder's writes bounce.
        let later = now + 60_000_000;
        let b = store
            .lease_integration(i.id, "worker-b", later, later + 30_000_000)
            .await
            .unwrap()
            .expect("expired lease is taken over");
        assert!(!store.record_delivery(&a, &ack).await.unwrap());
        assert!(!store.renew_lease(&a, later).await.unwrap());

        // A replay bumps the revision: b's in-flight acknowledgement bounces.
        let replayed = store
            .replay_integration(Scope::Org(org), i.id, 0, &actor(&admin))
            .await
            .unwrap();
        assert!(
            replayed.cursor < now_i.cursor,
            "replay moves the cursor back"
        );
        let far = Delivery::Acknowledged {
            cursor: replayed.cursor + 5,
            delivered: 5,
            failed: 0,
        };
        assert!(!store.record_delivery(&b, &far).await.unwrap());
        let b2 = lease(&store, &replayed, "worker-b").await;
        let fail = Delivery::Failed {
            status: Status::Failing,
            error: "ChannelInsufficientPermission: no".into(),
            failed: 2,
        };
        assert!(store.record_delivery(&b2, &fail).await.unwrap());
        let f = store
            .integration(Scope::Org(org), i.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.status, Status::Failing);
        assert_eq!(f.failed, 2);
        assert_eq!(f.cursor, replayed.cursor, "a failure keeps the backlog");
        assert!(f
            .last_error
            .unwrap()
            .contains("ChannelInsufficientPermission"));

        store.release_lease(&b2).await.unwrap();
        assert!(store
            .lease_integration(i.id, "worker-c", now, now + 1)
            .await
            .unwrap()
            .is_some());
    }
);

store_test!(
    replay_restarts_from_the_first_event_at_the_time,
    |store| async move {
        let (admin, _group, org) = world(&store).await;
        // Later than the world's own events, which happened "now".
        let t = auditlake_core::time_fmt::now_micros() + 60_000_000;
        let old = append_one(&store, event_at("org.thing.edit", Scope::Org(org), t)).await;
        let newer = append_one(&store, event_at("org.thing.edit", Scope::Org(org), t + 10)).await;
        let i = store
            .create_integration(Scope::Org(org), "o", config("123456789012"), &actor(&admin))
            .await
            .unwrap();
        assert!(i.cursor >= newer.seq);
        let r = store
            .replay_integration(Scope::Org(org), i.id, t + 5, &actor(&admin))
            .await
            .unwrap();
        assert_eq!(r.cursor, newer.seq - 1);
        let again = store.events_for(&r, r.cursor, 100).await.unwrap();
        assert_eq!(again[0].id, newer.id);
        assert!(!again.iter().any(|e| e.id == old.id));
        assert_eq!(
            again.last().unwrap().event,
            "org.cloud_events.integration.replay"
        );
    }
);
