//! `auditlake serve`: the HTTP server until SIGINT or SIGTERM, then a
//! graceful shutdown that lets running requests finish.

use clap::Args;
use tokio::net::TcpListener;

use auditlake_api::AppState;
use auditlake_lake::{AccessKey, Lake};
use auditlake_store::Store;

use crate::config::DbArgs;
use crate::forward::{ForwardOptions, Forwarding};
use crate::lake::{serve_lake, LakeOptions};

/// Where the API listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "AUDITLAKE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub lake: LakeOptions,
    /// Do not start the lake listener
    #[arg(long, env = "AUDITLAKE_NO_LAKE")]
    pub no_lake: bool,
    #[command(flatten)]
    pub forward: ForwardOptions,
    #[command(flatten)]
    pub limits: LimitOptions,
}

/// Request limits of the APIs, and how long an authentication is reused.
#[derive(Debug, Clone, Args)]
pub struct LimitOptions {
    /// Requests per minute each API token may make to /rest and /v1 (a
    /// minute's allowance may come as a burst); 0 turns the limit off
    #[arg(long, env = "AUDITLAKE_RATE_LIMIT_PER_MINUTE", default_value_t = 1620)]
    pub rate_limit_per_minute: u32,
    /// MiB of request bodies the API holds in memory at once; requests
    /// beyond it wait, unread (at least one 16 MiB ingest body always fits)
    #[arg(long, env = "AUDITLAKE_BODY_BUDGET_MIB", default_value_t = auditlake_api::DEFAULT_BODY_BUDGET >> 20)]
    pub body_budget_mib: usize,
    /// Milliseconds a successful token check may be reused without reading
    /// the database; changes made through this server are seen at once,
    /// other processes' (a revocation by another server on the same
    /// database) within this time; 0 checks the database on every request
    #[arg(long, env = "AUDITLAKE_AUTH_CACHE_MS", default_value_t = auditlake_store::DEFAULT_AUTH_CACHE_TTL.as_millis() as u64)]
    pub auth_cache_ms: u64,
    /// Bearer token that /metrics requires (Prometheus: `authorization:
    /// {credentials: ...}`); without one, /metrics is off
    #[arg(long, env = "AUDITLAKE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Label the integration series of /metrics with the tenant's ID
    /// (`external_id`: an Organization or Group ID)
    #[arg(long, env = "AUDITLAKE_METRICS_TENANT_LABELS")]
    pub metrics_tenant_labels: bool,
    /// Days before its tenant's creation an ingested event may be dated: an
    /// import window for migrating older logs (such events are still marked
    /// as ingested); 0 closes it
    #[arg(long, env = "AUDITLAKE_INGEST_IMPORT_DAYS", default_value_t = 0)]
    pub ingest_import_days: u32,
    /// Whom a tenant's admin may add by user ID: `within-group` (users of
    /// the tenant's own group) or `anyone` (every user of the platform)
    #[arg(
        long,
        env = "AUDITLAKE_MEMBERSHIP_ADDS",
        default_value = "within-group"
    )]
    pub membership_adds: MembershipAddsArg,
}

/// `--membership-adds`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MembershipAddsArg {
    /// Users of the tenant's own group.
    WithinGroup,
    /// Any user of the platform.
    Anyone,
}

/// A lake to run beside the API: where it listens and a key it accepts
/// (for a forwarder that sends to it).
pub struct LakeRun {
    /// The lake.
    pub lake: Lake,
    /// Its listen address.
    pub listen: String,
    /// A key it accepts.
    pub key: AccessKey,
}

/// The bound addresses, once every listener is up.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// The API.
    pub api: std::net::SocketAddr,
    /// The lake, when one runs.
    pub lake: Option<std::net::SocketAddr>,
}

/// Binds `listen` (and the lake's address, when a lake is given), starts
/// the forwarder when one is planned, and serves until a signal.
pub async fn serve_on(
    store: Store,
    listen: &str,
    lake: Option<LakeRun>,
    forwarding: Option<Forwarding>,
    limits: &LimitOptions,
    serve_limits: auditlake_api::ServeLimits,
    announce: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    auditlake_api::install_metrics();
    let store = store.with_auth_cache_ttl(std::time::Duration::from_millis(limits.auth_cache_ms));
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    let shutdown = crate::signal::shared();
    let mut lake_addr = None;
    let mut lake_key = None;
    let lake_task = match lake {
        Some(run) => {
            let stop = shutdown();
            // Bind before announcing, so a script that waits for the API
            // line finds the lake up too.
            let listener = TcpListener::bind(&run.listen).await.map_err(|e| {
                anyhow::anyhow!("cannot listen on {} for the lake: {e}", run.listen)
            })?;
            lake_addr = Some(listener.local_addr()?);
            lake_key = Some(run.key);
            Some(tokio::spawn(serve_lake(run.lake, listener, stop)))
        }
        None => None,
    };
    let forwarder = match forwarding {
        Some(plan) => {
            let lake_url = lake_addr.map(|a| format!("http://{a}"));
            let local = lake_url.as_deref().zip(lake_key.as_ref());
            let config = plan.config(local)?;
            tracing::info!(
                endpoint = config.target.endpoint.as_deref().unwrap_or("AWS"),
                event_source = %config.event_source,
                "forwarding cloud events"
            );
            Some(auditlake_forwarder::spawn(store.clone(), config).await)
        }
        None => None,
    };
    announce(Bound {
        api: addr,
        lake: lake_addr,
    });
    let mut state = AppState::new(store.clone());
    state.limits = auditlake_api::RateLimits::per_minute(limits.rate_limit_per_minute);
    state.bodies = auditlake_api::BodyBudget::new(
        limits.body_budget_mib.saturating_mul(1024 * 1024),
        auditlake_api::INGEST_BODY_LIMIT,
    );
    state.serve = serve_limits;
    state.ingest_import_window_us = i64::from(limits.ingest_import_days) * 86_400_000_000;
    state.membership_adds = match limits.membership_adds {
        MembershipAddsArg::WithinGroup => auditlake_api::MembershipAdds::WithinGroup,
        MembershipAddsArg::Anyone => auditlake_api::MembershipAdds::Anyone,
    };
    if let Some(token) = &limits.metrics_token {
        state.metrics_access =
            auditlake_api::MetricsAccess::with_token(token, limits.metrics_tenant_labels);
    }
    if let (Some(addr), Some(key)) = (lake_addr, lake_key.as_ref()) {
        state.lake = Some(auditlake_api::LakeConsole {
            endpoint: format!("http://{addr}"),
            key: key.clone(),
        });
    }
    auditlake_api::serve(listener, state, shutdown()).await?;
    if let Some(f) = forwarder {
        f.shutdown().await;
    }
    if let Some(task) = lake_task {
        task.await??;
    }
    store.close().await;
    Ok(())
}

/// Runs `serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let store = args.db.open_store().await?;
    let data_dir = &args.db.dir.data_dir;
    let lake = if args.no_lake {
        None
    } else {
        Some(LakeRun {
            lake: args.lake.open(data_dir).await?,
            listen: args.lake.lake_listen.clone(),
            key: args.lake.client_key(data_dir)?,
        })
    };
    let forwarding = args.forward.plan()?;
    let notice = lake
        .as_ref()
        .and_then(|l| crate::lake::credentials_notice(&l.lake));
    // Printed on stdout so scripts and tests can wait for the server: the
    // listening lines come first.
    serve_on(
        store,
        &args.listen,
        lake,
        forwarding,
        &args.limits,
        args.lake.serve_limits(),
        |bound| {
            say!("auditlake listening on http://{}", bound.api);
            if let Some(lake) = bound.lake {
                say!("auditlake lake listening on http://{lake}");
            }
            if let Some(notice) = notice {
                say!("{notice}");
            }
        },
    )
    .await
}
