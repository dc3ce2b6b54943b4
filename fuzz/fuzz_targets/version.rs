//! `/rest` version strings (`Version::parse`) and their resolution against
//! each resource's releases (`Version::resolve`).
//!
//! Asserts: an accepted version prints back as sent (`~wip` as its alias
//! `~experimental`) and parses again to itself; a refusal is a 400 about
//! the `version` parameter; resolution serves a release dated on or before
//! the requested day and at least as stable, and no newer one qualifies.

#![no_main]

use auditlake_api::error::Source;
use auditlake_api::version::{releases, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let v = match Version::parse(text) {
        Ok(v) => v,
        Err(e) => {
            assert_eq!(e.status.as_u16(), 400);
            assert!(matches!(&e.source, Some(Source::Parameter(p)) if p == "version"));
            return;
        }
    };
    let printed = v.to_string();
    assert_eq!(printed, text.replace("~wip", "~experimental"));
    assert_eq!(Version::parse(&printed).ok(), Some(v));
    for table in [
        releases::TENANCY,
        releases::AUDIT_SEARCH,
        releases::CLOUD_EVENTS,
        releases::INGEST,
    ] {
        let qualifies = |r: &Version| r.date <= v.date && r.stability >= v.stability;
        match v.resolve(table) {
            Some(r) => {
                assert!(table.contains(&r) && qualifies(&r));
                assert!(table
                    .iter()
                    .filter(|o| qualifies(o))
                    .all(|o| (o.date, o.stability) <= (r.date, r.stability)));
            }
            None => assert!(!table.iter().any(qualifies)),
        }
    }
});
