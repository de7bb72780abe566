//! The HTTP stack every binary shares: `/health`, `/metrics`, request ids, a request log line
//! with credentials redacted, SLO metrics, panics turned into problem+json, a body limit, a
//! timeout, and serving (HTTP/1.1) with a header-read timeout, a cap on concurrent connections
//! and graceful shutdown.
//!
//! Binaries build their protocol router and pass it through [`with_common_layers`], so the
//! three surfaces log, measure and fail the same way.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use quietbox_core::ErrorCode;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::problem::ApiError;
use crate::redaction::loggable_uri;
use crate::telemetry::metrics_handle;

/// The header carrying the request id (set when the client sent none, echoed back).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Limits of the shared stack.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Longest a request may take before it is answered 503.
    pub timeout: Duration,
    /// Longest a connection may take to send a request's headers (counted from the
    /// connection's start, or from the previous response on a kept-alive connection) before it
    /// is closed: unfinished headers cannot hold a descriptor for good.
    pub header_timeout: Duration,
    /// Connections served at once; the next ones wait in the listen backlog (the kernel's
    /// queue) until one closes.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            body_limit: 1024 * 1024,
            timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

impl HttpLimits {
    /// The defaults with `HTTP_HEADER_TIMEOUT_S` and `HTTP_MAX_CONNECTIONS` from the settings.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        HttpLimits {
            header_timeout: settings.http_header_timeout,
            max_connections: settings.http_max_connections,
            ..HttpLimits::default()
        }
    }
}

/// The `method` label of the HTTP metrics: the standard methods by name, any other `other`,
/// so that made-up methods cannot add series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The method as the request log shows it: a made-up one cut to its first 32 characters
/// (a method is an HTTP token: no control characters, no spaces).
fn loggable_method(method: &Method) -> &str {
    let text = method.as_str();
    match text.char_indices().nth(32) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Adds `/health`, `/metrics` and the shared layers to a protocol router.
/// `service` names the binary in `/health`.
pub fn with_common_layers(router: Router, service: &'static str, limits: HttpLimits) -> Router {
    let metrics = metrics_handle();
    router
        .route(
            "/health",
            get(move || async move {
                axum::Json(serde_json::json!({"status": "ok", "service": service}))
            }),
        )
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(middleware::from_fn(log_request))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(middleware::from_fn_with_state(limits.timeout, time_limit)),
        )
}

/// Ends a request that runs past the limit with a 503 problem naming `request_timeout`, like
/// every other error (tower-http's timeout layer answers with an empty body, which clients and
/// the SLO dashboards cannot tell from a proxy failure).
async fn time_limit(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request took longer than {} s and was stopped; retry later",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// `http_requests_total{endpoint,method,status}` and `http_request_duration_seconds{endpoint}`.
/// Every label takes bounded values: the endpoint is the route template
/// (`/v1/senders/{address}`, or `unmatched`), never the raw path; the method is a standard one
/// or `other` ([`method_label`]); the status is the numeric code. A scanner cannot blow up label
/// cardinality.
async fn record_metrics(request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "endpoint" => endpoint.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    response
}

/// One line per request, written only through the redaction functions: the query string is
/// redacted and no header value is ever logged. (Control characters in any logged value are
/// escaped by the text log's field formatter, see [`crate::telemetry`].)
async fn log_request(request: Request, next: Next) -> Response {
    let method = loggable_method(request.method()).to_owned();
    let uri = loggable_uri(request.uri());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map(|c| c.name())
        .unwrap_or("");
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, uri, status, code, latency_ms, request_id, "request");
    } else {
        tracing::info!(%method, uri, status, code, latency_ms, request_id, "request");
    }
    response
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    // The panic message may hold request data: it is not echoed to the client.
    tracing::error!("handler panicked");
    ApiError::new(ErrorCode::Internal, "internal error").into_response()
}

static BOUND: std::sync::OnceLock<SocketAddr> = std::sync::OnceLock::new();

/// The address [`serve`] bound in this process (the real port when `BIND_ADDR` asks for port
/// 0), once it has.
pub fn bound_addr() -> Option<SocketAddr> {
    BOUND.get().copied()
}

/// Binds `addr`, logs the bound address (port 0 picks a free one), and serves until SIGINT or
/// SIGTERM, letting in-flight requests finish. `limits` gives the header-read timeout and the
/// connection cap (see [`serve_on`]).
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    service: &str,
    limits: HttpLimits,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let _ = BOUND.set(local);
    tracing::info!(service, addr = %local, "listening on {local}");
    // Printed as well, so that scripts and test harnesses can read the port without parsing logs.
    println!("listening on {local}");
    serve_on(listener, router, limits, shutdown_signal()).await;
    Ok(())
}

/// Serves HTTP/1.1 connections from `listener` until `shutdown` resolves, then stops accepting
/// and lets the open connections finish their in-flight requests.
///
/// A connection must send each request's headers within `limits.header_timeout` (hyper's
/// header-read timeout, on a Tokio timer), or it is closed. At most `limits.max_connections`
/// are served at once: past it, the loop stops accepting, so the next connections wait in the
/// kernel's backlog (costing this process nothing) until one closes.
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let service = TowerToHyperService::new(router);
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A failed `accept`: a connection reset before it was accepted is nothing; anything else
/// (descriptors exhausted) is logged and waited out a little, as hyper and axum do.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::problem::AppJson;

    fn app() -> Router {
        let router = Router::new()
            .route(
                "/echo",
                axum::routing::post(
                    |AppJson(v): AppJson<serde_json::Value>| async move { AppJson(v) },
                ),
            )
            .route("/boom", get(boom))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route("/items/{id}", get(|| async { "item" }));
        with_common_layers(
            router,
            "test",
            HttpLimits {
                body_limit: 64,
                timeout: Duration::from_secs(5),
                ..HttpLimits::default()
            },
        )
    }

    // Paused time: the 5 s limit passes at once, with no real waiting.
    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_time_limit_is_a_503_problem_naming_the_timeout() {
        let response = app()
            .oneshot(HttpRequest::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert!(response.headers().contains_key("x-request-id"));
        let body = body_json(response).await;
        assert_eq!(body["code"], "request_timeout");
    }

    async fn boom() -> &'static str {
        panic!("boom")
    }

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn health_answers_without_credentials_and_gets_a_request_id() {
        let response = app()
            .oneshot(HttpRequest::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(body_json(response).await["status"], "ok");
    }

    #[tokio::test]
    async fn a_client_request_id_is_echoed_back() {
        let response = app()
            .oneshot(
                HttpRequest::get("/health")
                    .header("x-request-id", "abc-123")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "abc-123");
    }

    #[tokio::test]
    async fn malformed_json_is_a_400_problem() {
        let response = app()
            .oneshot(
                HttpRequest::post("/echo")
                    .header("content-type", "application/json")
                    .body(Body::from("{not json"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = body_json(response).await;
        assert_eq!(body["code"], "malformed_body");
        assert_eq!(body["status"], 400);
    }

    #[tokio::test]
    async fn an_oversized_body_is_a_413_problem() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(500));
        let response = app()
            .oneshot(
                HttpRequest::post("/echo")
                    .header("content-type", "application/json")
                    .body(Body::from(big))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body_json(response).await["code"], "payload_too_large");
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_problem() {
        let response = app()
            .oneshot(HttpRequest::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = body_json(response).await;
        assert_eq!(body["code"], "internal");
        assert!(
            !body.to_string().contains("boom"),
            "panic text must not leak: {body}"
        );
    }

    #[test]
    fn made_up_methods_share_one_label_and_the_log_cuts_them() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let long = Method::from_bytes("X".repeat(5000).as_bytes()).unwrap();
        assert_eq!(method_label(&long), "other");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
        assert_eq!(loggable_method(&long).len(), 32);
        assert_eq!(loggable_method(&Method::PATCH), "PATCH");
    }

    #[tokio::test]
    async fn metrics_use_the_route_template_as_endpoint() {
        let app = app();
        app.clone()
            .oneshot(
                HttpRequest::get("/items/secret-looking-id")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let response = app
            .oneshot(HttpRequest::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(
            text.contains(
                "http_requests_total{endpoint=\"/items/{id}\",method=\"GET\",status=\"200\"}"
            ),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket{endpoint=\"/items/{id}\""),
            "{text}"
        );
        assert!(!text.contains("secret-looking-id"));
    }
}
