//! Crash consistency of `quietbox-a2a` (issue 11): the agent is SIGKILLed at random moments
//! while `unsubscribe` and `unsubscribe_digest` skills run (JSON-RPC `SendMessage` with a data
//! part), many times over one `DATA_DIR`. The cycle and the checks are testkit's
//! (`quietbox_testkit::crash`, shared with quietbox-api and quietbox-mcp): every state file
//! (`tasks.json` included) parses, no one-click endpoint is posted to twice, a final run records
//! every requested unsubscribe once, and no link goes out in two digests.
//!
//! `QUIETBOX_CRASH_CYCLES` (default 12 here) sets the number of kill cycles, `QUIETBOX_CRASH_SEED`
//! replays a run. The figures are printed with `eprintln!` (`--no-capture` shows them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quietbox_testkit::crash::{self, API_KEY, Call, Client, Target};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-a2a");

/// A2A 1.0 JSON-RPC: every operation is a `SendMessage` selecting its skill by a data part; the
/// answer is the completed task's first artifact data, a failed task or a JSON-RPC error is an
/// error.
struct A2a {
    http: reqwest::Client,
    url: String,
    next: Arc<AtomicU64>,
}

impl A2a {
    fn skill(&self, skill: &str, args: Value) -> Call {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "SendMessage",
            "params": {"message": {"messageId": format!("crash-{id}"), "role": "ROLE_USER",
                "parts": [{"data": {"skill": skill, "args": args}}]}}});
        let request = self
            .http
            .post(&self.url)
            .header("x-api-key", API_KEY)
            .json(&body);
        Box::pin(async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let answer: Value = response.json().await.map_err(|e| e.to_string())?;
            if !status.is_success() || answer.get("error").is_some() {
                return Err(format!("{status}: {answer}"));
            }
            let task = &answer["result"]["task"];
            if task["status"]["state"] != "TASK_STATE_COMPLETED" {
                return Err(format!("task not completed: {task}"));
            }
            Ok(task["artifacts"][0]["parts"][0]["data"].clone())
        })
    }
}

impl Client for A2a {
    fn scan(&self) -> Call {
        self.skill("scan_inbox", json!({"limit": 1000}))
    }

    fn unsubscribe(&self, sender: &str) -> Call {
        self.skill("unsubscribe", json!({"sender": sender}))
    }

    fn digest(&self) -> Call {
        self.skill("unsubscribe_digest", json!({"send": true}))
    }

    fn history(&self) -> Call {
        self.skill("unsubscribe_history", json!({}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_killed_during_unsubscribe_and_digest_skills_loses_nothing_and_repeats_nothing() {
    let target = Target {
        name: "quietbox-a2a",
        binary: BIN,
        env: Vec::new(),
        connect: Box::new(|base| {
            Box::pin(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                Arc::new(A2a {
                    http,
                    url: format!("{base}/"),
                    next: Arc::new(AtomicU64::new(1)),
                }) as Arc<dyn Client>
            })
        }),
    };
    let figures = crash::run(&target, crash::cycles(12), crash::seed()).await;
    eprintln!("{figures}");
}
