//! Versioning: the `version` parameter is required and checked, resolved
//! against each resource's releases, and reported in the response headers.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

api_test!(
    missing_version_is_400_on_the_version_parameter,
    |h| async move {
        for (method, path) in [
            (Method::GET, "/rest/self".to_owned()),
            (Method::GET, format!("/rest/orgs/{}", h.org.id)),
            (
                Method::POST,
                format!("/rest/orgs/{}/audit_logs/events", h.org.id),
            ),
            (Method::GET, "/rest/no/such/thing".to_owned()),
        ] {
            let r = send(h.raw(method, &path)).await;
            let e = r.error_at(400, "parameter", "version");
            assert!(
                e["detail"].as_str().unwrap().contains("required"),
                "{}",
                r.text
            );
            assert_eq!(r.header("snyk-version-requested"), None);
            assert_eq!(r.header("snyk-version-served"), None);
        }
        // Unauthenticated too: the version is checked first.
        let r = send(h.anonymous().raw(Method::GET, "/rest/self")).await;
        r.error_at(400, "parameter", "version");
    }
);

api_test!(malformed_versions_are_400, |h| async move {
    for bad in [
        "2023-13-01",
        "2023-01-01~alpha",
        "latest",
        "2023-02-30",
        "2023-9-11",
        "2023-09-11~",
        "2023-09-11T00:00:00Z",
        "",
    ] {
        let r = send(h.raw(Method::GET, &format!("/rest/self?version={}", enc(bad)))).await;
        let e = r.error_at(400, "parameter", "version");
        assert!(
            e["detail"].as_str().unwrap().contains("not valid"),
            "{bad}: {}",
            r.text
        );
    }
    let r = send(h.raw(
        Method::GET,
        "/rest/self?version=2024-01-01&version=2024-01-02",
    ))
    .await;
    let e = r.error_at(400, "parameter", "version");
    assert!(
        e["detail"].as_str().unwrap().contains("more than once"),
        "{}",
        r.text
    );
});

api_test!(a_version_before_the_first_release_is_404, |h| async move {
    let search = format!("/rest/orgs/{}/audit_logs/search", h.org.id);
    let r = h.get(&format!("{search}?version=2023-09-10")).await;
    let e = r.error_at(404, "parameter", "version");
    assert!(
        e["detail"].as_str().unwrap().contains("2023-09-11"),
        "{}",
        r.text
    );
    assert_eq!(r.header("snyk-version-requested"), Some("2023-09-10"));
    assert_eq!(r.header("snyk-version-served"), None);

    let r = h.get(&format!("{search}?version=2023-09-11")).await;
    r.expect(200);
    assert_eq!(r.header("snyk-version-served"), Some("2023-09-11"));

    h.get("/rest/self?version=2023-05-28")
        .await
        .error_at(404, "parameter", "version");
    h.get("/rest/self?version=2023-05-29").await.expect(200);

    let ingest = format!("/rest/orgs/{}/audit_logs/events", h.org.id);
    let body = json!({ "data": event("v-1", "project.scan.run", json!({})) });
    h.post(&format!("{ingest}?version=2024-10-14"), &body)
        .await
        .error_at(404, "parameter", "version");
    // Nothing was stored by the refused request.
    assert!(h
        .search_items(
            &format!("/rest/orgs/{}", h.org.id),
            "events=project.scan.run"
        )
        .await
        .is_empty());
    h.post(&format!("{ingest}?version=2024-10-15"), &body)
        .await
        .expect(201);
});

api_test!(
    unstable_requests_resolve_to_the_ga_release,
    |h| async move {
        for (asked, shown) in [
            ("2024-01-01~experimental", "2024-01-01~experimental"),
            ("2024-01-01~wip", "2024-01-01~experimental"),
            ("2024-01-01~beta", "2024-01-01~beta"),
            ("2024-01-01", "2024-01-01"),
        ] {
            let r = h.get(&format!("/rest/self?version={asked}")).await;
            r.expect(200);
            assert_eq!(r.header("snyk-version-requested"), Some(shown), "{asked}");
            assert_eq!(
                r.header("snyk-version-served"),
                Some("2023-05-29"),
                "{asked}"
            );
            assert_eq!(
                r.header("snyk-version-lifecycle-stage"),
                Some("ga"),
                "{asked}"
            );
        }
        let r = h
            .get(&format!(
                "/rest/groups/{}/audit_logs/search?version=2023-09-11~experimental",
                h.group.id
            ))
            .await;
        r.expect(200);
        assert_eq!(r.header("snyk-version-served"), Some("2023-09-11"));
        assert_eq!(r.header("snyk-version-lifecycle-stage"), Some("ga"));
        // Experimental before the first GA release: still nothing to serve.
        h.get("/rest/self?version=2023-05-28~experimental")
            .await
            .error_at(404, "parameter", "version");
    }
);

api_test!(every_answer_carries_the_version_headers, |h| async move {
    let ok = h.get("/rest/self").await;
    ok.expect(200);
    assert_eq!(ok.header("snyk-version-requested"), Some(VERSION));
    assert_eq!(ok.header("snyk-version-served"), Some("2023-05-29"));
    assert_eq!(ok.header("snyk-version-lifecycle-stage"), Some("ga"));

    // Errors after the version was resolved still say what was served.
    let missing = h.get(&format!("/rest/orgs/{}", uuid::Uuid::now_v7())).await;
    missing.error(404);
    assert_eq!(missing.header("snyk-version-requested"), Some(VERSION));
    assert_eq!(missing.header("snyk-version-served"), Some("2023-05-29"));

    // Errors before it (no credentials) say what was asked.
    let anon = h.anonymous().get("/rest/self").await;
    anon.error(401);
    assert_eq!(anon.header("snyk-version-requested"), Some(VERSION));
    assert_eq!(anon.header("snyk-version-served"), None);

    // Each request has its own ID.
    let again = h.get("/rest/self").await;
    assert_ne!(
        ok.header("snyk-request-id"),
        again.header("snyk-request-id")
    );
});

api_test!(
    the_release_check_runs_on_every_route_before_its_handler,
    |h| async move {
        // One path of each resource, asked for a version before its first
        // release: 404 on the parameter before the handler runs (its tenant
        // check would answer a plain 404: the org is made up). Credentials
        // come first, so that the refusal is the caller's `api.access`.
        let org = uuid::Uuid::now_v7();
        for path in [
            "/rest/self/tokens".to_owned(),
            format!("/rest/orgs/{org}/memberships"),
            format!("/rest/orgs/{org}/audit_logs/search"),
            format!("/rest/orgs/{org}/cloud_events/integrations"),
        ] {
            let url = format!("{path}?version=2022-12-31");
            h.get(&url).await.error_at(404, "parameter", "version");
            h.anonymous().get(&url).await.error(401);
        }
        // A method the route does not have is 405 whatever the version.
        let r = send(h.raw(Method::PUT, "/rest/self?version=2022-12-31")).await;
        r.error_nowhere(405);
        assert!(r.header("allow").is_some(), "{}", r.text);
    }
);
