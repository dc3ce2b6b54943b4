//! The path parameters of the APIs, for the OpenAPI document. Handlers read
//! them with `PathParams`, which answers a malformed one with a 400 naming
//! it; these types only describe them.
#![allow(dead_code)]

use utoipa::IntoParams;
use uuid::Uuid;

/// `{org_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct OrgId {
    /// The org's ID: its External ID in CloudTrail Lake.
    org_id: Uuid,
}

/// `{group_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct GroupId {
    /// The group's ID: its External ID in CloudTrail Lake.
    group_id: Uuid,
}

/// `{token_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TokenId {
    /// One of the caller's tokens.
    token_id: Uuid,
}

/// `{membership_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MembershipId {
    /// A membership of the tenant.
    membership_id: Uuid,
}

/// `{group_registration_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct GroupRegistrationId {
    /// One of the group's registrations.
    group_registration_id: Uuid,
}

/// `{integration_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IntegrationId {
    /// One of the org's integrations.
    integration_id: Uuid,
}

/// API v1's `{orgId}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub(crate) struct V1OrgId {
    /// The org's ID.
    org_id: Uuid,
}

/// API v1's `{groupId}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub(crate) struct V1GroupId {
    /// The group's ID.
    group_id: Uuid,
}
