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
