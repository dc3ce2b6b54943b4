//! Timestamps: stored as microseconds since the Unix epoch (UTC), shown as
//! RFC 3339 with a `Z` suffix. One place so that every API renders the same.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Microseconds since the Unix epoch for `t`.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// The instant `us` microseconds after the Unix epoch.
pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    to_micros(OffsetDateTime::now_utc())
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2024-01-02T03:04:05.678Z`.
pub fn format_micros(us: i64) -> String {
    let t = from_micros(us);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// UTC with second precision, e.g. `2024-01-02T03:04:05Z`: CloudTrail
/// Lake's `eventTime`.
pub fn format_seconds(us: i64) -> String {
    let t = from_micros(us);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an RFC 3339 timestamp (any offset) into epoch microseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(to_micros)
}

/// Parses `YYYY-MM-DD` as the start of that UTC day, in epoch microseconds.
pub fn parse_date(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .ok()
        .map(|d| to_micros(d.midnight().assume_utc()))
}

/// Start of the UTC day containing `us`.
pub fn start_of_day(us: i64) -> i64 {
    to_micros(from_micros(us).date().midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339_with_offset() {
        let us = parse_rfc3339("2024-03-01T10:00:00.250+02:00").unwrap();
        assert_eq!(format_micros(us), "2024-03-01T08:00:00.250Z");
    }

    #[test]
    fn date_is_midnight_utc() {
        let us = parse_date("2024-03-01").unwrap();
        assert_eq!(format_micros(us), "2024-03-01T00:00:00.000Z");
        assert_eq!(start_of_day(us + 3_600_000_000), us);
        assert!(parse_date("2024-13-01").is_none());
    }
}
