//! The OpenAPI document (`crates/api/openapi.json`, served at
//! `/openapi.json`) is well formed and describes exactly the routes the
//! router serves.
//!
//! The route table is read from the router's source files rather than from
//! the running router, so this test needs no database or server: it greps
//! the `.route("...", get(..).post(..))` calls of `src/rest/mod.rs`
//! (mounted at `/rest`), of the `/v1` router in `src/lib.rs` and of
//! `src/ops.rs` (mounted at the root). A route added to the code without
//! a matching operation in the document, or the other way round, fails here.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// Methods an OpenAPI path item can hold.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Operational routes the sync check leaves out (they are in the document
/// too, but need not be).
const OPERATIONAL: &[&str] = &["/metrics", "/openapi.json", "/rest/openapi"];

fn crate_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn document() -> Value {
    serde_json::from_str(&crate_file("openapi.json")).expect("openapi.json is valid JSON")
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
        version.starts_with("3.0."),
        "OpenAPI 3.0.x expected, got {version}"
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
                assert!(has_location || is_ingest, "{at} 201: location header");
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

/// The first string literal in `s`, with the rest of `s` after it.
fn string_literal(s: &str) -> Option<(&str, &str)> {
    let start = s.find('"')? + 1;
    let len = s[start..].find('"')?;
    Some((&s[start..start + len], &s[start + len + 1..]))
}

/// The text between the `(` at the start of `s` and its matching `)`.
fn balanced(s: &str) -> &str {
    let mut depth = 0usize;
    let mut in_str = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return &s[1..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {s:.80}")
}

/// HTTP methods named by a method router expression such as
/// `get(list).post(create)` or `axum::routing::delete(remove)`.
fn methods_of(expr: &str) -> Vec<String> {
    const KNOWN: &[&str] = &[
        "get", "post", "put", "patch", "delete", "head", "options", "trace",
    ];
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    for (i, c) in expr.char_indices() {
        if !c.is_ascii_alphabetic()
            || (i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        {
            continue;
        }
        let word: String = expr[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !expr[i + word.len()..].starts_with('(') {
            continue;
        }
        if KNOWN.contains(&word.as_str()) {
            out.push(word.to_uppercase());
        }
        assert!(
            !matches!(
                word.as_str(),
                "any" | "on" | "get_service" | "post_service" | "route_service"
            ),
            "route method `{word}` is not understood by this test: {expr}"
        );
    }
    assert!(!out.is_empty(), "no method in route expression {expr}");
    out
}

/// `(METHOD, path)` of every `.route(...)` call in `src`, prefixed.
fn routes_in(src: &str, prefix: &str) -> BTreeSet<(String, String)> {
    let code: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find(".route(") {
        let args = balanced(&rest[at + ".route".len()..]);
        let (path, expr) =
            string_literal(args).unwrap_or_else(|| panic!("route without a path: {args}"));
        for m in methods_of(expr) {
            assert!(
                out.insert((m.clone(), format!("{prefix}{path}"))),
                "{m} {prefix}{path} routed twice"
            );
        }
        rest = &rest[at + ".route(".len()..];
    }
    out
}

/// The route table of the whole application, read from its source.
fn served_routes() -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();

    let rest = crate_file("src/rest/mod.rs");
    assert!(
        !rest.contains(".nest("),
        "src/rest/mod.rs nests a router: teach this test its prefix"
    );
    all.extend(routes_in(&rest, "/rest"));

    // lib.rs: the `/v1` router is built in `let v1 = ...;`; any other
    // route there would need its prefix taught to this test.
    let lib = crate_file("src/lib.rs");
    let start = lib
        .find("let v1 =")
        .expect("src/lib.rs builds the v1 router in `let v1 = ...`");
    let end = start + lib[start..].find(';').expect("end of the v1 router");
    all.extend(routes_in(&lib[start..end], "/v1"));
    let outside = format!("{}{}", &lib[..start], &lib[end..]);
    assert!(
        routes_in(&outside, "").is_empty(),
        "src/lib.rs has routes outside the v1 router"
    );
    assert!(
        lib.contains(r#".nest("/rest", rest)"#) && lib.contains(r#".nest("/v1", v1)"#),
        "mount points"
    );

    all.extend(routes_in(&crate_file("src/ops.rs"), ""));
    all
}

#[test]
fn document_matches_the_router() {
    let served: BTreeSet<(String, String)> = served_routes()
        .into_iter()
        .filter(|(_, p)| !OPERATIONAL.contains(&p.as_str()))
        .collect();
    // Sanity: the parser found the routes it must.
    for expected in [
        ("GET", "/rest/self"),
        ("DELETE", "/rest/orgs/{org_id}/memberships/{membership_id}"),
        ("POST", "/rest/groups/{group_id}/audit_logs/events"),
        ("POST", "/v1/org/{orgId}/audit"),
        ("GET", "/healthz"),
    ] {
        assert!(
            served.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "route parser missed {expected:?}"
        );
    }

    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(path, method, _)| (method.to_uppercase(), path))
        .filter(|(_, p)| !OPERATIONAL.contains(&p.as_str()))
        .collect();

    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi.json is out of sync with the router\n  served but not documented: {missing:?}\n  documented but not served: {extra:?}"
    );
}

#[test]
fn route_parser_reads_the_router_idioms() {
    let src = r#"
        Router::new()
            .route("/a", get(get_a).post(post_a))
            // .route("/commented", get(gone))
            .route("/a/{id}", axum::routing::delete(delete_a))
            .route(
                "/b/{id}/events",
                post(ingest).layer(DefaultBodyLimit::max(LIMIT)),
            )
    "#;
    let got = routes_in(src, "/p");
    let want: BTreeSet<(String, String)> = [
        ("GET", "/p/a"),
        ("POST", "/p/a"),
        ("DELETE", "/p/a/{id}"),
        ("POST", "/p/b/{id}/events"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(got, want);
}

/// Every error code and title the server sends (`ApiError` in
/// `src/error.rs`, read from its source) is in the document's enums, so an
/// error answer always matches the schema it is documented with. The 429's
/// `rate_limited` was missing until the conformance run's rate-limited pass
/// checked those answers against the schema.
#[test]
fn document_lists_every_error_code() {
    let src = crate_file("src/error.rs");
    let mut sent = BTreeSet::new();
    let mut rest = src.as_str();
    while let Some(at) = rest.find("StatusCode::") {
        rest = &rest[at + "StatusCode::".len()..];
        // `StatusCode::X, "code", "Title"`: the arguments of a constructor.
        let after = rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
        let Some(args) = after.trim_start().strip_prefix(',') else {
            continue;
        };
        let Some((code, args)) =
            string_literal(args).filter(|_| args.trim_start().starts_with('"'))
        else {
            continue;
        };
        let (title, _) = string_literal(args).expect("a title after the code");
        sent.insert((code.to_owned(), title.to_owned()));
    }
    assert!(
        sent.len() >= 10 && sent.contains(&("not_found".to_owned(), "Not found".to_owned())),
        "the parser found the error kinds: {sent:?}"
    );

    let doc = document();
    let enum_of = |pointer: &str| -> BTreeSet<String> {
        doc.pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{pointer} is an enum"))
            .iter()
            .map(|v| v.as_str().expect("string enum").to_owned())
            .collect()
    };
    let codes = enum_of("/components/schemas/ErrorObject/properties/code/enum");
    let titles = enum_of("/components/schemas/ErrorObject/properties/title/enum");
    let v1_titles = enum_of("/components/schemas/V1Error/properties/error/enum");
    for (code, title) in &sent {
        assert!(codes.contains(code), "ErrorObject.code lacks {code:?}");
        assert!(titles.contains(title), "ErrorObject.title lacks {title:?}");
        assert!(v1_titles.contains(title), "V1Error.error lacks {title:?}");
    }
}
