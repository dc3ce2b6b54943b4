//! Test harness: a real lake on a loopback port, and the official AWS SDK
//! clients pointed at it.

#![allow(dead_code)]

use std::time::Duration;

use auditlake_lake::{AccessKey, Lake};
use auditlake_testkit::wait_until;
use aws_sdk_cloudtrail as ct;
use aws_sdk_cloudtraildata as ctd;

pub use auditlake_lake::testing::{key, OWNER, PARTNER, REGION};

pub struct TestLake {
    pub lake: Lake,
    pub url: String,
    pub dir: tempfile::TempDir,
    local: auditlake_lake::testing::LocalLake,
}

impl TestLake {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, auditlake_lake::QueryLimits::default()).await
    }

    pub async fn start_with(dir: tempfile::TempDir, limits: auditlake_lake::QueryLimits) -> Self {
        let local = auditlake_lake::testing::LocalLake::start_with(dir.path(), limits).await;
        Self {
            lake: local.lake.clone(),
            url: local.url.clone(),
            dir,
            local,
        }
    }

    /// Stops serving without flushing or closing anything, as a crash
    /// would leave it; returns the directory for a restart.
    pub fn crash(self) -> tempfile::TempDir {
        self.local.crash();
        self.dir
    }

    pub fn control(&self, account: &str) -> ct::Client {
        control_client(&self.url, &key(account))
    }

    pub fn data(&self, account: &str) -> ctd::Client {
        data_client(&self.url, &key(account))
    }
}

pub fn control_client(url: &str, key: &AccessKey) -> ct::Client {
    auditlake_cloudtrail::client::control(url, key, REGION)
}

pub fn data_client(url: &str, key: &AccessKey) -> ctd::Client {
    auditlake_cloudtrail::client::data(url, key, REGION)
}

/// The advanced event selector of an integration store.
pub fn activity_selector() -> ct::types::AdvancedEventSelector {
    ct::types::AdvancedEventSelector::builder()
        .name("Integration events")
        .field_selectors(
            ct::types::AdvancedFieldSelector::builder()
                .field("eventCategory")
                .equals("ActivityAuditLog")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

pub struct Setup {
    pub store_id: String,
    pub store_arn: String,
    pub channel_arn: String,
}

/// A store, a channel into it, and optionally a partner policy.
pub async fn setup(client: &ct::Client, name: &str, external_id: Option<&str>) -> Setup {
    let store = client
        .create_event_data_store()
        .name(format!("{name}-store"))
        .advanced_event_selectors(activity_selector())
        .retention_period(30)
        .termination_protection_enabled(false)
        .send()
        .await
        .unwrap();
    let store_arn = store.event_data_store_arn().unwrap().to_owned();
    let store_id = store_arn.rsplit('/').next().unwrap().to_owned();
    let channel = client
        .create_channel()
        .name(format!("{name}-channel"))
        .source("auditlake")
        .destinations(
            ct::types::Destination::builder()
                .r#type(ct::types::DestinationType::EventDataStore)
                .location(&store_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let channel_arn = channel.channel_arn().unwrap().to_owned();
    if let Some(ext) = external_id {
        client
            .put_resource_policy()
            .resource_arn(&channel_arn)
            .resource_policy(partner_policy(&channel_arn, ext))
            .send()
            .await
            .unwrap();
    }
    Setup {
        store_id,
        store_arn,
        channel_arn,
    }
}

pub fn partner_policy(channel_arn: &str, external_id: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ChannelPolicy",
            "Effect": "Allow",
            "Principal": {"AWS": [format!("arn:aws:iam::{PARTNER}:root")]},
            "Action": "cloudtrail-data:PutAuditEvents",
            "Resource": channel_arn,
            "Condition": {"StringEquals": {"cloudtrail:ExternalId": external_id}}
        }]
    })
    .to_string()
}

/// `yyyy-MM-ddTHH:mm:ssZ` of a Unix time.
pub fn iso(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f).unwrap()
}

/// `eventTime` text of now plus `offset_secs`.
pub fn now_text(offset_secs: i64) -> String {
    iso(time::OffsetDateTime::now_utc().unix_timestamp() + offset_secs)
}

/// An `eventData` document as the forwarder sends it.
pub fn event_data(uid: &str, name: &str, time: &str, principal: &str) -> String {
    serde_json::json!({
        "version": "1.0",
        "userIdentity": {"type": "User", "principalId": principal, "details": {"email": format!("{principal}@example.com")}},
        "userAgent": "auditlake-test",
        "eventSource": "auditlake.local",
        "eventName": name,
        "eventTime": time,
        "UID": uid,
        "recipientAccountId": OWNER,
        "sourceIPAddress": "192.0.2.1",
        "additionalEventData": {"uid": uid, "name": name}
    })
    .to_string()
}

pub fn entry(id: &str, data: String) -> ctd::types::AuditEvent {
    use base64::Engine as _;
    use sha2::Digest as _;
    let checksum =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(data.as_bytes()));
    ctd::types::AuditEvent::builder()
        .id(id)
        .event_data(data)
        .event_data_checksum(checksum)
        .build()
        .unwrap()
}

/// Runs a query to its end and returns its rows as (column, value) lists.
pub async fn run_query(client: &ct::Client, sql: &str) -> Vec<Vec<(String, String)>> {
    let id = client
        .start_query()
        .query_statement(sql)
        .send()
        .await
        .unwrap()
        .query_id()
        .unwrap()
        .to_owned();
    wait_finished(client, &id).await;
    let mut rows = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .get_query_results()
            .query_id(&id)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        for row in page.query_result_rows() {
            rows.push(
                row.iter()
                    .flat_map(|col| col.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .collect(),
            );
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return rows;
        }
    }
}

/// How long a query may take to end: queries run in worker processes,
/// which a loaded machine slows down.
pub const QUERY_WITHIN: Duration = Duration::from_secs(120);

/// Polls `DescribeQuery` until the query is no longer queued or running;
/// its status and error message.
pub async fn wait_ended(client: &ct::Client, id: &str) -> (ct::types::QueryStatus, Option<String>) {
    use ct::types::QueryStatus;
    wait_until(&format!("query {id} ends"), QUERY_WITHIN, || async {
        let d = client.describe_query().query_id(id).send().await.unwrap();
        match d.query_status() {
            Some(QueryStatus::Queued | QueryStatus::Running) => None,
            other => Some((
                other.cloned().expect("a status"),
                d.error_message().map(str::to_owned),
            )),
        }
    })
    .await
}

/// Puts `n` events into the channel, in calls of 100.
pub async fn put_events(data: &ctd::Client, channel_arn: &str, n: usize) {
    let time = now_text(0);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let entries = chunk
            .iter()
            .map(|i| {
                entry(
                    &format!("e-{i}"),
                    event_data(&format!("uid-{i}"), "org.test", &time, "u"),
                )
            })
            .collect();
        let put = data
            .put_audit_events()
            .channel_arn(channel_arn)
            .set_audit_events(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(put.failed().is_empty(), "{put:?}");
    }
}

/// Polls `DescribeQuery` until the query ends, as a client does; panics
/// unless it finished.
pub async fn wait_finished(client: &ct::Client, id: &str) {
    let (status, message) = wait_ended(client, id).await;
    assert_eq!(
        status,
        ct::types::QueryStatus::Finished,
        "query {id} ended {status:?}: {message:?}"
    );
}
