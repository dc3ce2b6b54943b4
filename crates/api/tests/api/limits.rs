//! Per-token rate limits: a token over its allowance gets 429 with
//! `Retry-After`, in each API's own error shape, and other tokens are not
//! affected. (The harness's servers run without a limit; this test starts
//! its own.)

use auditlake_api::{AppState, RateLimits};

use crate::common::*;

async fn limited(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let user = store.create_user("u@example.com", "U").await.unwrap();
    let actor = Actor::user(user.id);
    let org = store.create_org("O", None, &actor).await.unwrap();
    let a = store
        .create_token(user.id, "a", None, &actor)
        .await
        .unwrap()
        .secret;
    let b = store
        .create_token(user.id, "b", None, &actor)
        .await
        .unwrap()
        .secret;
    let mut state = AppState::new(store.clone());
    state.limits = RateLimits::per_minute(3);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(auditlake_api::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let get = |token: &str| {
        http.get(format!("{base}/rest/orgs/{}?version=2024-10-15", org.id))
            .header("authorization", format!("token {token}"))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(get(&a).await.unwrap().status(), 200);
    }
    let res = get(&a).await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(res.headers()["content-type"], JSONAPI);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], "429");
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("3 requests per minute"));

    // v1 answers in its own shape.
    let res = http
        .post(format!("{base}/v1/org/{}/audit", org.id))
        .header("authorization", format!("token {a}"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], 429);

    // Another token has its own allowance.
    assert_eq!(get(&b).await.unwrap().status(), 200);

    let _ = tx.send(());
    server.await.unwrap().unwrap();
    store.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_with_retry_after_on_sqlite() {
    limited(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_with_retry_after_on_postgres() {
    limited(Backend::Postgres).await
}
