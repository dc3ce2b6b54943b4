//! Shapes of JSON:API request documents.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{ApiError, Source};

/// `{"data": {...}}` with nothing else allowed at the top.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(bound = "A: DeserializeOwned + Default")]
pub struct Request<A> {
    /// The primary data.
    pub data: Data<A>,
}

/// A resource object in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(bound = "A: DeserializeOwned + Default")]
pub struct Data<A> {
    /// Resource type; must match the endpoint's.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource ID, where the endpoint takes one.
    #[serde(default)]
    pub id: Option<String>,
    /// Attributes.
    #[serde(default)]
    pub attributes: A,
    /// Relationships.
    #[serde(default)]
    pub relationships: Option<Relationships>,
}

/// Relationships the API understands.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relationships {
    /// A user.
    pub user: Option<Linkage>,
}

/// `{"data": {"type", "id"}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Linkage {
    /// The identified resource.
    pub data: Identifier,
}

/// `{"type", "id"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// ID.
    pub id: String,
}

/// No attributes expected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoAttributes {}

impl<A> Data<A> {
    /// Checks `type` (JSON:API: a mismatch is a 409).
    pub fn expect_type(&self, kind: &str) -> Result<(), ApiError> {
        if self.kind == kind {
            Ok(())
        } else {
            let mut e =
                ApiError::conflict(format!("data.type must be {kind:?}, not {:?}", self.kind));
            e.source = Some(Source::Pointer("/data/type".into()));
            Err(e)
        }
    }

    /// The `id` member as a UUID, required.
    pub fn id_uuid(&self) -> Result<Uuid, ApiError> {
        let raw = self
            .id
            .as_deref()
            .ok_or_else(|| ApiError::invalid_body("/data/id", "data.id is required"))?;
        Uuid::parse_str(raw).map_err(|_| {
            ApiError::invalid_body("/data/id", format!("data.id must be a UUID, got {raw:?}"))
        })
    }

    /// Refuses a client-chosen `id` where the server assigns it.
    pub fn no_id(&self) -> Result<(), ApiError> {
        match &self.id {
            None => Ok(()),
            Some(_) => Err(
                ApiError::forbidden("the server assigns IDs; remove data.id")
                    .at(Source::Pointer("/data/id".into())),
            ),
        }
    }

    /// `relationships.user.data.id` as a UUID, required.
    pub fn user_id(&self) -> Result<Uuid, ApiError> {
        let link = self
            .relationships
            .as_ref()
            .and_then(|r| r.user.as_ref())
            .ok_or_else(|| {
                ApiError::invalid_body("/data/relationships/user", "relationships.user is required")
            })?;
        if link.data.kind != "user" {
            return Err(ApiError::invalid_body(
                "/data/relationships/user/data/type",
                "relationships.user.data.type must be \"user\"",
            ));
        }
        Uuid::parse_str(&link.data.id).map_err(|_| {
            ApiError::invalid_body(
                "/data/relationships/user/data/id",
                "the user id must be a UUID",
            )
        })
    }
}
