//! Personal API tokens: creation, authentication, revocation, expiry, and
//! the secret never reaching the database.

use auditlake_core::time_fmt;
use auditlake_store::store_test;
use serde_json::json;
use sqlx::{Connection, Row};

use super::*;

store_test!(created_token_authenticates_its_user, |store| async move {
    let u = new_user(&store, "t@example.com").await;
    let start = store.head().await.unwrap();

    let new = store
        .create_token(u.id, "ci", None, &actor(&u))
        .await
        .unwrap();
    assert!(new.secret.starts_with("alk_"), "{}", new.secret);
    assert!(
        new.secret.len() >= 40,
        "a long random secret: {}",
        new.secret
    );
    assert!(new.secret.starts_with(&new.token.prefix));
    assert!(new.token.prefix.len() < new.secret.len());
    assert_eq!(new.token.user_id, u.id);
    assert_eq!(new.token.name, "ci");
    assert_eq!((new.token.expires_us, new.token.revoked_us), (None, None));
    assert_eq!(
        store.token(u.id, new.token.id).await.unwrap(),
        Some(new.token.clone())
    );

    let evs = log_after(&store, start).await;
    assert_eq!(names(&evs), ["user.token.create"]);
    assert_eq!(evs[0].user_id, Some(u.id));
    assert_eq!(
        content(&evs[0]),
        json!({"tokenPublicId": new.token.id, "name": "ci", "userPublicId": u.id})
    );

    let (who, token) = store
        .authenticate(&new.secret)
        .await
        .unwrap()
        .expect("valid");
    assert_eq!(who, u);
    assert_eq!(token, new.token);

    // Two tokens never share a secret.
    let other = store
        .create_token(u.id, "ci", None, &actor(&u))
        .await
        .unwrap();
    assert_ne!(other.secret, new.secret);
    assert_eq!(
        store.authenticate(&other.secret).await.unwrap().unwrap().1,
        other.token
    );
});

store_test!(wrong_secrets_authenticate_nobody, |store| async move {
    let u = new_user(&store, "t@example.com").await;
    let new = store
        .create_token(u.id, "ci", None, &actor(&u))
        .await
        .unwrap();
    let s = &new.secret;

    let mut flipped = s.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    let without_prefix = s.trim_start_matches("alk_").to_owned();
    let padded = format!("{s} ");
    let too_long = format!("{s}{}", "x".repeat(200));
    for bad in [
        flipped.as_str(),
        &s[..s.len() - 1],
        new.token.prefix.as_str(),
        without_prefix.as_str(),
        padded.as_str(),
        too_long.as_str(),
        "",
        "alk_",
        "alk_' OR '1'='1",
    ] {
        assert_eq!(store.authenticate(bad).await.unwrap(), None, "{bad:?}");
    }
    assert!(store.authenticate(s).await.unwrap().is_some());
});

store_test!(revoked_tokens_stop_working, |store| async move {
    let u = new_user(&store, "t@example.com").await;
    let keep = store
        .create_token(u.id, "keep", None, &actor(&u))
        .await
        .unwrap();
    let gone = store
        .create_token(u.id, "gone", None, &actor(&u))
        .await
        .unwrap();
    let start = store.head().await.unwrap();

    let revoked = store
        .revoke_token(u.id, gone.token.id, &actor(&u))
        .await
        .unwrap();
    assert!(revoked.revoked_us.is_some());
    assert_eq!(
        store.token(u.id, gone.token.id).await.unwrap(),
        Some(revoked.clone())
    );
    assert_eq!(store.authenticate(&gone.secret).await.unwrap(), None);
    assert!(
        store.authenticate(&keep.secret).await.unwrap().is_some(),
        "others unaffected"
    );

    let evs = log_after(&store, start).await;
    assert_eq!(names(&evs), ["user.token.revoke"]);
    assert_eq!(
        content(&evs[0]),
        json!({"tokenPublicId": gone.token.id, "userPublicId": u.id})
    );

    // Revoking again changes nothing and writes nothing.
    let head = store.head().await.unwrap();
    let again = store
        .revoke_token(u.id, gone.token.id, &actor(&u))
        .await
        .unwrap();
    assert_eq!(again, revoked);
    assert_eq!(store.head().await.unwrap(), head);
});

store_test!(
    revoking_someone_elses_or_unknown_token_is_not_found,
    |store| async move {
        let u = new_user(&store, "t@example.com").await;
        let mallory = new_user(&store, "m@example.com").await;
        let new = store
            .create_token(u.id, "mine", None, &actor(&u))
            .await
            .unwrap();
        let head = store.head().await.unwrap();

        assert_not_found(
            store
                .revoke_token(mallory.id, new.token.id, &actor(&mallory))
                .await,
        );
        assert_not_found(store.revoke_token(u.id, Uuid::now_v7(), &actor(&u)).await);
        assert_eq!(store.token(mallory.id, new.token.id).await.unwrap(), None);

        assert_eq!(store.head().await.unwrap(), head);
        assert!(store.authenticate(&new.secret).await.unwrap().is_some());
    }
);

store_test!(expired_tokens_stop_working, |store| async move {
    let u = new_user(&store, "t@example.com").await;
    let now = time_fmt::now_micros();
    let expired = store
        .create_token(u.id, "old", Some(now - 1), &actor(&u))
        .await
        .unwrap();
    let valid = store
        .create_token(u.id, "new", Some(now + 3_600_000_000), &actor(&u))
        .await
        .unwrap();
    assert_eq!(expired.token.expires_us, Some(now - 1));
    assert_eq!(store.authenticate(&expired.secret).await.unwrap(), None);
    let (_, t) = store
        .authenticate(&valid.secret)
        .await
        .unwrap()
        .expect("not yet expired");
    assert_eq!(t.expires_us, Some(now + 3_600_000_000));
});

db_test!(the_database_never_holds_a_secret, |url, store| async move {
    let u = new_user(&store, "t@example.com").await;
    let kept = store
        .create_token(u.id, "kept", None, &actor(&u))
        .await
        .unwrap();
    let revoked = store
        .create_token(u.id, "revoked", None, &actor(&u))
        .await
        .unwrap();
    store
        .revoke_token(u.id, revoked.token.id, &actor(&u))
        .await
        .unwrap();

    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let mut texts = Vec::new();
    for row in sqlx::query("SELECT id, user_id, name, prefix, hash FROM tokens")
        .fetch_all(&mut conn)
        .await
        .unwrap()
    {
        for col in 0..5 {
            texts.push(row.try_get::<String, _>(col).unwrap());
        }
    }
    assert_eq!(texts.len(), 10, "two tokens stored");
    for row in sqlx::query("SELECT content FROM audit_events")
        .fetch_all(&mut conn)
        .await
        .unwrap()
    {
        texts.push(row.try_get::<String, _>(0).unwrap());
    }
    conn.close().await.unwrap();

    for secret in [&kept.secret, &revoked.secret] {
        // The part of the secret that is not the displayed prefix.
        let hidden = &secret[kept.token.prefix.len()..];
        for t in &texts {
            assert!(!t.contains(secret.as_str()), "secret stored in clear: {t}");
            assert!(!t.contains(hidden), "secret tail stored in clear: {t}");
        }
    }
    // Yet the stored form still authenticates.
    assert!(store.authenticate(&kept.secret).await.unwrap().is_some());
});

store_test!(
    authenticating_a_request_reads_the_tenant_it_names,
    |store| async move {
        use auditlake_store::{NamedTenant, TenantRef};
        let u = new_user(&store, "named@example.com").await;
        let g = store.create_group("G", &actor(&u)).await.unwrap();
        let inside = store
            .create_org("Inside", Some(g.id), &actor(&u))
            .await
            .unwrap();
        let alone = store.create_org("Alone", None, &actor(&u)).await.unwrap();
        // The creator administers all three: the query fans out one row
        // per membership, and the named tenant must come back whole all the
        // same.
        let secret = store
            .create_token(u.id, "api", None, &actor(&u))
            .await
            .unwrap()
            .secret;
        let auth = |named| {
            let (store, secret) = (store.clone(), secret.clone());
            async move {
                store
                    .authenticate_request(&secret, named)
                    .await
                    .unwrap()
                    .expect("valid token")
            }
        };

        let plain = auth(None).await;
        assert_eq!(plain.user, u);
        assert_eq!(plain.tenant, None);
        assert!(plain.access.is_group_admin(g.id));
        assert!(plain.access.can_admin_org(&alone) && plain.access.can_admin_org(&inside));

        let org = auth(Some(TenantRef::Org(inside.id))).await;
        assert_eq!(
            org.tenant,
            Some(NamedTenant::Org(inside.id, Some(inside.clone())))
        );
        assert_eq!(rights(&org.access), rights(&plain.access));
        assert_eq!(org.user, u);

        let group = auth(Some(TenantRef::Group(g.id))).await;
        assert_eq!(
            group.tenant,
            Some(NamedTenant::Group(g.id, Some(g.clone())))
        );

        // An ID that names nothing, or names the other kind of tenant, is
        // "no such tenant", and the caller is still authenticated.
        let nobody = Uuid::new_v4();
        let missing = auth(Some(TenantRef::Org(nobody))).await;
        assert_eq!(missing.tenant, Some(NamedTenant::Org(nobody, None)));
        assert_eq!(rights(&missing.access), rights(&plain.access));
        let crossed = auth(Some(TenantRef::Group(inside.id))).await;
        assert_eq!(crossed.tenant, Some(NamedTenant::Group(inside.id, None)));

        // Another user's org is read too: rights are the caller's check,
        // made on the row (the API answers "not found" for it).
        let other = new_user(&store, "other@example.com").await;
        let theirs = store
            .create_org("Theirs", None, &actor(&other))
            .await
            .unwrap();
        let foreign = auth(Some(TenantRef::Org(theirs.id))).await;
        assert_eq!(
            foreign.tenant,
            Some(NamedTenant::Org(theirs.id, Some(theirs.clone())))
        );
        assert!(!foreign.access.can_read_org(&theirs));

        // A bad secret is no caller, whatever it names.
        assert!(store
            .authenticate_request("alk_nope", Some(TenantRef::Org(inside.id)))
            .await
            .unwrap()
            .is_none());
    }
);

/// Memberships in a comparable form (row order is the database's).
fn rights(a: &auditlake_core::tenant::Access) -> (Vec<Uuid>, Vec<(Uuid, &'static str)>) {
    let mut groups = a.group_admin.clone();
    groups.sort();
    let mut orgs: Vec<_> = a.org_roles.iter().map(|(o, r)| (*o, r.as_str())).collect();
    orgs.sort();
    (groups, orgs)
}

// Authentications are cached (`auth_cache`); a change committed by this
// store must still be seen by the very next authentication.
store_test!(
    a_change_is_seen_by_the_next_authentication_despite_the_cache,
    |store| async move {
        use auditlake_core::tenant::Role;
        use auditlake_store::TenantRef;
        let admin = new_user(&store, "admin@example.com").await;
        let bob = new_user(&store, "bob@example.com").await;
        let g = store.create_group("G", &actor(&admin)).await.unwrap();
        let org = store.create_org("O", None, &actor(&admin)).await.unwrap();
        let bobs = store
            .create_token(bob.id, "api", None, &actor(&bob))
            .await
            .unwrap()
            .secret;
        let admins = store
            .create_token(admin.id, "api", None, &actor(&admin))
            .await
            .unwrap()
            .secret;
        let named = Some(TenantRef::Org(org.id));
        let auth = |secret: String| {
            let store = store.clone();
            async move { store.authenticate_request(&secret, named).await.unwrap() }
        };

        // A membership granted is seen.
        let before = auth(bobs.clone()).await.expect("valid");
        assert!(!before.access.can_read_org(&org));
        store
            .add_member(Scope::Org(org.id), bob.id, Role::OrgMember, &actor(&admin))
            .await
            .unwrap();
        let after = auth(bobs.clone()).await.expect("valid");
        assert!(after.access.can_read_org(&org));

        // The org's new parent is seen, with the row the path names.
        let moved = store
            .add_org_to_group(g.id, org.id, &actor(&admin))
            .await
            .unwrap();
        let a = auth(admins.clone()).await.expect("valid");
        assert_eq!(
            a.tenant,
            Some(auditlake_store::NamedTenant::Org(org.id, Some(moved)))
        );

        // A revoked token is refused at once.
        let token = auth(bobs.clone()).await.expect("valid").token;
        store
            .revoke_token(bob.id, token.id, &actor(&bob))
            .await
            .unwrap();
        assert!(auth(bobs).await.is_none());
        assert!(auth(admins).await.is_some(), "others unaffected");
    }
);

// Another process's change is seen within the cache's TTL: at once with
// the cache off, and not at once with a long TTL (which shows that the
// cache is what the first store answered from).
db_test!(
    another_process_change_is_seen_within_the_cache_ttl,
    |url, store| async move {
        use std::time::Duration;
        let u = new_user(&store, "t@example.com").await;
        let new = store
            .create_token(u.id, "api", None, &actor(&u))
            .await
            .unwrap();
        let uncached = Store::connect(&url)
            .await
            .unwrap()
            .with_auth_cache_ttl(Duration::ZERO);
        let cached = Store::connect(&url)
            .await
            .unwrap()
            .with_auth_cache_ttl(Duration::from_secs(3600));
        for s in [&uncached, &cached] {
            assert!(s.authenticate(&new.secret).await.unwrap().is_some());
        }

        store
            .revoke_token(u.id, new.token.id, &actor(&u))
            .await
            .unwrap();
        assert_eq!(store.authenticate(&new.secret).await.unwrap(), None);
        assert_eq!(uncached.authenticate(&new.secret).await.unwrap(), None);
        assert!(
            cached.authenticate(&new.secret).await.unwrap().is_some(),
            "served from the cache until its TTL"
        );
        uncached.close().await;
        cached.close().await;
    }
);
