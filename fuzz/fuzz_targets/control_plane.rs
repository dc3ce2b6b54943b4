//! The control plane's JSON 1.1 input: `control::Request::parse` for every
//! operation (the JSON shape of each input, names, retention, billing,
//! `AdvancedEventSelectors`, page sizes, `NextToken`s), the resource
//! policy language (`Policy::parse`, `allows_put`), and list paging.
//!
//! An input is `<Operation>\n<body>`, the operation as `X-Amz-Target`
//! names it. Two pseudo-operations reach what the catalog would otherwise
//! sit in front of: `Policy` (the body is a policy document, as
//! `PutResourcePolicy` checks it once it has the channel) and `Paging`
//! (the body is the decoded text of a `NextToken`, so the fuzzer works on
//! `offset:<n>` rather than on base64 around it).
//!
//! Asserts: parsing never fails with anything but a client error (400,
//! never an internal error); only known operations parse; a policy the
//! lake accepts is enforced with Deny winning (adding a Deny of everything
//! to it refuses every caller); a page is exactly the slice its token
//! names and its `NextToken` points just past it.

#![no_main]

use auditlake_cloudtrail::policy::Policy;
use auditlake_lake::fuzzing::{decode_token, encode_token, Paging, Request};
use auditlake_lake::LakeError;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const OPERATIONS: &[&str] = &[
    "CreateEventDataStore",
    "GetEventDataStore",
    "ListEventDataStores",
    "UpdateEventDataStore",
    "DeleteEventDataStore",
    "CreateChannel",
    "GetChannel",
    "ListChannels",
    "UpdateChannel",
    "DeleteChannel",
    "PutResourcePolicy",
    "GetResourcePolicy",
    "DeleteResourcePolicy",
    "StartQuery",
    "DescribeQuery",
    "GetQueryResults",
    "ListQueries",
    "CancelQuery",
];

const OWNER: &str = "111111111111";
const CHANNEL: &str = "arn:aws:cloudtrail:us-east-1:111111111111:channel/c";

fn client_error(e: &LakeError) {
    match e {
        LakeError::Aws { status, .. } => assert_eq!(*status, 400, "{e}"),
        other => panic!("not a client error: {other}"),
    }
}

fn policy(text: &str) {
    let p = match Policy::parse(text, CHANNEL) {
        Ok(p) => p,
        Err(e) => {
            let e = LakeError::from(e);
            client_error(&e);
            assert_eq!(e.code(), "ResourcePolicyNotValidException");
            return;
        }
    };
    let callers = [OWNER, "222222222222", "333333333333"];
    let external_ids = [None, Some("org-1"), Some("ORG-1"), Some("")];
    for caller in callers {
        for ext in external_ids {
            // Evaluates without panicking whatever was accepted.
            let _ = p.allows_put(caller, OWNER, ext);
        }
    }
    // Deny wins: the same policy with a Deny of everything refuses all.
    let mut doc: Value = serde_json::from_str(text).expect("accepted policies are JSON");
    let deny = json!({"Effect": "Deny", "Principal": "*", "Action": "*"});
    match doc.get_mut("Statement") {
        Some(Value::Array(list)) => list.push(deny),
        Some(one @ Value::Object(_)) => *one = json!([one.take(), deny]),
        _ => unreachable!("accepted policies have statements"),
    }
    let denied = Policy::parse(&doc.to_string(), CHANNEL).expect("adding a Deny keeps it valid");
    for caller in callers {
        for ext in external_ids {
            assert!(!denied.allows_put(caller, OWNER, ext), "{text}");
        }
    }
}

fn paging(offset_text: &[u8]) {
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(offset_text);
    for (max, total) in [(None, 250), (Some(1), 3), (Some(7), 20), (Some(1000), 5)] {
        let p = match Paging::new(Some(&token), max, 100, "MaxResults") {
            Ok(p) => p,
            Err(e) => {
                client_error(&e);
                return;
            }
        };
        assert_eq!(decode_token(Some(&token)).ok(), Some(p.start));
        let items: Vec<usize> = (0..total).collect();
        let (page, next) = p.apply(items);
        let expect: Vec<usize> = (0..total).skip(p.start).take(p.size).collect();
        assert_eq!(page, expect);
        match next {
            Some(next) => {
                let n = decode_token(Some(&next)).expect("our own token decodes");
                assert_eq!(n, p.start + p.size);
                assert!(n < total);
                assert_eq!(next, encode_token(n));
            }
            None => assert!(p.start.saturating_add(p.size) >= total),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (op, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(op) = std::str::from_utf8(op) else {
        return;
    };
    match op {
        "Policy" => {
            if let Ok(text) = std::str::from_utf8(body) {
                policy(text);
            }
        }
        "Paging" => paging(body),
        _ => match Request::parse(op, body) {
            Ok(_) => assert!(OPERATIONS.contains(&op), "{op:?} parsed"),
            Err(e) => client_error(&e),
        },
    }
});
