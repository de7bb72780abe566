//! Test support: the committed test keys, token signing, and a loopback JWKS + OAuth metadata
//! server that counts its fetches and can be told to fail.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use quietbox_auth::AppScope;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The scopes of the application these tests protect (an inbox tool): the crate knows none of
/// them, the tests declare them as any application would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestScope {
    AvailabilityRead,
    MailScan,
    UnsubscribeRead,
    UnsubscribeExecute,
}

impl AppScope for TestScope {
    const ALL: &'static [Self] = &[
        TestScope::AvailabilityRead,
        TestScope::MailScan,
        TestScope::UnsubscribeRead,
        TestScope::UnsubscribeExecute,
    ];

    fn as_str(self) -> &'static str {
        match self {
            TestScope::AvailabilityRead => "availability:read",
            TestScope::MailScan => "mail:scan",
            TestScope::UnsubscribeRead => "unsubscribe:read",
            TestScope::UnsubscribeExecute => "unsubscribe:execute",
        }
    }
}

/// The crate's generic types at the tests' scope type.
pub type Authenticator = quietbox_auth::Authenticator<TestScope>;
pub type AuthError = quietbox_auth::AuthError<TestScope>;

/// Route markers of [`TestScope`].
pub mod scope {
    use super::TestScope;
    use quietbox_auth::RequiredScope;

    pub struct MailScan;
    impl RequiredScope for MailScan {
        type Scope = TestScope;
        const SCOPE: TestScope = TestScope::MailScan;
    }

    pub struct UnsubscribeExecute;
    impl RequiredScope for UnsubscribeExecute {
        type Scope = TestScope;
        const SCOPE: TestScope = TestScope::UnsubscribeExecute;
    }
}

pub const RSA1: &str = include_str!("../keys/rsa1.pem");
pub const RSA2: &str = include_str!("../keys/rsa2.pem");
pub const RSA1_PUBLIC: &str = include_str!("../keys/rsa1.pub.pem");
/// A 1024-bit RSA key: too weak to be used.
pub const RSA1024: &str = include_str!("../keys/rsa1024.pem");
pub const EC1: &str = include_str!("../keys/ec1.pem");
pub const ED1: &str = include_str!("../keys/ed1.pem");

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK of a test private key.
pub fn rsa_jwk(pem: &str, kid: &str) -> Value {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
           "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
}

pub fn ec_jwk(pem: &str, kid: &str) -> Value {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::SecretKey::from_pkcs8_pem(pem).unwrap();
    let point = key.public_key().to_encoded_point(false);
    json!({"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
           "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

pub fn ed_jwk(pem: &str, kid: &str) -> Value {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).unwrap();
    json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA",
           "x": b64(key.verifying_key().as_bytes())})
}

/// Standard claims valid for an hour.
pub fn claims(aud: &str, iss: &str, scope: &str) -> Value {
    json!({"sub": "user-1", "tenant": "acme", "aud": aud, "iss": iss, "scope": scope,
           "iat": now(), "exp": now() + 3600})
}

pub fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn hs256(secret: &str, claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
        claims,
    )
}

pub fn rs256(pem: &str, kid: &str, claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        Some(kid),
        claims,
    )
}

/// RS256 with the header's `typ` set to `typ` (`None`: no `typ` at all).
pub fn rs256_typ(pem: &str, kid: &str, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// An RFC 9068 access token (`typ: at+jwt`), as an OAuth authorization server mints them.
pub fn access_token(pem: &str, kid: &str, claims: &Value) -> String {
    rs256_typ(pem, kid, Some("at+jwt"), claims)
}

/// A loopback identity provider: JWKS at `/jwks.json` (and a same-origin redirect to it at
/// `/moved/jwks.json`), RFC 8414 metadata (replaceable), fetch counter, and a switch that makes
/// the JWKS endpoint answer 503.
#[derive(Clone)]
pub struct Idp {
    pub base: String,
    pub jwks: Arc<Mutex<Value>>,
    pub fetches: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
    pub metadata: Arc<Mutex<Option<Value>>>,
}

impl Idp {
    pub async fn start(keys: Vec<Value>) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let idp = Idp {
            base: base.clone(),
            jwks: Arc::new(Mutex::new(json!({ "keys": keys }))),
            fetches: Arc::new(AtomicUsize::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
            metadata: Arc::new(Mutex::new(None)),
        };
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .route(
                "/moved/jwks.json",
                get(|| async { axum::response::Redirect::temporary("/jwks.json") }),
            )
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        idp
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.base)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    pub fn fetch_count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn jwks(State(idp): State<Idp>) -> impl IntoResponse {
    idp.fetches.fetch_add(1, Ordering::SeqCst);
    if idp.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    axum::Json(idp.jwks.lock().unwrap().clone()).into_response()
}

async fn metadata(State(idp): State<Idp>) -> impl IntoResponse {
    let replaced = idp.metadata.lock().unwrap().clone();
    axum::Json(replaced.unwrap_or_else(|| json!({"issuer": idp.base, "jwks_uri": idp.jwks_url()})))
}

/// A loopback server that answers every request with `302 Found` to `target`; counts requests.
pub async fn redirector(target: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let base = raw_server(move |mut stream| {
        let target = target.clone();
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let response = format!(
                "HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    })
    .await;
    (base, hits)
}

/// A loopback server whose body never ends: `200 OK`, then JSON-looking bytes until the client
/// goes away. With `declared`, the head announces that `Content-Length` and the body stops after
/// a few bytes (the connection then stays open). Returns the base URL and the bytes written.
pub async fn endless(declared: Option<u64>) -> (String, Arc<AtomicUsize>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let base = raw_server(move |mut stream| {
        let counter = counter.clone();
        async move {
            let length = match declared {
                Some(n) => format!("content-length: {n}\r\n"),
                None => String::new(),
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n{{\"keys\":["
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            if declared.is_some() {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                return;
            }
            let chunk = vec![b' '; 16 * 1024];
            while stream.write_all(&chunk).await.is_ok() {
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
    })
    .await;
    (base, written)
}

/// A minimal HTTP/1.1 server on loopback: reads the request head, then hands the stream to
/// `respond`. Returns `http://127.0.0.1:<port>`.
async fn raw_server<F, Fut>(respond: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                respond(stream).await;
            });
        }
    });
    base
}

pub fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

pub fn bearer(token: &str) -> http::HeaderMap {
    headers(&[("authorization", &format!("Bearer {token}"))])
}

#[allow(dead_code)]
pub fn public_pem() -> &'static str {
    RSA1_PUBLIC
}
