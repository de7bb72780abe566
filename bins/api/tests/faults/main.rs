//! Fault injection at service level (issue 11): the real `quietbox-api` binary with the Gmail
//! provider on testkit's fake Google, and with JWKS auth on a loopback JWKS server, while the
//! dependencies misbehave: latency spikes, 5xx bursts, dropped connections, a token endpoint
//! outage and a JWKS outage. For each: the service answers with clear problem+json errors from
//! the code table (never a panic or a bare 500), what is in state survives, and it recovers by
//! itself once the fault is removed, without a restart.
//!
//! Recovery is checked on outcomes, not on timings: after a fault is removed, a scan makes
//! exactly as many Google calls as the same scan made before the fault (no retry or backoff state
//! left behind). The timings are printed as `FIGURE` lines (`--no-capture` shows them).

mod google_retry_after;
mod google_scopes;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quietbox_testkit::binary::{self, Server, with};
use quietbox_testkit::jwks::JwksServer;
use quietbox_testkit::{FakeGoogle, FakeMessage, Faults, TokenOutage};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-api");
const KEY: &str = quietbox_testkit::API_KEY;
const RSA1_PEM: &str = include_str!("../../../../crates/auth/tests/keys/rsa1.pem");
const RSA1_JWKS: &str = include_str!("../../../../crates/auth/tests/keys/rsa1.jwks.json");

/// `count` newsletter mails from `senders` senders, starting at id `first`.
fn mails(first: usize, count: usize) -> Vec<FakeMessage> {
    (first..first + count)
        .map(|i| {
            let sender = i % 5;
            FakeMessage::new(
                &format!("m{i}"),
                &format!("\"News {sender}\" <news{sender}@letters{sender}.example.com>"),
                1_795_000_000_000 + i as i64 * 60_000,
                &[
                    ("List-Id", &format!("<list{sender}.letters.example.com>")),
                    (
                        "List-Unsubscribe",
                        &format!("<mailto:leave{sender}@letters{sender}.example.com>"),
                    ),
                ],
            )
        })
        .collect()
}

struct Rig {
    fake: FakeGoogle,
    server: Server,
    http: reqwest::Client,
}

/// quietbox-api on a fake Google holding 40 mails.
async fn gmail_rig() -> Rig {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.add_messages(mails(0, 40));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token.json");
    std::fs::write(&token, json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base), "client_id": "c"}).to_string()).unwrap();
    let env = with(
        binary::base_env(dir.path()),
        &[
            ("AUTH_MODE", "api_key"),
            ("AGENT_API_KEY", KEY),
            ("MAIL_PROVIDER", "gmail"),
            ("GOOGLE_TOKEN_FILE", &token.display().to_string()),
            ("GOOGLE_API_BASE_URL", &fake.base),
            ("RATE_LIMIT_PER_MIN", "100000"),
            ("RATE_LIMIT_BURST", "100000"),
        ],
    );
    let server = binary::spawn(BIN, dir, &env);
    Rig {
        fake,
        server,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap(),
    }
}

/// An answer: status, body, and whether it was `application/problem+json`.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    problem: bool,
    took: Duration,
}

impl Rig {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let started = Instant::now();
        let response = request.header("x-api-key", KEY).send().await.unwrap();
        let status = response.status().as_u16();
        let problem = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let text = response.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            problem,
            took: started.elapsed(),
        }
    }

    async fn scan(&self) -> Answer {
        self.send(
            self.http
                .post(self.server.url("/v1/mail/scan"))
                .json(&json!({"limit": 1000})),
        )
        .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.server.url(path))).await
    }

    /// A scan that must succeed; returns it and the Google API calls it made.
    async fn clean_scan(&self, when: &str) -> (Answer, usize) {
        let before = self.fake.api_calls();
        let scan = self.scan().await;
        assert_eq!(scan.status, 200, "{when}: {:?}", scan.body);
        (scan, self.fake.api_calls() - before)
    }

    /// Unsubscribes from `news0` (mailto, sent through Gmail) and records a `keep` decision:
    /// the state a fault must not lose.
    async fn make_state(&self) {
        let outcome = self
            .send(
                self.http
                    .post(self.server.url("/v1/unsubscribe"))
                    .json(&json!({"sender": "news0@letters0.example.com"})),
            )
            .await;
        assert_eq!(outcome.status, 200, "{:?}", outcome.body);
        assert_eq!(outcome.body["result"], "unsubscribed", "{:?}", outcome.body);
        let decision = self
            .send(
                self.http
                    .put(
                        self.server
                            .url("/v1/senders/news1@letters1.example.com/decision"),
                    )
                    .json(&json!({"decision": "keep"})),
            )
            .await;
        assert_eq!(decision.status, 200, "{:?}", decision.body);
    }

    /// The state of [`Rig::make_state`] is all there, read through the API.
    async fn assert_state_kept(&self, when: &str) {
        let history = self.get("/v1/unsubscribe/history").await;
        assert_eq!(history.status, 200, "{when}: {:?}", history.body);
        let entries = history.body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{when}: {:?}", history.body);
        assert_eq!(entries[0]["key"]["sender"], "news0@letters0.example.com");
        assert_eq!(entries[0]["status"], "succeeded", "{when}");
        let view = self.get("/v1/senders/news1@letters1.example.com").await;
        assert_eq!(view.status, 200, "{when}: {:?}", view.body);
        assert_eq!(view.body["decision"]["decision"], "keep", "{when}");
        let sent = self.fake.sent().len();
        assert_eq!(sent, 1, "{when}: one unsubscribe mail went out, not {sent}");
    }

    async fn metrics(&self) -> String {
        self.http
            .get(self.server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// No answer of the service was a 500 (a panic or an unmapped error).
    async fn assert_no_500(&self) {
        let metrics = self.metrics().await;
        let five_hundreds: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("http_requests_total{") && l.contains("status=\"500\""))
            .collect();
        assert!(five_hundreds.is_empty(), "{five_hundreds:?}");
        assert!(
            !self.server.logs().contains("panicked"),
            "{}",
            self.server.logs()
        );
    }
}

/// A problem+json answer with `status` and `code`, from the error-code table.
fn assert_problem(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert!(answer.problem, "not problem+json: {answer:?}");
    assert_eq!(answer.body["code"], code, "{answer:?}");
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "a problem says what happened: {answer:?}"
    );
}

// Multi-threaded: the harness blocks a thread reading the child's first line while the fake
// Google, on this runtime, must answer the child's start-up calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_burst_is_retried_a_5xx_outage_is_a_502_problem_and_scans_recover_at_full_speed() {
    let rig = gmail_rig().await;
    let (first, _) = rig.clean_scan("first scan").await;
    assert_eq!(first.body["total"], 40);
    rig.make_state().await;
    rig.fake.add_messages(mails(40, 5));
    let (baseline, clean_calls) = rig.clean_scan("incremental scan before faults").await;
    assert_eq!(baseline.body["incremental"], true);

    // A burst the retries absorb (the scan's first call, `history.list`, takes it all, with
    // backoff): the scan still sees everything.
    rig.fake.add_messages(mails(45, 5));
    rig.fake.set_faults(Faults {
        fail_next: 4,
        ..Faults::default()
    });
    let (burst, burst_calls) = rig.clean_scan("during a 4-call burst").await;
    assert_eq!(burst.body["total"], 50, "{:?}", burst.body);
    assert!(burst_calls > clean_calls, "the burst was retried");

    // An outage longer than the retries: a clear 502, in Retry-After steps, and reads of state
    // still answer meanwhile.
    rig.fake.set_faults(Faults {
        fail_next: 100_000,
        retry_after: Some(1),
        ..Faults::default()
    });
    let outage = rig.scan().await;
    assert_problem(&outage, 502, "upstream_unavailable");
    let detail = outage.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("503") || detail.contains("gave up"),
        "{detail}"
    );
    rig.assert_state_kept("during the outage").await;

    // Removed: the next scan recovers by itself and costs what a clean scan costs.
    rig.fake.set_faults(Faults::default());
    rig.fake.add_messages(mails(50, 5));
    let (after, after_calls) = rig.clean_scan("after the outage").await;
    assert_eq!(after.body["total"], 55, "{:?}", after.body);
    assert_eq!(
        after.body["incremental"], true,
        "the stored history id survived"
    );
    assert_eq!(
        after_calls, clean_calls,
        "no retry or backoff state outlives the fault"
    );
    rig.assert_state_kept("after the outage").await;
    rig.assert_no_500().await;
    eprintln!(
        "FIGURE faults 5xx: clean incremental scan {clean_calls} calls in {:?}; 4-call burst absorbed in {burst_calls} calls, {:?}; sustained 503 (Retry-After 1) -> 502 upstream_unavailable after {:?}; first scan after removal {after_calls} calls in {:?}",
        baseline.took, burst.took, outage.took, after.took
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_spikes_and_dropped_connections_slow_a_scan_but_lose_nothing() {
    let rig = gmail_rig().await;
    rig.clean_scan("first scan").await;
    rig.make_state().await;
    rig.fake.add_messages(mails(40, 5));
    let (baseline, clean_calls) = rig.clean_scan("incremental scan before faults").await;

    // A latency spike: every Google call takes 2 s. The scan waits it out; health and reads of
    // state are not held up behind it.
    rig.fake.add_messages(mails(45, 5));
    rig.fake.set_faults(Faults {
        latency: Duration::from_secs(2),
        ..Faults::default()
    });
    let (slow, health) = tokio::join!(rig.scan(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        rig.get("/health").await
    });
    assert_eq!(slow.status, 200, "{:?}", slow.body);
    assert_eq!(slow.body["total"], 50);
    assert_eq!(health.status, 200);
    rig.assert_state_kept("during the latency spike").await;

    // Dropped connections: the fake closes them without an answer; retries carry the scan.
    rig.fake.add_messages(mails(50, 5));
    rig.fake.set_faults(Faults {
        drop_next: 3,
        ..Faults::default()
    });
    let (dropped, dropped_calls) = rig.clean_scan("with 3 dropped connections").await;
    assert_eq!(dropped.body["total"], 55, "{:?}", dropped.body);
    assert!(
        dropped_calls > clean_calls,
        "the dropped calls were retried"
    );
    let metrics = rig.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gmail_requests_total{") && l.contains("status=\"error\"")),
        "dropped connections are counted: {metrics}"
    );

    rig.fake.set_faults(Faults::default());
    rig.fake.add_messages(mails(55, 5));
    let (after, after_calls) = rig.clean_scan("after the faults").await;
    assert_eq!(after.body["total"], 60);
    assert_eq!(after_calls, clean_calls, "no lingering retries");
    rig.assert_state_kept("after the faults").await;
    rig.assert_no_500().await;
    eprintln!(
        "FIGURE faults latency/drops: clean incremental scan {clean_calls} calls in {:?}; with 2 s latency per call {:?} (health answered meanwhile); 3 dropped connections absorbed in {dropped_calls} calls, {:?}; after removal {after_calls} calls in {:?}",
        baseline.took, slow.took, dropped.took, after.took
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_outage_is_a_502_problem_naming_it_and_heals_without_a_restart() {
    let rig = gmail_rig().await;
    rig.clean_scan("first scan").await;
    rig.make_state().await;
    rig.fake.add_messages(mails(40, 5));
    let (_, clean_calls) = rig.clean_scan("incremental scan before the outage").await;
    let mut seen = Vec::new();
    let mut total = 45;
    for outage in [TokenOutage::Unreachable, TokenOutage::Unavailable] {
        // The access token expires while the token endpoint is down: Google answers 401 and the
        // refresh cannot be had.
        rig.fake.set_token_outage(Some(outage));
        rig.fake.expire_access_tokens();
        let refused = rig.scan().await;
        assert_problem(&refused, 502, "upstream_unavailable");
        let detail = refused.body["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("token"), "{outage:?}: {detail}");
        let availability = rig.get("/v1/availability").await;
        assert_problem(&availability, 502, "upstream_unavailable");
        rig.assert_state_kept(&format!("during {outage:?}")).await;
        // /ready says the upstream is not usable.
        let ready = rig.get("/ready").await;
        seen.push(format!(
            "{outage:?}: scan {} {} in {:?} ({detail}); /ready {}",
            refused.status, refused.body["code"], refused.took, ready.status
        ));

        rig.fake.set_token_outage(None);
        let started = Instant::now();
        rig.fake.add_messages(mails(total, 5));
        total += 5;
        let (after, after_calls) = rig.clean_scan(&format!("after {outage:?}")).await;
        assert_eq!(after.body["incremental"], true);
        assert_eq!(after.body["total"], total, "{:?}", after.body);
        // One 401 (the expired token) then the same calls as a clean scan.
        assert_eq!(after_calls, clean_calls + 1, "{outage:?}");
        seen.push(format!("recovered in {:?}", started.elapsed()));
    }
    rig.assert_state_kept("after the outages").await;
    rig.assert_no_500().await;
    eprintln!("FIGURE faults token endpoint: {}", seen.join("; "));
}

/// An RS256 token signed with rsa1, under `kid`.
fn rs256(kid: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({"sub": "user-3", "aud": "quietbox", "scope": "unsubscribe:read", "exp": now + 600});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(RSA1_PEM.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// rsa1's public key published under each of `kids` (a rotation publishes the new kid).
fn jwks_with(kids: &[&str]) -> Value {
    let set: Value = serde_json::from_str(RSA1_JWKS).unwrap();
    let key = &set["keys"][0];
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| {
            let mut key = key.clone();
            key["kid"] = json!(kid);
            key
        })
        .collect();
    json!({ "keys": keys })
}

/// quietbox-api in `AUTH_MODE=jwt` with `AUTH_JWKS_URL` on `jwks` and a 1 s key TTL.
fn jwt_server(jwks: &JwksServer) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let env = with(
        binary::base_env(dir.path()),
        &[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWKS_URL", &jwks.url),
            ("AUTH_JWKS_TTL_S", "1"),
        ],
    );
    binary::spawn(BIN, dir, &env)
}

/// `GET /v1/unsubscribe/history` with `token`: status, body, `WWW-Authenticate`.
async fn history_with(server: &Server, token: &str) -> (u16, Value, String) {
    let response = reqwest::Client::new()
        .get(server.url("/v1/unsubscribe/history"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        challenge,
    )
}

/// How long to keep polling for a JWKS refetch: the refetch cool-down is 30 s (DESIGN §6).
const REFETCH_WAIT: Duration = Duration::from_secs(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_jwks_outage_cached_keys_keep_serving_and_unknown_kids_get_a_clear_401() {
    let jwks = JwksServer::start(jwks_with(&["rsa1"])).await;
    let server = jwt_server(&jwks);
    let known = rs256("rsa1");
    let unknown = rs256("rsa1-next");
    assert_eq!(history_with(&server, &known).await.0, 200);
    assert_eq!(jwks.served(), 1);

    // Down. The cached key keeps serving past its 1 s TTL, including once a refetch has failed
    // (stale-on-error); a token with an unknown kid is a 401 naming why, never a 5xx.
    jwks.set_up(false);
    let started = Instant::now();
    let mut rounds = 0;
    let mut unknown_reasons = std::collections::BTreeSet::new();
    loop {
        rounds += 1;
        let (status, body, _) = history_with(&server, &known).await;
        assert_eq!(
            status, 200,
            "round {rounds}: the cached key keeps serving: {body}"
        );
        let (status, body, challenge) = history_with(&server, &unknown).await;
        assert_eq!(status, 401, "round {rounds}: {body}");
        assert_eq!(body["code"], "unauthenticated", "{body}");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        unknown_reasons.insert(body["detail"].as_str().unwrap_or_default().to_owned());
        if jwks.dropped() > 0 {
            // One more round after the failed refetch: stale-on-error.
            let (status, body, _) = history_with(&server, &known).await;
            assert_eq!(status, 200, "after a failed refetch: {body}");
            break;
        }
        assert!(
            started.elapsed() < REFETCH_WAIT,
            "no refetch was tried while the JWKS was down"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let failed_after = started.elapsed();
    assert_eq!(
        jwks.dropped(),
        1,
        "one refetch per cool-down, not one per request"
    );
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("jwt_verify_errors_total{reason=\"unknown_kid\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
    assert!(!metrics.contains("status=\"503\""), "{metrics}");
    eprintln!(
        "FIGURE faults JWKS outage (warm cache): {rounds} rounds of 2 requests; the cached kid answered 200 throughout, the unknown kid 401 ({unknown_reasons:?}); the first refetch (failed, connection closed) came {failed_after:?} after the outage began, and the cached key kept serving after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_down_at_start_is_a_401_until_it_is_back_then_rotated_kids_verify_without_a_restart()
{
    let jwks = JwksServer::start(jwks_with(&["rsa1"])).await;
    jwks.set_up(false);
    let server = jwt_server(&jwks);
    let (status, body, challenge) = history_with(&server, &rs256("rsa1")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthenticated", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default().to_owned();
    assert!(
        detail.contains("signing keys cannot be fetched") || challenge.contains("jwks_unavailable"),
        "the refusal says the keys are unavailable: {detail} / {challenge}"
    );
    assert_eq!(jwks.dropped(), 1);

    // Back, with a rotated key set: within the refetch cool-down the service recovers by itself.
    jwks.set_document(jwks_with(&["rsa1", "rsa1-next"]));
    jwks.set_up(true);
    let back = Instant::now();
    let mut refused = 0;
    loop {
        let (status, body, _) = history_with(&server, &rs256("rsa1")).await;
        if status == 200 {
            break;
        }
        assert_eq!(
            status, 401,
            "only 401 while waiting for the refetch: {body}"
        );
        refused += 1;
        assert!(back.elapsed() < REFETCH_WAIT, "never recovered: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recovered = back.elapsed();
    let (status, body, _) = history_with(&server, &rs256("rsa1-next")).await;
    assert_eq!(
        status, 200,
        "the rotated kid came with the same fetch: {body}"
    );
    assert_eq!(jwks.served(), 1, "one fetch after the outage");
    eprintln!(
        "FIGURE faults JWKS down at start: 401 ({detail}); after it came back, {refused} more 401s then 200 after {recovered:?} (the 30 s refetch cool-down), the rotated kid verified by the same fetch"
    );
}

/// Key fetches never go through a proxy named in the environment (`HTTP_PROXY`, `HTTPS_PROXY`,
/// `ALL_PROXY`): a proxy an attacker can set in a pod's environment would otherwise see, and
/// could answer, every JWKS fetch. The "proxy" here is a listener that counts connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_fetches_ignore_proxy_variables_in_the_environment() {
    let jwks = JwksServer::start(jwks_with(&["rsa1"])).await;
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = proxied.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = proxy.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let env = with(
        binary::base_env(dir.path()),
        &[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWKS_URL", &jwks.url),
            ("HTTP_PROXY", &proxy_url),
            ("HTTPS_PROXY", &proxy_url),
            ("ALL_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("NO_PROXY", ""),
        ],
    );
    let server = binary::spawn(BIN, dir, &env);
    let (status, body, _) = history_with(&server, &rs256("rsa1")).await;
    assert_eq!(
        status, 200,
        "the key came straight from the JWKS server: {body}"
    );
    assert_eq!(jwks.served(), 1);
    assert_eq!(
        proxied.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection reached the proxy named in the environment"
    );
}
