//! The data plane: `PutAuditEvents`.
//!
//! Whole-request problems (bad channel ARN, unknown channel, permission,
//! too many entries, repeated `id`s) fail the call with a typed error;
//! problems of one entry (checksum, schema) fail only that entry. Accepted
//! entries are committed before the answer, and an `id` the channel has
//! seen before answers with its original `eventID` without storing a
//! second copy, so a sender's retry is always safe (stronger than AWS,
//! which documents no deduplication).

use std::collections::HashSet;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::error::{LakeError, Result};
use crate::storage::catalog::{now_ms, NewEntry};
use crate::storage::record::{self, EntryError, Record, Stamp};
use crate::wire::arn::{Arn, Kind};
use crate::wire::sigv4::Caller;
use crate::Lake;
use auditlake_cloudtrail::policy::Policy;

/// Most entries per call.
pub const MAX_EVENTS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutInput {
    audit_events: Vec<Entry>,
}

/// One entry of a `PutAuditEvents` body, as the caller sent it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The caller's `id`: 1-128 letters, digits, `-` and `_`, unique in the
    /// call.
    pub id: String,
    /// `eventData`: JSON text, validated per entry by [`Entry::record`].
    pub event_data: String,
    /// `eventDataChecksum`: base64 SHA-256 of `eventData`, optional.
    #[serde(default)]
    pub event_data_checksum: Option<String>,
}

/// The query string of a call.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutParams {
    /// `channelArn`.
    pub channel_arn: Option<String>,
    /// `externalId`.
    pub external_id: Option<String>,
}

fn validation(message: impl std::fmt::Display) -> LakeError {
    LakeError::bad("ValidationException", message)
}

fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || "+=,.@:/-".contains(c))
}

/// Reads a `PutAuditEvents` body: 1 to [`MAX_EVENTS`] entries with valid,
/// distinct `id`s. These are whole-call errors; each entry's `eventData` is
/// checked on its own by [`Entry::record`], so one bad entry fails alone.
pub fn parse_body(body: &[u8]) -> Result<Vec<Entry>> {
    let input: PutInput = serde_json::from_slice(body).map_err(|e| {
        LakeError::bad(
            "SerializationException",
            format!("the body is not valid: {e}"),
        )
    })?;
    let n = input.audit_events.len();
    if n == 0 || n > MAX_EVENTS {
        return Err(validation(format!(
            "auditEvents must hold 1 to {MAX_EVENTS} events; it holds {n}."
        )));
    }
    let mut seen = HashSet::with_capacity(n);
    for e in &input.audit_events {
        if !valid_id(&e.id) {
            return Err(validation(format!(
                "id {:?} must be 1-128 characters of letters, digits, '-' and '_'.",
                e.id
            )));
        }
        if !seen.insert(e.id.as_str()) {
            return Err(LakeError::bad(
                "DuplicatedAuditEventId",
                format!("The id {} appears more than once in this call.", e.id),
            ));
        }
    }
    Ok(input.audit_events)
}

impl Entry {
    /// Checks the entry's checksum (when given) and its `eventData`, and
    /// builds the record stored under `event_id`.
    pub fn record(&self, event_id: String, stamp: &Stamp<'_>) -> Result<Record, EntryError> {
        if let Some(sum) = &self.event_data_checksum {
            let given = base64::engine::general_purpose::STANDARD.decode(sum).ok();
            let actual = Sha256::digest(self.event_data.as_bytes());
            if given.as_deref() != Some(actual.as_slice()) {
                return Err(EntryError::new(
                    "InvalidChecksum",
                    "eventDataChecksum is not the base64 SHA-256 of eventData.",
                ));
            }
        }
        record::build(&self.event_data, event_id, stamp)
    }
}

impl Lake {
    /// Runs one `PutAuditEvents` call.
    pub async fn put_audit_events(
        &self,
        caller: &Caller,
        params: PutParams,
        body: &[u8],
    ) -> Result<Value> {
        let arn_text = params
            .channel_arn
            .ok_or_else(|| validation("channelArn is required."))?;
        let arn = Arn::parse(&arn_text)
            .filter(|a| a.kind == Kind::Channel)
            .ok_or_else(|| {
                LakeError::bad(
                    "InvalidChannelARN",
                    format!("{arn_text} is not a valid channel ARN."),
                )
            })?;
        if let Some(ext) = &params.external_id {
            if !valid_external_id(ext) {
                return Err(validation(
                    "externalId must be 2-1224 characters of letters, digits and _+=,.@:/-",
                ));
            }
        }
        let entries = parse_body(body)?;
        let n = entries.len();

        let not_found = || {
            LakeError::with_status(
                404,
                "ChannelNotFound",
                format!("The channel {arn_text} does not exist."),
            )
        };
        let channel = self
            .catalog()
            .channel_any_account(&arn.id)
            .await?
            .filter(|c| {
                c.account == arn.account && c.region == arn.region && arn.partition == "aws"
            })
            .ok_or_else(not_found)?;
        // The channel's own ARN, whatever partition the caller wrote: the
        // policy was checked against it and records carry it.
        let canonical = Arn::new(
            &channel.region,
            &channel.account,
            Kind::Channel,
            &channel.id,
        )
        .to_string();
        let allowed = match &channel.policy {
            None => caller.account() == channel.account,
            Some(text) => Policy::parse(text, &canonical)?.allows_put(
                caller.account(),
                &channel.account,
                params.external_id.as_deref(),
            ),
        };
        if !allowed {
            self.catalog()
                .record_failed_attempt(&channel.id, "ChannelInsufficientPermission")
                .await?;
            return Err(LakeError::with_status(
                403,
                "ChannelInsufficientPermission",
                "The caller is not allowed to put events on this channel, or the externalId does not match its resource policy.",
            ));
        }
        let mut stores = Vec::with_capacity(channel.destinations.len());
        for d in &channel.destinations {
            let Some(id) = Arn::parse(&d.location).map(|a| a.id) else {
                continue;
            };
            if let Some(s) = self.catalog().store(&channel.account, &id).await? {
                if s.status == "ENABLED" {
                    stores.push(s.id);
                }
            }
        }
        if stores.is_empty() {
            return Err(LakeError::bad(
                "UnsupportedOperationException",
                "No event data store of this channel is taking events (stopped or pending deletion).",
            ));
        }

        let stamp = Stamp {
            account: &channel.account,
            region: &channel.region,
            channel_arn: &canonical,
            now_ms: now_ms(),
        };
        let mut failed = Vec::new();
        let mut accepted = Vec::with_capacity(n);
        for e in entries {
            match e.record(uuid::Uuid::new_v4().to_string(), &stamp) {
                Ok(record) => accepted.push(NewEntry { id: e.id, record }),
                Err(err) => failed
                    .push(json!({"id": e.id, "errorCode": err.code, "errorMessage": err.message})),
            }
        }
        let error_code = failed
            .first()
            .and_then(|f| f["errorCode"].as_str().map(str::to_owned));
        let stored = self
            .catalog()
            .ingest(&channel.id, &stores, accepted, error_code.as_deref())
            .await?;
        self.note_ingested(stored.iter().filter(|s| !s.duplicate).count());
        let successful: Vec<Value> = stored
            .iter()
            .map(|s| json!({"id": s.id, "eventID": s.event_id}))
            .collect();
        Ok(json!({"successful": successful, "failed": failed}))
    }
}
