//! The keyset pagination behind the list methods (`Page` / `PageOf`),
//! through `group_orgs`, `tokens` and `members`.

use auditlake_core::Role;
use auditlake_store::{store_test, Page, PageOf};

use super::*;

fn page(after: Option<Uuid>, before: Option<Uuid>, limit: u32) -> Page {
    Page {
        after,
        before,
        limit,
    }
}

fn item_ids<T>(p: &PageOf<T>, id: fn(&T) -> Uuid) -> Vec<Uuid> {
    p.items.iter().map(id).collect()
}

store_test!(
    group_orgs_pages_forwards_and_backwards,
    |store| async move {
        let u = new_user(&store, "p@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let other = store.create_group("Other", &actor(&u)).await.unwrap();
        let mut want = Vec::new();
        for i in 0..7 {
            want.push(
                store
                    .create_org(&format!("O{i}"), Some(g.id), &actor(&u))
                    .await
                    .unwrap()
                    .id,
            );
            // Orgs outside the group must never show up.
            store
                .create_org(&format!("X{i}"), Some(other.id), &actor(&u))
                .await
                .unwrap();
            store
                .create_org(&format!("S{i}"), None, &actor(&u))
                .await
                .unwrap();
        }
        want.sort();
        let id = |o: &auditlake_core::Org| o.id;
        let list = |p: Page| {
            let store = store.clone();
            async move { store.group_orgs(g.id, p).await.unwrap() }
        };

        // Forwards with `after`.
        let p = list(page(None, None, 3)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want[0..3].to_vec(), true));
        let p = list(page(Some(want[2]), None, 3)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want[3..6].to_vec(), true));
        let p = list(page(Some(want[5]), None, 3)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want[6..7].to_vec(), false));
        let p = list(page(Some(want[6]), None, 3)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (vec![], false));

        // Backwards with `before`: items still come in ascending order, and
        // has_more says whether older items remain.
        let p = list(page(None, Some(want[6]), 3)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want[3..6].to_vec(), true));
        let p = list(page(None, Some(want[3]), 3)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want[0..3].to_vec(), false));
        let p = list(page(None, Some(want[2]), 3)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want[0..2].to_vec(), false));
        let p = list(page(None, Some(want[0]), 3)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (vec![], false));

        // Limits: exactly everything, more than everything, and 0 (means 1).
        let p = list(page(None, None, 7)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want.clone(), false));
        let p = list(page(None, None, 100)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want.clone(), false));
        let p = list(page(None, None, 6)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want[0..6].to_vec(), true));
        let p = list(page(None, None, 0)).await;
        assert_eq!((item_ids(&p, id), p.has_more), (want[0..1].to_vec(), true));

        // `after` wins over `before`.
        let p = list(page(Some(want[1]), Some(want[3]), 3)).await;
        assert_eq!(item_ids(&p, id), want[2..5].to_vec());

        // Walking forwards one page at a time visits every org exactly once.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let p = list(page(cursor, None, 2)).await;
            seen.extend(item_ids(&p, id));
            if !p.has_more {
                break;
            }
            cursor = seen.last().copied();
        }
        assert_eq!(seen, want);

        // An unknown group has no orgs.
        let p = store
            .group_orgs(Uuid::now_v7(), Page::default())
            .await
            .unwrap();
        assert!(p.items.is_empty() && !p.has_more);
    }
);

store_test!(tokens_page_with_revoked_ones_included, |store| async move {
    let u = new_user(&store, "t@example.com").await;
    let stranger = new_user(&store, "s@example.com").await;
    let mut want = Vec::new();
    for i in 0..5 {
        want.push(
            store
                .create_token(u.id, &format!("t{i}"), None, &actor(&u))
                .await
                .unwrap()
                .token,
        );
        store
            .create_token(stranger.id, "theirs", None, &actor(&stranger))
            .await
            .unwrap();
    }
    want.sort_by_key(|t| t.id);
    let revoked = store
        .revoke_token(u.id, want[1].id, &actor(&u))
        .await
        .unwrap();
    want[1] = revoked;

    let p = store.tokens(u.id, page(None, None, 2)).await.unwrap();
    assert_eq!((p.items.clone(), p.has_more), (want[0..2].to_vec(), true));
    assert!(p.items[1].revoked_us.is_some());
    let p = store
        .tokens(u.id, page(Some(want[1].id), None, 2))
        .await
        .unwrap();
    assert_eq!((p.items.clone(), p.has_more), (want[2..4].to_vec(), true));
    let p = store
        .tokens(u.id, page(Some(want[3].id), None, 2))
        .await
        .unwrap();
    assert_eq!((p.items.clone(), p.has_more), (want[4..5].to_vec(), false));
    let p = store
        .tokens(u.id, page(None, Some(want[4].id), 2))
        .await
        .unwrap();
    assert_eq!((p.items.clone(), p.has_more), (want[2..4].to_vec(), true));
    let p = store
        .tokens(u.id, page(None, Some(want[2].id), 2))
        .await
        .unwrap();
    assert_eq!((p.items.clone(), p.has_more), (want[0..2].to_vec(), false));
    let p = store.tokens(u.id, page(None, None, 10)).await.unwrap();
    assert_eq!((p.items, p.has_more), (want, false));
    // Another user's token ID as a cursor leaks nothing of theirs.
    let theirs = store.tokens(stranger.id, Page::default()).await.unwrap();
    assert_eq!(theirs.items.len(), 5);
    assert!(theirs.items.iter().all(|t| t.user_id == stranger.id));
});

store_test!(members_page_through_every_member_once, |store| async move {
    let admin = new_user(&store, "admin@example.com").await;
    let o = store.create_org("O", None, &actor(&admin)).await.unwrap();
    let elsewhere = store.create_org("E", None, &actor(&admin)).await.unwrap();
    for i in 0..5 {
        let v = new_user(&store, &format!("m{i}@example.com")).await;
        store
            .add_member(Scope::Org(o.id), v.id, Role::OrgMember, &actor(&admin))
            .await
            .unwrap();
        store
            .add_member(
                Scope::Org(elsewhere.id),
                v.id,
                Role::OrgAdmin,
                &actor(&admin),
            )
            .await
            .unwrap();
    }
    let all = store
        .members(Scope::Org(o.id), page(None, None, 100))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6, "the creator and five members");
    assert!(!all.has_more);
    let want: Vec<Uuid> = all.items.iter().map(|m| m.id).collect();
    let sorted = {
        let mut s = want.clone();
        s.sort();
        s
    };
    assert_eq!(want, sorted, "members come in ID order");
    assert_eq!(
        all.items
            .iter()
            .filter(|m| m.role == Role::OrgAdmin)
            .count(),
        1
    );

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let p = store
            .members(Scope::Org(o.id), page(cursor, None, 4))
            .await
            .unwrap();
        pages += 1;
        seen.extend(p.items.iter().map(|m| m.id));
        if !p.has_more {
            break;
        }
        cursor = seen.last().copied();
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, want);

    // Backwards from the newest member.
    let p = store
        .members(Scope::Org(o.id), page(None, Some(want[5]), 4))
        .await
        .unwrap();
    assert_eq!(
        (item_ids(&p, |m| m.id), p.has_more),
        (want[1..5].to_vec(), true)
    );
    let p = store
        .members(Scope::Org(o.id), page(None, Some(want[5]), 100))
        .await
        .unwrap();
    assert_eq!(
        (item_ids(&p, |m| m.id), p.has_more),
        (want[0..5].to_vec(), false)
    );

    assert_invalid(store.members(Scope::User, Page::default()).await);
});
