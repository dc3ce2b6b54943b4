//! The REST API under `/rest`: JSON:API documents, versioned per resource.

pub(crate) mod audit;
pub(crate) mod body;
pub(crate) mod cloud_events;
pub(crate) mod tenancy;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use crate::version::releases::{AUDIT_SEARCH, CLOUD_EVENTS, INGEST, TENANCY};
use crate::version::Version;
use crate::AppState;

/// Largest ingest body: 1,000 events of a few kB each.
pub const INGEST_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The handlers of a resource released as `releases`: the version check
/// runs before them, on the routes that match (an unknown path or method
/// still answers 404 or 405).
fn versioned(
    releases: &'static [Version],
    handlers: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    handlers.route_layer(axum::middleware::from_fn(move |req, next| {
        crate::ctx::with_releases(releases, req, next)
    }))
}

/// The `/rest` routes (without the `/rest` prefix), each with the releases
/// of its resource.
pub(crate) fn router() -> Router<AppState> {
    use tenancy::*;
    let tenancy = |h| versioned(TENANCY, h);
    let cloud_events = |h| versioned(CLOUD_EVENTS, h);
    let ingest = |h: MethodRouter<AppState>| {
        versioned(INGEST, h.layer(DefaultBodyLimit::max(INGEST_BODY_LIMIT)))
    };
    Router::new()
        .route("/self", tenancy(get(get_self)))
        .route("/users/self", tenancy(get(get_self)))
        .route("/self/tokens", tenancy(get(list_tokens).post(create_token)))
        .route(
            "/self/tokens/{token_id}",
            tenancy(get(get_token).delete(revoke_token)),
        )
        .route("/orgs", tenancy(get(list_orgs).post(create_org)))
        .route("/orgs/{org_id}", tenancy(get(get_org).patch(update_org)))
        .route(
            "/orgs/{org_id}/memberships",
            tenancy(get(list_members).post(add_member)),
        )
        .route(
            "/orgs/{org_id}/memberships/{membership_id}",
            tenancy(axum::routing::delete(remove_member)),
        )
        .route("/groups", tenancy(get(list_groups)))
        .route("/groups/{group_id}", tenancy(get(get_group)))
        .route(
            "/groups/{group_id}/orgs",
            tenancy(get(list_group_orgs).post(add_group_org)),
        )
        .route(
            "/groups/{group_id}/memberships",
            tenancy(get(list_members).post(add_member)),
        )
        .route(
            "/groups/{group_id}/memberships/{membership_id}",
            tenancy(axum::routing::delete(remove_member)),
        )
        .route(
            "/groups/{group_id}/cloud_events/group_registrations",
            cloud_events(get(cloud_events::list).post(cloud_events::create)),
        )
        .route(
            "/groups/{group_id}/cloud_events/group_registrations/{group_registration_id}",
            cloud_events(
                get(cloud_events::get)
                    .patch(cloud_events::update)
                    .delete(cloud_events::delete),
            ),
        )
        .route(
            "/groups/{group_id}/cloud_events/group_registrations/{group_registration_id}/replay",
            cloud_events(post(cloud_events::replay)),
        )
        .route(
            "/orgs/{org_id}/cloud_events/integrations",
            cloud_events(get(cloud_events::list).post(cloud_events::create)),
        )
        .route(
            "/orgs/{org_id}/cloud_events/integrations/{integration_id}",
            cloud_events(
                get(cloud_events::get)
                    .patch(cloud_events::update)
                    .delete(cloud_events::delete),
            ),
        )
        .route(
            "/orgs/{org_id}/cloud_events/integrations/{integration_id}/replay",
            cloud_events(post(cloud_events::replay)),
        )
        .route(
            "/orgs/{org_id}/audit_logs/search",
            versioned(AUDIT_SEARCH, get(audit::search)),
        )
        .route(
            "/groups/{group_id}/audit_logs/search",
            versioned(AUDIT_SEARCH, get(audit::search)),
        )
        .route(
            "/orgs/{org_id}/audit_logs/events",
            ingest(post(audit::ingest)),
        )
        .route(
            "/groups/{group_id}/audit_logs/events",
            ingest(post(audit::ingest)),
        )
}
