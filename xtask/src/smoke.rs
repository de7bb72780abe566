//! `cargo xtask smoke`: the security runbook's canary checks against the three real binaries.
//!
//! It starts `quietbox-api`, `quietbox-a2a` and `quietbox-mcp` on one temporary data directory,
//! the local provider on `data/sample/`, free ports and a fresh API key, then checks what an
//! operator checks after a rollout: health of each, the agent card, an A2A `SendMessage`, an MCP
//! handshake and tool listing over streamable HTTP, that the REST API refuses a request without
//! credentials and answers one with them, that each `/metrics` carries the series the SLO alerts
//! query, and that every binary stops cleanly on SIGTERM.
//! It prints one row per check (check / result / latency) and fails when any check fails.
//!
//! `--bin-dir DIR` runs the checks against other builds of the binaries (a release candidate);
//! without it the debug binaries are built first.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::fleet::{self, BINARIES, Fleet, Launch, Logs, ScratchDir};
use crate::http::{self, Response};

/// Every request of the canary must answer within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// One row of the report.
struct Row {
    check: String,
    outcome: Result<String>,
    latency: Duration,
}

/// Runs the smoke checks; `args` are the command's flags.
pub fn run(args: &[String]) -> Result<()> {
    let bin_dir = match args {
        [] => {
            fleet::build_binaries()?;
            fleet::debug_bin_dir()
        }
        [flag, dir] if flag == "--bin-dir" => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask smoke [--bin-dir DIR]"),
    };
    let scratch = ScratchDir::new("smoke")?;
    let data = scratch.path().join("data");
    let sample = fleet::workspace_root().join("data/sample");
    let key = api_key();
    let env: Vec<(String, String)> = [
        ("DATA_DIR", data.display().to_string()),
        ("MAIL_PROVIDER", "local".to_owned()),
        (
            "LOCAL_MBOX",
            sample.join("inbox.mbox").display().to_string(),
        ),
        (
            "LOCAL_ICS",
            sample.join("calendar.ics").display().to_string(),
        ),
        ("AUTH_MODE", "api_key".to_owned()),
        ("AGENT_API_KEY", key.clone()),
        ("SCHEDULER_ENABLED", "false".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        // The logs go to files that are shown on failure: no colour escapes in them.
        ("NO_COLOR", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let launch = Launch {
        bin_dir: &bin_dir,
        env,
        binds: [
            "127.0.0.1:0".into(),
            "127.0.0.1:0".into(),
            "127.0.0.1:0".into(),
        ],
        clear_env: true,
        logs: Logs::Files(scratch.path().to_path_buf()),
    };
    let started = Instant::now();
    let mut fleet = fleet::start(&launch)?;
    let start_latency = started.elapsed();
    let mut rows = vec![Row {
        check: "start the three binaries on one DATA_DIR".into(),
        outcome: Ok(fleet
            .processes
            .iter()
            .map(|p| format!("{} {}", short(p.name), p.base))
            .collect::<Vec<_>>()
            .join(", ")),
        latency: start_latency,
    }];
    rows.extend(checks(&fleet, &key));
    for (name, status, clean, took) in fleet.stop_all() {
        rows.push(Row {
            check: format!("{name} stops on SIGTERM"),
            outcome: if clean {
                Ok("exit 0".into())
            } else {
                Err(anyhow::anyhow!("not a clean exit: {status:?}"))
            },
            latency: took,
        });
    }
    print_table(&rows);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.check.as_str())
        .collect();
    if failed.is_empty() {
        eprintln!(
            "smoke passed: {} checks in {:.1} s",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    for process in &fleet.processes {
        eprintln!(
            "--- last lines of {} ---\n{}",
            process.name,
            process.log_tail(15)
        );
    }
    bail!("smoke failed: {}", failed.join("; "))
}

fn short(name: &str) -> &str {
    name.trim_start_matches("quietbox-")
}

/// A key nobody else knows: the canary must not depend on a well-known secret.
fn api_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("smoke-key-{:08x}-{nanos:032x}", std::process::id())
}

fn timed(check: impl Into<String>, f: impl FnOnce() -> Result<String>) -> Row {
    let started = Instant::now();
    let outcome = f();
    Row {
        check: check.into(),
        outcome,
        latency: started.elapsed(),
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response> {
    http::request("GET", url, headers, None, REQUEST_TIMEOUT)
}

fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> Result<Response> {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    http::request("POST", url, &all, Some(&body.to_string()), REQUEST_TIMEOUT)
}

fn expect_status(response: &Response, status: u16) -> Result<()> {
    ensure!(
        response.status == status,
        "status {} (wanted {status}): {:.200}",
        response.status,
        response.body
    );
    Ok(())
}

fn checks(fleet: &Fleet, key: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for name in BINARIES {
        let Some(process) = fleet.get(name) else {
            continue;
        };
        rows.push(timed(format!("GET /health ({})", short(name)), || {
            let response = get(&process.url("/health"), &[])?;
            expect_status(&response, 200)?;
            let body = response.json()?;
            ensure!(body["status"] == "ok", "body {body}");
            ensure!(body["service"] == name, "health of {}", body["service"]);
            Ok("ok".into())
        }));
    }
    let (Some(api), Some(a2a), Some(mcp)) = (
        fleet.get("quietbox-api"),
        fleet.get("quietbox-a2a"),
        fleet.get("quietbox-mcp"),
    ) else {
        return rows;
    };
    rows.push(timed("GET /ready (api)", || {
        let response = get(&api.url("/ready"), &[])?;
        expect_status(&response, 200)?;
        Ok("state writable, provider serving".into())
    }));
    rows.push(timed("GET /.well-known/agent-card.json (a2a)", || {
        let response = get(&a2a.url("/.well-known/agent-card.json"), &[])?;
        expect_status(&response, 200)?;
        let card = response.json()?;
        let interface = &card["supportedInterfaces"][0];
        ensure!(
            interface["protocolBinding"] == "JSONRPC",
            "binding {}",
            interface["protocolBinding"]
        );
        ensure!(
            interface["url"] == a2a.url("/"),
            "the card points at {}",
            interface["url"]
        );
        let skills = card["skills"].as_array().map_or(0, Vec::len);
        ensure!(skills > 0, "no skills");
        Ok(format!(
            "A2A {}, {skills} skills",
            interface["protocolVersion"].as_str().unwrap_or("?")
        ))
    }));
    rows.push(timed("A2A SendMessage unsubscribe_candidates", || {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
            "message": {"messageId": "smoke-1", "role": "ROLE_USER",
                        "parts": [{"data": {"skill": "unsubscribe_candidates"}}]}}});
        let response = post_json(
            &a2a.url("/"),
            &[("X-API-Key", key), ("A2A-Version", "1.0")],
            &request,
        )?;
        expect_status(&response, 200)?;
        let answer = response.json()?;
        let task = &answer["result"]["task"];
        ensure!(
            task["status"]["state"] == "TASK_STATE_COMPLETED",
            "answer {answer:.300}"
        );
        let candidates = task["artifacts"][0]["parts"][0]["data"]["candidates"]
            .as_array()
            .map_or(0, Vec::len);
        Ok(format!("TASK_STATE_COMPLETED, {candidates} candidates"))
    }));
    rows.push(timed("MCP initialize + tools/list (mcp)", || {
        mcp_tools(&mcp.url("/mcp"), key)
    }));
    rows.push(timed("REST without credentials is refused (api)", || {
        let response = get(&api.url("/v1/unsubscribe/candidates"), &[])?;
        expect_status(&response, 401)?;
        ensure!(
            response.header("www-authenticate").is_some(),
            "401 without WWW-Authenticate"
        );
        Ok("401 + WWW-Authenticate".into())
    }));
    rows.push(timed("GET /v1/unsubscribe/candidates (api, key)", || {
        let response = get(
            &api.url("/v1/unsubscribe/candidates"),
            &[("X-API-Key", key)],
        )?;
        expect_status(&response, 200)?;
        let body = response.json()?;
        let candidates = body["candidates"]
            .as_array()
            .with_context(|| format!("no candidates array: {body:.200}"))?;
        Ok(format!("{} candidates", candidates.len()))
    }));
    for process in [api, a2a, mcp] {
        rows.push(timed(
            format!("GET /metrics has the SLO series ({})", short(process.name)),
            || {
                // The alerts in deploy/prometheus query these names: a release that renamed one
                // would silence them.
                let response = get(&process.url("/metrics"), &[])?;
                expect_status(&response, 200)?;
                for series in [
                    "http_requests_total{",
                    "http_request_duration_seconds_bucket{",
                ] {
                    ensure!(response.body.contains(series), "no {series}..}} series");
                }
                Ok(format!("{} lines", response.body.lines().count()))
            },
        ));
    }
    rows
}

/// The MCP streamable-HTTP handshake (`initialize`, `notifications/initialized`) and `tools/list`.
fn mcp_tools(url: &str, key: &str) -> Result<String> {
    let accept = ("Accept", "application/json, text/event-stream");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "quietbox-smoke", "version": "1"}}});
    let response = post_json(url, &[("X-API-Key", key), accept], &init)?;
    expect_status(&response, 200)?;
    let answer = response.json()?;
    ensure!(
        answer["result"]["serverInfo"]["name"].is_string(),
        "initialize answered {answer:.300}"
    );
    let protocol = answer["result"]["protocolVersion"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let session = response
        .header("mcp-session-id")
        .context("no Mcp-Session-Id header")?
        .to_owned();
    let session_header = ("Mcp-Session-Id", session.as_str());
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = post_json(
        url,
        &[("X-API-Key", key), accept, session_header],
        &initialized,
    )?;
    ensure!(
        response.status == 202 || response.status == 200,
        "notifications/initialized: status {}",
        response.status
    );
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let response = post_json(url, &[("X-API-Key", key), accept, session_header], &list)?;
    expect_status(&response, 200)?;
    let answer = response.json()?;
    let tools: Vec<&str> = answer["result"]["tools"]
        .as_array()
        .with_context(|| format!("tools/list answered {answer:.300}"))?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for expected in [
        "get_availability",
        "scan_inbox",
        "list_unsubscribe_candidates",
    ] {
        ensure!(
            tools.contains(&expected),
            "{expected} missing from {tools:?}"
        );
    }
    Ok(format!("protocol {protocol}, {} tools", tools.len()))
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
    println!(
        "{:<width$}  {:<6}  {:>9}  detail",
        "check", "result", "latency"
    );
    println!("{:-<width$}  {:-<6}  {:->9}  {:-<6}", "", "", "", "");
    for row in rows {
        let (result, detail) = match &row.outcome {
            Ok(detail) => ("ok", detail.clone()),
            Err(error) => ("FAIL", format!("{error:#}")),
        };
        println!(
            "{:<width$}  {result:<6}  {:>6.1} ms  {detail}",
            row.check,
            row.latency.as_secs_f64() * 1000.0
        );
    }
}
