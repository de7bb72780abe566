//! A loopback HTTPS RFC 8058 one-click unsubscribe endpoint (self-signed), shared by the
//! real-binary tests (scale, crash) of every binary: it records every POST (path, content type,
//! body), counts them per path, and answers with a chosen status or redirect after an optional
//! delay, so that racing requests overlap with the first one and a kill lands mid-POST.
//!
//! The binaries accept it only with `QUIETBOX_TEST_UNSUBSCRIBE_LOOPBACK=true` (debug builds).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// What the endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body.
    pub body: String,
}

/// How the endpoint answers.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status of every answer (unless `redirect_to`).
    pub status: StatusCode,
    /// Answer 307 to this location instead.
    pub redirect_to: Option<String>,
    /// Wait this long before answering (after recording the POST).
    pub delay: Duration,
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            status: StatusCode::OK,
            redirect_to: None,
            delay: Duration::ZERO,
        }
    }
}

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    answer: Answer,
}

/// The running endpoint.
pub struct Endpoint {
    /// Its address (`127.0.0.1:port`).
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    /// An endpoint answering 200 after `delay`.
    pub async fn start(delay: Duration) -> Endpoint {
        Endpoint::answering(Answer {
            delay,
            ..Answer::default()
        })
        .await
    }

    /// An endpoint answering as `answer` says.
    pub async fn answering(answer: Answer) -> Endpoint {
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            received: received.clone(),
            answer,
        };
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state(shared);
        Endpoint {
            addr: serve_tls(app).await,
            received,
        }
    }

    /// `https://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Every POST so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many POSTs reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// How many POSTs reached any path.
    pub fn total(&self) -> usize {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

async fn record(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared
        .received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Received {
            path: uri.path().to_owned(),
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
        });
    tokio::time::sleep(shared.answer.delay).await;
    match &shared.answer.redirect_to {
        Some(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", location.clone())],
        )
            .into_response(),
        None => shared.answer.status.into_response(),
    }
}

/// Serves `app` over TLS with a fresh self-signed certificate for `127.0.0.1` and `localhost`.
async fn serve_tls(app: Router) -> SocketAddr {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("self-signed certificate");
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("TLS configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let app = crate::serve::with_drop_support(app);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                crate::serve::connection(tls, app).await;
            });
        }
    });
    addr
}
