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
use serde_json::{Value, json};

pub const RSA1: &str = include_str!("../keys/rsa1.pem");
pub const RSA2: &str = include_str!("../keys/rsa2.pem");
pub const RSA1_PUBLIC: &str = include_str!("../keys/rsa1.pub.pem");
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

/// A loopback identity provider: JWKS at `/jwks.json`, RFC 8414 metadata, fetch counter, and a
/// switch that makes the JWKS endpoint answer 503.
#[derive(Clone)]
pub struct Idp {
    pub base: String,
    pub jwks: Arc<Mutex<Value>>,
    pub fetches: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
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
        };
        let app = Router::new()
            .route("/jwks.json", get(jwks))
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
    axum::Json(json!({"issuer": idp.base, "jwks_uri": idp.jwks_url()}))
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
