//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`,
//! off in every build but theirs): the API's request parsers, reached
//! exactly as the handlers reach them, for code whose modules are private.
//! Not an API; nothing else may use it.

use serde::de::DeserializeOwned;
use uuid::Uuid;

use auditlake_core::Scope;
use auditlake_store::{IngestItem, SearchCursor};

use crate::ctx::Origin;
use crate::error::ApiError;
use crate::extract::parse_json;
use crate::rest::audit::{ingest_items, IngestDoc, Submitter};
use crate::rest::body::{
    NoAttributes, OrgIntegrationType, OrgMembershipType, OrgType, ReplayType, Request,
    ResourceType, TokenType,
};
use crate::rest::{cloud_events, tenancy};
use crate::v1::V1Body;

/// The request documents of the API, by a short name: the body of
/// `POST /rest/self/tokens`, `/rest/orgs` (and `PATCH`), memberships,
/// cloud-event integrations, their replay, v1's search filter, and one
/// without attributes.
pub const DOCUMENTS: &[&str] = &[
    "token",
    "org",
    "membership",
    "integration",
    "replay",
    "v1",
    "none",
];

fn jsonapi<K: ResourceType, A: DeserializeOwned + Default>(bytes: &[u8]) -> Result<(), ApiError> {
    let req: Request<K, A> = parse_json(bytes)?;
    // What every handler does next with the resource object.
    req.data.expect_type()?;
    let _ = req.data.no_id();
    let _ = req.data.id_uuid();
    let _ = req.data.user_id();
    Ok(())
}

/// Reads `bytes` as the request document `name` (one of [`DOCUMENTS`]),
/// as its handler's body extractor does. `None` for an unknown name.
pub fn document(name: &str, bytes: &[u8]) -> Option<Result<(), ApiError>> {
    Some(match name {
        "token" => jsonapi::<TokenType, tenancy::TokenAttrs>(bytes),
        "org" => jsonapi::<OrgType, tenancy::OrgAttrs>(bytes),
        "membership" => jsonapi::<OrgMembershipType, tenancy::MemberAttrs>(bytes),
        "integration" => jsonapi::<OrgIntegrationType, cloud_events::Attrs>(bytes),
        "replay" => jsonapi::<ReplayType, cloud_events::ReplayAttrs>(bytes),
        "v1" => parse_json::<V1Body>(bytes).map(drop),
        "none" => jsonapi::<OrgType, NoAttributes>(bytes),
        _ => return None,
    })
}

/// Reads an ingest request body (`POST .../audit_logs/events`) into the
/// checked items the store would get, for an org, a fixed user and `now`.
pub fn ingest(bytes: &[u8], now_us: i64) -> Result<(bool, Vec<IngestItem>), ApiError> {
    let doc: IngestDoc = parse_json(bytes)?;
    let origin = Origin {
        ip: Some("192.0.2.1".into()),
        user_agent: Some("fuzz".into()),
    };
    let by = Submitter {
        user_id: Uuid::from_u128(1),
        token_id: Uuid::from_u128(3),
        origin: &origin,
        earliest_us: i64::MIN,
    };
    ingest_items(&doc.data, Scope::Org(Uuid::from_u128(2)), by, now_us)
}

/// A list cursor (`starting_after`, `ending_before`), as `page_of` reads it.
pub fn decode_cursor(text: &str) -> Option<Uuid> {
    crate::jsonapi::decode_cursor("starting_after", text).ok()
}

/// Encodes a list cursor, as list responses do.
pub fn encode_cursor(id: Uuid) -> String {
    crate::jsonapi::encode_cursor(id)
}

/// An audit-search cursor, as the search handler reads it.
pub fn decode_search_cursor(text: &str) -> Option<SearchCursor> {
    SearchCursor::decode(text)
}
