//! The stored record of an integration event: validation of the `eventData`
//! a source sends, the fields the lake adds on ingest, and the Arrow schema
//! the records are kept in.
//!
//! Column and field names are lower case in storage. The SQL front end
//! folds unquoted identifiers to lower case, which is what makes
//! `eventTime` and `eventdata.useridentity.principalId` both work, as in
//! CloudTrail Lake.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, StringDictionaryBuilder, StructArray,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Int32Type, Schema, SchemaRef, TimeUnit,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Most bytes of `additionalEventData`, as CloudTrail Lake allows.
pub const MAX_ADDITIONAL_EVENT_DATA: usize = 28_000;
/// The `eventVersion` the lake stamps on integration events.
pub const EVENT_VERSION: &str = "0.02";
/// The category of every event a channel ingests.
pub const EVENT_CATEGORY: &str = "ActivityAuditLog";

/// `eventData` as a source sends it. Unknown members are refused: a typo in
/// a field name would otherwise silently lose that field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EventDataIn<'a> {
    version: String,
    user_identity: UserIdentityIn<'a>,
    #[serde(default)]
    user_agent: Option<String>,
    event_source: String,
    event_name: String,
    event_time: String,
    #[serde(rename = "UID")]
    uid: String,
    #[serde(default, borrow)]
    request_parameters: Option<&'a RawValue>,
    #[serde(default, borrow)]
    response_elements: Option<&'a RawValue>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default, rename = "sourceIPAddress")]
    source_ip_address: Option<String>,
    recipient_account_id: String,
    #[serde(default, borrow)]
    additional_event_data: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserIdentityIn<'a> {
    #[serde(rename = "type")]
    kind: String,
    principal_id: String,
    #[serde(default, borrow)]
    details: Option<&'a RawValue>,
}

/// One stored event, flat, as it goes to Parquet. JSON-valued members keep
/// the exact text the source sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Lake-assigned `eventID`.
    pub event_id: String,
    /// `eventTime`, milliseconds since the epoch, whole seconds.
    pub event_time_ms: i64,
    /// Region of the channel.
    pub aws_region: String,
    /// Account owning the channel.
    pub recipient_account_id: String,
    /// When the lake accepted the event, ms since the epoch.
    pub ingestion_time_ms: i64,
    /// The channel that took it in.
    pub channel_arn: String,
    /// `eventData.version`.
    pub version: String,
    /// `eventData.userIdentity.type`.
    pub identity_type: String,
    /// `eventData.userIdentity.principalId`.
    pub principal_id: String,
    /// `eventData.userIdentity.details`, JSON text.
    pub identity_details: Option<String>,
    /// `eventData.userAgent`.
    pub user_agent: Option<String>,
    /// `eventData.eventSource`.
    pub event_source: String,
    /// `eventData.eventName`.
    pub event_name: String,
    /// `eventData.eventTime`, as sent.
    pub data_event_time: String,
    /// `eventData.UID`.
    pub uid: String,
    /// `eventData.requestParameters`, JSON text.
    pub request_parameters: Option<String>,
    /// `eventData.responseElements`, JSON text.
    pub response_elements: Option<String>,
    /// `eventData.errorCode`.
    pub error_code: Option<String>,
    /// `eventData.errorMessage`.
    pub error_message: Option<String>,
    /// `eventData.sourceIPAddress`.
    pub source_ip_address: Option<String>,
    /// `eventData.recipientAccountId`.
    pub data_recipient_account_id: String,
    /// `eventData.additionalEventData`, JSON text.
    pub additional_event_data: Option<String>,
}

/// Why one entry was refused, as `errorCode` / `errorMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// Machine-readable code.
    pub code: &'static str,
    /// What to fix.
    pub message: String,
}

impl EntryError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What the lake adds to an event on ingest.
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    /// Account owning the channel.
    pub account: &'a str,
    /// Region of the channel.
    pub region: &'a str,
    /// ARN of the channel.
    pub channel_arn: &'a str,
    /// Ingestion time, ms since the epoch.
    pub now_ms: i64,
}

/// Parses `eventTime`: `yyyy-MM-ddTHH:mm:ss`, UTC, optionally with a
/// fraction and a trailing `Z`. Returns ms since the epoch, whole seconds.
pub fn parse_event_time(text: &str) -> Option<i64> {
    let trimmed = text.strip_suffix('Z').unwrap_or(text);
    let (main, fraction) = match trimmed.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (trimmed, None),
    };
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    // `[year]` also takes a signed year ("-0381-05-01T..."), which is no
    // `yyyy`: four digits first.
    if !main.bytes().take(4).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let dt = time::PrimitiveDateTime::parse(main, format).ok()?;
    Some(dt.assume_utc().unix_timestamp() * 1000)
}

/// Validates one entry's `eventData` and builds its record.
pub fn build(event_data: &str, event_id: String, stamp: &Stamp<'_>) -> Result<Record, EntryError> {
    let data: EventDataIn<'_> = serde_json::from_str(event_data).map_err(|e| {
        EntryError::new(
            "InvalidEventData",
            format!("eventData is not a valid CloudTrail Lake event: {e}"),
        )
    })?;
    for (name, value) in [
        ("version", &data.version),
        ("userIdentity.type", &data.user_identity.kind),
        ("userIdentity.principalId", &data.user_identity.principal_id),
        ("eventSource", &data.event_source),
        ("eventName", &data.event_name),
        ("UID", &data.uid),
    ] {
        if value.trim().is_empty() {
            return Err(EntryError::new(
                "InvalidEventData",
                format!("eventData.{name} must not be empty"),
            ));
        }
    }
    let event_time_ms = parse_event_time(&data.event_time).ok_or_else(|| {
        EntryError::new(
            "InvalidEventData",
            format!(
                "eventData.eventTime {:?} is not yyyy-MM-ddTHH:mm:ss (UTC)",
                data.event_time
            ),
        )
    })?;
    if data.recipient_account_id != stamp.account {
        return Err(EntryError::new(
            "InvalidRecipientAccountId",
            format!(
                "eventData.recipientAccountId {:?} is not the account that owns the channel",
                data.recipient_account_id
            ),
        ));
    }
    let json_object = |name: &str, raw: Option<&RawValue>| -> Result<Option<String>, EntryError> {
        match raw {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) if raw.get().starts_with('{') => Ok(Some(raw.get().to_owned())),
            Some(_) => Err(EntryError::new(
                "InvalidEventData",
                format!("eventData.{name} must be a JSON object"),
            )),
        }
    };
    let additional_event_data = json_object("additionalEventData", data.additional_event_data)?;
    if additional_event_data
        .as_ref()
        .is_some_and(|t| t.len() > MAX_ADDITIONAL_EVENT_DATA)
    {
        return Err(EntryError::new(
            "InvalidEventData",
            format!(
                "eventData.additionalEventData is larger than {MAX_ADDITIONAL_EVENT_DATA} bytes"
            ),
        ));
    }
    Ok(Record {
        event_id,
        event_time_ms,
        aws_region: stamp.region.to_owned(),
        recipient_account_id: stamp.account.to_owned(),
        ingestion_time_ms: stamp.now_ms,
        channel_arn: stamp.channel_arn.to_owned(),
        version: data.version,
        identity_type: data.user_identity.kind,
        principal_id: data.user_identity.principal_id,
        identity_details: data.user_identity.details.map(|d| d.get().to_owned()),
        user_agent: data.user_agent,
        event_source: data.event_source,
        event_name: data.event_name,
        data_event_time: data.event_time,
        uid: data.uid,
        request_parameters: json_object("requestParameters", data.request_parameters)?,
        response_elements: json_object("responseElements", data.response_elements)?,
        error_code: data.error_code,
        error_message: data.error_message,
        source_ip_address: data.source_ip_address,
        data_recipient_account_id: data.recipient_account_id,
        additional_event_data,
    })
}

impl Record {
    /// The UTC day (`YYYY-MM-DD`) the event belongs to, its partition.
    pub fn day(&self) -> String {
        day_of(self.event_time_ms)
    }
}

/// The UTC day of a time in ms since the epoch.
pub fn day_of(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Strings kept as dictionary codes: for low-cardinality columns.
fn dictionary_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn timestamp(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, None),
        false,
    )
}

fn identity_fields() -> Fields {
    Fields::from(vec![
        utf8("type", false),
        utf8("principalid", false),
        utf8("details", true),
    ])
}

fn event_data_fields() -> Fields {
    Fields::from(vec![
        utf8("version", false),
        Field::new("useridentity", DataType::Struct(identity_fields()), false),
        utf8("useragent", true),
        utf8("eventsource", false),
        // Dictionary-typed so that readers keep the Parquet dictionary's
        // codes, which grouping by event name works on (`dict_group`).
        Field::new("eventname", dictionary_utf8(), false),
        utf8("eventtime", false),
        utf8("uid", false),
        utf8("requestparameters", true),
        utf8("responseelements", true),
        utf8("errorcode", true),
        utf8("errormessage", true),
        utf8("sourceipaddress", true),
        utf8("recipientaccountid", false),
        utf8("additionaleventdata", true),
    ])
}

fn metadata_fields() -> Fields {
    Fields::from(vec![timestamp("ingestiontime"), utf8("channelarn", false)])
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("eventversion", false),
        utf8("eventcategory", false),
        utf8("eventtype", false),
        utf8("eventid", false),
        timestamp("eventtime"),
        utf8("awsregion", false),
        utf8("recipientaccountid", false),
        Field::new("metadata", DataType::Struct(metadata_fields()), false),
        Field::new("eventdata", DataType::Struct(event_data_fields()), false),
    ]))
});

/// The Arrow schema of stored events.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Builds one Arrow batch from records.
pub fn to_batch(records: &[Record]) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let n = records.len();
    let strings = |f: &dyn Fn(&Record) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let constant = |value: &str| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * value.len());
        for _ in 0..n {
            b.append_value(value);
        }
        Arc::new(b.finish())
    };
    let times = |f: &dyn Fn(&Record) -> i64| -> ArrayRef {
        let mut b = TimestampMillisecondBuilder::with_capacity(n);
        for r in records {
            b.append_value(f(r));
        }
        Arc::new(b.finish())
    };
    let identity = StructArray::try_new(
        identity_fields(),
        vec![
            strings(&|r| Some(&r.identity_type)),
            strings(&|r| Some(&r.principal_id)),
            strings(&|r| r.identity_details.as_deref()),
        ],
        None,
    )?;
    let event_data = StructArray::try_new(
        event_data_fields(),
        vec![
            strings(&|r| Some(&r.version)),
            Arc::new(identity),
            strings(&|r| r.user_agent.as_deref()),
            strings(&|r| Some(&r.event_source)),
            {
                let mut b = StringDictionaryBuilder::<Int32Type>::new();
                for r in records {
                    b.append_value(&r.event_name);
                }
                Arc::new(b.finish()) as ArrayRef
            },
            strings(&|r| Some(&r.data_event_time)),
            strings(&|r| Some(&r.uid)),
            strings(&|r| r.request_parameters.as_deref()),
            strings(&|r| r.response_elements.as_deref()),
            strings(&|r| r.error_code.as_deref()),
            strings(&|r| r.error_message.as_deref()),
            strings(&|r| r.source_ip_address.as_deref()),
            strings(&|r| Some(&r.data_recipient_account_id)),
            strings(&|r| r.additional_event_data.as_deref()),
        ],
        None,
    )?;
    let metadata = StructArray::try_new(
        metadata_fields(),
        vec![
            times(&|r| r.ingestion_time_ms),
            strings(&|r| Some(&r.channel_arn)),
        ],
        None,
    )?;
    RecordBatch::try_new(
        schema(),
        vec![
            constant(EVENT_VERSION),
            constant(EVENT_CATEGORY),
            constant("ActivityLog"),
            strings(&|r| Some(&r.event_id)),
            times(&|r| r.event_time_ms),
            strings(&|r| Some(&r.aws_region)),
            strings(&|r| Some(&r.recipient_account_id)),
            Arc::new(metadata),
            Arc::new(event_data),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::STAMP;

    fn event(extra: &str) -> String {
        format!(
            r#"{{"version":"1.0","userIdentity":{{"type":"User","principalId":"u-1"}},
            "eventSource":"auditlake","eventName":"org.create","eventTime":"2024-03-01T10:20:30Z",
            "UID":"e-1","recipientAccountId":"123456789012"{extra}}}"#
        )
    }

    #[test]
    fn a_complete_event_becomes_a_record_with_its_json_kept_verbatim() {
        let r = build(
            &event(r#","additionalEventData":{"b": 2, "a":1}"#),
            "id".into(),
            &STAMP,
        )
        .unwrap();
        assert_eq!(
            r.additional_event_data.as_deref(),
            Some(r#"{"b": 2, "a":1}"#)
        );
        assert_eq!(r.day(), "2024-03-01");
        assert_eq!(r.event_time_ms, 1_709_288_430_000);
        assert_eq!(to_batch(&[r.clone(), r]).unwrap().num_rows(), 2);
    }

    #[test]
    fn missing_fields_unknown_fields_and_wrong_accounts_are_refused() {
        let no_name = event("").replace(r#""eventName":"org.create","#, "");
        let err = build(&no_name, "id".into(), &STAMP).unwrap_err();
        assert!(err.message.contains("eventName"), "{err:?}");

        let err = build(&event(r#","colour":"red""#), "id".into(), &STAMP).unwrap_err();
        assert!(err.message.contains("colour"), "{err:?}");

        let other = event("").replace("123456789012", "999999999999");
        let err = build(&other, "id".into(), &STAMP).unwrap_err();
        assert_eq!(err.code, "InvalidRecipientAccountId");

        let err = build("not json", "id".into(), &STAMP).unwrap_err();
        assert_eq!(err.code, "InvalidEventData");

        let err = build(&event(r#","additionalEventData":[1]"#), "id".into(), &STAMP).unwrap_err();
        assert!(err.message.contains("JSON object"));
    }

    #[test]
    fn event_time_takes_the_documented_forms_only() {
        assert_eq!(
            parse_event_time("2024-03-01T10:20:30"),
            Some(1_709_288_430_000)
        );
        assert_eq!(
            parse_event_time("2024-03-01T10:20:30.123Z"),
            Some(1_709_288_430_000)
        );
        assert_eq!(parse_event_time("2024-03-01 10:20:30"), None);
        assert_eq!(parse_event_time("2024-03-01T10:20:30+02:00"), None);
        assert_eq!(parse_event_time("yesterday"), None);
        // A signed year is not `yyyy`.
        assert_eq!(parse_event_time("-0381-05-01T10:20:30"), None);
        assert_eq!(parse_event_time("+2024-05-01T10:20:30Z"), None);
        assert_eq!(parse_event_time("-381-05-01T10:20:30"), None);
    }

    #[test]
    fn oversized_additional_event_data_is_refused() {
        let big = format!(r#","additionalEventData":{{"x":"{}"}}"#, "a".repeat(28_000));
        let err = build(&event(&big), "id".into(), &STAMP).unwrap_err();
        assert!(err.message.contains("28000"), "{err:?}");
    }
}
