//! The scope rule of integrations as a property over random worlds: groups,
//! orgs created standalone or in a group, orgs moved into groups later,
//! users in several orgs, events at every level, and integrations created
//! at random moments. What the forwarder reads for each integration
//! (`events_for`, page by page from its cursor) must be exactly what an
//! independent model of the world says it should receive.

use std::collections::HashMap;

use auditlake_core::integration::CloudTrailConfig;
use auditlake_core::{Integration, Role};
use auditlake_store::testing::TestDb;
use auditlake_store::Backend;
use proptest::prelude::*;

use super::*;

/// One step of a random world. Indices are taken modulo what exists.
#[derive(Debug, Clone)]
enum Op {
    Group,
    Org { in_group: Option<usize> },
    Move { org: usize, group: usize },
    User,
    Member { user: usize, org: usize },
    GroupMember { user: usize, group: usize },
    OrgEvent { org: usize, user: usize },
    GroupEvent { group: usize },
    OrgIntegration { org: usize },
    GroupIntegration { group: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0usize..8;
    prop_oneof![
        1 => Just(Op::Group),
        2 => proptest::option::of(i()).prop_map(|g| Op::Org { in_group: g }),
        1 => (i(), i()).prop_map(|(org, group)| Op::Move { org, group }),
        1 => Just(Op::User),
        2 => (i(), i()).prop_map(|(user, org)| Op::Member { user, org }),
        1 => (i(), i()).prop_map(|(user, group)| Op::GroupMember { user, group }),
        6 => (i(), i()).prop_map(|(org, user)| Op::OrgEvent { org, user }),
        3 => i().prop_map(|group| Op::GroupEvent { group }),
        2 => i().prop_map(|org| Op::OrgIntegration { org }),
        2 => i().prop_map(|group| Op::GroupIntegration { group }),
    ]
}

/// The model's view of an event: the org and group it belongs to.
#[derive(Debug, Clone, Copy)]
struct Belongs {
    org: Option<Uuid>,
    group: Option<Uuid>,
}

fn config() -> CloudTrailConfig {
    CloudTrailConfig::new(
        "123456789012",
        "arn:aws:cloudtrail:us-east-1:123456789012:channel/x",
    )
    .unwrap()
}

async fn check_world(backend: Backend, ops: Vec<Op>) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let nobody = Actor::default();
    let mut groups: Vec<Uuid> = Vec::new();
    // org -> its group, as the model tracks it.
    let mut orgs: Vec<(Uuid, Option<Uuid>)> = Vec::new();
    let mut users: Vec<Uuid> = Vec::new();
    let mut belongs: HashMap<i64, Belongs> = HashMap::new();
    let mut integrations: Vec<Integration> = Vec::new();

    for op in ops {
        let head = store.head().await.unwrap();
        // Where the events of this step belong, by the model.
        let at: Option<Belongs> = match op {
            Op::Group => {
                let g = store.create_group("g", &nobody).await.unwrap();
                groups.push(g.id);
                Some(Belongs {
                    org: None,
                    group: Some(g.id),
                })
            }
            Op::Org { in_group } => {
                let g = in_group
                    .filter(|_| !groups.is_empty())
                    .map(|k| groups[k % groups.len()]);
                let o = store.create_org("o", g, &nobody).await.unwrap();
                orgs.push((o.id, g));
                Some(Belongs {
                    org: Some(o.id),
                    group: g,
                })
            }
            Op::Move { org, group } if !orgs.is_empty() && !groups.is_empty() => {
                let k = org % orgs.len();
                let g = groups[group % groups.len()];
                if orgs[k].1.is_none() {
                    store.add_org_to_group(g, orgs[k].0, &nobody).await.unwrap();
                    orgs[k].1 = Some(g);
                    Some(Belongs {
                        org: None,
                        group: Some(g),
                    })
                } else {
                    None
                }
            }
            Op::User => {
                let u = store
                    .create_user(&format!("u{}@example.com", users.len()), "u")
                    .await
                    .unwrap();
                users.push(u.id);
                Some(Belongs {
                    org: None,
                    group: None,
                })
            }
            Op::Member { user, org } if !users.is_empty() && !orgs.is_empty() => {
                let (o, g) = orgs[org % orgs.len()];
                let u = users[user % users.len()];
                match store
                    .add_member(Scope::Org(o), u, Role::OrgMember, &nobody)
                    .await
                {
                    Ok(_) => Some(Belongs {
                        org: Some(o),
                        group: g,
                    }),
                    Err(StoreError::Conflict(_)) => None,
                    Err(e) => panic!("{e}"),
                }
            }
            Op::GroupMember { user, group } if !users.is_empty() && !groups.is_empty() => {
                let g = groups[group % groups.len()];
                let u = users[user % users.len()];
                match store
                    .add_member(Scope::Group(g), u, Role::GroupAdmin, &nobody)
                    .await
                {
                    Ok(_) => Some(Belongs {
                        org: None,
                        group: Some(g),
                    }),
                    Err(StoreError::Conflict(_)) => None,
                    Err(e) => panic!("{e}"),
                }
            }
            Op::OrgEvent { org, user } if !orgs.is_empty() => {
                let (o, g) = orgs[org % orgs.len()];
                let mut e = event_at("org.thing.edit", Scope::Org(o), T0);
                e.user_id = users.get(user % users.len().max(1)).copied();
                append_one(&store, e).await;
                Some(Belongs {
                    org: Some(o),
                    group: g,
                })
            }
            Op::GroupEvent { group } if !groups.is_empty() => {
                let g = groups[group % groups.len()];
                append_one(&store, event_at("group.thing.edit", Scope::Group(g), T0)).await;
                Some(Belongs {
                    org: None,
                    group: Some(g),
                })
            }
            Op::OrgIntegration { org } if !orgs.is_empty() => {
                let (o, g) = orgs[org % orgs.len()];
                let i = store
                    .create_integration(Scope::Org(o), "i", config(), &nobody)
                    .await
                    .unwrap();
                integrations.push(i);
                Some(Belongs {
                    org: Some(o),
                    group: g,
                })
            }
            Op::GroupIntegration { group } if !groups.is_empty() => {
                let g = groups[group % groups.len()];
                let i = store
                    .create_integration(Scope::Group(g), "i", config(), &nobody)
                    .await
                    .unwrap();
                integrations.push(i);
                Some(Belongs {
                    org: None,
                    group: Some(g),
                })
            }
            _ => None,
        };
        let new = log_after(&store, head).await;
        match at {
            Some(b) => {
                for e in &new {
                    belongs.insert(e.seq, b);
                }
            }
            None => assert!(new.is_empty(), "{op:?} wrote {:?}", names(&new)),
        }
    }

    let all = full_log(&store).await;
    for i in &integrations {
        let want: Vec<i64> = all
            .iter()
            .filter(|e| e.seq > i.cursor)
            .filter(|e| {
                let b = belongs[&e.seq];
                match i.scope {
                    Scope::Org(o) => b.org == Some(o),
                    Scope::Group(g) => b.group == Some(g),
                    Scope::User => false,
                }
            })
            .map(|e| e.seq)
            .collect();
        // Read as the forwarder does: small pages from the cursor.
        let mut got = Vec::new();
        let mut cursor = i.cursor;
        loop {
            let page = store.events_for(i, cursor, 3).await.unwrap();
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            got.extend(page.iter().map(|e| e.seq));
        }
        assert_eq!(got, want, "{:?}", i.scope);
    }
    store.close().await;
    db.cleanup().await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn integrations_receive_exactly_their_scope_on_sqlite(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(check_world(Backend::Sqlite, ops));
    }

    #[test]
    fn integrations_receive_exactly_their_scope_on_postgres(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(check_world(Backend::Postgres, ops));
    }
}
