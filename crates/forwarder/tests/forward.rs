//! The forwarder against the real local lake over HTTP, through the real
//! AWS SDK, on SQLite and PostgreSQL: the seed's contract (what lands in
//! the lake, for which integration), failing destinations that recover,
//! replay, and leases shared by several forwarders.

use std::time::Duration;

use auditlake_cloudtrail::client::setup;
use auditlake_core::integration::{CloudTrailConfig, Status};
use auditlake_core::{Actor, Integration, Scope, User};
use auditlake_forwarder::{Backoff, ForwarderConfig, Target};
use auditlake_lake::testing::{key, LocalLake, OWNER, PARTNER};
use auditlake_store::{store_test, Store};
use auditlake_testkit::wait_until;
use serde_json::{json, Value};

fn config(lake: &LocalLake) -> ForwarderConfig {
    let k = key(PARTNER);
    let mut c = ForwarderConfig::new(
        "auditlake.test",
        Target::with_key(&lake.url, k.access_key_id, k.secret_access_key),
    );
    c.poll = Duration::from_millis(100);
    c.lease_ttl = Duration::from_secs(3);
    c.retry = Backoff {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(200),
    };
    c.failing = Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(300),
    };
    c
}

/// How long a condition of these tests may take to hold: delivery and
/// queries run against a real database and a real lake.
const WITHIN: Duration = Duration::from_secs(30);

/// Waits until `i` has delivered everything the log holds for it.
async fn drained(store: &Store, i: &Integration) -> Integration {
    wait_until("the integration is caught up", WITHIN, || async {
        let now = store.integration(i.scope, i.id).await.unwrap().unwrap();
        (store.lag(&now).await.unwrap().events == 0).then_some(now)
    })
    .await
}

/// Runs `sql` in the lake as the owner and returns the rows as JSON objects.
async fn query(lake: &LocalLake, sql: &str) -> Vec<Value> {
    let ct = lake.control(OWNER);
    let id = ct
        .start_query()
        .query_statement(sql)
        .send()
        .await
        .unwrap()
        .query_id()
        .unwrap()
        .to_owned();
    let status = wait_until("the query finishes", WITHIN, || async {
        let d = ct.describe_query().query_id(&id).send().await.unwrap();
        let status = d.query_status().unwrap().as_str().to_owned();
        (status != "QUEUED" && status != "RUNNING").then_some(status)
    })
    .await;
    assert_eq!(status, "FINISHED");
    let res = ct.get_query_results().query_id(&id).send().await.unwrap();
    res.query_result_rows()
        .iter()
        .map(|row| {
            let mut obj = serde_json::Map::new();
            for cell in row {
                for (k, v) in cell {
                    obj.insert(k.clone(), json!(v));
                }
            }
            Value::Object(obj)
        })
        .collect()
}

struct World {
    admin: User,
    group: uuid::Uuid,
    org: uuid::Uuid,
}

async fn world(store: &Store) -> World {
    let admin = store
        .create_user("admin@example.com", "Admin")
        .await
        .unwrap();
    let group = store
        .create_group("G", &Actor::user(admin.id))
        .await
        .unwrap();
    let org = store
        .create_org("O", Some(group.id), &Actor::user(admin.id))
        .await
        .unwrap();
    World {
        admin,
        group: group.id,
        org: org.id,
    }
}

/// A store and channel in the lake for `external_id`, and the integration.
async fn connect(
    store: &Store,
    lake: &LocalLake,
    w: &World,
    scope: Scope,
    external_id: &str,
) -> (Integration, String) {
    let name = format!("i-{}", uuid::Uuid::new_v4().simple());
    let s = setup(&lake.control(OWNER), &name, external_id, PARTNER, 30)
        .await
        .unwrap();
    let i = store
        .create_integration(
            scope,
            &name,
            CloudTrailConfig::new(OWNER, &s.channel_arn).unwrap(),
            &Actor::user(w.admin.id),
        )
        .await
        .unwrap();
    (i, s.event_data_store_id)
}

store_test!(
    org_and_group_events_land_in_the_lake_as_the_seed_describes,
    |store| async move {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::start(dir.path()).await;
        let w = world(&store).await;
        let (org_i, org_eds) =
            connect(&store, &lake, &w, Scope::Org(w.org), &w.org.to_string()).await;
        let (group_i, group_eds) = connect(
            &store,
            &lake,
            &w,
            Scope::Group(w.group),
            &w.group.to_string(),
        )
        .await;
        let fwd = auditlake_forwarder::spawn(store.clone(), config(&lake)).await;

        let actor = Actor::user(w.admin.id);
        let mut patch = serde_json::Map::new();
        patch.insert("require_mfa".into(), json!(true));
        store
            .update_org(w.org, None, Some(&patch), &actor)
            .await
            .unwrap();
        let bob = store.create_user("bob@example.com", "Bob").await.unwrap();
        store
            .add_member(
                Scope::Group(w.group),
                bob.id,
                auditlake_core::Role::GroupAdmin,
                &actor,
            )
            .await
            .unwrap();
        let later = store.create_org("Later", None, &actor).await.unwrap();
        store
            .add_org_to_group(w.group, later.id, &actor)
            .await
            .unwrap();
        store
            .update_org(later.id, Some("Later Renamed"), None, &actor)
            .await
            .unwrap();

        let org_i = drained(&store, &org_i).await;
        let group_i = drained(&store, &group_i).await;
        assert_eq!(org_i.status, Status::Healthy);
        assert_eq!(group_i.status, Status::Healthy);

        // The seed's query, verbatim but for the store ID.
        let seed = |eds: &str| {
            format!(
                "select\neventtime,\neventdata.useridentity,\neventdata.eventname,\n\
                 eventdata.additionaleventdata\nfrom {eds}\norder by eventTime desc\nlimit 10"
            )
        };
        let rows = query(&lake, &seed(&org_eds)).await;
        let names: Vec<&str> = rows
            .iter()
            .map(|r| r["eventname"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"org.settings.edit"), "{names:?}");
        assert!(
            names.contains(&"org.cloud_events.integration.create"),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with("group.")),
            "the org integration gets no group events: {names:?}"
        );
        assert!(
            !names.contains(&"org.edit"),
            "nor another org's events: {names:?}"
        );
        let edit = rows
            .iter()
            .find(|r| r["eventname"] == "org.settings.edit")
            .unwrap();
        // Structs render as CloudTrail Lake renders them: {key=value, ...}.
        let identity = edit["useridentity"].as_str().unwrap();
        assert!(
            identity.starts_with(&format!("{{type=User, principalid={}", w.admin.id)),
            "{identity}"
        );
        let payload: Value =
            serde_json::from_str(edit["additionaleventdata"].as_str().unwrap()).unwrap();
        assert_eq!(payload["before"]["require_mfa"], Value::Null);
        assert_eq!(payload["after"]["require_mfa"], true);

        let rows = query(
            &lake,
            &format!("select eventdata.eventname as n, count(*) as c from {group_eds} group by eventdata.eventname"),
        )
        .await;
        let count = |n: &str| {
            rows.iter()
                .find(|r| r["n"] == n)
                .map(|r| r["c"].as_str().unwrap().parse::<i64>().unwrap())
                .unwrap_or(0)
        };
        assert_eq!(count("group.user.add"), 1);
        assert_eq!(count("group.org.add"), 1);
        assert_eq!(count("org.settings.edit"), 1);
        assert_eq!(count("org.edit"), 1, "the org added later is covered");
        assert_eq!(count("org.create"), 0, "but not its events from before");
        let total: i64 = rows
            .iter()
            .map(|r| r["c"].as_str().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(
            total, group_i.delivered,
            "every delivered event is stored once"
        );

        fwd.shutdown().await;
        lake.crash();
    }
);

store_test!(
    a_refused_channel_keeps_its_backlog_and_resumes_when_fixed,
    |store| async move {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::start(dir.path()).await;
        let w = world(&store).await;
        // The channel's policy names the wrong External ID.
        let (i, eds) = connect(&store, &lake, &w, Scope::Org(w.org), "not-the-org-id").await;
        let fwd = auditlake_forwarder::spawn(store.clone(), config(&lake)).await;
        store
            .update_org(w.org, Some("Renamed"), None, &Actor::user(w.admin.id))
            .await
            .unwrap();

        let failing = wait_until("the integration reports failing", WITHIN, || async {
            let now = store.integration(i.scope, i.id).await.unwrap().unwrap();
            (now.status == Status::Failing).then_some(now)
        })
        .await;
        assert!(
            failing
                .last_error
                .as_deref()
                .unwrap()
                .contains("ChannelInsufficientPermission"),
            "{:?}",
            failing.last_error
        );
        assert_eq!(
            failing.cursor, i.cursor,
            "nothing acknowledged, nothing skipped"
        );
        assert_eq!(store.lag(&failing).await.unwrap().events, 2);

        // Fix the policy on the lake's side: delivery resumes by itself.
        let channel = i.config.channel_arn.clone();
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": [format!("arn:aws:iam::{PARTNER}:root")]},
                "Action": "cloudtrail-data:PutAuditEvents",
                "Resource": channel,
                "Condition": {"StringEquals": {"cloudtrail:ExternalId": w.org.to_string()}}
            }]
        });
        lake.control(OWNER)
            .put_resource_policy()
            .resource_arn(&channel)
            .resource_policy(policy.to_string())
            .send()
            .await
            .unwrap();
        let healed = drained(&store, &i).await;
        assert_eq!(healed.status, Status::Healthy);
        assert_eq!(healed.delivered, 2);
        let rows = query(&lake, &format!("select eventdata.eventname from {eds}")).await;
        assert_eq!(rows.len(), 2);

        fwd.shutdown().await;
        lake.crash();
    }
);

store_test!(
    replay_sends_again_and_the_lake_keeps_one_copy,
    |store| async move {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::start(dir.path()).await;
        let w = world(&store).await;
        let (i, eds) = connect(&store, &lake, &w, Scope::Org(w.org), &w.org.to_string()).await;
        let fwd = auditlake_forwarder::spawn(store.clone(), config(&lake)).await;
        let actor = Actor::user(w.admin.id);
        for n in 0..5 {
            store
                .update_org(w.org, Some(&format!("name {n}")), None, &actor)
                .await
                .unwrap();
        }
        let first = drained(&store, &i).await;
        assert_eq!(first.delivered, 6);
        store
            .replay_integration(i.scope, i.id, 0, &actor)
            .await
            .unwrap();
        let again = drained(&store, &i).await;
        assert!(
            again.delivered > first.delivered + 6,
            "the whole org log went again"
        );
        let rows = query(
            &lake,
            &format!("select count(*) as c, count(distinct eventdata.uid) as u from {eds}"),
        )
        .await;
        assert_eq!(rows[0]["c"], rows[0]["u"], "one copy per event");

        fwd.shutdown().await;
        lake.crash();
    }
);
