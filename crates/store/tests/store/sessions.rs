//! Dashboard sessions and passwords: secrets stored hashed, sign-in and
//! sign-out audited, passwords checked without leaking them or whether an
//! email exists.

use auditlake_store::store_test;

use super::*;

store_test!(sessions_open_resolve_and_close, |store| async move {
    let u = new_user(&store, "alice@example.com").await;
    let head = store.head().await.unwrap();
    let s = store.create_session(&u, &actor(&u)).await.unwrap();
    assert_eq!(s.secret.len(), 64);
    let got = store
        .session(&s.secret)
        .await
        .unwrap()
        .expect("live session");
    assert_eq!(got.user.id, u.id);
    assert_eq!(got.csrf, s.csrf);
    assert!(store.session(&"0".repeat(64)).await.unwrap().is_none());
    assert!(store.session("short").await.unwrap().is_none());
    store.delete_session(&s.secret, &actor(&u)).await.unwrap();
    assert!(store.session(&s.secret).await.unwrap().is_none());
    let log = log_after(&store, head).await;
    assert_eq!(names(&log), ["user.login", "user.logout"]);
    assert!(
        !log[0].content.contains(&s.secret),
        "the secret is not logged"
    );
});

store_test!(
    passwords_are_checked_and_never_stored_plain,
    |store| async move {
        let u = new_user(&store, "bob@example.com").await;
        assert_invalid(store.set_password(u.id, "short", &actor(&u)).await);
        let head = store.head().await.unwrap();
        let password = "a long enough password";
        store
            .set_password(u.id, password, &actor(&u))
            .await
            .unwrap();
        let log = log_after(&store, head).await;
        assert_eq!(names(&log), ["user.password.set"]);
        assert!(!log[0].content.contains(password));

        let ok = store
            .check_password("BOB@example.com", password)
            .await
            .unwrap();
        assert_eq!(ok.map(|u| u.id), Some(u.id));
        assert!(store
            .check_password("bob@example.com", "a wrong password!!")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .check_password("nobody@example.com", password)
            .await
            .unwrap()
            .is_none());
        let token_only = new_user(&store, "carol@example.com").await;
        assert!(store
            .check_password(&token_only.email, "")
            .await
            .unwrap()
            .is_none());
        assert_not_found(
            store
                .set_password(Uuid::now_v7(), password, &actor(&u))
                .await,
        );
    }
);
