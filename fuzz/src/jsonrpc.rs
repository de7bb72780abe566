//! Fuzzes the A2A JSON-RPC endpoint end to end: any body POSTed to the router (with a valid
//! key, on the local provider) is answered with JSON — a result or a JSON-RPC error — never a
//! panic and never a 5xx.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use quietbox_runtime::config::{Binary, RawSettings, Settings};
use tower::ServiceExt;

const KEY: &str = "fuzz-api-key-0123456789abcdef";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample");
        let env: HashMap<String, String> = [
            ("AGENT_API_KEY", KEY.to_owned()),
            ("DATA_DIR", dir.path().to_string_lossy().into_owned()),
            ("LOCAL_MBOX", format!("{sample}/inbox.mbox")),
            ("LOCAL_ICS", format!("{sample}/calendar.ics")),
            // The fuzzer must not spend its time in 429s.
            ("RATE_LIMIT_PER_MIN", "1000000".to_owned()),
            ("RATE_LIMIT_BURST", "1000000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let raw = RawSettings::load_from(&env).expect("raw settings");
        let settings = Settings::from_raw(Binary::A2a, &raw).expect("settings");
        let app = runtime
            .block_on(quietbox_runtime::wiring::build(settings))
            .expect("app");
        let router = quietbox_a2a::a2a::router(app);
        Fixture {
            runtime,
            router,
            _dir: dir,
        }
    })
}

/// One fuzz input; panics when a property above does not hold.
pub fn run(data: &[u8]) {
    let fixture = fixture();
    let request = http::Request::post("/")
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .expect("request");
    let response = fixture
        .runtime
        .block_on(fixture.router.clone().oneshot(request))
        .expect("infallible");
    assert!(
        !response.status().is_server_error(),
        "5xx for {:?}",
        String::from_utf8_lossy(data)
    );
}
