//! The REST API under `/rest`: JSON:API documents, versioned per resource.

pub(crate) mod audit;
pub(crate) mod body;
pub(crate) mod cloud_events;
pub(crate) mod tenancy;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// Largest ingest body: 1,000 events of a few kB each.
pub const INGEST_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The `/rest` routes (without the `/rest` prefix).
pub(crate) fn router() -> Router<AppState> {
    use tenancy::*;
    Router::new()
        .route("/self", get(get_self))
        .route("/users/self", get(get_self))
        .route("/self/tokens", get(list_tokens).post(create_token))
        .route(
            "/self/tokens/{token_id}",
            get(get_token).delete(revoke_token),
        )
        .route("/orgs", get(list_orgs).post(create_org))
        .route("/orgs/{org_id}", get(get_org).patch(update_org))
        .route(
            "/orgs/{org_id}/memberships",
            get(list_members).post(add_member),
        )
        .route(
            "/orgs/{org_id}/memberships/{membership_id}",
            axum::routing::delete(remove_member),
        )
        .route("/groups", get(list_groups))
        .route("/groups/{group_id}", get(get_group))
        .route(
            "/groups/{group_id}/orgs",
            get(list_group_orgs).post(add_group_org),
        )
        .route(
            "/groups/{group_id}/memberships",
            get(list_members).post(add_member),
        )
        .route(
            "/groups/{group_id}/memberships/{membership_id}",
            axum::routing::delete(remove_member),
        )
        .route(
            "/groups/{group_id}/cloud_events/group_registrations",
            get(cloud_events::list).post(cloud_events::create),
        )
        .route(
            "/groups/{group_id}/cloud_events/group_registrations/{group_registration_id}",
            get(cloud_events::get)
                .patch(cloud_events::update)
                .delete(cloud_events::delete),
        )
        .route(
            "/groups/{group_id}/cloud_events/group_registrations/{group_registration_id}/replay",
            post(cloud_events::replay),
        )
        .route(
            "/orgs/{org_id}/cloud_events/integrations",
            get(cloud_events::list).post(cloud_events::create),
        )
        .route(
            "/orgs/{org_id}/cloud_events/integrations/{integration_id}",
            get(cloud_events::get)
                .patch(cloud_events::update)
                .delete(cloud_events::delete),
        )
        .route(
            "/orgs/{org_id}/cloud_events/integrations/{integration_id}/replay",
            post(cloud_events::replay),
        )
        .route("/orgs/{org_id}/audit_logs/search", get(audit::search))
        .route("/groups/{group_id}/audit_logs/search", get(audit::search))
        .route(
            "/orgs/{org_id}/audit_logs/events",
            post(audit::ingest).layer(DefaultBodyLimit::max(INGEST_BODY_LIMIT)),
        )
        .route(
            "/groups/{group_id}/audit_logs/events",
            post(audit::ingest).layer(DefaultBodyLimit::max(INGEST_BODY_LIMIT)),
        )
}
