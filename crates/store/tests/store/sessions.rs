//! Dashboard sessions and passwords: secrets stored hashed, sign-in and
//! sign-out audited, passwords checked without leaking them or whether an
//! email exists.

use auditlake_store::{store_test, SignedInWith};

use super::*;

store_test!(sessions_open_resolve_and_close, |store| async move {
    let u = new_user(&store, "alice@example.com").await;
    let head = store.head().await.unwrap();
    let s = store
        .create_session(&u, SignedInWith::Password, &actor(&u))
        .await
        .unwrap();
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

// A dashboard session lived its 12 hours even after the token that opened
// it was revoked, or expired: it dies with its token now. A password
// session dies when the password changes; a token session does not.
store_test!(a_session_dies_with_what_opened_it, |store| async move {
    let u = new_user(&store, "dana@example.com").await;
    let live = |secret: String| {
        let store = store.clone();
        async move { store.session(&secret).await.unwrap().is_some() }
    };
    let now = auditlake_core::time_fmt::now_micros();
    let token = |expires: Option<i64>| {
        let store = store.clone();
        let u = u.clone();
        async move {
            store
                .create_token(u.id, "t", expires, &actor(&u))
                .await
                .unwrap()
                .token
                .id
        }
    };
    let open = |with: SignedInWith| {
        let store = store.clone();
        let u = u.clone();
        async move {
            store
                .create_session(&u, with, &actor(&u))
                .await
                .unwrap()
                .secret
        }
    };

    let revoked = token(None).await;
    let by_revoked = open(SignedInWith::Token(revoked)).await;
    assert!(live(by_revoked.clone()).await);
    store.revoke_token(u.id, revoked, &actor(&u)).await.unwrap();
    assert!(
        !live(by_revoked).await,
        "the session outlived its revoked token"
    );

    let later = token(Some(now + 3_600_000_000)).await;
    let by_later = open(SignedInWith::Token(later)).await;
    assert!(live(by_later.clone()).await);
    let expired = token(Some(now - 1)).await;
    assert!(
        !live(open(SignedInWith::Token(expired)).await).await,
        "the session outlived its expired token"
    );

    store
        .set_password(u.id, "the first long password", &actor(&u))
        .await
        .unwrap();
    let by_password = open(SignedInWith::Password).await;
    assert!(live(by_password.clone()).await);
    store
        .set_password(u.id, "the second long password", &actor(&u))
        .await
        .unwrap();
    assert!(
        !live(by_password).await,
        "the session outlived the password that opened it"
    );
    assert!(
        live(by_later).await,
        "a new password ends only the sessions passwords opened"
    );
});
