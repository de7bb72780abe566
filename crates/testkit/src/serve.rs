//! Serves a router on loopback with connection-level faults: a handler can close its connection
//! without answering (as a crashed server or a dropping middlebox does), so clients see a real
//! "connection closed before message completed" instead of a slow answer.
//!
//! A handler asks for it by returning [`dropped`]; the [`spawn`] loop then drops the connection.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Clone, Copy)]
struct DropConnection;

/// Closes the connection it was inserted for.
#[derive(Clone)]
struct Kill(Arc<Notify>);

/// A response meaning "close the connection without an answer".
pub fn dropped() -> Response {
    let mut response = StatusCode::BAD_GATEWAY.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

async fn drop_marked(request: Request, next: Next) -> Response {
    let kill = request.extensions().get::<Kill>().cloned();
    let response = next.run(request).await;
    if response.extensions().get::<DropConnection>().is_some()
        && let Some(kill) = kill
    {
        kill.0.notify_one();
        return std::future::pending().await;
    }
    response
}

/// Serves `app` on `listener` until the runtime ends.
pub fn spawn(listener: TcpListener, app: Router) {
    let app = app.layer(middleware::from_fn(drop_marked));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(connection(tcp, app.clone()));
        }
    });
}

/// Serves one connection (plain or TLS) of `app` (already layered by [`spawn`] or
/// [`with_drop_support`]), closing it when a handler returned [`dropped`].
pub async fn connection<I>(io: I, app: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let app = app.layer(axum::Extension(Kill(kill.clone())));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let serving = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::select! {
        _ = serving => {}
        () = kill.notified() => {}
    }
}

/// `app` with the layer that turns [`dropped`] into a closed connection (for own accept loops,
/// e.g. behind TLS, that call [`connection`]).
pub fn with_drop_support(app: Router) -> Router {
    app.layer(middleware::from_fn(drop_marked))
}
