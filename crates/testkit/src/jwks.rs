//! A loopback JWKS endpoint (an identity provider's key set) that can go down: while down, every
//! fetch has its connection closed without an answer, as an unreachable IdP behind a proxy does.
//! It counts the fetches it answered and the ones it dropped.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

struct Inner {
    document: Value,
    up: bool,
    served: usize,
    dropped: usize,
}

/// The running JWKS server; the key set is at [`JwksServer::url`].
#[derive(Clone)]
pub struct JwksServer {
    /// `http://127.0.0.1:port/jwks`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl JwksServer {
    /// Serves `document` (a JWKS), up.
    pub async fn start(document: Value) -> JwksServer {
        let inner = Arc::new(Mutex::new(Inner {
            document,
            up: true,
            served: 0,
            dropped: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new()
            .route("/jwks", get(jwks))
            .with_state(inner.clone());
        crate::serve::spawn(listener, app);
        JwksServer {
            url: format!("http://{addr}/jwks"),
            inner,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `document` from now on (a key rotation).
    pub fn set_document(&self, document: Value) {
        self.lock().document = document;
    }

    /// Takes the endpoint down (`false`) or brings it back (`true`).
    pub fn set_up(&self, up: bool) {
        self.lock().up = up;
    }

    /// Fetches answered with the key set.
    pub fn served(&self) -> usize {
        self.lock().served
    }

    /// Fetches whose connection was closed while down.
    pub fn dropped(&self) -> usize {
        self.lock().dropped
    }
}

async fn jwks(State(inner): State<Arc<Mutex<Inner>>>) -> Response {
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    if !inner.up {
        inner.dropped += 1;
        return crate::serve::dropped();
    }
    inner.served += 1;
    axum::Json(inner.document.clone()).into_response()
}
