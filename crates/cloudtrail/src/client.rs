//! The official AWS SDK clients, pointed at a lake: what the CLI, the
//! benchmarks and the tests talk to it with, exactly as any CloudTrail Lake
//! script would. Only the endpoint URL and the static key differ from AWS.
//! [`setup`] is the console's "add integration" flow as SDK calls.

use crate::AccessKey;

/// A `cloudtrail` (control plane) client for the lake at `endpoint`.
pub fn control(endpoint: &str, key: &AccessKey, region: &str) -> aws_sdk_cloudtrail::Client {
    use aws_sdk_cloudtrail::config::{BehaviorVersion, Credentials, Region};
    let creds = Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "auditlake",
    );
    let conf = aws_sdk_cloudtrail::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .build();
    aws_sdk_cloudtrail::Client::from_conf(conf)
}

/// A `cloudtrail-data` (`PutAuditEvents`) client for the lake at `endpoint`.
pub fn data(endpoint: &str, key: &AccessKey, region: &str) -> aws_sdk_cloudtraildata::Client {
    use aws_sdk_cloudtraildata::config::{BehaviorVersion, Credentials, Region};
    let creds = Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "auditlake",
    );
    let conf = aws_sdk_cloudtraildata::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .build();
    aws_sdk_cloudtraildata::Client::from_conf(conf)
}

/// What [`setup`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The channel an integration sends to.
    pub channel_arn: String,
    /// The store the channel feeds.
    pub event_data_store_arn: String,
    /// The store's ID: what follows `FROM` in a query.
    pub event_data_store_id: String,
}

/// A failed step of [`setup`]: the operation and the AWS error.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct SetupError {
    /// The control-plane operation that failed.
    pub operation: &'static str,
    /// The error code and message, or the transport failure.
    pub message: String,
}

fn setup_error<E>(
    operation: &'static str,
    err: aws_sdk_cloudtrail::error::SdkError<E>,
) -> SetupError
where
    E: aws_sdk_cloudtrail::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = match err.as_service_error() {
        Some(e) => format!(
            "{}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("")
        ),
        None => aws_sdk_cloudtrail::error::DisplayErrorContext(&err).to_string(),
    };
    SetupError { operation, message }
}

/// The console's "add integration" flow, through the control plane: an
/// event data store for integration events, a channel into it, and a
/// resource policy letting `partner_account` send with `external_id`.
pub async fn setup(
    client: &aws_sdk_cloudtrail::Client,
    name: &str,
    external_id: &str,
    partner_account: &str,
    retention_days: i32,
) -> Result<Setup, SetupError> {
    use aws_sdk_cloudtrail::types::{
        AdvancedEventSelector, AdvancedFieldSelector, Destination, DestinationType,
    };
    let built = |e: aws_sdk_cloudtrail::error::BuildError| SetupError {
        operation: "building the request",
        message: e.to_string(),
    };
    let selector = AdvancedEventSelector::builder()
        .name("Integration events")
        .field_selectors(
            AdvancedFieldSelector::builder()
                .field("eventCategory")
                .equals("ActivityAuditLog")
                .build()
                .map_err(built)?,
        )
        .build()
        .map_err(built)?;
    let store = client
        .create_event_data_store()
        .name(format!("{name}-store"))
        .advanced_event_selectors(selector)
        .retention_period(retention_days)
        .send()
        .await
        .map_err(|e| setup_error("CreateEventDataStore", e))?;
    let store_arn = store.event_data_store_arn().unwrap_or_default().to_owned();
    let channel = client
        .create_channel()
        .name(name)
        .source("auditlake")
        .destinations(
            Destination::builder()
                .r#type(DestinationType::EventDataStore)
                .location(&store_arn)
                .build()
                .map_err(built)?,
        )
        .send()
        .await
        .map_err(|e| setup_error("CreateChannel", e))?;
    let channel_arn = channel.channel_arn().unwrap_or_default().to_owned();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ChannelPolicy",
            "Effect": "Allow",
            "Principal": {"AWS": [format!("arn:aws:iam::{partner_account}:root")]},
            "Action": "cloudtrail-data:PutAuditEvents",
            "Resource": channel_arn,
            "Condition": {"StringEquals": {"cloudtrail:ExternalId": external_id}}
        }]
    });
    client
        .put_resource_policy()
        .resource_arn(&channel_arn)
        .resource_policy(policy.to_string())
        .send()
        .await
        .map_err(|e| setup_error("PutResourcePolicy", e))?;
    Ok(Setup {
        event_data_store_id: store_arn.rsplit('/').next().unwrap_or_default().to_owned(),
        event_data_store_arn: store_arn,
        channel_arn,
    })
}
