//! The operations themselves: each checked request runs against the catalog
//! and answers with the service model's output members.

use serde_json::{json, Value};

use super::{
    default_selectors, takes_activity_events, CreateChannelInput, CreateStoreInput, Op, Paging,
    QueryFilter, Request, StoreRef, UpdateChannelInput, UpdateStoreInput, DEFAULT_BILLING,
    DEFAULT_RETENTION_DAYS, MAX_CHANNELS, MAX_STORES,
};
use crate::error::{LakeError, Result};
use crate::query::{query_not_found, ResultSet};
use crate::storage::catalog::{
    now_ms, Channel, Destination, EventDataStore, IngestionStatus, QueryStatus,
};
use crate::wire::arn::{Arn, Kind};
use crate::wire::sigv4::Caller;
use crate::Lake;
use auditlake_cloudtrail::policy::Policy;

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
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
        match Request::parse(operation, body)?.0 {
            Op::CreateEventDataStore(i) => self.create_store(caller, i).await,
            Op::GetEventDataStore(i) => Ok(store_json(
                &self.find_store(caller, &i.event_data_store).await?,
            )),
            Op::ListEventDataStores(paging) => {
                let stores = self.catalog().stores(caller.account()).await?;
                let (page, next) = paging.apply(stores);
                let mut out =
                    json!({"EventDataStores": page.iter().map(store_json).collect::<Vec<_>>()});
                insert_next(&mut out, next);
                Ok(out)
            }
            Op::UpdateEventDataStore(i) => self.update_store(caller, i).await,
            Op::DeleteEventDataStore(i) => self.delete_store(caller, i).await,
            Op::CreateChannel(i) => self.create_channel(caller, i).await,
            Op::GetChannel(i) => {
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
            Op::ListChannels(paging) => {
                let channels = self.catalog().channels(caller.account()).await?;
                let (page, next) = paging.apply(channels);
                let list: Vec<Value> = page
                    .iter()
                    .map(|c| json!({"ChannelArn": channel_arn(c), "Name": c.name}))
                    .collect();
                let mut out = json!({ "Channels": list });
                insert_next(&mut out, next);
                Ok(out)
            }
            Op::UpdateChannel(i) => self.update_channel(caller, i).await,
            Op::DeleteChannel(i) => {
                let c = self.find_channel(caller, &i.channel).await?;
                self.catalog().delete_channel(&c.id).await?;
                Ok(json!({}))
            }
            Op::PutResourcePolicy { resource_arn, text } => {
                let mut c = self.policy_channel(caller, &resource_arn).await?;
                Policy::parse(&text, &channel_arn(&c))?;
                c.policy = Some(text.clone());
                self.catalog().update_channel(&c).await?;
                Ok(json!({"ResourceArn": channel_arn(&c), "ResourcePolicy": text}))
            }
            Op::GetResourcePolicy { resource_arn } => {
                let c = self.policy_channel(caller, &resource_arn).await?;
                let policy = c.policy.clone().ok_or_else(|| policy_not_found(&c))?;
                Ok(json!({"ResourceArn": channel_arn(&c), "ResourcePolicy": policy}))
            }
            Op::DeleteResourcePolicy { resource_arn } => {
                let mut c = self.policy_channel(caller, &resource_arn).await?;
                if c.policy.take().is_none() {
                    return Err(policy_not_found(&c));
                }
                self.catalog().update_channel(&c).await?;
                Ok(json!({}))
            }
            Op::StartQuery { statement } => {
                let id = self.queries().start(caller.account(), &statement).await?;
                Ok(json!({"QueryId": id}))
            }
            Op::DescribeQuery { query_id: id } => {
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
            Op::GetQueryResults { query_id, paging } => {
                self.query_results(caller, &query_id, paging).await
            }
            Op::ListQueries(i) => self.list_queries(caller, i).await,
            Op::CancelQuery { query_id: id } => {
                let status = self.queries().cancel(caller.account(), &id).await?;
                Ok(json!({"QueryId": id, "QueryStatus": status.as_str()}))
            }
        }
    }

    async fn create_store(&self, caller: &Caller, i: CreateStoreInput) -> Result<Value> {
        // Checked by `Request::parse`.
        let retention = i.retention_period.unwrap_or(DEFAULT_RETENTION_DAYS);
        let billing = i.billing_mode.unwrap_or_else(|| DEFAULT_BILLING.into());
        let selectors = i.advanced_event_selectors.unwrap_or_else(default_selectors);
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
        // Each given member was checked by `Request::parse`.
        if let Some(name) = i.name {
            s.name = name;
        }
        if let Some(days) = i.retention_period {
            s.retention_days = days;
        }
        if let Some(mode) = i.billing_mode {
            s.billing_mode = mode;
        }
        if let Some(sel) = i.advanced_event_selectors {
            s.selectors = sel;
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

    async fn query_results(
        &self,
        caller: &Caller,
        query_id: &str,
        paging: Paging,
    ) -> Result<Value> {
        let q = self
            .catalog()
            .query(caller.account(), query_id)
            .await?
            .ok_or_else(|| query_not_found(query_id))?;
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
        let (rows, next) = paging.apply(results.rows);
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

    async fn list_queries(&self, caller: &Caller, i: QueryFilter) -> Result<Value> {
        let store = self.find_store(caller, &i.event_data_store).await?;
        let (status, from, to) = (i.status, i.from, i.to);
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
        let (page, next) = i.paging.apply(list);
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
