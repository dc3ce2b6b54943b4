//! The control plane: `cloudtrail` operations over JSON 1.1, dispatched on
//! `X-Amz-Target`. Each operation validates its input as the service model
//! constrains it and answers with the model's output members.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::arn::{Arn, Kind};
use crate::catalog::{now_ms, Channel, Destination, EventDataStore, IngestionStatus, QueryStatus};
use crate::error::{LakeError, Result};
use crate::policy::Policy;
use crate::query::{query_not_found, ResultSet};
use crate::sigv4::Caller;
use crate::Lake;

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
/// Days a deleted store waits before its data goes.
pub const DELETION_WAIT_DAYS: i64 = 7;

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

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

fn store_arn(s: &EventDataStore) -> String {
    Arn::new(&s.region, &s.account, Kind::EventDataStore, &s.id).to_string()
}

fn channel_arn(c: &Channel) -> String {
    Arn::new(&c.region, &c.account, Kind::Channel, &c.id).to_string()
}

fn store_json(s: &EventDataStore) -> Value {
    json!({
        "EventDataStoreArn": store_arn(s),
        "Name": s.name,
        "Status": s.status,
        "AdvancedEventSelectors": s.selectors,
        "MultiRegionEnabled": s.multi_region,
        "OrganizationEnabled": s.organization,
        "RetentionPeriod": s.retention_days,
        "TerminationProtectionEnabled": s.termination_protection,
        "BillingMode": s.billing_mode,
        "CreatedTimestamp": secs(s.created_ms),
        "UpdatedTimestamp": secs(s.updated_ms),
    })
}

fn ingestion_json(i: &IngestionStatus) -> Value {
    let mut v = serde_json::Map::new();
    if let Some(ms) = i.success_ms {
        v.insert("LatestIngestionSuccessTime".into(), json!(secs(ms)));
    }
    if let Some(e) = &i.success_event {
        v.insert("LatestIngestionSuccessEventID".into(), json!(e));
    }
    if let Some(ms) = i.attempt_ms {
        v.insert("LatestIngestionAttemptTime".into(), json!(secs(ms)));
    }
    if let Some(e) = &i.attempt_event {
        v.insert("LatestIngestionAttemptEventID".into(), json!(e));
    }
    if let Some(c) = &i.error_code {
        v.insert("LatestIngestionErrorCode".into(), json!(c));
    }
    Value::Object(v)
}

/// Opaque list position: base64 of the offset.
fn encode_token(offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_token(token: Option<&str>) -> Result<usize> {
    use base64::Engine as _;
    let Some(token) = token else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| LakeError::bad("InvalidNextTokenException", "NextToken is not valid."))
}

fn page_size(max: Option<i64>, default: usize) -> Result<usize> {
    match max {
        None => Ok(default),
        Some(n) if (1..=1000).contains(&n) => Ok(n as usize),
        Some(n) => Err(LakeError::bad(
            "InvalidMaxResultsException",
            format!("MaxResults {n} must be between 1 and 1000."),
        )),
    }
}

/// One page of `items` and the token of the next.
fn page<T>(items: Vec<T>, token: Option<&str>, size: usize) -> Result<(Vec<T>, Option<String>)> {
    let start = decode_token(token)?;
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = (start + size < total).then(|| encode_token(start + size));
    Ok((page, next))
}

fn insert_next(out: &mut Value, next: Option<String>) {
    if let (Some(next), Value::Object(map)) = (next, out) {
        map.insert("NextToken".into(), json!(next));
    }
}

impl Lake {
    /// Finds an event data store of the caller by ARN or ID.
    pub(crate) async fn find_store(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> Result<EventDataStore> {
        let id = id_of(caller, reference, Kind::EventDataStore)?;
        self.catalog()
            .store(caller.account(), id)
            .await?
            .ok_or_else(|| not_found(Kind::EventDataStore, reference))
    }

    async fn find_channel(&self, caller: &Caller, reference: &str) -> Result<Channel> {
        let id = id_of(caller, reference, Kind::Channel)?;
        self.catalog()
            .channel(caller.account(), id)
            .await?
            .ok_or_else(|| not_found(Kind::Channel, reference))
    }

    async fn destinations(
        &self,
        caller: &Caller,
        given: Vec<Destination>,
    ) -> Result<Vec<Destination>> {
        if given.is_empty() || given.len() > 200 {
            return Err(LakeError::invalid(
                "Destinations must hold 1 to 200 entries.",
            ));
        }
        let mut out = Vec::with_capacity(given.len());
        for d in given {
            if d.kind != "EVENT_DATA_STORE" {
                return Err(LakeError::invalid(format!(
                    "Destination type {} is not supported: channels feed EVENT_DATA_STORE destinations.",
                    d.kind
                )));
            }
            let store = self.find_store(caller, &d.location).await?;
            if store.status == "PENDING_DELETION" {
                return Err(LakeError::bad(
                    "InactiveEventDataStoreException",
                    format!("The event data store {} is pending deletion.", store.id),
                ));
            }
            if !takes_activity_events(&store.selectors) {
                return Err(LakeError::bad(
                    "InvalidEventDataStoreCategoryException",
                    format!(
                        "The event data store {} does not select eventCategory ActivityAuditLog.",
                        store.id
                    ),
                ));
            }
            out.push(Destination {
                kind: d.kind,
                location: store_arn(&store),
            });
        }
        Ok(out)
    }

    /// Runs one control-plane operation.
    pub async fn control(&self, caller: &Caller, operation: &str, body: &[u8]) -> Result<Value> {
        match operation {
            "CreateEventDataStore" => self.create_store(caller, input(body)?).await,
            "GetEventDataStore" => {
                let i: StoreRef = input(body)?;
                Ok(store_json(
                    &self.find_store(caller, &i.event_data_store).await?,
                ))
            }
            "ListEventDataStores" => {
                let i: ListInput = input(body)?;
                let size = page_size(i.max_results, 100)?;
                let stores = self.catalog().stores(caller.account()).await?;
                let (page, next) = page(stores, i.next_token.as_deref(), size)?;
                let mut out =
                    json!({"EventDataStores": page.iter().map(store_json).collect::<Vec<_>>()});
                insert_next(&mut out, next);
                Ok(out)
            }
            "UpdateEventDataStore" => self.update_store(caller, input(body)?).await,
            "DeleteEventDataStore" => self.delete_store(caller, input(body)?).await,
            "CreateChannel" => self.create_channel(caller, input(body)?).await,
            "GetChannel" => {
                let i: ChannelRef = input(body)?;
                let c = self.find_channel(caller, &i.channel).await?;
                Ok(json!({
                    "ChannelArn": channel_arn(&c),
                    "Name": c.name,
                    "Source": c.source,
                    "SourceConfig": {"ApplyToAllRegions": false, "AdvancedEventSelectors": []},
                    "Destinations": c.destinations,
                    "IngestionStatus": ingestion_json(&c.ingestion),
                }))
            }
            "ListChannels" => {
                let i: ListInput = input(body)?;
                let size = page_size(i.max_results, 100)?;
                let channels = self.catalog().channels(caller.account()).await?;
                let (page, next) = page(channels, i.next_token.as_deref(), size)?;
                let list: Vec<Value> = page
                    .iter()
                    .map(|c| json!({"ChannelArn": channel_arn(c), "Name": c.name}))
                    .collect();
                let mut out = json!({ "Channels": list });
                insert_next(&mut out, next);
                Ok(out)
            }
            "UpdateChannel" => self.update_channel(caller, input(body)?).await,
            "DeleteChannel" => {
                let i: ChannelRef = input(body)?;
                let c = self.find_channel(caller, &i.channel).await?;
                self.catalog().delete_channel(&c.id).await?;
                Ok(json!({}))
            }
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
                let mut c = self.policy_channel(caller, &i.resource_arn).await?;
                Policy::parse(&text, &channel_arn(&c))?;
                c.policy = Some(text.clone());
                self.catalog().update_channel(&c).await?;
                Ok(json!({"ResourceArn": channel_arn(&c), "ResourcePolicy": text}))
            }
            "GetResourcePolicy" => {
                let i: PolicyInput = input(body)?;
                let c = self.policy_channel(caller, &i.resource_arn).await?;
                let policy = c.policy.clone().ok_or_else(|| policy_not_found(&c))?;
                Ok(json!({"ResourceArn": channel_arn(&c), "ResourcePolicy": policy}))
            }
            "DeleteResourcePolicy" => {
                let i: PolicyInput = input(body)?;
                let mut c = self.policy_channel(caller, &i.resource_arn).await?;
                if c.policy.take().is_none() {
                    return Err(policy_not_found(&c));
                }
                self.catalog().update_channel(&c).await?;
                Ok(json!({}))
            }
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
                let statement = i
                    .query_statement
                    .ok_or_else(|| LakeError::invalid("QueryStatement is required."))?;
                let id = self.queries().start(caller.account(), &statement).await?;
                Ok(json!({"QueryId": id}))
            }
            "DescribeQuery" => {
                let i: QueryRef = input(body)?;
                let id = i
                    .query_id
                    .ok_or_else(|| LakeError::invalid("QueryId is required."))?;
                let q = self
                    .catalog()
                    .query(caller.account(), &id)
                    .await?
                    .ok_or_else(|| query_not_found(&id))?;
                let mut out = json!({
                    "QueryId": q.id,
                    "QueryString": q.statement,
                    "QueryStatus": q.status.as_str(),
                    "QueryStatistics": {
                        "EventsMatched": q.result_count,
                        "EventsScanned": q.events_scanned,
                        "BytesScanned": q.bytes_scanned,
                        "ExecutionTimeInMillis": q.exec_ms,
                        "CreationTime": secs(q.created_ms),
                    },
                });
                if let Some(e) = q.error {
                    out["ErrorMessage"] = json!(e);
                }
                Ok(out)
            }
            "GetQueryResults" => self.query_results(caller, input(body)?).await,
            "ListQueries" => self.list_queries(caller, input(body)?).await,
            "CancelQuery" => {
                let i: QueryRef = input(body)?;
                let id = i
                    .query_id
                    .ok_or_else(|| LakeError::invalid("QueryId is required."))?;
                let status = self.queries().cancel(caller.account(), &id).await?;
                Ok(json!({"QueryId": id, "QueryStatus": status.as_str()}))
            }
            other => Err(LakeError::bad(
                "UnknownOperationException",
                format!("The operation {other} is not supported by auditlake's lake."),
            )),
        }
    }

    async fn create_store(&self, caller: &Caller, i: CreateStoreInput) -> Result<Value> {
        check_name(&i.name)?;
        let retention = i.retention_period.unwrap_or(366);
        check_retention(retention)?;
        let billing = i
            .billing_mode
            .unwrap_or_else(|| "EXTENDABLE_RETENTION_PRICING".into());
        check_billing(&billing)?;
        if i.kms_key_id.is_some() {
            return Err(LakeError::invalid(
                "KmsKeyId is not supported by auditlake's lake.",
            ));
        }
        let selectors = i.advanced_event_selectors.unwrap_or_else(default_selectors);
        check_selectors(&selectors)?;
        if self.catalog().stores(caller.account()).await?.len() >= MAX_STORES {
            return Err(LakeError::bad(
                "EventDataStoreMaxLimitExceededException",
                format!("An account may have at most {MAX_STORES} event data stores."),
            ));
        }
        let now = now_ms();
        let store = EventDataStore {
            id: uuid::Uuid::new_v4().to_string(),
            account: caller.account().to_owned(),
            region: caller.region.clone(),
            name: i.name,
            status: if i.start_ingestion == Some(false) {
                "STOPPED_INGESTION"
            } else {
                "ENABLED"
            }
            .into(),
            retention_days: retention,
            termination_protection: i.termination_protection_enabled.unwrap_or(true),
            multi_region: i.multi_region_enabled.unwrap_or(true),
            organization: i.organization_enabled.unwrap_or(false),
            billing_mode: billing,
            selectors,
            tags: i.tags_list.unwrap_or_else(|| json!([])),
            created_ms: now,
            updated_ms: now,
        };
        self.catalog().insert_store(&store).await?;
        let mut out = store_json(&store);
        out["TagsList"] = store.tags.clone();
        Ok(out)
    }

    async fn update_store(&self, caller: &Caller, i: UpdateStoreInput) -> Result<Value> {
        let mut s = self.find_store(caller, &i.event_data_store).await?;
        if s.status == "PENDING_DELETION" {
            return Err(LakeError::bad(
                "InactiveEventDataStoreException",
                format!("The event data store {} is pending deletion.", s.id),
            ));
        }
        if let Some(name) = i.name {
            check_name(&name)?;
            s.name = name;
        }
        if let Some(days) = i.retention_period {
            check_retention(days)?;
            s.retention_days = days;
        }
        if let Some(mode) = i.billing_mode {
            check_billing(&mode)?;
            s.billing_mode = mode;
        }
        if let Some(sel) = i.advanced_event_selectors {
            check_selectors(&sel)?;
            s.selectors = sel;
        }
        if i.kms_key_id.is_some() {
            return Err(LakeError::invalid(
                "KmsKeyId is not supported by auditlake's lake.",
            ));
        }
        s.termination_protection = i
            .termination_protection_enabled
            .unwrap_or(s.termination_protection);
        s.multi_region = i.multi_region_enabled.unwrap_or(s.multi_region);
        s.organization = i.organization_enabled.unwrap_or(s.organization);
        s.updated_ms = now_ms();
        self.catalog().update_store(&s).await?;
        Ok(store_json(&s))
    }

    async fn delete_store(&self, caller: &Caller, i: StoreRef) -> Result<Value> {
        let mut s = self.find_store(caller, &i.event_data_store).await?;
        if s.status == "PENDING_DELETION" {
            return Err(LakeError::bad(
                "InactiveEventDataStoreException",
                format!("The event data store {} is already pending deletion.", s.id),
            ));
        }
        if s.termination_protection {
            return Err(LakeError::bad(
                "EventDataStoreTerminationProtectedException",
                format!(
                    "The event data store {} has termination protection enabled.",
                    s.id
                ),
            ));
        }
        let arn = store_arn(&s);
        for c in self.catalog().channels(caller.account()).await? {
            if c.destinations.iter().any(|d| d.location == arn) {
                return Err(LakeError::bad(
                    "ChannelExistsForEDSException",
                    format!(
                        "The channel {} delivers to this event data store; delete it first.",
                        c.name
                    ),
                ));
            }
        }
        s.status = "PENDING_DELETION".into();
        s.updated_ms = now_ms();
        self.catalog().update_store(&s).await?;
        Ok(json!({}))
    }

    async fn create_channel(&self, caller: &Caller, i: CreateChannelInput) -> Result<Value> {
        check_name(&i.name)?;
        if i.source.is_empty() || i.source.len() > 256 {
            return Err(LakeError::bad(
                "InvalidSourceException",
                "Source must be 1-256 characters.",
            ));
        }
        let destinations = self.destinations(caller, i.destinations).await?;
        if self.catalog().channels(caller.account()).await?.len() >= MAX_CHANNELS {
            return Err(LakeError::bad(
                "ChannelMaxLimitExceededException",
                format!("An account may have at most {MAX_CHANNELS} channels."),
            ));
        }
        let tags = i.tags.unwrap_or_else(|| json!([]));
        let c = Channel {
            id: uuid::Uuid::new_v4().to_string(),
            account: caller.account().to_owned(),
            region: caller.region.clone(),
            name: i.name,
            source: i.source,
            destinations,
            tags: tags.clone(),
            policy: None,
            created_ms: now_ms(),
            ingestion: IngestionStatus::default(),
        };
        self.catalog().insert_channel(&c).await?;
        Ok(json!({
            "ChannelArn": channel_arn(&c),
            "Name": c.name,
            "Source": c.source,
            "Destinations": c.destinations,
            "Tags": tags,
        }))
    }

    async fn update_channel(&self, caller: &Caller, i: UpdateChannelInput) -> Result<Value> {
        let mut c = self.find_channel(caller, &i.channel).await?;
        if let Some(name) = i.name {
            check_name(&name)?;
            c.name = name;
        }
        if let Some(d) = i.destinations {
            c.destinations = self.destinations(caller, d).await?;
        }
        self.catalog().update_channel(&c).await?;
        Ok(json!({
            "ChannelArn": channel_arn(&c),
            "Name": c.name,
            "Source": c.source,
            "Destinations": c.destinations,
        }))
    }

    async fn policy_channel(&self, caller: &Caller, resource: &str) -> Result<Channel> {
        let arn = Arn::parse(resource).ok_or_else(|| {
            LakeError::bad(
                "ResourceARNNotValidException",
                format!("{resource} is not a valid resource ARN."),
            )
        })?;
        if arn.kind != Kind::Channel {
            return Err(LakeError::bad(
                "ResourceTypeNotSupportedException",
                "Resource policies are supported on channels only.",
            ));
        }
        if arn.account != caller.account() {
            return Err(resource_not_found(resource));
        }
        self.catalog()
            .channel(caller.account(), &arn.id)
            .await?
            .ok_or_else(|| resource_not_found(resource))
    }

    async fn query_results(&self, caller: &Caller, i: QueryResultsInput) -> Result<Value> {
        let q = self
            .catalog()
            .query(caller.account(), &i.query_id)
            .await?
            .ok_or_else(|| query_not_found(&i.query_id))?;
        let size = match i.max_query_results {
            None => 1000,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(LakeError::bad(
                    "InvalidMaxResultsException",
                    format!("MaxQueryResults {n} must be between 1 and 1000."),
                ))
            }
        };
        let mut out = json!({
            "QueryStatus": q.status.as_str(),
            "QueryStatistics": {"ResultsCount": 0, "TotalResultsCount": q.result_count, "BytesScanned": q.bytes_scanned},
            "QueryResultRows": [],
        });
        if let Some(e) = &q.error {
            out["ErrorMessage"] = json!(e);
        }
        if q.status != QueryStatus::Finished {
            return Ok(out);
        }
        let results: ResultSet = match self.catalog().query_results(&q.id).await? {
            Some(text) => serde_json::from_str(&text)?,
            None => ResultSet::default(),
        };
        let (rows, next) = page(results.rows, i.next_token.as_deref(), size)?;
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|row| {
                Value::Array(
                    results
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| json!({ c.clone(): v }))
                        .collect(),
                )
            })
            .collect();
        out["QueryStatistics"]["ResultsCount"] = json!(rows.len());
        out["QueryResultRows"] = Value::Array(rows);
        insert_next(&mut out, next);
        Ok(out)
    }

    async fn list_queries(&self, caller: &Caller, i: ListQueriesInput) -> Result<Value> {
        let store = self.find_store(caller, &i.event_data_store).await?;
        let size = page_size(i.max_results, 100)?;
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
        let list: Vec<_> = self
            .catalog()
            .queries(caller.account())
            .await?
            .into_iter()
            .filter(|q| q.stores.contains(&store.id))
            .filter(|q| status.is_none_or(|s| q.status == s))
            .filter(|q| {
                from.is_none_or(|f| q.created_ms >= f) && to.is_none_or(|t| q.created_ms <= t)
            })
            .collect();
        let (page, next) = page(list, i.next_token.as_deref(), size)?;
        let queries: Vec<Value> = page
            .iter()
            .map(|q| json!({"QueryId": q.id, "QueryStatus": q.status.as_str(), "CreationTime": secs(q.created_ms)}))
            .collect();
        let mut out = json!({ "Queries": queries });
        insert_next(&mut out, next);
        Ok(out)
    }
}

/// The ID a reference names: an ARN of `kind` in the caller's account, or
/// a bare ID. Another account's ARN is "not found", never "forbidden".
fn id_of<'a>(caller: &Caller, reference: &'a str, kind: Kind) -> Result<&'a str> {
    if !reference.starts_with("arn:") {
        return Ok(reference);
    }
    let (code, what) = match kind {
        Kind::EventDataStore => ("EventDataStoreARNInvalidException", "an event data store"),
        Kind::Channel => ("ChannelARNInvalidException", "a channel"),
    };
    let arn = Arn::parse(reference)
        .filter(|a| a.kind == kind)
        .ok_or_else(|| LakeError::bad(code, format!("{reference} is not {what} ARN.")))?;
    if arn.account != caller.account() {
        return Err(not_found(kind, reference));
    }
    // The ID is the ARN's last part.
    Ok(&reference[reference.len() - arn.id.len()..])
}

fn not_found(kind: Kind, reference: &str) -> LakeError {
    match kind {
        Kind::EventDataStore => LakeError::bad(
            "EventDataStoreNotFoundException",
            format!("The event data store {reference} does not exist."),
        ),
        Kind::Channel => LakeError::bad(
            "ChannelNotFoundException",
            format!("The channel {reference} does not exist."),
        ),
    }
}

fn resource_not_found(reference: &str) -> LakeError {
    LakeError::bad(
        "ResourceNotFoundException",
        format!("The resource {reference} does not exist."),
    )
}

fn policy_not_found(c: &Channel) -> LakeError {
    LakeError::bad(
        "ResourcePolicyNotFoundException",
        format!("The channel {} has no resource policy.", channel_arn(c)),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoreRef {
    event_data_store: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChannelRef {
    channel: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Deserialize)]
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

#[derive(Deserialize)]
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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateChannelInput {
    name: String,
    source: String,
    destinations: Vec<Destination>,
    tags: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateChannelInput {
    channel: String,
    destinations: Option<Vec<Destination>>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyInput {
    resource_arn: String,
    resource_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartQueryInput {
    query_statement: Option<String>,
    #[serde(rename = "DeliveryS3Uri")]
    delivery_s3_uri: Option<String>,
    query_parameters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueryRef {
    query_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueryResultsInput {
    query_id: String,
    next_token: Option<String>,
    max_query_results: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueriesInput {
    event_data_store: String,
    next_token: Option<String>,
    max_results: Option<i64>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    query_status: Option<String>,
}
