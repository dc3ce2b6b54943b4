//! Authentication: `Authorization: token <T>` (any case) or `bearer <T>`;
//! anything else, and unknown, revoked or expired tokens, answer 401.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

/// `GET /rest/self` with `authorization` set to `value` (or unset).
async fn self_with(h: &Harness, value: Option<&str>) -> Resp {
    let rb = h.anonymous().request(Method::GET, "/rest/self");
    send(match value {
        Some(v) => rb.header("authorization", v),
        None => rb,
    })
    .await
}

api_test!(bad_credentials_are_401_and_leave_no_trace, |h| async move {
    let head = h.head().await;
    let unknown = format!("alk_{}", "A".repeat(43));
    for (value, says) in [
        (None, "missing Authorization header"),
        (
            Some("Basic b3duZXI6cHc=".to_owned()),
            "unsupported authorization scheme",
        ),
        (
            Some(format!("Token{}", h.token)),
            "use `Authorization: token",
        ),
        (Some("token".to_owned()), "use `Authorization: token"),
        (
            Some(format!("token {unknown}")),
            "invalid, expired or revoked",
        ),
        (
            Some("token not-a-token".to_owned()),
            "invalid, expired or revoked",
        ),
        (
            Some(format!("token {}x", h.token)),
            "invalid, expired or revoked",
        ),
        (
            Some(format!("bearer {}", "x".repeat(4000))),
            "invalid, expired or revoked",
        ),
    ] {
        let r = self_with(h, value.as_deref()).await;
        let e = r.error_nowhere(401);
        assert_eq!(e["code"], "unauthorized");
        assert!(
            e["detail"].as_str().unwrap().contains(says),
            "{value:?}: {}",
            r.text
        );
    }
    // Other endpoints refuse the same way, before looking at the tenant.
    let anon = h.anonymous();
    anon.get(&format!("/rest/orgs/{}", h.org.id))
        .await
        .error(401);
    anon.get(&format!("/rest/groups/{}/audit_logs/search", h.group.id))
        .await
        .error(401);
    anon.ingest(
        &format!("/rest/orgs/{}", h.org.id),
        event("a-1", "project.scan.run", json!({})),
    )
    .await
    .error(401);
    // No user to attribute: no api.access, nothing at all.
    assert!(h.log_since(head).await.is_empty());
});

api_test!(
    token_and_bearer_schemes_are_accepted_in_any_case,
    |h| async move {
        for value in [
            format!("token {}", h.token),
            format!("Token {}", h.token),
            format!("TOKEN {}", h.token),
            format!("Bearer {}", h.token),
            format!("bearer {}", h.token),
            format!("  token   {}  ", h.token),
        ] {
            let r = self_with(h, Some(&value)).await;
            r.expect(200);
            assert_eq!(r.body["data"]["id"], json!(h.user.id), "{value}");
        }
    }
);

api_test!(
    a_token_revoked_through_the_api_stops_working,
    |h| async move {
        let created = h
            .post(
                "/rest/self/tokens",
                &json!({"data": {"type": "token", "attributes": {"name": "ci"}}}),
            )
            .await;
        created.expect(201);
        let id = created.body["data"]["id"].as_str().unwrap().to_owned();
        let secret = created.body["data"]["attributes"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let ci = h.with_token(&secret);
        ci.get("/rest/self").await.expect(200);

        h.delete(&format!("/rest/self/tokens/{id}"))
            .await
            .expect(204);
        let r = ci.get("/rest/self").await;
        assert!(r.error_nowhere(401)["detail"]
            .as_str()
            .unwrap()
            .contains("revoked"));
        // The bearer scheme does not get around it.
        self_with(h, Some(&format!("Bearer {secret}")))
            .await
            .error(401);
        // The other token is untouched.
        h.get("/rest/self").await.expect(200);

        // A token may revoke itself; the next request is refused.
        ci.delete(&format!("/rest/self/tokens/{id}"))
            .await
            .error(401);
        let own = h.get("/rest/self/tokens").await.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["attributes"]["name"] == "tests")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        h.delete(&format!("/rest/self/tokens/{own}"))
            .await
            .expect(204);
        h.get("/rest/self").await.error(401);
    }
);

api_test!(an_expired_token_is_401, |h| async move {
    let (user, _) = h.new_user("late@example.com").await;
    let expired = h
        .store
        .create_token(user.id, "old", Some(now_us() - 1), &Actor::user(user.id))
        .await
        .unwrap();
    let r = h.with_token(&expired.secret).get("/rest/self").await;
    assert!(r.error_nowhere(401)["detail"]
        .as_str()
        .unwrap()
        .contains("expired"));

    let fresh = h
        .store
        .create_token(
            user.id,
            "new",
            Some(now_us() + 3_600_000_000),
            &Actor::user(user.id),
        )
        .await
        .unwrap();
    let r = h.with_token(&fresh.secret).get("/rest/self").await;
    r.expect(200);
    assert_eq!(r.body["data"]["attributes"]["email"], "late@example.com");
});
