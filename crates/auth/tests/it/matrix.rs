//! One table: every mode × credential kind × required scope → expected outcome.

use std::time::Duration;

use quietbox_auth::{AuthConfig, AuthMode, Secret};

use crate::support::{self, AuthError, Authenticator, Idp, TestScope, bearer, claims, headers};

const KEY: &str = "good-api-key-0123456789";
const SECRET: &str = "hs256-test-secret-0123456789abcdef";
const ISSUER: &str = "https://issuer.test";
const RESOURCE: &str = "https://mcp.quietbox.test/mcp";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    None,
    GoodKey,
    BadKey,
    GoodJwt,
    JwtMissingScope,
    Expired,
    WrongAud,
    WrongIss,
    BadSignature,
    /// No `aud` claim at all.
    NoAud,
    /// No `iss` claim while an issuer is configured (always, in this matrix).
    NoIss,
    /// `iat` ten minutes ahead (leeway is 30 s).
    FutureIat,
    /// Header `typ: JWT` (not an RFC 9068 access token).
    TypJwt,
    /// No `typ` header at all.
    NoTyp,
}

const KINDS: [Kind; 14] = [
    Kind::None,
    Kind::GoodKey,
    Kind::BadKey,
    Kind::GoodJwt,
    Kind::JwtMissingScope,
    Kind::Expired,
    Kind::WrongAud,
    Kind::WrongIss,
    Kind::BadSignature,
    Kind::NoAud,
    Kind::NoIss,
    Kind::FutureIat,
    Kind::TypJwt,
    Kind::NoTyp,
];

/// `Ok(())`, `Err("403")`, or `Err(<401 reason>)`.
fn expected(mode: AuthMode, kind: Kind) -> Result<(), &'static str> {
    use AuthMode::*;
    use Kind::*;
    match (mode, kind) {
        (_, None) => Err("missing"),
        (ApiKey | Hybrid, GoodKey) => Ok(()),
        (ApiKey | Hybrid, BadKey) => Err("bad_api_key"),
        // Without an API key in the mode, an X-API-Key header is no credential at all.
        (Jwt | OAuth, GoodKey | BadKey) => Err("missing"),
        // In api_key mode a bearer value is compared as the key.
        (ApiKey, _) => Err("bad_api_key"),
        (_, GoodJwt) => Ok(()),
        (_, JwtMissingScope) => Err("403"),
        (_, Expired) => Err("expired"),
        (_, WrongAud) => Err("wrong_audience"),
        (_, WrongIss) => Err("wrong_issuer"),
        (_, BadSignature) => Err("bad_signature"),
        (_, NoAud | NoIss) => Err("missing_claim"),
        (_, FutureIat) => Err("issued_in_future"),
        // RFC 9068 is checked in oauth mode only; without `typ` a token is accepted.
        (OAuth, TypJwt) => Err("wrong_token_type"),
        (_, TypJwt | NoTyp) => Ok(()),
    }
}

fn credential(mode: AuthMode, kind: Kind, idp: &Idp) -> http::HeaderMap {
    let oauth = mode == AuthMode::OAuth;
    let (aud, iss) = if oauth {
        (RESOURCE, idp.base.as_str())
    } else {
        ("quietbox", ISSUER)
    };
    let token = |claims: serde_json::Value| {
        if oauth {
            support::access_token(support::RSA1, "k1", &claims)
        } else {
            support::hs256(SECRET, &claims)
        }
    };
    let without = |claim: &str| {
        let mut c = claims(aud, iss, "mail:scan unsubscribe:execute");
        c.as_object_mut().unwrap().remove(claim);
        c
    };
    let good_scopes = "mail:scan unsubscribe:execute";
    match kind {
        Kind::None => http::HeaderMap::new(),
        Kind::GoodKey => headers(&[("x-api-key", KEY)]),
        Kind::BadKey => headers(&[("x-api-key", "wrong-key")]),
        Kind::GoodJwt => bearer(&token(claims(aud, iss, good_scopes))),
        Kind::JwtMissingScope => bearer(&token(claims(aud, iss, "availability:read"))),
        Kind::Expired => {
            let mut c = claims(aud, iss, good_scopes);
            c["exp"] = (support::now() - 3600).into();
            bearer(&token(c))
        }
        Kind::WrongAud => bearer(&token(claims("someone-else", iss, good_scopes))),
        Kind::WrongIss => bearer(&token(claims(aud, "https://evil.test", good_scopes))),
        Kind::BadSignature => {
            let c = claims(aud, iss, good_scopes);
            let forged = if oauth {
                support::access_token(support::RSA2, "k1", &c)
            } else {
                support::hs256("not-the-secret-at-all-0123456789", &c)
            };
            bearer(&forged)
        }
        Kind::NoAud => bearer(&token(without("aud"))),
        Kind::NoIss => bearer(&token(without("iss"))),
        Kind::FutureIat => {
            let mut c = claims(aud, iss, good_scopes);
            c["iat"] = (support::now() + 600).into();
            bearer(&token(c))
        }
        Kind::TypJwt | Kind::NoTyp => {
            let typ = (kind == Kind::TypJwt).then_some("JWT");
            let c = claims(aud, iss, good_scopes);
            if oauth {
                bearer(&support::rs256_typ(support::RSA1, "k1", typ, &c))
            } else {
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                header.typ = typ.map(str::to_owned);
                let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
                bearer(&jsonwebtoken::encode(&header, &c, &key).unwrap())
            }
        }
    }
}

async fn authenticator(mode: AuthMode, idp: &Idp) -> Authenticator {
    let mut config = AuthConfig::new(mode);
    config.api_key = Some(Secret::new(KEY));
    config.jwt_secret = Some(Secret::new(SECRET));
    config.issuer = Some(ISSUER.to_owned());
    config.oauth_issuer = Some(idp.base.clone());
    config.resource_url = Some(RESOURCE.to_owned());
    config.leeway = Duration::from_secs(30);
    Authenticator::new(config).await.unwrap()
}

#[tokio::test]
async fn every_mode_credential_and_scope_gets_the_expected_outcome() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let mut checked = 0;
    for mode in [
        AuthMode::ApiKey,
        AuthMode::Jwt,
        AuthMode::Hybrid,
        AuthMode::OAuth,
    ] {
        let auth = authenticator(mode, &idp).await;
        for kind in KINDS {
            for scope in [TestScope::MailScan, TestScope::UnsubscribeExecute] {
                let outcome = auth.authorize(&credential(mode, kind, &idp), scope).await;
                let got = match &outcome {
                    Ok(_) => Ok(()),
                    Err(AuthError::Forbidden(missing)) => {
                        assert_eq!(*missing, scope, "403 must name the scope");
                        Err("403")
                    }
                    Err(AuthError::Unauthenticated(reason)) => Err(reason.as_str()),
                    Err(other) => panic!("unexpected {other:?}"),
                };
                assert_eq!(
                    got,
                    expected(mode, kind),
                    "mode {mode}, credential {kind:?}, scope {scope:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * KINDS.len() * 2);
}

#[tokio::test]
async fn jwt_principal_carries_subject_tenant_and_scopes() {
    let idp = Idp::start(vec![]).await;
    let auth = authenticator(AuthMode::Jwt, &idp).await;
    let mut c = claims("quietbox", ISSUER, "mail:scan");
    c["scp"] = serde_json::json!(["unsubscribe:read", "other:thing"]);
    let principal = auth
        .authenticate(&bearer(&support::hs256(SECRET, &c)))
        .await
        .unwrap();
    assert_eq!(principal.subject, "user-1");
    assert_eq!(principal.tenant, "acme");
    assert!(principal.scopes.contains(TestScope::MailScan));
    assert!(principal.scopes.contains(TestScope::UnsubscribeRead));
    assert!(!principal.scopes.contains(TestScope::UnsubscribeExecute));
}

#[tokio::test]
async fn leeway_accepts_small_skew_and_refuses_future_nbf() {
    let idp = Idp::start(vec![]).await;
    let auth = authenticator(AuthMode::Jwt, &idp).await;
    let mut c = claims("quietbox", ISSUER, "mail:scan");
    c["exp"] = (support::now() - 10).into();
    assert!(
        auth.authenticate(&bearer(&support::hs256(SECRET, &c)))
            .await
            .is_ok(),
        "10 s past exp is inside 30 s leeway"
    );
    let mut c = claims("quietbox", ISSUER, "mail:scan");
    c["nbf"] = (support::now() + 600).into();
    let err = auth
        .authenticate(&bearer(&support::hs256(SECRET, &c)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "not_yet_valid");
}

#[tokio::test]
async fn an_iat_inside_the_leeway_is_accepted_and_beyond_it_refused() {
    let idp = Idp::start(vec![]).await;
    let auth = authenticator(AuthMode::Jwt, &idp).await;
    let mut c = claims("quietbox", ISSUER, "mail:scan");
    c["iat"] = (support::now() + 10).into();
    auth.authenticate(&bearer(&support::hs256(SECRET, &c)))
        .await
        .expect("10 s of skew is inside the 30 s leeway");
    c["iat"] = (support::now() + 90).into();
    let err = auth
        .authenticate(&bearer(&support::hs256(SECRET, &c)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "issued_in_future");
}

#[tokio::test]
async fn without_a_configured_issuer_iss_is_optional_but_aud_is_not() {
    let mut config = AuthConfig::new(AuthMode::Jwt);
    config.jwt_secret = Some(Secret::new(SECRET));
    // Even an explicit "no audience" keeps requiring `aud`, then the default `quietbox`.
    config.audience = None;
    let auth = Authenticator::new(config).await.unwrap();
    let mut c = claims("quietbox", ISSUER, "mail:scan");
    c.as_object_mut().unwrap().remove("iss");
    auth.authenticate(&bearer(&support::hs256(SECRET, &c)))
        .await
        .expect("no issuer configured: iss is not required");
    c.as_object_mut().unwrap().remove("aud");
    let err = auth
        .authenticate(&bearer(&support::hs256(SECRET, &c)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "missing_claim");
    let c = claims("someone-else", ISSUER, "mail:scan");
    let err = auth
        .authenticate(&bearer(&support::hs256(SECRET, &c)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "wrong_audience");
}

#[tokio::test]
async fn oauth_accepts_at_jwt_in_either_spelling() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let auth = authenticator(AuthMode::OAuth, &idp).await;
    let c = claims(RESOURCE, &idp.base, "mail:scan");
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        let token = support::rs256_typ(support::RSA1, "k1", Some(typ), &c);
        auth.authenticate(&bearer(&token))
            .await
            .unwrap_or_else(|e| panic!("typ {typ}: {e}"));
    }
    let token = support::rs256_typ(support::RSA1, "k1", Some("id_token+jwt"), &c);
    let err = auth.authenticate(&bearer(&token)).await.unwrap_err();
    assert_eq!(err.reason(), "wrong_token_type");
}

#[tokio::test]
async fn incomplete_settings_refuse_to_build() {
    let mut config = AuthConfig::new(AuthMode::ApiKey);
    assert!(Authenticator::new(config.clone()).await.is_err(), "no key");
    config.api_key = Some(Secret::new("  "));
    assert!(Authenticator::new(config).await.is_err(), "blank key");
    let config = AuthConfig::new(AuthMode::Jwt);
    assert!(
        Authenticator::new(config).await.is_err(),
        "no secret nor JWKS"
    );
    let mut config = AuthConfig::new(AuthMode::OAuth);
    config.oauth_issuer = Some("http://127.0.0.1:9".to_owned());
    assert!(
        Authenticator::new(config.clone()).await.is_err(),
        "no resource"
    );
    config.resource_url = Some(RESOURCE.to_owned());
    let err = Authenticator::new(config).await.unwrap_err();
    assert!(err.to_string().contains("discover"), "{err}");
}

#[tokio::test]
async fn secrets_do_not_appear_in_debug_output() {
    let idp = Idp::start(vec![]).await;
    let auth = authenticator(AuthMode::Hybrid, &idp).await;
    let shown = format!("{auth:?}");
    assert!(!shown.contains(KEY) && !shown.contains(SECRET), "{shown}");
}
