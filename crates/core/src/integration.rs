//! Cloud event integrations: what a tenant registers to have its audit log
//! forwarded, which events each one receives (the scope rules of
//! design.md), and how an event becomes a CloudTrail Lake `eventData`.
//!
//! The scope rule lives here as [`Integration::receives`] so that the
//! store's SQL (which implements it with an indexed column comparison) has
//! a pure definition to be tested against.

use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::AuditEvent;
use crate::tenant::Scope;
use crate::time_fmt;
use crate::validate::ValidationError;

/// The destination types an integration may have. Snyk knows others
/// (Google Security Command Center); auditlake forwards to CloudTrail Lake.
pub const KIND_AWS_CLOUDTRAIL: &str = "aws-cloudtrail";

/// Longest integration name.
pub const MAX_NAME_LEN: usize = 100;

/// `eventData.version` of every forwarded event.
pub const EVENT_DATA_VERSION: &str = "1.0";

/// Where an integration's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created; nothing delivered yet and no error seen.
    Pending,
    /// The last delivery attempt succeeded.
    Healthy,
    /// Transient failures (throttling, 5xx, network): retrying with backoff.
    Retrying,
    /// The destination refuses (permission, missing channel, bad account):
    /// the backlog is kept and delivery resumes once it accepts again.
    Failing,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Healthy => "healthy",
            Status::Retrying => "retrying",
            Status::Failing => "failing",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Status::Pending,
            "healthy" => Status::Healthy,
            "retrying" => Status::Retrying,
            "failing" => Status::Failing,
            _ => return None,
        })
    }
}

/// A registered integration with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    /// Its ID (the group registration ID of the seed).
    pub id: Uuid,
    /// The org or group whose events it receives; its ID is the External ID.
    pub scope: Scope,
    /// Destination type ([`KIND_AWS_CLOUDTRAIL`]).
    pub kind: String,
    /// A name for people.
    pub name: String,
    /// Destination settings.
    pub config: CloudTrailConfig,
    /// Created, epoch microseconds.
    pub created_us: i64,
    /// Last changed by a user, epoch microseconds.
    pub updated_us: i64,
    /// The `seq` of the last event delivered (acknowledged by the
    /// destination); delivery continues after it.
    pub cursor: i64,
    /// Delivery state.
    pub status: Status,
    /// The last error the destination or the network gave, if any.
    pub last_error: Option<String>,
    /// When `last_error` happened.
    pub last_error_us: Option<i64>,
    /// The last acknowledged delivery.
    pub last_success_us: Option<i64>,
    /// Events acknowledged by the destination.
    pub delivered: i64,
    /// Entries the destination refused (each retried until delivered).
    pub failed: i64,
}

impl Integration {
    /// A newly registered integration: `pending`, nothing delivered yet,
    /// delivery continuing after `cursor`.
    pub fn pending(
        id: Uuid,
        scope: Scope,
        name: impl Into<String>,
        config: CloudTrailConfig,
        created_us: i64,
        cursor: i64,
    ) -> Self {
        Self {
            id,
            scope,
            kind: KIND_AWS_CLOUDTRAIL.to_owned(),
            name: name.into(),
            config,
            created_us,
            updated_us: created_us,
            cursor,
            status: Status::Pending,
            last_error: None,
            last_error_us: None,
            last_success_us: None,
            delivered: 0,
            failed: 0,
        }
    }

    /// The External ID: the org's or group's ID.
    pub fn external_id(&self) -> Uuid {
        match self.scope {
            Scope::Org(id) | Scope::Group(id) => id,
            Scope::User => Uuid::nil(),
        }
    }

    /// The scope rule of design.md: an org integration receives the events
    /// whose `org_id` is the org; a group registration every event whose
    /// `group_id` is the group (its own and all its orgs' at the time).
    pub fn receives(&self, event: &AuditEvent) -> bool {
        match self.scope {
            Scope::Org(org) => event.org_id == Some(org),
            Scope::Group(group) => event.group_id == Some(group),
            Scope::User => false,
        }
    }
}

/// The settings of an `aws-cloudtrail` integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudTrailConfig {
    /// The AWS account that owns the channel (12 digits).
    pub account_id: String,
    /// The CloudTrail Lake channel ARN.
    pub channel_arn: String,
}

/// A parsed CloudTrail channel ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelArn {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: String,
    /// The channel's region; the forwarder sends there.
    pub region: String,
    /// The owning account.
    pub account: String,
    /// The channel ID.
    pub id: String,
}

/// Checks an AWS account ID: exactly 12 digits.
pub fn account_id(s: &str) -> Result<String, ValidationError> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(ValidationError::new(format!(
            "account_id must be a 12-digit AWS account ID, got {s:?}"
        )))
    }
}

impl ChannelArn {
    /// Parses `arn:<partition>:cloudtrail:<region>:<account>:channel/<id>`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let bad = |why: &str| {
            ValidationError::new(format!(
                "channel_arn {s:?} is not a CloudTrail channel ARN \
                 (arn:<partition>:cloudtrail:<region>:<account>:channel/<id>): {why}"
            ))
        };
        if s.len() > 256 {
            return Err(bad("longer than 256 characters"));
        }
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(bad("it needs six ':'-separated parts"));
        };
        if arn != "arn" {
            return Err(bad("it must start with \"arn:\""));
        }
        let word = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !word(partition) {
            return Err(bad("the partition is missing or malformed"));
        }
        if service != "cloudtrail" {
            return Err(bad("the service must be \"cloudtrail\""));
        }
        if !word(region) {
            return Err(bad("the region is missing or malformed"));
        }
        if account_id(account).is_err() {
            return Err(bad("the account must be 12 digits"));
        }
        let id = resource
            .strip_prefix("channel/")
            .ok_or_else(|| bad("the resource must be \"channel/<id>\""))?;
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("the channel ID is missing or malformed"));
        }
        Ok(Self {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            id: id.to_owned(),
        })
    }
}

impl CloudTrailConfig {
    /// Validates both fields and that the channel belongs to the account.
    /// Errors name the field (`account_id` or `channel_arn`).
    pub fn new(account: &str, channel_arn: &str) -> Result<Self, (&'static str, ValidationError)> {
        let account = account_id(account).map_err(|e| ("account_id", e))?;
        let arn = ChannelArn::parse(channel_arn).map_err(|e| ("channel_arn", e))?;
        if arn.account != account {
            return Err((
                "channel_arn",
                ValidationError::new(format!(
                    "the channel belongs to account {}, not to account_id {account}",
                    arn.account
                )),
            ));
        }
        Ok(Self {
            account_id: account,
            channel_arn: channel_arn.to_owned(),
        })
    }

    /// The parsed channel ARN (validated at construction).
    pub fn arn(&self) -> ChannelArn {
        ChannelArn::parse(&self.channel_arn).expect("validated at construction")
    }
}

/// Checks an integration's three inputs together, reporting every field
/// that is wrong (`name`, `account_id`, `channel_arn`) with its message, in
/// that order: forms show them all at once, APIs point at the first.
pub fn check_fields(
    name: Option<&str>,
    account: Option<&str>,
    channel_arn: Option<&str>,
) -> Result<(String, CloudTrailConfig), Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let name = match name.map(|n| crate::validate::text("name", n, MAX_NAME_LEN)) {
        None => {
            errors.push(("name", "name is required".to_owned()));
            None
        }
        Some(Err(e)) => {
            errors.push(("name", e.message));
            None
        }
        Some(Ok(n)) => Some(n),
    };
    let account = match account.map(account_id) {
        None => {
            errors.push(("account_id", "account_id is required".to_owned()));
            None
        }
        Some(Err(e)) => {
            errors.push(("account_id", e.message));
            None
        }
        Some(Ok(a)) => Some(a),
    };
    let arn = match channel_arn.map(|a| ChannelArn::parse(a).map(|p| (a, p))) {
        None => {
            errors.push(("channel_arn", "channel_arn is required".to_owned()));
            None
        }
        Some(Err(e)) => {
            errors.push(("channel_arn", e.message));
            None
        }
        Some(Ok(a)) => Some(a),
    };
    match (name, account, arn) {
        (Some(name), Some(account), Some((text, parsed))) if errors.is_empty() => {
            if parsed.account != account {
                return Err(vec![(
                    "channel_arn",
                    format!(
                        "the channel belongs to account {}, not to account_id {account}",
                        parsed.account
                    ),
                )]);
            }
            Ok((
                name,
                CloudTrailConfig {
                    account_id: account,
                    channel_arn: text.to_owned(),
                },
            ))
        }
        _ => Err(errors),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventData<'a> {
    version: &'static str,
    user_identity: UserIdentity<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    event_source: &'a str,
    event_name: &'a str,
    event_time: String,
    #[serde(rename = "UID")]
    uid: String,
    recipient_account_id: &'a str,
    #[serde(rename = "sourceIPAddress", skip_serializing_if = "Option::is_none")]
    source_ip_address: Option<&'a str>,
    additional_event_data: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    principal_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Details<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<&'a str>,
    /// The API token that ingested the event; absent on the platform's own
    /// events, so a receiver can tell the two apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    ingested_by: Option<Uuid>,
}

/// `userIdentity.principalId` of events no user caused (CloudTrail Lake
/// requires a non-empty principal).
pub const SYSTEM_PRINCIPAL: &str = "auditlake";

/// The CloudTrail Lake `eventData` of `event` for an integration whose
/// account is `account_id`, as JSON text.
///
/// `userIdentity.principalId` is the user ID (the seed's contract), `UID` the
/// event's own ID (so a retry never mints a new identity) and
/// `additionalEventData` the raw payload exactly as stored.
pub fn event_data(
    event: &AuditEvent,
    account_id: &str,
    event_source: &str,
) -> Result<String, serde_json::Error> {
    let content: &RawValue = serde_json::from_str(&event.content)?;
    let details = (event.org_id.is_some()
        || event.group_id.is_some()
        || event.project_id.is_some()
        || event.ingested_by.is_some())
    .then_some(Details {
        org_id: event.org_id,
        group_id: event.group_id,
        project_id: event.project_id.as_deref(),
        ingested_by: event.ingested_by,
    });
    let user_identity = match event.user_id {
        Some(user) => UserIdentity {
            kind: "User",
            principal_id: user.to_string(),
            details,
        },
        None => UserIdentity {
            kind: "System",
            principal_id: SYSTEM_PRINCIPAL.to_owned(),
            details,
        },
    };
    serde_json::to_string(&EventData {
        version: EVENT_DATA_VERSION,
        user_identity,
        user_agent: event.user_agent.as_deref(),
        event_source,
        event_name: &event.event,
        event_time: time_fmt::format_seconds(event.created_us),
        uid: event.id.to_string(),
        recipient_account_id: account_id,
        source_ip_address: event.source_ip.as_deref(),
        additional_event_data: content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(org: Option<Uuid>, group: Option<Uuid>) -> AuditEvent {
        AuditEvent {
            seq: 7,
            id: Uuid::now_v7(),
            created_us: 1_764_000_000_123_456,
            event: "org.settings.edit".into(),
            org_id: org,
            group_id: group,
            user_id: Some(Uuid::now_v7()),
            project_id: None,
            content: r#"{"before":{"a":1},  "after":{"a":2}}"#.into(),
            source_ip: Some("10.0.0.1".into()),
            user_agent: Some("curl/8".into()),
            ingested_by: None,
        }
    }

    #[test]
    fn maps_an_event_to_event_data() {
        let e = event(Some(Uuid::now_v7()), None);
        let text = event_data(&e, "123456789012", "auditlake.example").unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["userIdentity"]["type"], "User");
        assert_eq!(
            v["userIdentity"]["principalId"],
            e.user_id.unwrap().to_string()
        );
        assert_eq!(
            v["userIdentity"]["details"]["orgId"],
            e.org_id.unwrap().to_string()
        );
        assert_eq!(v["eventName"], "org.settings.edit");
        assert_eq!(v["eventSource"], "auditlake.example");
        assert_eq!(v["eventTime"], "2025-11-24T16:00:00Z");
        assert_eq!(v["UID"], e.id.to_string());
        assert_eq!(v["recipientAccountId"], "123456789012");
        assert_eq!(v["sourceIPAddress"], "10.0.0.1");
        assert_eq!(v["userAgent"], "curl/8");
        // The payload travels byte for byte.
        assert!(text.contains(r#""additionalEventData":{"before":{"a":1},  "after":{"a":2}}"#));
        // A platform event names no ingesting token.
        assert!(v["userIdentity"]["details"].get("ingestedBy").is_none());
    }

    /// An ingested event carries the token that sent it to every
    /// destination, so a receiver can tell it from the platform's own.
    #[test]
    fn an_ingested_event_says_so_in_its_event_data() {
        let token = Uuid::now_v7();
        let e = AuditEvent {
            ingested_by: Some(token),
            ..event(None, None)
        };
        let v: serde_json::Value =
            serde_json::from_str(&event_data(&e, "123456789012", "auditlake.example").unwrap())
                .unwrap();
        assert_eq!(
            v["userIdentity"]["details"]["ingestedBy"],
            token.to_string()
        );
    }

    #[test]
    fn events_without_a_user_have_a_system_principal() {
        let mut e = event(None, Some(Uuid::now_v7()));
        e.user_id = None;
        e.source_ip = None;
        let v: serde_json::Value =
            serde_json::from_str(&event_data(&e, "123456789012", "x").unwrap()).unwrap();
        assert_eq!(v["userIdentity"]["type"], "System");
        assert_eq!(v["userIdentity"]["principalId"], SYSTEM_PRINCIPAL);
        assert!(v.get("sourceIPAddress").is_none());
    }

    #[test]
    fn validates_channel_arns_and_accounts() {
        let ok = CloudTrailConfig::new(
            "123456789012",
            "arn:aws:cloudtrail:us-east-1:123456789012:channel/01234567-89ab-cdef-0123-456789abcdef",
        )
        .unwrap();
        assert_eq!(ok.arn().region, "us-east-1");
        for (account, arn, field, why) in [
            (
                "12345678901",
                "arn:aws:cloudtrail:us-east-1:123456789012:channel/x",
                "account_id",
                "12-digit",
            ),
            (
                "12345678901a",
                "arn:aws:cloudtrail:us-east-1:123456789012:channel/x",
                "account_id",
                "12-digit",
            ),
            (
                "123456789012",
                "arn:aws:cloudtrail:us-east-1:210987654321:channel/x",
                "channel_arn",
                "belongs to account 210987654321",
            ),
            (
                "123456789012",
                "arn:aws:s3:us-east-1:123456789012:channel/x",
                "channel_arn",
                "service",
            ),
            (
                "123456789012",
                "arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/x",
                "channel_arn",
                "channel/<id>",
            ),
            (
                "123456789012",
                "arn:aws:cloudtrail:us-east-1:123456789012:channel/",
                "channel_arn",
                "channel ID",
            ),
            (
                "123456789012",
                "arn:aws:cloudtrail::123456789012:channel/x",
                "channel_arn",
                "region",
            ),
            ("123456789012", "not an arn", "channel_arn", "six"),
        ] {
            let (f, e) = CloudTrailConfig::new(account, arn).unwrap_err();
            assert_eq!(f, field, "{arn}");
            assert!(e.message.contains(why), "{arn}: {}", e.message);
        }
    }

    #[test]
    fn check_fields_reports_every_wrong_field() {
        let errs = check_fields(Some(""), Some("12"), Some("arn:aws:s3:::b")).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.0).collect();
        assert_eq!(fields, ["name", "account_id", "channel_arn"]);
        let errs = check_fields(None, None, None).unwrap_err();
        assert!(errs.iter().all(|e| e.1.contains("required")));
        let errs = check_fields(
            Some("n"),
            Some("123456789012"),
            Some("arn:aws:cloudtrail:us-east-1:210987654321:channel/x"),
        )
        .unwrap_err();
        assert_eq!(errs[0].0, "channel_arn");
        assert!(errs[0].1.contains("210987654321"));
        let (name, c) = check_fields(
            Some("n"),
            Some("123456789012"),
            Some("arn:aws:cloudtrail:us-east-1:123456789012:channel/x"),
        )
        .unwrap();
        assert_eq!(
            (name.as_str(), c.account_id.as_str()),
            ("n", "123456789012")
        );
    }

    #[test]
    fn scope_rule_follows_org_and_group_ids() {
        let (org, group) = (Uuid::now_v7(), Uuid::now_v7());
        let config = CloudTrailConfig::new(
            "123456789012",
            "arn:aws:cloudtrail:us-east-1:123456789012:channel/x",
        )
        .unwrap();
        let mut i = Integration::pending(Uuid::now_v7(), Scope::Org(org), "x", config, 0, 0);
        assert!(i.receives(&event(Some(org), Some(group))));
        assert!(
            !i.receives(&event(None, Some(group))),
            "the parent group's events stay out"
        );
        i.scope = Scope::Group(group);
        assert!(i.receives(&event(Some(org), Some(group))));
        assert!(i.receives(&event(None, Some(group))));
        assert!(
            !i.receives(&event(Some(org), None)),
            "before the org joined"
        );
        assert_eq!(i.external_id(), group);
    }
}
