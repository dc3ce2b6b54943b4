//! Audit events: what a caller submits ([`NewEvent`]), what the log holds
//! ([`AuditEvent`]), and the rules an event name follows ([`EventName`]).

use serde::Serialize;
use uuid::Uuid;

use crate::tenant::Scope;
use crate::validate::{ValidationError, MAX_EVENT_NAME_LEN};

/// An event name: dotted lower-case words, `<scope>.<object>[.<detail>].<verb>`
/// such as `org.settings.edit` or `api.access`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventName(String);

impl EventName {
    /// The name of the event written for every authenticated API request.
    pub const API_ACCESS: &'static str = "api.access";

    /// Checks the format: 2 to 8 dot-separated segments of `[a-z0-9_]`, each
    /// starting with a letter, at most [`MAX_EVENT_NAME_LEN`] bytes in all.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let bad = |why: &str| ValidationError::new(format!("event name {s:?} {why}"));
        if s.is_empty() || s.len() > MAX_EVENT_NAME_LEN {
            return Err(bad(&format!(
                "must be 1 to {MAX_EVENT_NAME_LEN} characters long"
            )));
        }
        let segments: Vec<&str> = s.split('.').collect();
        if !(2..=8).contains(&segments.len()) {
            return Err(bad(
                "must have 2 to 8 dot-separated segments, like \"org.settings.edit\"",
            ));
        }
        for seg in segments {
            let mut chars = seg.chars();
            match chars.next() {
                Some(c) if c.is_ascii_lowercase() => {}
                _ => {
                    return Err(bad(
                        "has a segment that does not start with a lower-case letter",
                    ))
                }
            }
            if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return Err(bad("may only contain a-z, 0-9, '_' and '.'"));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a name known to be valid (the server's own constants).
    pub fn from_static(s: &'static str) -> Self {
        debug_assert!(Self::parse(s).is_ok(), "invalid built-in event name {s}");
        Self(s.to_owned())
    }

    /// Whether the platform reserves this name: it emits events of that
    /// name itself, and ingest refuses them, so that nobody can pass an
    /// event off as the platform's own.
    pub fn is_platform(&self) -> bool {
        Self::reserved(&self.0)
    }

    fn reserved(name: &str) -> bool {
        /// Names the platform emits.
        const NAMES: &[&str] = &[
            EventName::API_ACCESS,
            "org.create",
            "org.edit",
            "org.settings.edit",
            "group.create",
        ];
        /// Families of names the platform emits, present and future.
        const FAMILIES: &[&str] = &[
            "user.",
            "org.user.",
            "group.user.",
            "group.org.",
            "org.cloud_events.",
            "group.cloud_events.",
            "org.audit_logs.",
            "group.audit_logs.",
        ];
        NAMES.contains(&name) || FAMILIES.iter().any(|f| name.starts_with(f))
    }
}

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event about to be appended. The store fills in `group_id` from the
/// org's parent group inside the appending transaction (design.md, scope
/// rules), so a concurrent move of the org cannot tear the two apart.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Stable identity; also the ID forwarded to destinations.
    pub id: Uuid,
    /// When it happened, epoch microseconds UTC.
    pub created_us: i64,
    /// Event name.
    pub event: EventName,
    /// Which tenant the event belongs to.
    pub scope: Scope,
    /// The acting user, when there is one.
    pub user_id: Option<Uuid>,
    /// Project the event concerns, if any.
    pub project_id: Option<String>,
    /// The raw JSON payload, always a JSON object.
    pub content: String,
    /// Caller's IP address.
    pub source_ip: Option<String>,
    /// Caller's user agent.
    pub user_agent: Option<String>,
    /// For an event that came in through the ingest API, the API token
    /// that sent it: events of the platform itself have none.
    pub ingested_by: Option<Uuid>,
}

impl NewEvent {
    /// A server-side event happening now with a fresh ID.
    pub fn now(
        event: &'static str,
        scope: Scope,
        user_id: Option<Uuid>,
        content: serde_json::Value,
    ) -> Self {
        Self {
            id: crate::new_id(),
            created_us: crate::time_fmt::now_micros(),
            event: EventName::from_static(event),
            scope,
            user_id,
            project_id: None,
            content: content.to_string(),
            source_ip: None,
            user_agent: None,
            ingested_by: None,
        }
    }

    /// Sets where the request came from.
    pub fn with_origin(mut self, ip: Option<String>, user_agent: Option<String>) -> Self {
        self.source_ip = ip;
        self.user_agent = user_agent;
        self
    }
}

/// Who acts, and from where: stamped on every event a request causes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The authenticated user, if any.
    pub user_id: Option<Uuid>,
    /// Caller's IP address.
    pub source_ip: Option<String>,
    /// Caller's user agent.
    pub user_agent: Option<String>,
}

impl Actor {
    /// The actor for `user_id` with no request origin (CLI, background work).
    pub fn user(user_id: Uuid) -> Self {
        Self {
            user_id: Some(user_id),
            ..Self::default()
        }
    }

    /// A server-side event by this actor happening now: the platform's
    /// own, so its name must be one the platform reserves
    /// ([`EventName::is_platform`]); a debug build stops at one that is not,
    /// so a new kind of platform event cannot go unreserved.
    pub fn event(&self, name: &'static str, scope: Scope, content: serde_json::Value) -> NewEvent {
        debug_assert!(
            EventName::reserved(name),
            "platform event name {name} is not reserved; add it to EventName::is_platform"
        );
        NewEvent::now(name, scope, self.user_id, content)
            .with_origin(self.source_ip.clone(), self.user_agent.clone())
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Global append order; readers follow it with a cursor. Assigned at
    /// commit order (see the store's append path).
    pub seq: i64,
    /// Time-ordered UUID.
    pub id: Uuid,
    /// Epoch microseconds UTC.
    pub created_us: i64,
    /// Event name.
    pub event: String,
    /// Organization, null for group-level events.
    pub org_id: Option<Uuid>,
    /// The group: the org's parent at the time of the event, or the group
    /// itself for group-level events.
    pub group_id: Option<Uuid>,
    /// The acting user.
    pub user_id: Option<Uuid>,
    /// Project concerned, if any.
    pub project_id: Option<String>,
    /// Raw JSON payload (an object).
    pub content: String,
    /// Caller's IP address.
    pub source_ip: Option<String>,
    /// Caller's user agent.
    pub user_agent: Option<String>,
    /// For an ingested event, the API token that sent it; `None` for the
    /// platform's own events.
    pub ingested_by: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_snyk_vocabulary() {
        for name in [
            "api.access",
            "org.settings.edit",
            "org.cloud_config.settings.edit",
            "group.org.add",
            "org.user.role.edit",
        ] {
            assert!(EventName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_malformed_names_with_a_reason() {
        for (name, why) in [
            ("", "1 to"),
            ("org", "2 to 8"),
            ("Org.create", "lower-case"),
            ("org..create", "lower-case"),
            ("org.cre-ate", "may only contain"),
            ("org.1create", "lower-case"),
            ("org.create'; drop table x;--", "may only contain"),
        ] {
            let err = EventName::parse(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name}: {err}");
        }
        assert!(EventName::parse(&format!("a.{}", "b".repeat(200))).is_err());
    }
}
