//! Shapes of JSON:API request documents.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, Source};
use crate::jsonapi::Relationships;

/// A JSON:API resource type that a request's `data.type` names.
pub trait ResourceType: ToSchema {
    /// The name.
    const NAME: &'static str;
}

/// Declares resource types: each is documented as the one string it is.
macro_rules! resource_types {
    ($($ty:ident = $name:literal),* $(,)?) => {$(
        #[doc = concat!("`data.type` \"", $name, "\".")]
        #[derive(Debug)]
        pub enum $ty {}
        impl ResourceType for $ty {
            const NAME: &'static str = $name;
        }
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([$name]))
                    .into()
            }
        }
        impl ToSchema for $ty {}
    )*};
}

resource_types! {
    TokenType = "token",
    OrgType = "org",
    OrgMembershipType = "org_membership",
    GroupMembershipType = "group_membership",
    OrgIntegrationType = "org_integration",
    GroupRegistrationType = "group_registration",
    ReplayType = "replay",
}

/// `{"data": {...}}` of type `K`, with nothing else allowed at the top.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound = "A: DeserializeOwned + Default")]
pub struct Request<K: ResourceType, A> {
    /// The primary data.
    pub data: Data<K, A>,
}

/// A resource object in a request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound = "A: DeserializeOwned + Default")]
pub struct Data<K: ResourceType, A> {
    /// Resource type; another one answers 409. Read as any string, so that
    /// it is the handler that refuses a wrong one, as JSON:API asks.
    #[serde(rename = "type")]
    #[schema(value_type = K)]
    pub kind: String,
    #[serde(skip)]
    #[schema(ignore)]
    resource: PhantomData<K>,
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

/// No attributes expected.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoAttributes {}

impl<K: ResourceType, A> Data<K, A> {
    /// Checks `type` (JSON:API: a mismatch is a 409).
    pub fn expect_type(&self) -> Result<(), ApiError> {
        let kind = K::NAME;
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
