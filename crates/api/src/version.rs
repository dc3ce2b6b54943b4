//! API versioning in the Snyk style.
//!
//! Every `/rest` request names a `version`: a date `YYYY-MM-DD`, optionally
//! with a stability suffix `~beta`, `~experimental` (alias `~wip`). The
//! server serves the newest release of the resource dated on or before that
//! day whose stability is the requested one or a more stable one. No such
//! release: 404. Missing or malformed: 400. The response headers say what
//! was requested, what was served and its lifecycle stage.

use std::fmt;

use time::Date;

use crate::error::ApiError;

/// How stable a release is; `Ga` is the most stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// May change or vanish without notice.
    Experimental,
    /// Feature-complete, may still change.
    Beta,
    /// Generally available.
    Ga,
}

impl Stability {
    /// The lifecycle stage as the response header shows it.
    pub fn stage(self) -> &'static str {
        match self {
            Stability::Experimental => "experimental",
            Stability::Beta => "beta",
            Stability::Ga => "ga",
        }
    }
}

/// A version: a date and a stability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Release date (UTC).
    pub date: Date,
    /// Stability.
    pub stability: Stability,
}

impl Version {
    /// Parses `YYYY-MM-DD[~beta|~experimental|~wip]`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::invalid_param(
                "version",
                format!(
                    "version {s:?} is not valid: use YYYY-MM-DD, optionally followed by ~beta or ~experimental"
                ),
            )
        };
        let (date, suffix) = match s.split_once('~') {
            Some((d, sfx)) => (d, Some(sfx)),
            None => (s, None),
        };
        let stability = match suffix {
            None => Stability::Ga,
            Some("beta") => Stability::Beta,
            Some("experimental") | Some("wip") => Stability::Experimental,
            Some(_) => return Err(bad()),
        };
        if date.len() != 10 {
            return Err(bad());
        }
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let date = Date::parse(date, &fmt).map_err(|_| bad())?;
        Ok(Self { date, stability })
    }

    /// Release built from constant parts (for the route tables).
    pub const fn release(year: i32, month: time::Month, day: u8, stability: Stability) -> Self {
        match Date::from_calendar_date(year, month, day) {
            Ok(date) => Self { date, stability },
            Err(_) => panic!("invalid release date"),
        }
    }

    /// The newest of `releases` that a request for `self` may be served.
    pub fn resolve(self, releases: &[Version]) -> Option<Version> {
        releases
            .iter()
            .copied()
            .filter(|r| r.date <= self.date && r.stability >= self.stability)
            .max_by_key(|r| (r.date, r.stability))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.date;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )?;
        match self.stability {
            Stability::Ga => Ok(()),
            Stability::Beta => f.write_str("~beta"),
            Stability::Experimental => f.write_str("~experimental"),
        }
    }
}

/// What a `version` parameter looks like, for the OpenAPI document.
pub const PATTERN: &str =
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(~(beta|experimental|wip))?$";

/// Release tables of the resources. Resources that mirror Snyk's carry
/// Snyk's own dates so existing client code runs unchanged.
pub mod releases {
    use super::{Stability::*, Version};
    use time::Month::*;

    /// Tenancy resources (self, tokens, orgs, groups, memberships).
    pub const TENANCY: &[Version] = &[Version::release(2023, May, 29, Ga)];
    /// Audit log search: GA at Snyk on 2023-09-11.
    pub const AUDIT_SEARCH: &[Version] = &[Version::release(2023, September, 11, Ga)];
    /// Cloud event integrations: Snyk's `group_registrations` are
    /// experimental since 2023-01-25; the org integrations ride along.
    pub const CLOUD_EVENTS: &[Version] = &[Version::release(2023, January, 25, Experimental)];
    /// auditlake's own ingest API.
    pub const INGEST: &[Version] = &[Version::release(2024, October, 15, Ga)];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["2023-09-11", "2023-01-25~experimental", "2024-02-29~beta"] {
            assert_eq!(Version::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            Version::parse("2023-01-25~wip").unwrap().stability,
            Stability::Experimental
        );
        for bad in [
            "",
            "2023-9-11",
            "2023-02-30",
            "2023-09-11~alpha",
            "latest",
            "2023-09-11~",
            "2023-09-11T00:00:00Z",
        ] {
            let e = Version::parse(bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn resolves_newest_release_at_or_above_requested_stability() {
        let rel = [
            Version::parse("2023-01-25~experimental").unwrap(),
            Version::parse("2023-06-01~beta").unwrap(),
            Version::parse("2023-09-11").unwrap(),
        ];
        let r = |s: &str| {
            Version::parse(s)
                .unwrap()
                .resolve(&rel)
                .map(|v| v.to_string())
        };
        assert_eq!(r("2023-01-24~experimental"), None);
        assert_eq!(
            r("2023-01-25~experimental").as_deref(),
            Some("2023-01-25~experimental")
        );
        assert_eq!(
            r("2023-07-01~experimental").as_deref(),
            Some("2023-06-01~beta")
        );
        assert_eq!(r("2023-07-01"), None);
        assert_eq!(r("2024-01-01").as_deref(), Some("2023-09-11"));
        assert_eq!(r("2024-01-01~experimental").as_deref(), Some("2023-09-11"));
    }
}
