//! Channel ARNs: the API's (`ChannelArn::parse`, `CloudTrailConfig::new`,
//! which integrations are created with) and the lake's (`arn::Arn::parse`,
//! which `PutAuditEvents` and the control plane read).
//!
//! An input is `<account ID>\n<ARN>`, or just an ARN. Asserts: both parsers
//! only accept what they print back unchanged; a config the API accepts
//! yields its parsed ARN (its `expect` cannot fire) in the configured
//! account; and the two agree on channel ARNs of the `aws` partition, the
//! one the local lake serves, so an integration the API accepts is never
//! refused by the lake as a malformed ARN, and a channel the lake creates
//! can be registered.

#![no_main]

use auditlake_core::integration::{ChannelArn, CloudTrailConfig};
use auditlake_lake::fuzzing::{Arn, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (account, arn) = text.split_once('\n').unwrap_or(("123456789012", text));

    let core = ChannelArn::parse(arn).ok();
    if let Some(c) = &core {
        assert_eq!(
            format!(
                "arn:{}:cloudtrail:{}:{}:channel/{}",
                c.partition, c.region, c.account, c.id
            ),
            arn
        );
    }
    let lake = Arn::parse(arn);
    if let Some(l) = &lake {
        assert_eq!(l.to_string(), arn);
    }
    let lake_channel = lake.filter(|l| l.kind == Kind::Channel);
    if arn.starts_with("arn:aws:") {
        assert_eq!(
            core.is_some(),
            lake_channel.is_some() && arn.len() <= 256,
            "the API and the lake disagree on {arn:?}"
        );
    }

    if let Ok(config) = CloudTrailConfig::new(account, arn) {
        let parsed = config.arn();
        assert_eq!(parsed.account, config.account_id);
        assert_eq!(config.account_id, account);
        assert_eq!(config.channel_arn, arn);
    }
});
