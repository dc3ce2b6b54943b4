//! An HTTP/1 server with read timeouts and a cap of connections per client
//! address.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

/// How much a client may hold of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A client that sends nothing for this long is dropped: while it sends
    /// a request's headers, between its requests, and between the chunks of
    /// a body (a request whose body stalls fails with `408`).
    pub read_timeout: Duration,
    /// Connections one client address may hold at once; further ones are
    /// closed as soon as they are accepted. 0: no cap.
    pub max_connections_per_ip: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(10),
            max_connections_per_ip: 64,
        }
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct Clients {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted in [`Clients`]; uncounted when dropped.
struct Counted {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Clients {
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Counted> {
        let mut open = self.open.lock().expect("not poisoned");
        let n = open.entry(ip).or_default();
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted {
            clients: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().expect("not poisoned");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves,
/// then lets the requests in flight finish. Handlers see the client's
/// address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let clients = Arc::new(Clients::default());
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of file descriptors and the like: the listener
                // itself is fine; wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(counted) = clients.admit(remote.ip(), limits.max_connections_per_ip) else {
            tracing::debug!(client = %remote.ip(), "too many connections from one address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let read_timeout = limits.read_timeout;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            // An empty body stays as it is: the wrapper would hide that it
            // is empty (`is_end_stream`, `size_hint`).
            let mut req = req.map(|body| {
                if body.is_end_stream() {
                    axum::body::Body::new(body)
                } else {
                    axum::body::Body::new(TimeoutBody::new(read_timeout, body))
                }
            });
            req.extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _counted = counted;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Whether `error`, met while reading a request body, is the read timeout.
pub fn is_read_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}
