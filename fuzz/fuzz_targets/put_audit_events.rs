//! `PutAuditEvents` request bodies: the whole-call checks
//! (`data::parse_body`) and, for each entry, the checksum and `eventData`
//! checks and the record the lake would store (`Entry::record`).
//!
//! Asserts, beyond "no panic": an accepted body holds 1 to 100 entries with
//! valid, distinct ids; an entry is refused only with one of the documented
//! per-entry codes; an accepted entry's record keeps the account of the
//! channel, a whole-second `eventTime` that is the one sent, JSON members
//! that are objects, and the partition day of the time sent; and every
//! accepted record goes into an Arrow batch, as the flush will need.

#![no_main]

use std::collections::HashSet;

use auditlake_lake::fuzzing::{parse_body, MAX_EVENTS};
use auditlake_lake::storage::record::{self, parse_event_time, Record, MAX_ADDITIONAL_EVENT_DATA};
use auditlake_lake::testing::STAMP;
use libfuzzer_sys::fuzz_target;

fn check_record(r: &Record) {
    assert_eq!(r.recipient_account_id, STAMP.account);
    assert_eq!(r.data_recipient_account_id, STAMP.account);
    assert_eq!(
        r.event_time_ms % 1000,
        0,
        "eventTime is kept in whole seconds"
    );
    assert_eq!(parse_event_time(&r.data_event_time), Some(r.event_time_ms));
    // The partition is the UTC date the source wrote.
    assert_eq!(r.day(), r.data_event_time[..10], "{r:?}");
    // `details` is kept as sent, whatever JSON value it is; the other
    // JSON-valued members must be objects (the query functions rely on it).
    if let Some(d) = &r.identity_details {
        serde_json::from_str::<serde_json::Value>(d).expect("details is JSON");
    }
    for json in [
        &r.request_parameters,
        &r.response_elements,
        &r.additional_event_data,
    ]
    .into_iter()
    .flatten()
    {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
            .expect("a JSON-valued member is an object");
    }
    assert!(r
        .additional_event_data
        .as_ref()
        .is_none_or(|a| a.len() <= MAX_ADDITIONAL_EVENT_DATA));
}

fuzz_target!(|body: &[u8]| {
    let Ok(entries) = parse_body(body) else {
        return;
    };
    assert!((1..=MAX_EVENTS).contains(&entries.len()));
    let mut ids = HashSet::new();
    for e in &entries {
        assert!(
            ids.insert(e.id.as_str()),
            "duplicate id {:?} accepted",
            e.id
        );
        assert!((1..=128).contains(&e.id.len()));
        assert!(e
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
    let mut records = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match e.record(format!("event-{i}"), &STAMP) {
            Ok(r) => {
                check_record(&r);
                records.push(r);
            }
            Err(err) => assert!(
                matches!(
                    err.code,
                    "InvalidChecksum" | "InvalidEventData" | "InvalidRecipientAccountId"
                ),
                "{err:?}"
            ),
        }
    }
    let batch = record::to_batch(&records).expect("accepted records make a batch");
    assert_eq!(batch.num_rows(), records.len());
});
