//! The REST API under `/rest`: JSON:API documents, versioned per resource.

/// Declares `$name`, the handler of one documented route, as `$inner`
/// (routes of several tenants share handlers, and a documented route names
/// one path).
macro_rules! route {
    ($(#[$attr:meta])* $name:ident => $inner:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$attr])*
        pub(crate) async fn $name($($arg: $ty),*) -> $ret {
            $inner($($arg),*).await
        }
    };
}

pub(crate) mod audit;
pub(crate) mod body;
pub(crate) mod cloud_events;
pub(crate) mod params;
pub(crate) mod tenancy;

use axum::extract::DefaultBodyLimit;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::version::releases::{AUDIT_SEARCH, CLOUD_EVENTS, INGEST, TENANCY};
use crate::version::{Version, PATTERN};
use crate::AppState;

/// Largest ingest body: 1,000 events of a few kB each.
pub const INGEST_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The handlers of a resource released as `releases`: the version check
/// runs before them, on the routes that match (an unknown path or method
/// still answers 404 or 405), and their operations take the `version`
/// parameter.
fn versioned(
    releases: &'static [Version],
    (schemas, mut paths, handlers): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    let list: Vec<String> = releases
        .iter()
        .map(|r| format!("{r} ({})", r.stability.stage()))
        .collect();
    let parameter = ParameterBuilder::new()
        .name("version")
        .parameter_in(ParameterIn::Query)
        .required(Required::True)
        .description(Some(format!(
            "The API version requested. Releases of this resource: {}; a date before the \
             first release answers 404.",
            list.join(", ")
        )))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(PATTERN))
                .examples([releases[0].to_string()]),
        ))
        .build();
    for item in paths.paths.values_mut() {
        for op in crate::openapi::operations(item) {
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(parameter.clone().into());
        }
    }
    let handlers = handlers.route_layer(axum::middleware::from_fn(move |req, next| {
        crate::ctx::with_releases(releases, req, next)
    }));
    (schemas, paths, handlers)
}

/// The `/rest` routes (without the `/rest` prefix), each with the releases
/// of its resource.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    use cloud_events::*;
    use tenancy::*;
    let tenancy = |h| versioned(TENANCY, h);
    let cloud_events = |h| versioned(CLOUD_EVENTS, h);
    let search = |h| versioned(AUDIT_SEARCH, h);
    let ingest = |(s, p, h): UtoipaMethodRouter<AppState>| {
        versioned(
            INGEST,
            (s, p, h.layer(DefaultBodyLimit::max(INGEST_BODY_LIMIT))),
        )
    };
    OpenApiRouter::new()
        .routes(tenancy(routes!(get_self)))
        .routes(tenancy(routes!(get_users_self)))
        .routes(tenancy(routes!(list_tokens, create_token)))
        .routes(tenancy(routes!(get_token, revoke_token)))
        .routes(tenancy(routes!(list_orgs, create_org)))
        .routes(tenancy(routes!(get_org, update_org)))
        .routes(tenancy(routes!(list_org_members, add_org_member)))
        .routes(tenancy(routes!(remove_org_member)))
        .routes(tenancy(routes!(list_groups)))
        .routes(tenancy(routes!(get_group)))
        .routes(tenancy(routes!(list_group_orgs, add_group_org)))
        .routes(tenancy(routes!(list_group_members, add_group_member)))
        .routes(tenancy(routes!(remove_group_member)))
        .routes(cloud_events(routes!(
            list_group_registrations,
            create_group_registration
        )))
        .routes(cloud_events(routes!(
            get_group_registration,
            update_group_registration,
            delete_group_registration
        )))
        .routes(cloud_events(routes!(replay_group_registration)))
        .routes(cloud_events(routes!(
            list_org_integrations,
            create_org_integration
        )))
        .routes(cloud_events(routes!(
            get_org_integration,
            update_org_integration,
            delete_org_integration
        )))
        .routes(cloud_events(routes!(replay_org_integration)))
        .routes(search(routes!(audit::search_org)))
        .routes(search(routes!(audit::search_group)))
        .routes(ingest(routes!(audit::ingest_org)))
        .routes(ingest(routes!(audit::ingest_group)))
}
