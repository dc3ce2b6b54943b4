//! Limits and checks for input that reaches the audit log from outside.
//!
//! The content limit is CloudTrail Lake's: `additionalEventData` may hold at
//! most 28 kB, and an event the log accepts must be deliverable to every
//! destination, so the log refuses anything larger at the door instead of
//! failing it later in the forwarder.

use std::net::IpAddr;

/// Longest event name.
pub const MAX_EVENT_NAME_LEN: usize = 128;
/// Largest JSON payload of one event, in bytes (CloudTrail Lake's
/// `additionalEventData` limit).
pub const MAX_CONTENT_BYTES: usize = 28_000;
/// Longest user agent kept.
pub const MAX_USER_AGENT_LEN: usize = 512;
/// Longest project ID.
pub const MAX_PROJECT_ID_LEN: usize = 128;
/// Longest client idempotency ID.
pub const MAX_IDEMPOTENCY_ID_LEN: usize = 128;
/// Most events in one ingest batch.
pub const MAX_BATCH: usize = 1000;
/// How far in the future a client timestamp may be (clock skew).
pub const MAX_FUTURE_SKEW_US: i64 = 5 * 60 * 1_000_000;
/// How far in the past a client timestamp may be (backfill window).
pub const MAX_PAST_US: i64 = 366 * 24 * 3600 * 1_000_000;

/// Input that breaks a rule; the message says which and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// What is wrong, for a human.
    pub message: String,
}

impl ValidationError {
    /// A validation failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Content already known to be valid JSON text (a parser checked it): it
/// must be an object of at most [`MAX_CONTENT_BYTES`]. The text is kept as
/// sent.
pub fn content_text(text: &str) -> Result<String, ValidationError> {
    if !text.trim_start().starts_with('{') {
        return Err(ValidationError::new("content must be a JSON object"));
    }
    if text.len() > MAX_CONTENT_BYTES {
        return Err(ValidationError::new(format!(
            "content is {} bytes; at most {MAX_CONTENT_BYTES} are accepted",
            text.len()
        )));
    }
    Ok(text.to_owned())
}

/// A client timestamp must lie in `[now - MAX_PAST, now + MAX_FUTURE_SKEW]`.
pub fn client_time(us: i64, now_us: i64) -> Result<i64, ValidationError> {
    if us > now_us + MAX_FUTURE_SKEW_US {
        return Err(ValidationError::new(
            "created is more than 5 minutes in the future",
        ));
    }
    if us < now_us - MAX_PAST_US {
        return Err(ValidationError::new(
            "created is more than 366 days in the past",
        ));
    }
    Ok(us)
}

/// An IPv4 or IPv6 address, normalised.
pub fn source_ip(s: &str) -> Result<String, ValidationError> {
    s.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| ValidationError::new(format!("source_ip {s:?} is not an IP address")))
}

/// A bounded identifier of `[-_.:A-Za-z0-9]`.
pub fn identifier(field: &str, s: &str, max: usize) -> Result<String, ValidationError> {
    if s.is_empty() || s.len() > max {
        return Err(ValidationError::new(format!(
            "{field} must be 1 to {max} characters long"
        )));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(ValidationError::new(format!(
            "{field} may only contain letters, digits, '-', '_', '.' and ':'"
        )));
    }
    Ok(s.to_owned())
}

/// Free text bounded in length and free of control characters.
pub fn text(field: &str, s: &str, max: usize) -> Result<String, ValidationError> {
    let trimmed = s.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(ValidationError::new(format!(
            "{field} must be 1 to {max} characters long"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// JSON text with object keys sorted at every level, so that equal values
/// always give equal text (used for idempotency hashes).
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_text_must_be_a_bounded_object() {
        assert_eq!(content_text(r#"{"a":1}"#).unwrap(), r#"{"a":1}"#);
        assert!(content_text("[1]").is_err());
        assert!(content_text(r#""x""#).is_err());
        let big = format!(r#"{{"x":"{}"}}"#, "y".repeat(MAX_CONTENT_BYTES));
        assert!(content_text(&big).unwrap_err().message.contains("at most"));
    }

    #[test]
    fn client_time_window() {
        let now = 1_700_000_000_000_000;
        assert!(client_time(now, now).is_ok());
        assert!(client_time(now + MAX_FUTURE_SKEW_US + 1, now).is_err());
        assert!(client_time(now - MAX_PAST_US - 1, now).is_err());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[{"y":1,"x":2}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn identifiers_and_text() {
        assert!(identifier("id", "abc-1_2.3:4", 11).is_ok());
        assert!(identifier("id", "abc-1_2.3:45", 11).is_err());
        assert!(identifier("id", "a b", 10).is_err());
        assert!(identifier("id", "", 10).is_err());
        assert_eq!(text("name", "  Acme  ", 10).unwrap(), "Acme");
        assert!(text("name", "a\u{0}b", 10).is_err());
        assert!(source_ip("::1").is_ok());
        assert!(source_ip("1.2.3.999").is_err());
    }
}
