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

/// How deep event content may nest: responses embed it a few levels down
/// (a search result at the fourth), and common JSON parsers stop at 128
/// levels, so every reader can parse a response that holds such content.
pub const MAX_CONTENT_DEPTH: usize = 64;

/// Content already known to be JSON text (a parser skimmed it): it must be
/// an object of at most [`MAX_CONTENT_BYTES`] that every reader can parse:
/// at most [`MAX_CONTENT_DEPTH`] levels deep, with numbers that fit a
/// double. The text is kept as sent.
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
    let mut parser = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(Readable { depth: 0 }, &mut parser)
        .and_then(|()| parser.end())
        .map_err(|e| {
            ValidationError::new(format!(
                "content must parse as JSON at most {MAX_CONTENT_DEPTH} levels deep, with numbers that fit a double: {e}"
            ))
        })?;
    Ok(text.to_owned())
}

/// A JSON value parsed as every reader parses it, checking what a
/// skimming parse does not: numbers are turned into values, and arrays and
/// objects count against [`MAX_CONTENT_DEPTH`]. Nothing is kept, so nothing
/// is allocated.
#[derive(Clone, Copy)]
struct Readable {
    /// Arrays and objects around the value.
    depth: usize,
}

impl Readable {
    fn inner<E: serde::de::Error>(self) -> Result<Readable, E> {
        if self.depth >= MAX_CONTENT_DEPTH {
            return Err(E::custom(format!(
                "nested more than {MAX_CONTENT_DEPTH} levels"
            )));
        }
        Ok(Readable {
            depth: self.depth + 1,
        })
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Readable {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Readable {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom("number out of range"))
        }
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
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

    /// Content no reader can parse was stored and forwarded, and shown as
    /// `null`: too deep, or a number past a double's range.
    #[test]
    fn content_text_must_parse_as_every_reader_parses_it() {
        // `levels` arrays inside the object: levels + 1 deep.
        let nested =
            |levels: usize| format!(r#"{{"a":{}1{}}}"#, "[".repeat(levels), "]".repeat(levels));
        content_text(&nested(MAX_CONTENT_DEPTH - 1)).unwrap();
        let deep = content_text(&nested(MAX_CONTENT_DEPTH)).unwrap_err();
        assert!(deep.message.contains("levels deep"), "{deep}");
        let object_deep = format!(
            r#"{}1{}"#,
            r#"{"a":"#.repeat(MAX_CONTENT_DEPTH + 1),
            "}".repeat(MAX_CONTENT_DEPTH + 1)
        );
        assert!(content_text(&object_deep).is_err());
        // Far past serde_json's own recursion limit: an error, not a crash.
        assert!(content_text(&nested(100_000)).is_err());
        for number in ["1e999", "-1e400", "1.7976931348623159e309"] {
            let text = format!(r#"{{"n":{number}}}"#);
            assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
            assert!(content_text(&text).is_err(), "{number}");
        }
        for fine in [
            "1e308",
            "-0.0",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
        ] {
            let text = format!(r#"{{"n":{fine},"s":"x","b":true,"z":null,"o":{{}},"l":[]}}"#);
            serde_json::from_str::<serde_json::Value>(&text).unwrap();
            content_text(&text).unwrap();
        }
        assert!(content_text(r#"{"a":1} x"#).is_err());
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
