//! HTTP over TLS for health and metrics. `axum::serve` only takes plain listeners, so
//! this is its accept loop with a handshake in front, serving the same router, and the
//! same graceful shutdown (in-flight requests finish, idle connections close).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::TlsState;
use super::accept::{HTTP_NOTICE, HandshakeFailures, handshake};

/// Most HTTPS connections served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 256;
/// Longest a stop waits for HTTPS requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` over TLS on `listener` until `stop` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<TlsState>,
    stop: CancellationToken,
) {
    let conns = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let failures = Arc::new(HandshakeFailures::new("http"));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, limit = MAX_CONNECTIONS, "HTTPS connection refused: too many");
            continue;
        };
        let acceptor = tls.http_acceptor();
        let (app, stop, failures) = (app.clone(), stop.clone(), Arc::clone(&failures));
        conns.spawn(async move {
            let _permit = permit;
            let stream = tokio::select! {
                s = handshake(acceptor, tcp, peer, &failures, HTTP_NOTICE) => s,
                _ = stop.cancelled() => None,
            };
            let Some(stream) = stream else { return };
            let builder = Builder::new(TokioExecutor::new());
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
                    }
                    return;
                }
                _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    conns.close();
    if tokio::time::timeout(STOP_GRACE, conns.wait())
        .await
        .is_err()
    {
        tracing::debug!("some HTTPS connections did not finish in time");
    }
}
