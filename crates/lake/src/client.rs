//! The official AWS SDK clients, pointed at a lake: what the CLI, the
//! benchmarks and the tests talk to it with, exactly as any CloudTrail Lake
//! script would. Only the endpoint URL and the static key differ from AWS.

use crate::keys::AccessKey;

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
