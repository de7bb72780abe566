//! Attacks on JWT and JWKS handling, against a real loopback JWKS server.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use quietbox_auth::{AuthConfig, AuthMode, JwksTiming, Secret};

use crate::support::{self, Authenticator, Idp, bearer, claims};

async fn jwks_auth(idp: &Idp, timing: JwksTiming, secret: Option<&str>) -> Arc<Authenticator> {
    let mut config = AuthConfig::new(AuthMode::Jwt);
    config.jwks_url = Some(idp.jwks_url());
    config.jwt_secret = secret.map(Secret::new);
    config.jwks = timing;
    Arc::new(Authenticator::new(config).await.unwrap())
}

fn good_claims() -> serde_json::Value {
    claims("quietbox", "https://issuer.test", "mail:scan")
}

#[tokio::test]
async fn alg_none_is_refused_as_bad_algorithm() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let auth = jwks_auth(&idp, JwksTiming::default(), Some("some-secret-0123456789")).await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(good_claims().to_string());
    let err = auth
        .authenticate(&bearer(&format!("{header}.{body}.")))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "bad_algorithm");
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let forged = support::sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(support::RSA1_PUBLIC.as_bytes()),
        Some("k1"),
        &good_claims(),
    );
    // JWKS only: HS256 has no key at all.
    let auth = jwks_auth(&idp, JwksTiming::default(), None).await;
    assert_eq!(
        auth.authenticate(&bearer(&forged))
            .await
            .unwrap_err()
            .reason(),
        "bad_algorithm"
    );
    // JWKS plus a secret: HS256 verifies only with the secret, so the forgery fails.
    let auth = jwks_auth(
        &idp,
        JwksTiming::default(),
        Some("the-real-secret-0123456789"),
    )
    .await;
    assert_eq!(
        auth.authenticate(&bearer(&forged))
            .await
            .unwrap_err()
            .reason(),
        "bad_signature"
    );
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_through_the_jwks() {
    let idp = Idp::start(vec![
        support::rsa_jwk(support::RSA1, "rsa"),
        support::ec_jwk(support::EC1, "ec"),
        support::ed_jwk(support::ED1, "ed"),
    ])
    .await;
    let auth = jwks_auth(&idp, JwksTiming::default(), None).await;
    let c = good_claims();
    let tokens = [
        support::rs256(support::RSA1, "rsa", &c),
        support::sign(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(support::EC1.as_bytes()).unwrap(),
            Some("ec"),
            &c,
        ),
        support::sign(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_pem(support::ED1.as_bytes()).unwrap(),
            Some("ed"),
            &c,
        ),
    ];
    for token in tokens {
        auth.authenticate(&bearer(&token)).await.unwrap();
    }
    assert_eq!(idp.fetch_count(), 1, "one fetch serves every key");
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_a_bounded_number_of_fetches() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    // A cool-down far longer than the test, so the bound does not depend on how fast this
    // machine is (RSA signing in a debug build on a loaded machine takes a while).
    let timing = JwksTiming {
        refetch_cooldown: Duration::from_secs(3600),
        ..JwksTiming::default()
    };
    // Sign the flood first: the cool-down starts with the first fetch below.
    let flood: Vec<String> = (0..200)
        .map(|i| support::rs256(support::RSA1, &format!("random-kid-{i}"), &good_claims()))
        .collect();
    let auth = jwks_auth(&idp, timing, None).await;
    auth.authenticate(&bearer(&support::rs256(
        support::RSA1,
        "k1",
        &good_claims(),
    )))
    .await
    .unwrap();
    assert_eq!(idp.fetch_count(), 1);
    let mut tasks = Vec::new();
    for token in flood {
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            auth.authenticate(&bearer(&token)).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err().reason(), "unknown_kid");
    }
    // The first fetch was just made, so the cool-down allows none more.
    assert_eq!(
        idp.fetch_count(),
        1,
        "200 unknown kids must not reach the IdP"
    );
}

#[tokio::test]
async fn an_unknown_kid_after_the_cooldown_refetches_once_and_picks_up_a_rotated_key() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let timing = JwksTiming {
        ttl: Duration::from_secs(600),
        refetch_cooldown: Duration::from_millis(200),
        stale_grace: Duration::from_secs(3600),
    };
    let auth = jwks_auth(&idp, timing, None).await;
    auth.authenticate(&bearer(&support::rs256(
        support::RSA1,
        "k1",
        &good_claims(),
    )))
    .await
    .unwrap();
    idp.set_keys(vec![support::rsa_jwk(support::RSA2, "k2")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let auth = auth.clone();
        let token = support::rs256(support::RSA2, "k2", &good_claims());
        tasks.push(tokio::spawn(async move {
            auth.authenticate(&bearer(&token)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(idp.fetch_count(), 2, "concurrent misses share one refetch");
}

#[tokio::test]
async fn rotation_is_picked_up_after_the_ttl() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let timing = JwksTiming {
        ttl: Duration::from_millis(300),
        refetch_cooldown: Duration::from_millis(100),
        stale_grace: Duration::from_secs(3600),
    };
    let auth = jwks_auth(&idp, timing, None).await;
    let old = support::rs256(support::RSA1, "k1", &good_claims());
    auth.authenticate(&bearer(&old)).await.unwrap();
    idp.set_keys(vec![support::rsa_jwk(support::RSA2, "k2")]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = auth.authenticate(&bearer(&old)).await.unwrap_err();
    assert_eq!(
        err.reason(),
        "unknown_kid",
        "the retired key is gone after the TTL"
    );
    auth.authenticate(&bearer(&support::rs256(
        support::RSA2,
        "k2",
        &good_claims(),
    )))
    .await
    .unwrap();
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_jwks_endpoint_is_down() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let timing = JwksTiming {
        ttl: Duration::from_millis(200),
        refetch_cooldown: Duration::from_millis(50),
        stale_grace: Duration::from_secs(3600),
    };
    let auth = jwks_auth(&idp, timing, None).await;
    let token = support::rs256(support::RSA1, "k1", &good_claims());
    auth.authenticate(&bearer(&token)).await.unwrap();
    idp.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    auth.authenticate(&bearer(&token))
        .await
        .expect("stale keys serve during the outage");
    assert!(
        idp.fetch_count() >= 2,
        "a refetch was attempted after the TTL"
    );
}

#[tokio::test]
async fn with_the_jwks_endpoint_down_from_the_start_tokens_are_refused_as_unavailable() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    idp.failing.store(true, Ordering::SeqCst);
    let auth = jwks_auth(&idp, JwksTiming::default(), None).await;
    let err = auth
        .authenticate(&bearer(&support::rs256(
            support::RSA1,
            "k1",
            &good_claims(),
        )))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "jwks_unavailable");
}

#[tokio::test]
async fn an_oversized_token_is_refused_before_decoding() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let auth = jwks_auth(&idp, JwksTiming::default(), None).await;
    let mut c = good_claims();
    c["padding"] = "x".repeat(9 * 1024).into();
    let token = support::rs256(support::RSA1, "k1", &c);
    assert_eq!(
        auth.authenticate(&bearer(&token))
            .await
            .unwrap_err()
            .reason(),
        "too_large"
    );
    assert_eq!(
        idp.fetch_count(),
        0,
        "nothing was fetched for an oversized token"
    );
}

#[tokio::test]
async fn a_token_for_an_rsa_key_cannot_claim_a_different_rsa_algorithm() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let auth = jwks_auth(&idp, JwksTiming::default(), None).await;
    let token = support::sign(
        Algorithm::RS512,
        &EncodingKey::from_rsa_pem(support::RSA1.as_bytes()).unwrap(),
        Some("k1"),
        &good_claims(),
    );
    assert_eq!(
        auth.authenticate(&bearer(&token))
            .await
            .unwrap_err()
            .reason(),
        "bad_algorithm"
    );
}
