//! `eventData`, the JSON text inside each `PutAuditEvents` entry
//! (`record::build`), and its `eventTime` format (`parse_event_time`).
//!
//! Fuzzing `eventData` directly, rather than inside a body, spares the
//! fuzzer the JSON string escaping around it. Asserts: a built record has
//! the channel's account, the time sent in whole seconds, the partition
//! day of the time sent, and goes into an Arrow batch; a refusal carries
//! one of the documented codes; and any `eventTime` the lake accepts
//! round-trips through its canonical `yyyy-MM-ddTHH:mm:ssZ` form.

#![no_main]

use auditlake_lake::storage::record::{self, parse_event_time};
use auditlake_lake::testing::STAMP;
use libfuzzer_sys::fuzz_target;

fn canonical(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).expect("a time the lake took");
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&format).expect("formats")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(ms) = parse_event_time(text) {
        assert_eq!(ms % 1000, 0);
        assert_eq!(parse_event_time(&canonical(ms)), Some(ms), "{text:?}");
        assert_eq!(record::day_of(ms), text[..10], "{text:?}");
    }
    match record::build(text, "id".into(), &STAMP) {
        Ok(r) => {
            assert_eq!(r.recipient_account_id, STAMP.account);
            assert_eq!(parse_event_time(&r.data_event_time), Some(r.event_time_ms));
            assert_eq!(r.day(), r.data_event_time[..10]);
            for name in [
                &r.version,
                &r.identity_type,
                &r.principal_id,
                &r.event_source,
                &r.event_name,
                &r.uid,
            ] {
                assert!(!name.trim().is_empty());
            }
            let batch = record::to_batch(std::slice::from_ref(&r)).expect("a record makes a batch");
            assert_eq!(batch.num_rows(), 1);
        }
        Err(e) => assert!(
            matches!(e.code, "InvalidEventData" | "InvalidRecipientAccountId"),
            "{e:?}"
        ),
    }
});
