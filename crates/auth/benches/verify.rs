//! Cost of the `Authenticator` over raw `jsonwebtoken` verification, for HS256 and for RS256
//! with the JWKS already cached. Goal: at most 1.2× raw verify.
//!
//! Run with: `cargo bench -p quietbox-auth --bench verify`

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use quietbox_auth::{AppScope, AuthConfig, AuthMode, Secret};

/// The benchmarked application's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotesScope {
    Read,
    Write,
}

impl AppScope for NotesScope {
    const ALL: &'static [Self] = &[NotesScope::Read, NotesScope::Write];
    fn as_str(self) -> &'static str {
        match self {
            NotesScope::Read => "notes:read",
            NotesScope::Write => "notes:write",
        }
    }
}

type Authenticator = quietbox_auth::Authenticator<NotesScope>;
use serde_json::{Value, json};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
const RSA: &str = include_str!("../tests/keys/rsa1.pem");

fn claims() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"sub": "u", "aud": "quietbox", "scope": "notes:read notes:write", "exp": now + 3600, "iat": now})
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_audience(&["quietbox"]);
    v.leeway = 30;
    v.validate_nbf = true;
    v
}

fn rsa_jwk() -> Value {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(RSA).unwrap();
    let b64 = |b: Vec<u8>| URL_SAFE_NO_PAD.encode(b);
    json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256",
        "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be())}]})
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // HS256
    let hs_token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let hs_key = DecodingKey::from_secret(SECRET.as_bytes());
    let hs_validation = validation(Algorithm::HS256);
    let mut config = AuthConfig::new(AuthMode::Jwt);
    config.jwt_secret = Some(Secret::new(SECRET));
    let hs_auth = runtime.block_on(Authenticator::new(config)).unwrap();
    let hs_headers = headers(&hs_token);
    let mut group = c.benchmark_group("hs256");
    group.bench_function("raw_jsonwebtoken", |b| {
        b.iter(|| jsonwebtoken::decode::<Value>(&hs_token, &hs_key, &hs_validation).unwrap())
    });
    group.bench_function("authenticator", |b| {
        b.iter(|| runtime.block_on(hs_auth.authenticate(&hs_headers)).unwrap())
    });
    group.finish();

    // RS256 with the JWKS cached (served once from loopback, then never again).
    let jwks = Arc::new(rsa_jwk());
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = jwks.clone();
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                let b = body.clone();
                async move { axum::Json((*b).clone()) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/jwks.json")
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let rs_token = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap(),
    )
    .unwrap();
    let rs_key =
        DecodingKey::from_jwk(&serde_json::from_value(jwks["keys"][0].clone()).unwrap()).unwrap();
    let rs_validation = validation(Algorithm::RS256);
    let mut config = AuthConfig::new(AuthMode::Jwt);
    config.jwks_url = Some(url);
    let rs_auth = runtime.block_on(Authenticator::new(config)).unwrap();
    let rs_headers = headers(&rs_token);
    runtime.block_on(rs_auth.authenticate(&rs_headers)).unwrap();
    let mut group = c.benchmark_group("rs256_cached");
    group.bench_function("raw_jsonwebtoken", |b| {
        b.iter(|| jsonwebtoken::decode::<Value>(&rs_token, &rs_key, &rs_validation).unwrap())
    });
    group.bench_function("authenticator", |b| {
        b.iter(|| runtime.block_on(rs_auth.authenticate(&rs_headers)).unwrap())
    });
    group.finish();
}

fn headers(token: &str) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    map.insert("authorization", format!("Bearer {token}").parse().unwrap());
    map
}

criterion_group!(benches, bench);
criterion_main!(benches);
