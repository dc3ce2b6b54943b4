//! Turning log events into `PutAuditEvents` entries, cut to the API's
//! limits: at most 100 entries and 1 MB of request body.

use auditlake_core::integration::event_data;
use auditlake_core::{AuditEvent, Integration};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Most entries in one `PutAuditEvents` call.
pub const MAX_ENTRIES: usize = 100;

/// Largest request body the forwarder builds. CloudTrail Lake takes 1 MB;
/// this leaves room for the JSON envelope.
pub const MAX_BODY_BYTES: usize = 1_000_000;

/// One entry ready to send, with the log position it stands for.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The event's `seq`.
    pub seq: i64,
    /// `id`: the event's own ID, so a retry never mints a new identity.
    pub id: String,
    /// `eventData` (JSON text).
    pub event_data: String,
    /// `eventDataChecksum`: base64 SHA-256 of `event_data`.
    pub checksum: String,
}

/// The entries of `events` for `integration`, in log order, as many as fit
/// in one call (at least one).
pub fn entries(
    integration: &Integration,
    events: &[AuditEvent],
    event_source: &str,
) -> Result<Vec<Entry>, serde_json::Error> {
    let mut out = Vec::with_capacity(events.len().min(MAX_ENTRIES));
    let mut size = 64;
    for e in events.iter().take(MAX_ENTRIES) {
        let data = event_data(e, &integration.config.account_id, event_source)?;
        // eventData travels as a JSON string: quotes and backslashes are
        // escaped, so count its encoded length.
        let encoded = serde_json::to_string(&data)?.len() + 160;
        if !out.is_empty() && size + encoded > MAX_BODY_BYTES {
            break;
        }
        size += encoded;
        out.push(Entry {
            seq: e.seq,
            id: e.id.to_string(),
            checksum: checksum(&data),
            event_data: data,
        });
    }
    Ok(out)
}

/// Base64 of the SHA-256 of `data`.
pub fn checksum(data: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlake_core::integration::CloudTrailConfig;
    use auditlake_core::Scope;
    use uuid::Uuid;

    fn integration() -> Integration {
        let config = CloudTrailConfig::new(
            "123456789012",
            "arn:aws:cloudtrail:us-east-1:123456789012:channel/x",
        )
        .unwrap();
        Integration::pending(
            Uuid::now_v7(),
            Scope::Org(Uuid::now_v7()),
            "x",
            config,
            0,
            0,
        )
    }

    fn event(seq: i64, content_bytes: usize) -> AuditEvent {
        AuditEvent {
            seq,
            id: Uuid::now_v7(),
            created_us: 1_700_000_000_000_000,
            event: "org.thing.edit".into(),
            org_id: None,
            group_id: None,
            user_id: None,
            project_id: None,
            content: format!(
                r#"{{"x":"{}"}}"#,
                "\"".repeat(content_bytes / 2).replace('"', "\\\"")
            ),
            source_ip: None,
            user_agent: None,
            ingested_by: None,
        }
    }

    #[test]
    fn cuts_at_one_hundred_entries() {
        let events: Vec<_> = (1..=250).map(|s| event(s, 10)).collect();
        let got = entries(&integration(), &events, "src").unwrap();
        assert_eq!(got.len(), MAX_ENTRIES);
        assert_eq!(got.last().unwrap().seq, 100);
        assert_eq!(got[0].id, events[0].id.to_string());
        assert_eq!(got[0].checksum, checksum(&got[0].event_data));
    }

    #[test]
    fn cuts_at_one_megabyte_counting_escapes() {
        // 27 kB of quotes each: 54 kB once escaped inside eventData, and
        // more again as a JSON string in the body.
        let events: Vec<_> = (1..=100).map(|s| event(s, 27_000)).collect();
        let got = entries(&integration(), &events, "src").unwrap();
        let body = 64
            + got
                .iter()
                .map(|e| serde_json::to_string(&e.event_data).unwrap().len() + 160)
                .sum::<usize>();
        assert!(body <= MAX_BODY_BYTES, "{body}");
        assert!(got.len() < 100 && got.len() > 1, "{}", got.len());
    }
}
