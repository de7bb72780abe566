//! The A2A 1.0 surface of `quietbox-a2a`: the agent card at `/.well-known/agent-card.json` and
//! the JSON-RPC 2.0 binding at `/` (`SendMessage`, `SendStreamingMessage`, `GetTask`,
//! `ListTasks`, `CancelTask`, `GetExtendedAgentCard`).
//!
//! Wire shapes follow the A2A 1.0 protocol buffers' JSON form (camelCase fields,
//! `TASK_STATE_*` and `ROLE_*` enums, parts as `{"text"}` or `{"data"}`). A message picks a skill
//! with a data part `{"skill": "...", "args": {...}}` or a short text command. Every skill needs
//! the same scope as its REST route; a missing scope is a 403 naming it, as on every surface.
//! Tasks are stored through the state port, so `GetTask` works from any process.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use quietbox_auth::http::{AuthLayer, AuthRejection};
use quietbox_auth::{AuthError, Principal, Scope};
use quietbox_core::ports::{NoProgress, ScanProgress};
use quietbox_core::store::{TaskQuery, TaskRecord};
use serde_json::{Value, json};

use crate::operations;
use crate::wiring::App;

/// The protocol version this agent speaks.
pub const PROTOCOL_VERSION: &str = "1.0";

/// JSON-RPC and A2A error codes.
mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    pub const TASK_NOT_FOUND: i64 = -32001;
    pub const TASK_NOT_CANCELABLE: i64 = -32002;
    pub const VERSION_NOT_SUPPORTED: i64 = -32009;
}

/// Streaming tasks running in this process, so `CancelTask` can stop them.
fn running()
-> &'static std::sync::Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>> {
    static RUNNING: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>,
    > = std::sync::OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// Sends scan progress as `TASK_STATE_WORKING` status updates on the task's SSE stream.
struct ChannelProgress {
    tx: tokio::sync::mpsc::Sender<Value>,
    id: Value,
    task_id: String,
    context_id: String,
}

impl ScanProgress for ChannelProgress {
    fn report(&self, done: usize, total: Option<usize>) {
        let text = match total {
            Some(total) => format!("scanned {done} of {total} messages"),
            None => format!("scanned {done} messages"),
        };
        let update = json!({"statusUpdate": {"taskId": self.task_id, "contextId": self.context_id,
            "status": status("TASK_STATE_WORKING", &self.context_id, &self.task_id, Some(&text))}});
        // Progress is best effort: a slow reader skips updates rather than slowing the scan.
        let _ = self.tx.try_send(rpc_result(&self.id, update));
    }
}

/// One skill: id, description, scope, examples.
struct Skill {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    scope: Scope,
    examples: &'static [&'static str],
}

const SKILLS: &[Skill] = &[
    Skill {
        id: "availability",
        name: "Calendar availability",
        description: "Busy intervals and free slots. Args: start, end (RFC 3339), slot_minutes, tz.",
        scope: Scope::AvailabilityRead,
        examples: &[
            "availability",
            "{\"skill\":\"availability\",\"args\":{\"tz\":\"Europe/Paris\",\"slot_minutes\":60}}",
        ],
    },
    Skill {
        id: "scan_inbox",
        name: "Inbox scan and triage",
        description: "Scans the inbox (incrementally when possible) and triages every message. Args: query, limit.",
        scope: Scope::MailScan,
        examples: &["scan inbox"],
    },
    Skill {
        id: "unsubscribe_candidates",
        name: "Unsubscribe candidates",
        description: "Senders worth leaving, ranked, with the method quietbox would use.",
        scope: Scope::UnsubscribeRead,
        examples: &["candidates"],
    },
    Skill {
        id: "unsubscribe_history",
        name: "Unsubscribe history",
        description: "Every unsubscribe attempt. Args: sender.",
        scope: Scope::UnsubscribeRead,
        examples: &["history"],
    },
    Skill {
        id: "unsubscribe",
        name: "Unsubscribe",
        description: "Unsubscribes from a sender (RFC 8058 one-click, mailto, or a recorded link), at most once. Args: sender or candidate_id, dry_run.",
        scope: Scope::UnsubscribeExecute,
        examples: &["unsubscribe news@example.com"],
    },
    Skill {
        id: "unsubscribe_digest",
        name: "Unsubscribe digest",
        description: "Previews or sends the digest of new candidates. Args: send.",
        scope: Scope::UnsubscribeDigest,
        examples: &["digest"],
    },
    Skill {
        id: "sender_decision",
        name: "Sender decision",
        description: "Records keep (never a candidate again) or auto_archive (its mail leaves the inbox) for a sender. Args: sender, decision.",
        scope: Scope::UnsubscribeExecute,
        examples: &[
            "{\"skill\":\"sender_decision\",\"args\":{\"sender\":\"a@example.com\",\"decision\":\"keep\"}}",
        ],
    },
    Skill {
        id: "unsubscribe_compliance",
        name: "Unsubscribe compliance",
        description: "Whether unsubscribed senders stopped: pending (inside the grace period), compliant, or violating with count and first/last violating dates. Args: sender.",
        scope: Scope::UnsubscribeRead,
        examples: &["compliance", "who is still sending after unsubscribe"],
    },
];

/// The A2A router (without the shared layers).
pub fn router(app: App) -> Router {
    let rpc = Router::new()
        .route("/", post(rpc))
        .layer(AuthLayer::new(app.auth.clone()));
    Router::new()
        .route("/.well-known/agent-card.json", get(card))
        .merge(rpc)
        .with_state(app)
}

fn base_url(headers: &HeaderMap, app: &App) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| app.settings.bind_addr.to_string());
    format!("http://{host}/")
}

fn agent_card(app: &App, url: &str) -> Value {
    let mode = app.auth.mode().as_str();
    let mut schemes = serde_json::Map::new();
    let mut requirements = Vec::new();
    if matches!(mode, "api_key" | "hybrid") {
        schemes.insert("api_key".into(), json!({"apiKeySecurityScheme": {"location": "header", "name": "X-API-Key", "description": "The operator's API key"}}));
        requirements.push(json!({"schemes": {"api_key": {"list": []}}}));
    }
    if matches!(mode, "jwt" | "hybrid" | "oauth") {
        schemes.insert("bearer".into(), json!({"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "JWT", "description": "A JWT carrying quietbox scopes"}}));
        requirements.push(json!({"schemes": {"bearer": {"list": []}}}));
    }
    let skills: Vec<Value> = SKILLS
        .iter()
        .map(|s| json!({"id": s.id, "name": s.name, "description": format!("{} Requires scope {}.", s.description, s.scope),
            "tags": [s.scope.as_str()], "examples": s.examples, "inputModes": ["text/plain", "application/json"], "outputModes": ["application/json", "text/plain"]}))
        .collect();
    json!({
        "name": "quietbox",
        "description": "A personal mail-and-calendar agent: free slots, inbox triage, unsubscribe candidates, unsubscribes, sender decisions, the unsubscribe compliance watch and a digest.",
        "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": PROTOCOL_VERSION}],
        "provider": {"organization": "quietbox", "url": "https://quietbox.dev"},
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": {"streaming": true, "pushNotifications": false, "extendedAgentCard": true},
        "securitySchemes": schemes,
        "securityRequirements": requirements,
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["application/json", "text/plain"],
        "skills": skills,
    })
}

async fn card(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    axum::Json(agent_card(&app, &base_url(&headers, &app)))
}

fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A refusal before or while dispatching.
enum Failure {
    /// A JSON-RPC error object.
    Rpc(i64, String),
    /// An HTTP-level refusal (403 missing scope, 429 rate limit), rendered by the auth crate.
    Auth(AuthError),
}

impl From<AuthError> for Failure {
    fn from(error: AuthError) -> Self {
        Failure::Auth(error)
    }
}

fn refuse(app: &App, error: AuthError) -> Response {
    AuthRejection::new(error, Some(&app.auth)).into_response()
}

async fn rpc(
    State(app): State<App>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(version) = headers.get("a2a-version").and_then(|v| v.to_str().ok()) {
        let v = version.trim();
        if !(v == "1.0" || v == "1" || v.is_empty()) {
            return axum::Json(rpc_error(
                &Value::Null,
                codes::VERSION_NOT_SUPPORTED,
                format!("A2A version {v} is not supported; this agent speaks {PROTOCOL_VERSION}"),
            ))
            .into_response();
        }
    }
    let url = base_url(&headers, &app);
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            return axum::Json(rpc_error(
                &Value::Null,
                codes::PARSE_ERROR,
                format!("Parse error: {e}"),
            ))
            .into_response();
        }
    };
    if let Value::Array(batch) = parsed {
        if batch.is_empty() {
            return axum::Json(rpc_error(
                &Value::Null,
                codes::INVALID_REQUEST,
                "empty batch",
            ))
            .into_response();
        }
        let mut answers = Vec::new();
        for request in batch {
            let id = request.get("id").cloned().unwrap_or(Value::Null);
            if request.get("method").and_then(Value::as_str) == Some("SendStreamingMessage") {
                answers.push(rpc_error(
                    &id,
                    codes::INVALID_REQUEST,
                    "SendStreamingMessage cannot be batched",
                ));
                continue;
            }
            match dispatch(&app, &principal, &url, &request).await {
                Ok(result) => answers.push(rpc_result(&id, result)),
                Err(Failure::Rpc(code, message)) => answers.push(rpc_error(&id, code, message)),
                Err(Failure::Auth(error)) => {
                    answers.push(rpc_error(&id, codes::INVALID_REQUEST, error.to_string()))
                }
            }
        }
        return axum::Json(Value::Array(answers)).into_response();
    }
    let id = parsed.get("id").cloned().unwrap_or(Value::Null);
    if parsed.get("method").and_then(Value::as_str) == Some("SendStreamingMessage") {
        return match stream(&app, &principal, &parsed).await {
            Ok(response) => response,
            Err(Failure::Rpc(code, message)) => {
                axum::Json(rpc_error(&id, code, message)).into_response()
            }
            Err(Failure::Auth(error)) => refuse(&app, error),
        };
    }
    match dispatch(&app, &principal, &url, &parsed).await {
        Ok(result) => axum::Json(rpc_result(&id, result)).into_response(),
        Err(Failure::Rpc(code, message)) => {
            axum::Json(rpc_error(&id, code, message)).into_response()
        }
        Err(Failure::Auth(error)) => refuse(&app, error),
    }
}

fn check_envelope(request: &Value) -> Result<(&str, Value), Failure> {
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Failure::Rpc(
            codes::INVALID_REQUEST,
            "Invalid Request: jsonrpc must be \"2.0\"".into(),
        ));
    }
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Failure::Rpc(
                codes::INVALID_REQUEST,
                "Invalid Request: method must be a string".into(),
            )
        })?;
    Ok((
        method,
        request
            .get("params")
            .cloned()
            .unwrap_or(Value::Object(Default::default())),
    ))
}

async fn dispatch(
    app: &App,
    principal: &Principal,
    url: &str,
    request: &Value,
) -> Result<Value, Failure> {
    let (method, params) = check_envelope(request)?;
    match method {
        "SendMessage" => {
            let (task, _) = run_message(app, principal, &params).await?;
            Ok(json!({ "task": task }))
        }
        "GetTask" => Ok(stored_task(app, &params, method).await?.1.payload),
        "ListTasks" => {
            let query = TaskQuery {
                context_id: params
                    .get("contextId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                state: params
                    .get("status")
                    .and_then(Value::as_str)
                    .filter(|s| *s != "TASK_STATE_UNSPECIFIED")
                    .map(str::to_owned),
                page_size: params.get("pageSize").and_then(Value::as_u64).unwrap_or(0) as usize,
                page_token: params
                    .get("pageToken")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
                owner: None,
                skills: None,
            };
            let page = app
                .state
                .list_tasks(query)
                .await
                .map_err(|e| Failure::Rpc(codes::INVALID_PARAMS, e.to_string()))?;
            let size = page.tasks.len();
            Ok(
                json!({"tasks": page.tasks.into_iter().map(|t| t.payload).collect::<Vec<_>>(),
                "nextPageToken": page.next_page_token.unwrap_or_default(), "pageSize": size, "totalSize": page.total_size}),
            )
        }
        "CancelTask" => {
            let (id, record) = stored_task(app, &params, method).await?;
            let id = id.as_str();
            let not_cancelable = |state: &str| {
                Failure::Rpc(
                    codes::TASK_NOT_CANCELABLE,
                    format!("task {id} is {state}; it can no longer be canceled"),
                )
            };
            let handle = running().lock().ok().and_then(|mut r| r.remove(id));
            match handle {
                Some(handle) => handle.abort(),
                // Running on another replica (the store is shared): it is marked canceled here,
                // and the store keeps that against the other replica's later final write.
                None if quietbox_state::FINAL_TASK_STATES.contains(&record.state.as_str()) => {
                    return Err(not_cancelable(&record.state));
                }
                None => {}
            }
            let mut task = record.payload;
            task["status"] = status(
                "TASK_STATE_CANCELED",
                &record.context_id,
                id,
                Some("canceled by request"),
            );
            save(app, &task, "TASK_STATE_CANCELED").await?;
            // The task may have finished on its replica between the read and the write.
            let (_, stored) = stored_task(app, &params, method).await?;
            if stored.state != "TASK_STATE_CANCELED" {
                return Err(not_cancelable(&stored.state));
            }
            Ok(task)
        }
        "GetExtendedAgentCard" => Ok(agent_card(app, url)),
        other => Err(Failure::Rpc(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    }
}

/// The task named by `params.id`: -32602 without an id, -32001 when it does not exist.
async fn stored_task(
    app: &App,
    params: &Value,
    method: &str,
) -> Result<(String, TaskRecord), Failure> {
    let id = params
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::Rpc(codes::INVALID_PARAMS, format!("{method} needs params.id")))?;
    let record = app
        .state
        .get_task(id)
        .await
        .map_err(|e| Failure::Rpc(codes::INTERNAL, e.to_string()))?;
    let record = record
        .ok_or_else(|| Failure::Rpc(codes::TASK_NOT_FOUND, format!("task {id} not found")))?;
    Ok((id.to_owned(), record))
}

/// Which skill a message asks for, and its arguments.
fn select_skill(message: &Value) -> Result<(&'static Skill, Value), Failure> {
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Failure::Rpc(
                codes::INVALID_PARAMS,
                "params.message.parts must be a non-empty array".into(),
            )
        })?;
    let known = || SKILLS.iter().map(|s| s.id).collect::<Vec<_>>().join(", ");
    for part in parts {
        if let Some(data) = part.get("data")
            && let Some(name) = data.get("skill").and_then(Value::as_str)
        {
            let skill = SKILLS.iter().find(|s| s.id == name).ok_or_else(|| {
                Failure::Rpc(
                    codes::INVALID_PARAMS,
                    format!("unknown skill {name:?}; skills: {}", known()),
                )
            })?;
            return Ok((skill, data.get("args").cloned().unwrap_or(json!({}))));
        }
    }
    let text = parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = text.split_whitespace().collect();
    let lower = text.to_ascii_lowercase();
    let pick = |id: &str| SKILLS.iter().find(|s| s.id == id);
    let chosen = if lower.starts_with("unsubscribe ") && words.len() >= 2 {
        pick("unsubscribe").map(|s| {
            (
                s,
                json!({"sender": words[1], "dry_run": lower.contains("dry")}),
            )
        })
    } else if lower.contains("complian") || lower.contains("still sending") {
        pick("unsubscribe_compliance").map(|s| (s, json!({})))
    } else if lower.contains("candidate") {
        pick("unsubscribe_candidates").map(|s| (s, json!({})))
    } else if lower.contains("history") {
        pick("unsubscribe_history").map(|s| (s, json!({})))
    } else if lower.contains("digest") {
        pick("unsubscribe_digest").map(|s| (s, json!({"send": lower.contains("send")})))
    } else if lower.contains("scan") || lower.contains("triage") {
        pick("scan_inbox").map(|s| (s, json!({})))
    } else if lower.contains("availab") || lower.contains("free") {
        pick("availability").map(|s| (s, json!({})))
    } else {
        None
    };
    chosen.ok_or_else(|| Failure::Rpc(codes::INVALID_PARAMS, format!("no skill matches {text:?}; send a data part {{\"skill\": ..., \"args\": {{...}}}} with one of: {}", known())))
}

fn status(state: &str, context: &str, task: &str, text: Option<&str>) -> Value {
    let mut status = json!({"state": state, "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
    if let Some(text) = text {
        status["message"] = json!({"messageId": uuid::Uuid::new_v4().to_string(), "contextId": context, "taskId": task,
            "role": "ROLE_AGENT", "parts": [{"text": text}]});
    }
    status
}

struct Prepared {
    skill: &'static Skill,
    args: Value,
    task_id: String,
    context_id: String,
    history: Vec<Value>,
}

async fn prepare(app: &App, principal: &Principal, params: &Value) -> Result<Prepared, Failure> {
    let message = params
        .get("message")
        .ok_or_else(|| Failure::Rpc(codes::INVALID_PARAMS, "params.message is required".into()))?;
    let (skill, args) = select_skill(message)?;
    principal.require(skill.scope)?;
    // The same per-tenant budgets as the REST routes: 429 with Retry-After.
    let operation = match skill.id {
        "scan_inbox" => Some("scan"),
        "unsubscribe" => Some("unsubscribe"),
        "unsubscribe_digest" => Some("digest"),
        _ => None,
    };
    if let Some(operation) = operation {
        app.limiter.check(&principal.tenant, operation).await?;
    }
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let task_id = uuid::Uuid::new_v4().to_string();
    let mut user = message.clone();
    user["contextId"] = json!(context_id);
    user["taskId"] = json!(task_id);
    Ok(Prepared {
        skill,
        args,
        task_id,
        context_id,
        history: vec![user],
    })
}

async fn save(app: &App, task: &Value, state: &str) -> Result<(), Failure> {
    let now = Utc::now();
    let record = TaskRecord {
        id: task["id"].as_str().unwrap_or_default().to_owned(),
        context_id: task["contextId"].as_str().unwrap_or_default().to_owned(),
        state: state.to_owned(),
        payload: task.clone(),
        created_at: now,
        updated_at: now,
        owner: quietbox_core::store::TaskOwner::legacy(),
        skill: None,
    };
    app.state
        .put_task(record)
        .await
        .map_err(|e| Failure::Rpc(codes::INTERNAL, e.to_string()))
}

fn artifact(skill: &Skill, result: Value, summary: &str) -> Value {
    json!({"artifactId": uuid::Uuid::new_v4().to_string(), "name": skill.id, "parts": [{"data": result}, {"text": summary}]})
}

/// Runs the prepared skill; returns the final task (stored), its state and its artifact.
async fn finish(
    app: &App,
    principal: &Principal,
    p: &Prepared,
    progress: &dyn ScanProgress,
) -> Result<(Value, &'static str, Option<Value>), Failure> {
    let (state, art, text) =
        match operations::execute(app, principal, p.skill.id, &p.args, progress).await {
            Ok((result, summary)) => (
                "TASK_STATE_COMPLETED",
                Some(artifact(p.skill, result, &summary)),
                summary,
            ),
            Err(error) => ("TASK_STATE_FAILED", None, error),
        };
    let task = json!({"id": p.task_id, "contextId": p.context_id, "status": status(state, &p.context_id, &p.task_id, Some(&text)),
        "artifacts": art.iter().cloned().collect::<Vec<_>>(), "history": p.history});
    save(app, &task, state).await?;
    // Canceled meanwhile from another replica: the store kept the cancel, and so does the answer.
    if let Ok(Some(stored)) = app.state.get_task(&p.task_id).await
        && stored.state != state
        && stored.state == "TASK_STATE_CANCELED"
    {
        return Ok((stored.payload, "TASK_STATE_CANCELED", None));
    }
    Ok((task, state, art))
}

async fn run_message(
    app: &App,
    principal: &Principal,
    params: &Value,
) -> Result<(Value, Option<Value>), Failure> {
    let p = prepare(app, principal, params).await?;
    let (task, _, art) = finish(app, principal, &p, &NoProgress).await?;
    Ok((task, art))
}

async fn stream(app: &App, principal: &Principal, request: &Value) -> Result<Response, Failure> {
    let (_, params) = check_envelope(request)?;
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let p = prepare(app, principal, &params).await?;
    let working = json!({"id": p.task_id, "contextId": p.context_id, "status": status("TASK_STATE_WORKING", &p.context_id, &p.task_id, None), "history": p.history});
    save(app, &working, "TASK_STATE_WORKING").await?;
    let app = app.clone();
    let principal = principal.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(64);
    let task_id = p.task_id.clone();
    let worker = tokio::spawn(async move {
        let send = |result: Value| {
            let tx = tx.clone();
            let id = id.clone();
            async move {
                let _ = tx.send(rpc_result(&id, result)).await;
            }
        };
        send(json!({ "task": working })).await;
        send(json!({"statusUpdate": {"taskId": p.task_id, "contextId": p.context_id,
            "status": status("TASK_STATE_WORKING", &p.context_id, &p.task_id, Some(&format!("running {}", p.skill.id)))}}))
        .await;
        let progress = ChannelProgress {
            tx: tx.clone(),
            id: id.clone(),
            task_id: p.task_id.clone(),
            context_id: p.context_id.clone(),
        };
        let (art, final_status) = match finish(&app, &principal, &p, &progress).await {
            Ok((task, _, art)) => (art, task["status"].clone()),
            Err(_) => {
                tracing::error!(task = %p.task_id, "could not store the final task state");
                let status = status(
                    "TASK_STATE_FAILED",
                    &p.context_id,
                    &p.task_id,
                    Some("state store failed"),
                );
                (None, status)
            }
        };
        if let Some(art) = &art {
            send(json!({"artifactUpdate": {"taskId": p.task_id, "contextId": p.context_id, "artifact": art, "append": false, "lastChunk": true}})).await;
        }
        send(json!({"statusUpdate": {"taskId": p.task_id, "contextId": p.context_id, "status": final_status}})).await;
        if let Ok(mut running) = running().lock() {
            running.remove(&p.task_id);
        }
    });
    if let Ok(mut running) = running().lock() {
        running.insert(task_id, worker.abort_handle());
    }
    let events = futures_stream(rx);
    Ok(Sse::new(events)
        .keep_alive(axum::response::sse::KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn futures_stream(
    rx: tokio::sync::mpsc::Receiver<Value>,
) -> impl futures::Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let value = rx.recv().await?;
        Some((Ok(Event::default().data(value.to_string())), rx))
    })
}
