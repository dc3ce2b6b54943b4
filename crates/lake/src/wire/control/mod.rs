//! The control plane: `cloudtrail` operations over JSON 1.1, dispatched on
//! `X-Amz-Target`. Each operation validates its input as the service model
//! constrains it and answers with the model's output members.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{LakeError, Result};
use crate::storage::catalog::{Destination, QueryStatus};

mod ops;

/// The operation named by an `X-Amz-Target`: the SDKs send
/// `CloudTrail_20131101.<Operation>`; the fully qualified
/// `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.<Operation>`
/// is accepted too.
pub fn operation_of(target: &str) -> Option<&str> {
    target
        .strip_prefix("com.amazonaws.cloudtrail.v20131101.")
        .unwrap_or(target)
        .strip_prefix("CloudTrail_20131101.")
        .filter(|op| !op.is_empty())
}

/// Stores per account, as CloudTrail Lake's default quota.
const MAX_STORES: usize = 10;
/// Channels per account.
const MAX_CHANNELS: usize = 100;
/// `RetentionPeriod` of a new store when the call gives none.
const DEFAULT_RETENTION_DAYS: i64 = 366;
/// `BillingMode` of a new store when the call gives none.
const DEFAULT_BILLING: &str = "EXTENDABLE_RETENTION_PRICING";

fn input<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| LakeError::bad("SerializationException", e))
}

fn check_name(name: &str) -> Result<()> {
    let ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LakeError::invalid(format!(
            "Name {name:?} must be 3-128 characters of letters, digits, '.', '_' and '-'."
        )))
    }
}

fn check_retention(days: i64) -> Result<()> {
    if (7..=3653).contains(&days) {
        Ok(())
    } else {
        Err(LakeError::invalid(format!(
            "RetentionPeriod {days} must be between 7 and 3653 days."
        )))
    }
}

fn check_billing(mode: &str) -> Result<()> {
    match mode {
        "EXTENDABLE_RETENTION_PRICING" | "FIXED_RETENTION_PRICING" => Ok(()),
        other => Err(LakeError::invalid(format!(
            "BillingMode {other:?} is not valid."
        ))),
    }
}

/// Checks `AdvancedEventSelectors`: the fields an event data store of
/// integration events selects on.
fn check_selectors(selectors: &Value) -> Result<()> {
    let bad = |m: &str| LakeError::bad("InvalidEventSelectorsException", m);
    let Value::Array(list) = selectors else {
        return Err(bad("AdvancedEventSelectors must be a list"));
    };
    for s in list {
        let Some(Value::Array(fields)) = s.get("FieldSelectors") else {
            return Err(bad("each selector needs FieldSelectors"));
        };
        if fields.is_empty() {
            return Err(bad("FieldSelectors must not be empty"));
        }
        for f in fields {
            let Some(field) = f.get("Field").and_then(Value::as_str) else {
                return Err(bad("each field selector needs a Field"));
            };
            if field.is_empty() || field.len() > 1000 {
                return Err(bad("Field must be 1-1000 characters"));
            }
            let ops = [
                "Equals",
                "StartsWith",
                "EndsWith",
                "NotEquals",
                "NotStartsWith",
                "NotEndsWith",
            ];
            let mut any = false;
            for op in ops {
                match f.get(op) {
                    None => {}
                    Some(Value::Array(v)) if !v.is_empty() && v.iter().all(Value::is_string) => {
                        any = true
                    }
                    Some(_) => {
                        return Err(bad("operator values must be non-empty lists of strings"))
                    }
                }
            }
            if !any {
                return Err(bad("each field selector needs an operator such as Equals"));
            }
        }
    }
    Ok(())
}

/// Whether a store's selectors take integration events
/// (`eventCategory` equals `ActivityAuditLog`).
pub fn takes_activity_events(selectors: &Value) -> bool {
    selectors.as_array().is_some_and(|list| {
        list.iter().any(|s| {
            s.get("FieldSelectors")
                .and_then(Value::as_array)
                .is_some_and(|fields| {
                    fields.iter().any(|f| {
                        f.get("Field").and_then(Value::as_str) == Some("eventCategory")
                            && f.get("Equals")
                                .and_then(Value::as_array)
                                .is_some_and(|v| v.iter().any(|x| x == "ActivityAuditLog"))
                    })
                })
        })
    })
}

fn default_selectors() -> Value {
    json!([{"Name": "Management events", "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Management"]}]}])
}

/// Opaque list position: base64 of the offset.
pub fn encode_token(offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

/// Reads a `NextToken` made by [`encode_token`]; none is the start.
pub fn decode_token(token: Option<&str>) -> Result<usize> {
    use base64::Engine as _;
    let Some(token) = token else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| LakeError::bad("InvalidNextTokenException", "NextToken is not valid."))
}

/// Where a page of a list starts and how long it is, read from a call's
/// `NextToken` and `MaxResults` (or `MaxQueryResults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Index of the page's first item.
    pub start: usize,
    /// Most items on the page.
    pub size: usize,
}

impl Paging {
    /// Checks `max` (1 to 1000, `default` when absent; `name` is the
    /// member, for the message) and the token.
    pub fn new(token: Option<&str>, max: Option<i64>, default: usize, name: &str) -> Result<Self> {
        let size = match max {
            None => default,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(LakeError::bad(
                    "InvalidMaxResultsException",
                    format!("{name} {n} must be between 1 and 1000."),
                ))
            }
        };
        Ok(Self {
            start: decode_token(token)?,
            size,
        })
    }

    /// This page of `items` and the token of the next, if any.
    pub fn apply<T>(self, items: Vec<T>) -> (Vec<T>, Option<String>) {
        let total = items.len();
        let page: Vec<T> = items.into_iter().skip(self.start).take(self.size).collect();
        // A token is the caller's text: its offset can be any usize, so the
        // end of the page is computed without overflowing.
        let end = self.start.saturating_add(self.size);
        let next = (end < total).then(|| encode_token(end));
        (page, next)
    }
}

/// A control-plane call with its input read and checked as far as that
/// needs no catalog: the JSON shape, names, retention, billing mode,
/// selectors, sources, page sizes and `NextToken`s, required members.
/// [`crate::Lake::control`] parses first, so a malformed call never reaches the
/// catalog, and the network-facing part can be tested (and fuzzed) alone.
#[derive(Debug)]
pub struct Request(Op);

#[derive(Debug)]
enum Op {
    CreateEventDataStore(CreateStoreInput),
    GetEventDataStore(StoreRef),
    ListEventDataStores(Paging),
    UpdateEventDataStore(UpdateStoreInput),
    DeleteEventDataStore(StoreRef),
    CreateChannel(CreateChannelInput),
    GetChannel(ChannelRef),
    ListChannels(Paging),
    UpdateChannel(UpdateChannelInput),
    DeleteChannel(ChannelRef),
    PutResourcePolicy { resource_arn: String, text: String },
    GetResourcePolicy { resource_arn: String },
    DeleteResourcePolicy { resource_arn: String },
    StartQuery { statement: String },
    DescribeQuery { query_id: String },
    GetQueryResults { query_id: String, paging: Paging },
    ListQueries(QueryFilter),
    CancelQuery { query_id: String },
}

/// `ListQueries` after its checks.
#[derive(Debug)]
struct QueryFilter {
    event_data_store: String,
    paging: Paging,
    status: Option<QueryStatus>,
    /// `StartTime` and `EndTime` in ms.
    from: Option<i64>,
    to: Option<i64>,
}

fn query_id(id: Option<String>) -> Result<String> {
    id.ok_or_else(|| LakeError::invalid("QueryId is required."))
}

impl Request {
    /// Reads the input of `operation` (the part of `X-Amz-Target` after
    /// the service) from `body` and checks it.
    pub fn parse(operation: &str, body: &[u8]) -> Result<Self> {
        let op = match operation {
            "CreateEventDataStore" => {
                let i: CreateStoreInput = input(body)?;
                check_name(&i.name)?;
                check_retention(i.retention_period.unwrap_or(DEFAULT_RETENTION_DAYS))?;
                check_billing(i.billing_mode.as_deref().unwrap_or(DEFAULT_BILLING))?;
                if i.kms_key_id.is_some() {
                    return Err(LakeError::invalid(
                        "KmsKeyId is not supported by auditlake's lake.",
                    ));
                }
                if let Some(sel) = &i.advanced_event_selectors {
                    check_selectors(sel)?;
                }
                Op::CreateEventDataStore(i)
            }
            "GetEventDataStore" => Op::GetEventDataStore(input(body)?),
            "ListEventDataStores" => Op::ListEventDataStores(list_paging(input(body)?)?),
            "UpdateEventDataStore" => {
                let i: UpdateStoreInput = input(body)?;
                if let Some(name) = &i.name {
                    check_name(name)?;
                }
                if let Some(days) = i.retention_period {
                    check_retention(days)?;
                }
                if let Some(mode) = &i.billing_mode {
                    check_billing(mode)?;
                }
                if let Some(sel) = &i.advanced_event_selectors {
                    check_selectors(sel)?;
                }
                if i.kms_key_id.is_some() {
                    return Err(LakeError::invalid(
                        "KmsKeyId is not supported by auditlake's lake.",
                    ));
                }
                Op::UpdateEventDataStore(i)
            }
            "DeleteEventDataStore" => Op::DeleteEventDataStore(input(body)?),
            "CreateChannel" => {
                let i: CreateChannelInput = input(body)?;
                check_name(&i.name)?;
                if i.source.is_empty() || i.source.len() > 256 {
                    return Err(LakeError::bad(
                        "InvalidSourceException",
                        "Source must be 1-256 characters.",
                    ));
                }
                Op::CreateChannel(i)
            }
            "GetChannel" => Op::GetChannel(input(body)?),
            "ListChannels" => Op::ListChannels(list_paging(input(body)?)?),
            "UpdateChannel" => {
                let i: UpdateChannelInput = input(body)?;
                if let Some(name) = &i.name {
                    check_name(name)?;
                }
                Op::UpdateChannel(i)
            }
            "DeleteChannel" => Op::DeleteChannel(input(body)?),
            "PutResourcePolicy" => {
                let i: PolicyInput = input(body)?;
                let text = i
                    .resource_policy
                    .ok_or_else(|| LakeError::invalid("ResourcePolicy is required."))?;
                if text.is_empty() || text.len() > 8192 {
                    return Err(LakeError::invalid(
                        "ResourcePolicy must be 1-8192 characters.",
                    ));
                }
                // The policy itself is checked against the channel's ARN,
                // which needs the channel.
                Op::PutResourcePolicy {
                    resource_arn: i.resource_arn,
                    text,
                }
            }
            "GetResourcePolicy" => Op::GetResourcePolicy {
                resource_arn: input::<PolicyInput>(body)?.resource_arn,
            },
            "DeleteResourcePolicy" => Op::DeleteResourcePolicy {
                resource_arn: input::<PolicyInput>(body)?.resource_arn,
            },
            "StartQuery" => {
                let i: StartQueryInput = input(body)?;
                if i.delivery_s3_uri.is_some() {
                    return Err(LakeError::invalid(
                        "DeliveryS3Uri is not supported: results stay in the lake; page them with GetQueryResults.",
                    ));
                }
                if i.query_parameters.is_some() {
                    return Err(LakeError::invalid("QueryParameters are not supported."));
                }
                // The statement is checked by `sql::prepare` when it starts.
                let statement = i
                    .query_statement
                    .ok_or_else(|| LakeError::invalid("QueryStatement is required."))?;
                Op::StartQuery { statement }
            }
            "DescribeQuery" => Op::DescribeQuery {
                query_id: query_id(input::<QueryRef>(body)?.query_id)?,
            },
            "GetQueryResults" => {
                let i: QueryResultsInput = input(body)?;
                let paging = Paging::new(
                    i.next_token.as_deref(),
                    i.max_query_results,
                    1000,
                    "MaxQueryResults",
                )?;
                Op::GetQueryResults {
                    query_id: i.query_id,
                    paging,
                }
            }
            "ListQueries" => {
                let i: ListQueriesInput = input(body)?;
                let paging =
                    Paging::new(i.next_token.as_deref(), i.max_results, 100, "MaxResults")?;
                let status = match i.query_status.as_deref() {
                    None => None,
                    Some(s) => Some(QueryStatus::parse(s).ok_or_else(|| {
                        LakeError::bad(
                            "InvalidQueryStatusException",
                            format!("QueryStatus {s:?} is not valid."),
                        )
                    })?),
                };
                let (from, to) = (
                    i.start_time.map(|t| (t * 1000.0) as i64),
                    i.end_time.map(|t| (t * 1000.0) as i64),
                );
                if let (Some(f), Some(t)) = (from, to) {
                    if f > t {
                        return Err(LakeError::bad(
                            "InvalidDateRangeException",
                            "StartTime is after EndTime.",
                        ));
                    }
                }
                Op::ListQueries(QueryFilter {
                    event_data_store: i.event_data_store,
                    paging,
                    status,
                    from,
                    to,
                })
            }
            "CancelQuery" => Op::CancelQuery {
                query_id: query_id(input::<QueryRef>(body)?.query_id)?,
            },
            other => {
                return Err(LakeError::bad(
                    "UnknownOperationException",
                    format!("The operation {other} is not supported by auditlake's lake."),
                ))
            }
        };
        Ok(Self(op))
    }
}

fn list_paging(i: ListInput) -> Result<Paging> {
    Paging::new(i.next_token.as_deref(), i.max_results, 100, "MaxResults")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoreRef {
    event_data_store: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChannelRef {
    channel: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStoreInput {
    name: String,
    advanced_event_selectors: Option<Value>,
    multi_region_enabled: Option<bool>,
    organization_enabled: Option<bool>,
    retention_period: Option<i64>,
    termination_protection_enabled: Option<bool>,
    tags_list: Option<Value>,
    kms_key_id: Option<String>,
    start_ingestion: Option<bool>,
    billing_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStoreInput {
    event_data_store: String,
    name: Option<String>,
    advanced_event_selectors: Option<Value>,
    multi_region_enabled: Option<bool>,
    organization_enabled: Option<bool>,
    retention_period: Option<i64>,
    termination_protection_enabled: Option<bool>,
    kms_key_id: Option<String>,
    billing_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateChannelInput {
    name: String,
    source: String,
    destinations: Vec<Destination>,
    tags: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateChannelInput {
    channel: String,
    destinations: Option<Vec<Destination>>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyInput {
    resource_arn: String,
    resource_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartQueryInput {
    query_statement: Option<String>,
    #[serde(rename = "DeliveryS3Uri")]
    delivery_s3_uri: Option<String>,
    query_parameters: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueryRef {
    query_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueryResultsInput {
    query_id: String,
    next_token: Option<String>,
    max_query_results: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueriesInput {
    event_data_store: String,
    next_token: Option<String>,
    max_results: Option<i64>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    query_status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn following_next_tokens_visits_every_item_once() {
        for (total, size) in [(0, 1), (1, 1), (10, 3), (250, 100), (5, 1000)] {
            let mut seen = Vec::new();
            let mut next: Option<String> = None;
            loop {
                let p = Paging::new(next.as_deref(), Some(size), 100, "MaxResults").unwrap();
                let (page, after) = p.apply((0..total).collect::<Vec<_>>());
                seen.extend(page);
                match after {
                    Some(t) => next = Some(t),
                    None => break,
                }
            }
            assert_eq!(seen, (0..total).collect::<Vec<_>>());
        }
    }

    /// Guards the paging of every list operation against a `NextToken`
    /// whose offset is near `usize::MAX`: adding the page size overflowed,
    /// a panic in debug builds and a token pointing back to the start in
    /// release builds.
    #[test]
    fn a_token_at_the_end_of_usize_is_an_empty_last_page() {
        let t = token(&format!("offset:{}", usize::MAX));
        let p = Paging::new(Some(&t), Some(1000), 100, "MaxResults").unwrap();
        assert_eq!(p.apply(vec![1, 2, 3]), (vec![], None));
    }

    #[test]
    fn malformed_input_is_refused_before_the_catalog() {
        let code = |op: &str, body: &str| Request::parse(op, body.as_bytes()).unwrap_err().code();
        assert_eq!(code("DescribeTrails", "{}"), "UnknownOperationException");
        assert_eq!(code("GetChannel", "[1]"), "SerializationException");
        assert_eq!(code("GetChannel", ""), "SerializationException");
        assert_eq!(
            code(
                "ListEventDataStores",
                &format!(r#"{{"NextToken":"{}"}}"#, token("offset:x"))
            ),
            "InvalidNextTokenException"
        );
        assert_eq!(
            code("GetQueryResults", r#"{"QueryId":"q","MaxQueryResults":0}"#),
            "InvalidMaxResultsException"
        );
        assert_eq!(
            code(
                "UpdateEventDataStore",
                r#"{"EventDataStore":"s","AdvancedEventSelectors":[{"FieldSelectors":[]}]}"#
            ),
            "InvalidEventSelectorsException"
        );
        assert_eq!(
            code(
                "ListQueries",
                r#"{"EventDataStore":"s","StartTime":2,"EndTime":1}"#
            ),
            "InvalidDateRangeException"
        );
        assert_eq!(code("CancelQuery", "{}"), "InvalidParameterException");
        Request::parse("ListChannels", b"").unwrap();
        Request::parse("CreateEventDataStore", br#"{"Name":"abc"}"#).unwrap();
    }
}
