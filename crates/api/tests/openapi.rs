//! The OpenAPI document (served at `/openapi.json`, built from the
//! handlers' annotations by `auditlake_api::openapi_document`) is well
//! formed, and no route of the APIs is served without it.
//!
//! That every documented operation is served is checked against the
//! running server (`api/ops.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// Methods an OpenAPI path item can hold.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(auditlake_api::openapi_document()).expect("the document is JSON")
}

/// Each operation of the document as `(path, method, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("path item {path} is an object"));
        for (key, op) in item {
            if METHODS.contains(&key.as_str()) {
                out.push((path.clone(), key.clone(), op));
            } else {
                assert!(
                    matches!(
                        key.as_str(),
                        "parameters" | "summary" | "description" | "servers"
                    ),
                    "unexpected member {key:?} in path item {path}"
                );
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/...`), panicking when it does not resolve.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("$ref {r} is not local"));
                v = doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("$ref {r} does not resolve"));
            }
            None => return v,
        }
    }
    panic!("$ref chain too long")
}

/// The names of an operation's parameters.
fn parameter_names<'a>(doc: &'a Value, op: &'a Value) -> BTreeSet<&'a str> {
    op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| resolve(doc, p)["name"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

#[test]
fn document_is_well_formed() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(
        version.starts_with("3.1."),
        "OpenAPI 3.1.x expected, got {version}"
    );
    assert!(
        doc["info"]["title"].is_string() && doc["info"]["version"].is_string(),
        "info.title and info.version"
    );

    // Every $ref resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty(), "the document reuses components");
    for r in &refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("$ref {r} is not local"));
        assert!(doc.pointer(pointer).is_some(), "$ref {r} does not resolve");
    }

    // The security scheme every authenticated operation relies on.
    let scheme = &doc["components"]["securitySchemes"]["APIToken"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "Authorization");

    let ops = operations(&doc);
    assert!(!ops.is_empty(), "the document has operations");
    let mut ids = BTreeSet::new();
    for (path, method, op) in &ops {
        let at = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: operationId"));
        assert!(
            ids.insert(id.to_owned()),
            "{at}: operationId {id} is used twice"
        );

        // At least one success and one error answer, each described.
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: responses"));
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{at}: no 2xx response"
        );
        assert!(
            responses
                .keys()
                .any(|k| k.starts_with('4') || k.starts_with('5')),
            "{at}: no error response"
        );
        for (status, r) in responses {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok(),
                "{at}: status {status:?}"
            );
            assert!(
                resolve(&doc, r)["description"].is_string(),
                "{at} {status}: description"
            );
        }

        // Path parameters match the template exactly.
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|ps| ps.iter().map(|p| resolve(&doc, p)).collect())
            .unwrap_or_default();
        let declared: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{at}: path parameters are required");
                p["name"].as_str().expect("parameter name")
            })
            .collect();
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(declared, templated, "{at}: path parameters");

        // Links (schemathesis follows them in scripts/conformance.sh) name
        // an operation of the document, parameters it has, and parameters
        // of this operation.
        for (status, r) in responses {
            let Some(links) = resolve(&doc, r)["links"].as_object() else {
                continue;
            };
            for (name, link) in links {
                let at = format!("{at} {status} link {name}");
                let target = link["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{at}: operationId"));
                let (_, _, target_op) = ops
                    .iter()
                    .find(|(_, _, o)| o["operationId"] == target)
                    .unwrap_or_else(|| panic!("{at}: no operation {target}"));
                let target_params = parameter_names(&doc, target_op);
                let link_params = link["parameters"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{at}: parameters"));
                for (param, expr) in link_params {
                    assert!(
                        target_params.contains(param.as_str()),
                        "{at}: {target} has no parameter {param}"
                    );
                    let expr = expr.as_str().unwrap_or_default();
                    for prefix in ["$request.path.", "$request.query."] {
                        if let Some(source) = expr.strip_prefix(prefix) {
                            assert!(
                                params.iter().any(|p| p["name"] == source),
                                "{at}: {expr} names no parameter of this operation"
                            );
                        }
                    }
                }
                assert!(
                    link.get("requestBody").is_none() || target_op.get("requestBody").is_some(),
                    "{at}: requestBody for an operation without one"
                );
            }
        }

        let body_types: Vec<&String> = op
            .get("requestBody")
            .map(|b| {
                resolve(&doc, b)["content"]
                    .as_object()
                    .expect("requestBody.content")
                    .keys()
                    .collect()
            })
            .unwrap_or_default();
        if path.starts_with("/rest/") && path != "/rest/openapi" {
            // The REST API: a required, well-formed `version`, JSON:API bodies.
            let v = params
                .iter()
                .find(|p| p["in"] == "query" && p["name"] == "version")
                .unwrap_or_else(|| panic!("{at}: no `version` query parameter"));
            assert_eq!(v["required"], true, "{at}: `version` is required");
            assert_eq!(
                resolve(&doc, &v["schema"])["pattern"],
                r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(~(beta|experimental|wip))?$",
                "{at}: `version` pattern"
            );
            assert!(
                body_types.iter().all(|t| *t == "application/vnd.api+json"),
                "{at}: body type"
            );
            // 408 comes from the timeout layer, outside the REST middleware.
            for (status, r) in responses.iter().filter(|(s, _)| *s != "408") {
                let r = resolve(&doc, r);
                assert!(
                    r["headers"]["snyk-request-id"].is_object(),
                    "{at} {status}: snyk-request-id header"
                );
                if let Some(content) = r["content"].as_object() {
                    assert!(
                        content.keys().all(|t| t == "application/vnd.api+json"),
                        "{at} {status}: type"
                    );
                }
            }
            if let Some(created) = responses.get("201") {
                let has_location = resolve(&doc, created)["headers"]["location"].is_object();
                let is_ingest = path.ends_with("/audit_logs/events");
                // A created resource has a `location`; an ingested batch has
                // none, and a required header the server does not send fails
                // schemathesis' header check.
                assert_eq!(has_location, !is_ingest, "{at} 201: location header");
            }
        } else if path.starts_with("/v1/") {
            assert!(
                body_types.iter().all(|t| *t == "application/json"),
                "{at}: body type"
            );
            assert!(
                !params.iter().any(|p| p["name"] == "version"),
                "{at}: v1 takes no version"
            );
        }
    }
}

/// The API routers (`rest`, `v1`, `ops`) register every route through
/// `utoipa_axum::routes!`, which takes the path and the methods from the
/// handler's `#[utoipa::path]`: a route added with a plain `.route(` would
/// be served without documentation. Only the dashboard, which serves HTML
/// pages rather than an API, uses `.route(`.
#[test]
fn every_api_route_is_registered_with_its_documentation() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "dashboard") {
                continue;
            }
            for entry in std::fs::read_dir(&path).expect("read src") {
                files.push(entry.expect("entry").path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            checked += 1;
            assert!(
                !text.contains(".route("),
                "{} adds a route with .route(: use .routes(routes!(...)) so that it is documented",
                path.display()
            );
        }
    }
    assert!(checked >= 10, "the walk found the sources ({checked})");
}

/// Every error code the server sends is in the document, with the title it
/// is sent with.
#[test]
fn document_lists_every_error_code() {
    let doc = document();
    let codes = doc
        .pointer("/components/schemas/ErrorCode/enum")
        .and_then(Value::as_array)
        .expect("ErrorCode is an enum");
    for code in [
        "invalid_body",
        "not_found",
        "rate_limited",
        "busy",
        "unprocessable",
    ] {
        assert!(codes.iter().any(|c| c == code), "ErrorCode lacks {code}");
    }
}
