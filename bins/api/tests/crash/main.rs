//! Crash consistency end to end (issue 11): `quietbox-api` is SIGKILLed at random moments while
//! unsubscribes (RFC 8058 one-click to a loopback HTTPS endpoint) and digest sends are in flight,
//! many times over one `DATA_DIR`. Afterwards every state file parses and carries its version, no
//! one-click endpoint was posted to twice, a final uninterrupted run records every requested
//! unsubscribe exactly once, and no unsubscribe link went out in two digests.
//!
//! The cycle and the checks are testkit's (`quietbox_testkit::crash`, shared with quietbox-a2a
//! and quietbox-mcp); this file says how REST asks for each operation.
//! `QUIETBOX_CRASH_CYCLES` (default 25) sets the number of kill cycles, `QUIETBOX_CRASH_SEED`
//! replays a run (the seed is printed). The figures are printed with `eprintln!`.

use std::sync::Arc;
use std::time::Duration;

use quietbox_testkit::crash::{self, API_KEY, Call, Client, Target};
use serde_json::{Value, json};

const API: &str = env!("CARGO_BIN_EXE_quietbox-api");

/// REST: each operation is one request with the API key; a non-2xx answer is an error.
struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    fn send(&self, request: reqwest::RequestBuilder) -> Call {
        let request = request.header("x-api-key", API_KEY);
        Box::pin(async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{status}: {text}"));
            }
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
        })
    }

    fn post(&self, path: &str, body: Value) -> Call {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
    }
}

impl Client for Rest {
    fn scan(&self) -> Call {
        self.post("/v1/mail/scan", json!({"limit": 1000}))
    }

    fn unsubscribe(&self, sender: &str) -> Call {
        self.post("/v1/unsubscribe", json!({"sender": sender}))
    }

    fn digest(&self) -> Call {
        self.post("/v1/unsubscribe/digest", json!({"send": true}))
    }

    fn history(&self) -> Call {
        self.send(
            self.http
                .get(format!("{}/v1/unsubscribe/history", self.base)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_killed_during_unsubscribes_and_digests_loses_nothing_and_repeats_nothing() {
    let target = Target {
        name: "quietbox-api",
        binary: API,
        env: Vec::new(),
        connect: Box::new(|base| {
            Box::pin(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                Arc::new(Rest { http, base }) as Arc<dyn Client>
            })
        }),
    };
    let figures = crash::run(&target, crash::cycles(25), crash::seed()).await;
    eprintln!("{figures}");
}
