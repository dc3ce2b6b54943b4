//! Operational endpoints and the fallbacks.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

api_test!(healthz_answers_ok, |h| async move {
    let r = send(h.anonymous().raw(Method::GET, "/healthz")).await;
    r.expect(200);
    assert_eq!(r.body, json!({"status": "ok"}));
});

api_test!(unknown_paths_are_404_json_api, |h| async move {
    for path in [
        "/nope",
        "/rest/nope?version=2024-10-15",
        "/rest/orgs/x/y/z?version=2024-10-15",
    ] {
        let r = send(h.raw(Method::GET, path)).await;
        let e = r.error_nowhere(404);
        assert_eq!(r.header("content-type"), Some(JSONAPI), "{path}");
        assert_eq!(e["status"], "404");
        assert_eq!(e["detail"], "no such endpoint");
    }
});

api_test!(wrong_methods_are_405_json_api, |h| async move {
    for (method, path) in [
        (Method::DELETE, "/rest/orgs?version=2024-10-15".to_owned()),
        (Method::PUT, "/rest/self?version=2024-10-15".to_owned()),
        (
            Method::GET,
            format!(
                "/rest/orgs/{}/audit_logs/events?version=2024-10-15",
                h.org.id
            ),
        ),
        (Method::POST, "/healthz".to_owned()),
    ] {
        let r = send(h.raw(method.clone(), &path)).await;
        r.error_nowhere(405);
        assert_eq!(r.header("content-type"), Some(JSONAPI), "{method} {path}");
    }
});

// Every operation of the OpenAPI document is served: without credentials
// each answers something other than the router's "no such endpoint" 404
// or a 405. (That every route is documented is `tests/openapi.rs`.)
api_test!(every_documented_operation_is_served, |h| async move {
    let doc: serde_json::Value =
        serde_json::from_str(auditlake_api::openapi_document()).expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    let mut seen = 0;
    for (template, item) in paths {
        let path = template
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    uuid::Uuid::nil().to_string()
                } else {
                    seg.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().expect("path item").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            // Plain HTTP: `/rest/openapi` is served at the root, outside
            // the REST middleware whose headers `send` checks.
            let r = reqwest::Client::new()
                .request(method.clone(), format!("{}{path}", h.base))
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let fallback = status == 404 && body["errors"][0]["detail"] == "no such endpoint";
            assert!(
                !fallback && status != 405,
                "{method} {template} is documented but not served: {status}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 40, "the document lists the operations ({seen})");
});
