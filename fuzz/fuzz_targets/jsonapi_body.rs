//! JSON:API request bodies: every request document of `/rest` and `/v1`
//! through the strict body reader (`extract::parse_json`, unknown members
//! refused, the pointer of the first bad field reported) and the resource
//! object checks, and ingest bodies through to the checked items the
//! store would get (`rest::audit::ingest_items`).
//!
//! An input is `<document>\n<body>`: a name of `fuzzing::DOCUMENTS`, or
//! `ingest`. Asserts: an accepted body is one JSON object and nothing but
//! whitespace after it; a refusal is a 4xx whose source is a well-formed
//! JSON pointer (escaped `~0`/`~1` only) or names no place; an accepted
//! ingest batch holds 1 to 1000 events with distinct idempotency IDs, each
//! with a JSON-object content of at most 28,000 bytes kept as sent, a
//! creation time within the accepted window, and a SHA-256 request hash.

#![no_main]

use std::collections::HashSet;

use auditlake_api::error::{ApiError, Source};
use auditlake_api::fuzzing::{document, ingest};
use auditlake_core::validate::{MAX_BATCH, MAX_CONTENT_BYTES, MAX_FUTURE_SKEW_US};
use libfuzzer_sys::fuzz_target;

const NOW_US: i64 = 1_700_000_000_000_000;

fn check_refusal(e: &ApiError) {
    assert!(e.status.is_client_error(), "{e:?}");
    if let Some(Source::Pointer(p)) = &e.source {
        assert!(p.is_empty() || p.starts_with('/'), "pointer {p:?}");
        let mut chars = p.chars();
        while let Some(c) = chars.next() {
            if c == '~' {
                assert!(matches!(chars.next(), Some('0' | '1')), "pointer {p:?}");
            }
        }
    }
}

fn one_object(body: &[u8]) {
    let v: serde_json::Value =
        serde_json::from_slice(body).expect("an accepted body is a JSON document");
    assert!(v.is_object(), "an accepted body is an object");
}

fuzz_target!(|data: &[u8]| {
    let Some(i) = data.iter().position(|b| *b == b'\n') else {
        return;
    };
    let (name, body) = (&data[..i], &data[i + 1..]);
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    if name == "ingest" {
        match ingest(body, NOW_US) {
            Ok((single, items)) => {
                one_object(body);
                assert!((1..=MAX_BATCH).contains(&items.len()));
                assert!(!single || items.len() == 1);
                let mut ids = HashSet::new();
                for item in &items {
                    assert!(ids.insert(item.idempotency_id.as_str()));
                    assert_eq!(item.request_hash.len(), 64);
                    assert!(item.request_hash.bytes().all(|b| b.is_ascii_hexdigit()));
                    let content = &item.event.content;
                    assert!(content.len() <= MAX_CONTENT_BYTES);
                    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(content)
                        .expect("content is a JSON object");
                    assert!(item.event.created_us <= NOW_US + MAX_FUTURE_SKEW_US);
                    assert!(item.event.user_id.is_some());
                }
            }
            Err(e) => check_refusal(&e),
        }
        return;
    }
    match document(name, body) {
        None => {}
        Some(Ok(())) => one_object(body),
        Some(Err(e)) => check_refusal(&e),
    }
});
