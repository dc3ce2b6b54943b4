//! `auditlake serve`: the HTTP server until SIGINT or SIGTERM, then a
//! graceful shutdown that lets running requests finish.

use clap::Args;
use tokio::net::TcpListener;

use auditlake_api::AppState;
use auditlake_store::Store;

use crate::config::{DbArgs, FileConfig};
use crate::lake::{serve_lake, LakeOptions};

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "AUDITLAKE_LISTEN")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub lake: LakeOptions,
    /// Do not start the lake listener
    #[arg(long, env = "AUDITLAKE_NO_LAKE")]
    pub no_lake: bool,
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

/// One shutdown signal, shared by several listeners.
fn shared_shutdown() -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
{
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    move || {
        let mut rx = rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
    }
}

/// Binds `listen` (and the lake's address, when a lake is given) and serves
/// until a signal.
pub async fn serve_on(
    store: Store,
    listen: &str,
    lake: Option<(auditlake_lake::Lake, String)>,
    announce: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    auditlake_api::install_metrics();
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    let shutdown = shared_shutdown();
    let lake_task = match lake {
        Some((lake, lake_listen)) => {
            let stop = shutdown();
            // Bind before announcing, so a script that waits for the API
            // line finds the lake up too.
            let listener = TcpListener::bind(&lake_listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {lake_listen} for the lake: {e}"))?;
            Some(tokio::spawn(serve_lake(lake, listener, stop)))
        }
        None => None,
    };
    announce(addr);
    auditlake_api::serve(listener, AppState::new(store.clone()), shutdown()).await?;
    if let Some(task) = lake_task {
        task.await??;
    }
    store.close().await;
    Ok(())
}

/// Runs `serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.db.config.as_deref())?;
    let store = open_store(&args.db, &file).await?;
    let lake = if args.no_lake {
        None
    } else {
        let lake = args.lake.open(&file, &args.db.data_dir(&file)).await?;
        Some((lake, args.lake.listen(&file)))
    };
    let listen = args
        .listen
        .clone()
        .or(file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    // Printed on stdout so scripts and tests can wait for the server.
    serve_on(store, &listen, lake, |addr| {
        println!("auditlake listening on http://{addr}")
    })
    .await
}
