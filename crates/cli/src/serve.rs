//! `auditlake serve`: the HTTP server until SIGINT or SIGTERM, then a
//! graceful shutdown that lets running requests finish.

use clap::Args;
use tokio::net::TcpListener;

use auditlake_api::AppState;
use auditlake_store::Store;

use crate::config::{DbArgs, FileConfig};

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "AUDITLAKE_LISTEN")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Opens the store named by the flags, running migrations.
pub async fn open_store(db: &DbArgs, file: &FileConfig) -> anyhow::Result<Store> {
    let url = db.resolve(file)?;
    tracing::info!(database = %auditlake_store::redact(&url), "opening database");
    Ok(Store::connect(&url).await?)
}

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing running requests");
}

/// Binds `listen` and serves until a signal.
pub async fn serve_on(
    store: Store,
    listen: &str,
    announce: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    auditlake_api::install_metrics();
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    announce(addr);
    auditlake_api::serve(listener, AppState::new(store.clone()), shutdown_signal()).await?;
    store.close().await;
    Ok(())
}

/// Runs `serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.db.config.as_deref())?;
    let store = open_store(&args.db, &file).await?;
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    // Printed on stdout so scripts and tests can wait for the server.
    serve_on(store, &listen, |addr| {
        println!("auditlake listening on http://{addr}")
    })
    .await
}
