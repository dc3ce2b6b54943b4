//! ARNs of the lake's resources:
//! `arn:<partition>:cloudtrail:<region>:<account>:<kind>/<id>`.

use std::fmt;

/// Which resource an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `eventdatastore/<id>`
    EventDataStore,
    /// `channel/<id>`
    Channel,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::EventDataStore => "eventdatastore",
            Kind::Channel => "channel",
        }
    }
}

/// A parsed CloudTrail ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: String,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// 12-digit account.
    pub account: String,
    /// Resource kind.
    pub kind: Kind,
    /// Resource ID.
    pub id: String,
}

impl Arn {
    /// A new ARN in the `aws` partition.
    pub fn new(region: &str, account: &str, kind: Kind, id: &str) -> Self {
        Self {
            partition: "aws".into(),
            region: region.into(),
            account: account.into(),
            kind,
            id: id.into(),
        }
    }

    /// Parses `text`; `None` when it is not a CloudTrail ARN of a known kind.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("cloudtrail"),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        let (kind, id) = resource.split_once('/')?;
        let kind = match kind {
            "eventdatastore" => Kind::EventDataStore,
            "channel" => Kind::Channel,
            _ => return None,
        };
        let ok = |s: &str, f: fn(u8) -> bool| !s.is_empty() && s.bytes().all(f);
        if !ok(partition, |b| b.is_ascii_lowercase() || b == b'-')
            || !ok(region, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
            })
            || account.len() != 12
            || !ok(account, |b| b.is_ascii_digit())
            || !ok(id, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        Some(Self {
            partition: partition.into(),
            region: region.into(),
            account: account.into(),
            kind,
            id: id.into(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:cloudtrail:{}:{}:{}/{}",
            self.partition,
            self.region,
            self.account,
            self.kind.as_str(),
            self.id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_shapes() {
        let text = "arn:aws:cloudtrail:eu-west-1:123456789012:channel/01234567-89ab-cdef-0123-456789abcdef";
        let arn = Arn::parse(text).unwrap();
        assert_eq!(arn.kind, Kind::Channel);
        assert_eq!(arn.account, "123456789012");
        assert_eq!(arn.to_string(), text);
        for bad in [
            "arn:aws:s3:eu-west-1:123456789012:channel/x",
            "arn:aws:cloudtrail:eu-west-1:1234:channel/x",
            "arn:aws:cloudtrail:eu-west-1:123456789012:trail/x",
            "arn:aws:cloudtrail:eu-west-1:123456789012:channel/",
            "channel/x",
        ] {
            assert_eq!(Arn::parse(bad), None, "{bad}");
        }
    }
}
