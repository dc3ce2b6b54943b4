//! CloudTrail Lake as a destination: one `aws-sdk-cloudtraildata` client
//! per region, `PutAuditEvents`, and the classification of its answers
//! into what the worker does next.
//!
//! The SDK's own retries are off: the worker's backoff is the one retry
//! policy, so that a failing destination shows on the integration at once
//! and every attempt is counted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cloudtraildata as ctd;
use ctd::config::{BehaviorVersion, Credentials, Region};
use ctd::error::{ProvideErrorMetadata, SdkError};

use crate::batch::Entry;

/// Where and as whom the forwarder sends.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Another endpoint than AWS's (the local lake, a test peer).
    pub endpoint: Option<String>,
    /// Fixed credentials; `None` uses the standard AWS chain (environment,
    /// profile, web identity, container and instance roles).
    pub credentials: Option<StaticKey>,
    /// Longest a call may take, connection included.
    pub timeout: Duration,
}

impl Target {
    /// `endpoint`, signed with a fixed key (the local lake, a test peer),
    /// with a 10-second call timeout.
    pub fn with_key(
        endpoint: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            credentials: Some(StaticKey {
                access_key_id: access_key_id.into(),
                secret_access_key: secret_access_key.into(),
            }),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A static access key.
#[derive(Clone)]
pub struct StaticKey {
    /// Access key ID.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

/// What one `PutAuditEvents` call came to.
#[derive(Debug)]
pub enum Sent {
    /// The call was answered: these entry IDs failed, the rest succeeded.
    Answered {
        /// `(id, errorCode, errorMessage)` of each failed entry.
        failed: Vec<(String, String, String)>,
    },
    /// The call failed as a whole.
    Refused {
        /// Worth retrying soon (throttling, 5xx, network, timeout) rather
        /// than a refusal that needs a change on the destination's side.
        transient: bool,
        /// What happened, for the integration's `last_error`.
        error: String,
    },
}

/// The clients, one per region, built on first use.
pub struct Destination {
    target: Target,
    base: aws_config::SdkConfig,
    clients: Mutex<HashMap<String, ctd::Client>>,
}

impl Destination {
    /// Resolves the shared configuration (the credential chain is resolved
    /// lazily, at the first call).
    pub async fn new(target: Target) -> Self {
        // The region is set per client from the channel ARN; naming one
        // here keeps the loader from probing for a default.
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .load()
            .await;
        Self {
            target,
            base,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, region: &str) -> ctd::Client {
        let mut clients = self.clients.lock().expect("client cache");
        if let Some(c) = clients.get(region) {
            return c.clone();
        }
        let mut conf = ctd::config::Builder::from(&self.base)
            .region(Region::new(region.to_owned()))
            .retry_config(ctd::config::retry::RetryConfig::disabled())
            .timeout_config(
                ctd::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(self.target.timeout)
                    .connect_timeout(self.target.timeout.min(Duration::from_secs(5)))
                    .build(),
            );
        if let Some(url) = &self.target.endpoint {
            conf = conf.endpoint_url(url);
        }
        if let Some(k) = &self.target.credentials {
            conf = conf.credentials_provider(Credentials::new(
                &k.access_key_id,
                &k.secret_access_key,
                None,
                None,
                "auditlake",
            ));
        }
        let client = ctd::Client::from_conf(conf.build());
        clients.insert(region.to_owned(), client.clone());
        client
    }

    /// Sends `entries` to `channel_arn` (in `region`) with `external_id`.
    pub async fn put(
        &self,
        region: &str,
        channel_arn: &str,
        external_id: &str,
        entries: &[Entry],
    ) -> Sent {
        let events = entries
            .iter()
            .map(|e| {
                ctd::types::AuditEvent::builder()
                    .id(&e.id)
                    .event_data(&e.event_data)
                    .event_data_checksum(&e.checksum)
                    .build()
                    .expect("id and eventData are set")
            })
            .collect::<Vec<_>>();
        let res = self
            .client(region)
            .put_audit_events()
            .channel_arn(channel_arn)
            .external_id(external_id)
            .set_audit_events(Some(events))
            .send()
            .await;
        match res {
            Ok(out) => Sent::Answered {
                failed: out
                    .failed()
                    .iter()
                    .map(|f| {
                        (
                            f.id().to_owned(),
                            f.error_code().to_owned(),
                            f.error_message().to_owned(),
                        )
                    })
                    .collect(),
            },
            Err(e) => classify(e),
        }
    }
}

/// Sorts a failed call into transient or not. A service error is transient
/// when it is throttling, a timeout, or a 5xx; any other 4xx (permission,
/// missing channel, bad ARN, validation) needs the destination fixed.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: SdkError<E, ctd::config::http::HttpResponse>,
) -> Sent {
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or("Unknown").to_owned();
            let message = ctx.err().message().unwrap_or_default().to_owned();
            let throttled = [
                "Throttl",
                "TooManyRequests",
                "RequestLimitExceeded",
                "Timeout",
            ]
            .iter()
            .any(|t| code.contains(t));
            Sent::Refused {
                transient: throttled || status >= 500 || status == 429 || status == 408,
                error: format!("{code} (HTTP {status}): {message}"),
            }
        }
        SdkError::ConstructionFailure(_) => Sent::Refused {
            transient: false,
            error: format!("the request could not be built: {}", chain(&err)),
        },
        // Timeouts, connection failures, truncated or unreadable answers.
        _ => Sent::Refused {
            transient: true,
            error: chain(&err),
        },
    }
}

/// An error with its sources, on one line (the SDK's top-level messages
/// alone say little, such as "dispatch failure").
fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}
