//! The dashboard's security paths over plain HTTP (the browser flow itself
//! is tested in Chromium by the CLI's `dashboard_e2e`): sign-in with the
//! double-submit token, the session cookie's attributes, CSRF on forms,
//! redirects for visitors without a session, and other tenants' pages.

use reqwest::StatusCode;

use crate::common::*;

fn client() -> reqwest::Client {
    no_redirects()
}

/// Signs in with `token`; returns the session cookie's value.
async fn sign_in(base: &str, token: &str) -> String {
    let res = sign_in_answer(&client(), base, &[("token", token)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (session, attrs) = set_cookie(&res, "auditlake_session").expect("session cookie");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"),
        "{attrs}"
    );
    session
}

api_test!(sign_in_needs_the_forms_own_token, |h| async move {
    let http = client();
    let res = http
        .get(format!("{}/orgs/{}/settings", h.base, h.org.id))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");

    // A forged sign-in (no matching cookie) is refused and opens nothing.
    let head = h.head().await;
    let res = http
        .post(format!("{}/login", h.base))
        .form(&[("csrf", "forged"), ("token", h.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&res, "auditlake_session").is_none());
    assert!(h.changes_since(head).await.is_empty());

    let session = sign_in(&h.base, &h.token).await;
    let login = h.changes_since(head).await;
    assert_eq!(login.len(), 1);
    assert_eq!(login[0].event, "user.login");
    assert_eq!(login[0].user_id, Some(h.user.id));

    let res = http
        .get(format!("{}/orgs/{}/settings", h.base, h.org.id))
        .header("cookie", format!("auditlake_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains(&h.org.id.to_string()));
});

/// A client whose requests come from `ip` (any 127.0.0.0/8 address works
/// on loopback), as another visitor's would.
fn client_at(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

api_test!(
    failed_sign_ins_are_limited_per_address_and_per_email,
    |h| async move {
        let max = auditlake_api::SignInGuard::MAX_FAILURES;
        let token = [("token", h.token.as_str())];
        let here = client_at("127.0.0.1");
        for i in 0..max {
            let res = sign_in_answer(&here, &h.base, &[("token", "wrong")]).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "failure {i}");
        }
        // Even the right token is turned away now, without a session.
        let res = sign_in_answer(&here, &h.base, &token).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let window = auditlake_api::SignInGuard::WINDOW.as_secs() + 1;
        assert!((1..=window).contains(&wait), "Retry-After {wait}");
        assert!(set_cookie(&res, "auditlake_session").is_none());
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins"));
        // Another address is not affected.
        let res = sign_in_answer(&client_at("127.0.0.2"), &h.base, &token).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);

        // Wrong passwords for one email from several addresses lock that
        // email's password sign-in, whatever its case, and nothing else.
        let email = h.user.email.as_str();
        for (n, ip) in ["127.0.0.3", "127.0.0.4"].into_iter().enumerate() {
            let http = client_at(ip);
            for i in 0..max / 2 {
                let res = sign_in_answer(
                    &http,
                    &h.base,
                    &[("email", email), ("password", "guess-guess-guess")],
                )
                .await;
                assert_eq!(
                    res.status(),
                    StatusCode::UNAUTHORIZED,
                    "{ip}: failure {n}/{i}"
                );
            }
        }
        let there = client_at("127.0.0.5");
        let shouted = email.to_uppercase();
        let res = sign_in_answer(
            &there,
            &h.base,
            &[("email", &shouted), ("password", "guess-guess-guess")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let res = sign_in_answer(&there, &h.base, &token).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
);

api_test!(
    forms_without_the_sessions_csrf_change_nothing,
    |h| async move {
        let session = sign_in(&h.base, &h.token).await;
        let head = h.head().await;
        let http = client();
        let arn = "arn:aws:cloudtrail:us-east-1:123456789012:channel/x";
        for csrf in ["", "0000"] {
            let res = http
                .post(format!(
                    "{}/orgs/{}/integrations/cloudtrail",
                    h.base, h.org.id
                ))
                .header("cookie", format!("auditlake_session={session}"))
                .form(&[
                    ("csrf", csrf),
                    ("name", "n"),
                    ("account_id", "123456789012"),
                    ("channel_arn", arn),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
        }
        assert!(
            h.changes_since(head).await.is_empty(),
            "nothing was created"
        );
        assert!(h
            .store
            .integrations_of(Scope::Org(h.org.id), auditlake_store::Page::default())
            .await
            .unwrap()
            .items
            .is_empty());
    }
);

api_test!(another_tenants_pages_are_not_found, |h| async move {
    let other = h.new_tenant("other@example.com", "Other").await;
    let session = sign_in(&h.base, &h.token).await;
    let http = client();
    for path in [
        format!("/orgs/{}/settings", other.org.id),
        format!("/orgs/{}/integrations", other.org.id),
        format!("/orgs/{}/integrations/cloudtrail", other.org.id),
        format!("/groups/{}/settings", uuid::Uuid::now_v7()),
        "/orgs/not-a-uuid/settings".to_owned(),
    ] {
        let res = http
            .get(format!("{}{path}", h.base))
            .header("cookie", format!("auditlake_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("Other"), "{path}: {body}");
    }
    // A member who is not an admin sees the org but not its integrations.
    let (member, _) = h.new_user("member@example.com").await;
    h.store
        .add_member(
            Scope::Org(h.org.id),
            member.id,
            auditlake_core::Role::OrgMember,
            &Actor::user(h.user.id),
        )
        .await
        .unwrap();
    let token = h
        .store
        .create_token(member.id, "dashboard", None, &Actor::user(member.id))
        .await
        .unwrap()
        .secret;
    let member_session = sign_in(&h.base, &token).await;
    let res = http
        .get(format!(
            "{}/orgs/{}/integrations/cloudtrail/new",
            h.base, h.org.id
        ))
        .header("cookie", format!("auditlake_session={member_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
});

api_test!(
    the_audit_log_shows_only_the_tenants_own_events,
    |h| async move {
        let other = h.new_tenant("other@example.com", "Other").await;
        let theirs = h
            .store
            .read_log(0, 1_000)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.org_id == Some(other.org.id))
            .expect("the other org's creation event");
        let session = sign_in(&h.base, &h.token).await;
        let http = client();
        let get = |path: String| {
            http.get(format!("{}{path}", h.base))
                .header("cookie", format!("auditlake_session={session}"))
                .send()
        };
        // Their event is not in our log, by URL or by listing.
        let res = get(format!("/orgs/{}/audit/{}", h.org.id, theirs.id))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = get(format!("/orgs/{}/audit?from=2000-01-01", h.org.id))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.text().await.unwrap();
        assert!(body.contains("org.create"), "our own events are listed");
        assert!(!body.contains(&theirs.id.to_string()));
        // The group's log includes the org's events.
        let res = get(format!("/groups/{}/audit?from=2000-01-01", h.group.id))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.unwrap().contains("group.create"));
        // Bad filters are explained, not ignored.
        let res = get(format!("/orgs/{}/audit?to=31-12-2026", h.org.id))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.text().await.unwrap().contains("must be a date"));
    }
);
