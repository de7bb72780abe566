//! The A2A 1.0 surface of `quietbox-a2a`: the agent card at `/.well-known/agent-card.json` and
//! the JSON-RPC 2.0 binding at `/` (`SendMessage`, `SendStreamingMessage`, `GetTask`,
//! `ListTasks`, `CancelTask`, `SubscribeToTask`, `GetExtendedAgentCard`).
//!
//! Wire shapes follow the A2A 1.0 protocol buffers' JSON form (camelCase fields,
//! `TASK_STATE_*` and `ROLE_*` enums, parts as `{"text"}` or `{"data"}`). A message picks a skill
//! with a data part `{"skill": "...", "args": {...}}` or a short text command; `args` is the
//! operation's typed argument struct (`quietbox_runtime::operations::args`), and arguments that
//! do not fit it are -32602 naming the field. Every JSON-RPC error carries quietbox's error code
//! in `error.data.code`, and a failed task the code of its error in a data part of its status
//! message, as REST's problem+json `code` has it. Every skill needs
//! the same scope as its REST route; a missing scope is a 403 naming it, as on every surface.
//! Tasks are stored through the state port, so `GetTask` works from any process.
//!
//! A task belongs to the principal (tenant and subject) that created it: another principal's
//! `GetTask`, `CancelTask`, `SubscribeToTask` or message naming its `taskId` is answered
//! TaskNotFound (-32001), `ListTasks` lists only the caller's tasks, and reading or cancelling a
//! task needs the scope of its skill. Every skill takes a token of its rate-limit budget
//! ([`operations::admit`]). Requests are bounded ([`limits`]), stored tasks are pruned by age and
//! count (`A2A_TASK_TTL_H`, `A2A_MAX_TASKS`), and a skill that panics fails its task with the
//! `internal` error code instead of leaving it working.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use futures::FutureExt;
use quietbox_auth::AuthMethod;
use quietbox_auth::http::AuthLayer;
use quietbox_core::ErrorCode;
use quietbox_core::ports::{NoProgress, ScanProgress};
use quietbox_core::store::{TaskOwner, TaskQuery, TaskRecord, TaskRetention};
use quietbox_runtime::scopes::{AuthError, AuthRejection, Principal, Scope};
use serde_json::{Value, json};

use quietbox_runtime::operations::{self, ArgError, Args, Context, Operation, Output};
use quietbox_runtime::problem::ApiError;
use quietbox_runtime::wiring::App;

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
    pub const PUSH_NOT_SUPPORTED: i64 = -32003;
    pub const UNSUPPORTED_OPERATION: i64 = -32004;
    pub const VERSION_NOT_SUPPORTED: i64 = -32009;
}

/// What one request may ask of the agent; past a limit the request is refused with an error
/// naming it.
pub mod limits {
    /// Requests in one JSON-RPC batch (-32600 past it).
    pub const MAX_BATCH: usize = 16;
    /// Parts in one message (-32602 past it).
    pub const MAX_PARTS: usize = 32;
    /// Bytes of one message's JSON, as the task's history stores it (-32602 past it).
    pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
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

/// One skill: its operation (id, scope and rate-limit budget), name, description, examples.
struct Skill {
    operation: Operation,
    name: &'static str,
    description: &'static str,
    examples: &'static [&'static str],
}

impl Skill {
    fn id(&self) -> &'static str {
        self.operation.id()
    }

    fn scope(&self) -> Scope {
        self.operation.scope()
    }
}

const SKILLS: &[Skill] = &[
    Skill {
        operation: Operation::Availability,
        name: "Calendar availability",
        description: "Busy intervals and free slots. Args: start, end (RFC 3339), slot_minutes, tz.",
        examples: &[
            "availability",
            "{\"skill\":\"availability\",\"args\":{\"tz\":\"Europe/Paris\",\"slot_minutes\":60}}",
        ],
    },
    Skill {
        operation: Operation::ScanInbox,
        name: "Inbox scan and triage",
        description: "Scans the inbox (incrementally when possible) and triages every message. Args: query, since, limit (1 to 1000).",
        examples: &["scan inbox"],
    },
    Skill {
        operation: Operation::UnsubscribeCandidates,
        name: "Unsubscribe candidates",
        description: "Senders worth leaving, ranked, with the method quietbox would use.",
        examples: &["candidates"],
    },
    Skill {
        operation: Operation::UnsubscribeHistory,
        name: "Unsubscribe history",
        description: "Every unsubscribe attempt. Args: sender.",
        examples: &["history"],
    },
    Skill {
        operation: Operation::Unsubscribe,
        name: "Unsubscribe",
        description: "Unsubscribes from a sender (RFC 8058 one-click, mailto, or a recorded link), at most once. Args: sender or candidate_id, dry_run.",
        examples: &["unsubscribe news@example.com"],
    },
    Skill {
        operation: Operation::UnsubscribeDigest,
        name: "Unsubscribe digest",
        description: "Previews or sends the digest of new candidates. Args: send.",
        examples: &["digest"],
    },
    Skill {
        operation: Operation::SenderDecision,
        name: "Sender decision",
        description: "Records keep (never a candidate again) or auto_archive (its mail leaves the inbox) for a sender. Args: sender, decision.",
        examples: &[
            "{\"skill\":\"sender_decision\",\"args\":{\"sender\":\"a@example.com\",\"decision\":\"keep\"}}",
        ],
    },
    Skill {
        operation: Operation::UnsubscribeCompliance,
        name: "Unsubscribe compliance",
        description: "Whether unsubscribed senders stopped: pending (inside the grace period), compliant, or violating with count and first/last violating dates. Args: sender.",
        examples: &["compliance", "who is still sending after unsubscribe"],
    },
];

/// The operations offered as skills, in agent-card order (the skill id is the operation's id).
pub fn skill_operations() -> impl Iterator<Item = Operation> {
    SKILLS.iter().map(|s| s.operation)
}

/// The A2A router (without the shared layers).
pub fn router(app: App) -> Router {
    let rpc = Router::new()
        .route("/", post(rpc))
        .layer(AuthLayer::new(app.auth.clone()))
        .layer(axum::middleware::map_response_with_state(
            app.clone(),
            declared_challenge,
        ));
    Router::new()
        .route("/.well-known/agent-card.json", get(card))
        .merge(rpc)
        .with_state(app)
}

/// A 401 challenges with a scheme the card declares: without JWTs (`AUTH_MODE=api_key`) the
/// card declares only the API key, so the challenge is `ApiKey` naming its header, not the auth
/// layer's `Bearer`.
async fn declared_challenge(State(app): State<App>, mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED && !app.auth.mode().uses_jwt() {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("ApiKey realm=\"quietbox\", header=\"X-API-Key\""),
        );
    }
    response
}

/// The interface URL the card gives: `A2A_PUBLIC_URL`, else `http://` and the address this
/// process bound (the real port when `BIND_ADDR` ends in `:0`). Never the request's `Host`,
/// which a client chooses.
fn base_url(app: &App) -> String {
    match &app.settings.a2a_public_url {
        Some(url) => url.clone(),
        None => {
            let addr = quietbox_runtime::http::bound_addr().unwrap_or(app.settings.bind_addr);
            format!("http://{addr}/")
        }
    }
}

fn agent_card(app: &App, url: &str) -> Value {
    let mode = app.auth.mode();
    let mut schemes = serde_json::Map::new();
    let mut requirements = Vec::new();
    if mode.uses_api_key() {
        schemes.insert("api_key".into(), json!({"apiKeySecurityScheme": {"location": "header", "name": "X-API-Key", "description": "The operator's API key"}}));
        requirements.push(json!({"schemes": {"api_key": {"list": []}}}));
    }
    if mode.uses_jwt() {
        schemes.insert("bearer".into(), json!({"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "JWT", "description": "A JWT carrying quietbox scopes"}}));
        requirements.push(json!({"schemes": {"bearer": {"list": []}}}));
    }
    let skills: Vec<Value> = SKILLS
        .iter()
        .map(|s| json!({"id": s.id(), "name": s.name, "description": format!("{} Requires scope {}.", s.description, s.scope()),
            "tags": [s.scope().as_str()], "examples": s.examples, "inputModes": ["text/plain", "application/json"], "outputModes": ["application/json", "text/plain"]}))
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

async fn card(State(app): State<App>) -> impl IntoResponse {
    axum::Json(agent_card(&app, &base_url(&app)))
}

fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    RpcError::new(code, message).to_json(id)
}

/// A JSON-RPC error object: the JSON-RPC code, and in `data` quietbox's stable error code (the
/// one REST's problem+json `code` gives) and, for bad arguments, the argument at fault.
struct RpcError {
    code: i64,
    error: ErrorCode,
    message: String,
    field: Option<String>,
}

impl RpcError {
    /// An error whose quietbox code follows from the JSON-RPC code.
    fn new(code: i64, message: impl Into<String>) -> Self {
        let error = match code {
            codes::PARSE_ERROR => ErrorCode::MalformedBody,
            codes::METHOD_NOT_FOUND | codes::TASK_NOT_FOUND => ErrorCode::NotFound,
            codes::TASK_NOT_CANCELABLE => ErrorCode::Conflict,
            codes::INTERNAL => ErrorCode::Internal,
            _ => ErrorCode::InvalidRequest,
        };
        RpcError {
            code,
            error,
            message: message.into(),
            field: None,
        }
    }

    fn to_json(&self, id: &Value) -> Value {
        let mut data = json!({"code": self.error.name()});
        if let Some(field) = &self.field {
            data["field"] = json!(field);
        }
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": self.code, "message": self.message, "data": data}})
    }
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A refusal before or while dispatching.
enum Failure {
    /// A JSON-RPC error object.
    Rpc(RpcError),
    /// An HTTP-level refusal (403 missing scope, 429 rate limit), rendered by the auth crate.
    Auth(AuthError),
}

impl Failure {
    /// A JSON-RPC error; its quietbox code follows from `code`.
    fn rpc(code: i64, message: String) -> Self {
        Failure::Rpc(RpcError::new(code, message))
    }

    /// The state store failed: -32603 with the store's code (`state_unavailable`, ...).
    fn state(error: quietbox_core::store::StateError) -> Self {
        Failure::Rpc(RpcError {
            error: error.code(),
            ..RpcError::new(codes::INTERNAL, error.to_string())
        })
    }
}

impl From<ArgError> for Failure {
    /// Arguments that do not fit the skill: -32602 naming the argument, with its code.
    fn from(error: ArgError) -> Self {
        Failure::Rpc(RpcError {
            code: codes::INVALID_PARAMS,
            error: error.code,
            message: error.message,
            field: error.field,
        })
    }
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
        if !version_supported(v) {
            return axum::Json(rpc_error(
                &Value::Null,
                codes::VERSION_NOT_SUPPORTED,
                format!("A2A version {v} is not supported; this agent speaks {PROTOCOL_VERSION}"),
            ))
            .into_response();
        }
    }
    let url = base_url(&app);
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
        if batch.len() > limits::MAX_BATCH {
            return axum::Json(rpc_error(
                &Value::Null,
                codes::INVALID_REQUEST,
                format!(
                    "a batch holds at most {} requests; this one has {}",
                    limits::MAX_BATCH,
                    batch.len()
                ),
            ))
            .into_response();
        }
        let mut answers = Vec::new();
        for request in batch {
            let notification = is_notification(&request);
            let id = match request_id(&request) {
                Ok(id) => id,
                Err(error) => {
                    answers.push(error.to_json(&Value::Null));
                    continue;
                }
            };
            if let Some(method @ ("SendStreamingMessage" | "SubscribeToTask")) =
                request.get("method").and_then(Value::as_str)
            {
                if notification {
                    continue;
                }
                answers.push(rpc_error(
                    &id,
                    codes::INVALID_REQUEST,
                    format!("{method} cannot be batched"),
                ));
                continue;
            }
            let answer = dispatch(&app, &principal, &url, &request).await;
            if notification {
                continue;
            }
            match answer {
                Ok(result) => answers.push(rpc_result(&id, result)),
                Err(Failure::Rpc(error)) => answers.push(error.to_json(&id)),
                Err(Failure::Auth(error)) => {
                    let message = error.to_string();
                    let rpc = RpcError {
                        error: ApiError::from(error).code,
                        ..RpcError::new(codes::INVALID_REQUEST, message)
                    };
                    answers.push(rpc.to_json(&id));
                }
            }
        }
        if answers.is_empty() {
            return StatusCode::NO_CONTENT.into_response();
        }
        return axum::Json(Value::Array(answers)).into_response();
    }
    let id = match request_id(&parsed) {
        Ok(id) => id,
        Err(error) => return axum::Json(error.to_json(&Value::Null)).into_response(),
    };
    // A notification (no `id`) is run, and never answered (JSON-RPC 2.0 §4.1); a stream has
    // no one to stream to.
    if is_notification(&parsed) {
        if !matches!(
            parsed.get("method").and_then(Value::as_str),
            Some("SendStreamingMessage" | "SubscribeToTask")
        ) {
            let _ = dispatch(&app, &principal, &url, &parsed).await;
        }
        return StatusCode::NO_CONTENT.into_response();
    }
    let streamed = match parsed.get("method").and_then(Value::as_str) {
        Some("SendStreamingMessage") => Some(stream(&app, &principal, &parsed).await),
        Some("SubscribeToTask") => Some(subscribe(&app, &principal, &parsed).await),
        _ => None,
    };
    if let Some(streamed) = streamed {
        return match streamed {
            Ok(response) => response,
            Err(Failure::Rpc(error)) => axum::Json(error.to_json(&id)).into_response(),
            Err(Failure::Auth(error)) => refuse(&app, error),
        };
    }
    match dispatch(&app, &principal, &url, &parsed).await {
        Ok(result) => axum::Json(rpc_result(&id, result)).into_response(),
        Err(Failure::Rpc(error)) => axum::Json(error.to_json(&id)).into_response(),
        Err(Failure::Auth(error)) => refuse(&app, error),
    }
}

/// Whether an A2A-Version header value is one this agent speaks: 1.0, any 1.0 patch, or 1.
fn version_supported(version: &str) -> bool {
    let mut parts = version.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), None, None, None) | (Some("1"), None, None, None) => true,
        (Some("1"), Some("0"), patch, None) => {
            patch.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        }
        _ => false,
    }
}

/// A request object without an `id` member: a JSON-RPC notification.
fn is_notification(request: &Value) -> bool {
    request.as_object().is_some_and(|o| !o.contains_key("id"))
}

/// The request's id: a string, a number or null (JSON-RPC 2.0 §4); anything else is -32600.
fn request_id(request: &Value) -> Result<Value, RpcError> {
    match request.get("id") {
        None => Ok(Value::Null),
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Ok(id.clone()),
        Some(_) => Err(RpcError::new(
            codes::INVALID_REQUEST,
            "Invalid Request: id must be a string, a number or null",
        )),
    }
}

fn check_envelope(request: &Value) -> Result<(&str, Value), Failure> {
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Failure::rpc(
            codes::INVALID_REQUEST,
            "Invalid Request: jsonrpc must be \"2.0\"".into(),
        ));
    }
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Failure::rpc(
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
        "GetTask" => {
            let id = task_id_param(&params, method)?;
            let history_length = history_length_param(&params)?;
            let mut task = visible_task(app, principal, id).await?.payload;
            trim_history(&mut task, history_length);
            Ok(task)
        }
        "ListTasks" => list_tasks(app, principal, &params).await,
        "CancelTask" => cancel_task(app, principal, &params).await,
        "GetExtendedAgentCard" => Ok(agent_card(app, url)),
        // The card says `pushNotifications: false`: clients learn progress by streaming,
        // SubscribeToTask or polling GetTask.
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => Err(Failure::rpc(
            codes::PUSH_NOT_SUPPORTED,
            format!(
                "{method}: push notifications are not supported (the card says pushNotifications: false); stream, SubscribeToTask or poll GetTask"
            ),
        )),
        other => Err(Failure::rpc(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    }
}

/// The owner recorded for the tasks `principal` creates. The API key's identity is reserved: a
/// token whose tenant and subject spell it owns tasks of its own, not the key's.
fn owner_of(principal: &Principal) -> TaskOwner {
    let owner = TaskOwner {
        tenant: principal.tenant.clone(),
        subject: principal.subject.clone(),
    };
    if principal.method != AuthMethod::ApiKey && owner == TaskOwner::legacy() {
        return TaskOwner {
            subject: format!("{}:{}", principal.method.as_str(), owner.subject),
            ..owner
        };
    }
    owner
}

/// The scopes needed to read or cancel `record`: its skill's, or every skill's for a task
/// stored before skills were recorded.
fn task_scopes(record: &TaskRecord) -> Vec<Scope> {
    match record.skill.as_deref().and_then(Operation::from_id) {
        Some(operation) => vec![operation.scope()],
        None => SKILLS.iter().map(Skill::scope).collect(),
    }
}

/// `params.id`, or -32602.
fn task_id_param<'a>(params: &'a Value, method: &str) -> Result<&'a str, Failure> {
    params
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::rpc(codes::INVALID_PARAMS, format!("{method} needs params.id")))
}

/// The task `id` as `principal` may see it: -32001 when it does not exist or belongs to another
/// principal (the two are not told apart), a 403 naming the scope when the principal lacks the
/// scope of the task's skill.
async fn visible_task(app: &App, principal: &Principal, id: &str) -> Result<TaskRecord, Failure> {
    let record = app.state.get_task(id).await.map_err(Failure::state)?;
    let record = record
        .filter(|r| r.owner == owner_of(principal))
        .ok_or_else(|| Failure::rpc(codes::TASK_NOT_FOUND, format!("task {id} not found")))?;
    for scope in task_scopes(&record) {
        principal.require(scope)?;
    }
    Ok(record)
}

/// `params.historyLength`: absent, or an integer ≥ 0 (-32602 otherwise).
fn history_length_param(params: &Value) -> Result<Option<usize>, Failure> {
    match params.get("historyLength") {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n
            .as_u64()
            .map(|n| Some(usize::try_from(n).unwrap_or(usize::MAX)))
            .ok_or_else(|| {
                invalid_field(
                    "historyLength",
                    format!("params.historyLength must be an integer of at least 0, not {n}"),
                )
            }),
    }
}

/// Keeps the last `keep` messages of the task's history (A2A 1.0: 0 keeps none).
fn trim_history(task: &mut Value, keep: Option<usize>) {
    if let (Some(keep), Some(Value::Array(history))) = (keep, task.get_mut("history")) {
        let drop = history.len().saturating_sub(keep);
        history.drain(..drop);
    }
}

/// The task states of A2A 1.0, in the protocol buffers' order (the enum's numbers).
const TASK_STATES: &[&str] = &[
    "TASK_STATE_UNSPECIFIED",
    "TASK_STATE_SUBMITTED",
    "TASK_STATE_WORKING",
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_INPUT_REQUIRED",
    "TASK_STATE_REJECTED",
    "TASK_STATE_AUTH_REQUIRED",
];

/// The page size ListTasks allows (A2A 1.0: 1 to 100).
const PAGE_SIZES: std::ops::RangeInclusive<u64> = 1..=100;

/// ListTasks' validated filters.
struct ListParams {
    state: Option<String>,
    page_size: usize,
    history_length: Option<usize>,
    include_artifacts: bool,
    after: Option<chrono::DateTime<Utc>>,
}

/// Validates ListTasks' `pageSize` (1 to 100), `historyLength` (≥ 0), `status` (a task state,
/// by name or number) and `statusTimestampAfter` (RFC 3339): -32602 naming the field.
fn list_params(params: &Value) -> Result<ListParams, Failure> {
    let page_size = match params.get("pageSize") {
        None | Some(Value::Null) => 0,
        Some(n) => match n.as_u64().filter(|n| PAGE_SIZES.contains(n)) {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => {
                return Err(invalid_field(
                    "pageSize",
                    format!("params.pageSize must be an integer from 1 to 100, not {n}"),
                ));
            }
        },
    };
    let state = match params.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if TASK_STATES.contains(&s.as_str()) => Some(s.clone()),
        Some(Value::Number(n))
            if n.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .is_some_and(|n| n < TASK_STATES.len()) =>
        {
            n.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| TASK_STATES.get(n))
                .map(|s| (*s).to_owned())
        }
        Some(other) => {
            return Err(invalid_field(
                "status",
                format!(
                    "params.status must be one of {}, not {other}",
                    TASK_STATES.join(", ")
                ),
            ));
        }
    }
    .filter(|s| s != "TASK_STATE_UNSPECIFIED");
    let after = match params.get("statusTimestampAfter") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            t.as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| {
                    invalid_field(
                        "statusTimestampAfter",
                        format!(
                            "params.statusTimestampAfter must be an RFC 3339 timestamp, not {t}"
                        ),
                    )
                })?,
        ),
    };
    let include_artifacts = match params.get("includeArtifacts") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid_field(
                "includeArtifacts",
                format!("params.includeArtifacts must be a boolean, not {other}"),
            ));
        }
    };
    Ok(ListParams {
        state,
        page_size,
        history_length: history_length_param(params)?,
        include_artifacts,
        after,
    })
}

/// Whether the task's status changed after `after` (its status timestamp; a task without one
/// counts by its last update).
fn status_after(record: &TaskRecord, after: chrono::DateTime<Utc>) -> bool {
    record.payload["status"]["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(record.updated_at, |t| t.with_timezone(&Utc))
        > after
}

/// `ListTasks`: the caller's tasks of the skills whose scopes it holds. Artifacts only with
/// `includeArtifacts: true` and the last `historyLength` messages of each history (A2A 1.0), so
/// that a page stays small. `statusTimestampAfter` keeps the tasks whose status changed after
/// it: since pages run newest update first, those are a prefix of the list, so a page that
/// reaches past it is the last, and `totalSize` counts the prefix.
async fn list_tasks(app: &App, principal: &Principal, params: &Value) -> Result<Value, Failure> {
    let list = list_params(params)?;
    let readable: Vec<String> = SKILLS
        .iter()
        .filter(|s| principal.scopes.contains(s.scope()))
        .map(|s| s.id().to_owned())
        .collect();
    let query = TaskQuery {
        context_id: params
            .get("contextId")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        state: list.state.clone(),
        page_size: list.page_size,
        page_token: params
            .get("pageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        owner: Some(owner_of(principal)),
        // Every skill readable: no filter, so tasks stored before skills were recorded show too.
        skills: (readable.len() < SKILLS.len()).then_some(readable),
    };
    let total_query = list.after.map(|_| TaskQuery {
        page_size: 100,
        page_token: None,
        ..query.clone()
    });
    let mut page = app
        .state
        .list_tasks(query)
        .await
        .map_err(|e| Failure::rpc(codes::INVALID_PARAMS, e.to_string()))?;
    if let (Some(after), Some(mut total_query)) = (list.after, total_query) {
        let before = page.tasks.len();
        page.tasks.retain(|t| status_after(t, after));
        if page.tasks.len() < before {
            page.next_page_token = None;
        }
        let mut total = 0;
        loop {
            let scan = app
                .state
                .list_tasks(total_query.clone())
                .await
                .map_err(|e| Failure::rpc(codes::INVALID_PARAMS, e.to_string()))?;
            let newer = scan.tasks.iter().filter(|t| status_after(t, after)).count();
            total += newer;
            match scan.next_page_token {
                Some(token) if newer == scan.tasks.len() => total_query.page_token = Some(token),
                _ => break,
            }
        }
        page.total_size = total;
    }
    let size = page.tasks.len();
    let tasks: Vec<Value> = page
        .tasks
        .into_iter()
        .map(|t| {
            let mut task = t.payload;
            if !list.include_artifacts
                && let Some(task) = task.as_object_mut()
            {
                task.remove("artifacts");
            }
            trim_history(&mut task, list.history_length);
            task
        })
        .collect();
    Ok(
        json!({"tasks": tasks, "nextPageToken": page.next_page_token.unwrap_or_default(),
            "pageSize": size, "totalSize": page.total_size}),
    )
}

async fn cancel_task(app: &App, principal: &Principal, params: &Value) -> Result<Value, Failure> {
    let id = task_id_param(params, "CancelTask")?;
    let record = visible_task(app, principal, id).await?;
    let not_cancelable = |state: &str| {
        Failure::rpc(
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
    let meta = TaskMeta {
        owner: record.owner,
        skill: record.skill,
    };
    save(app, &task, "TASK_STATE_CANCELED", &meta).await?;
    // The task may have finished on its replica between the read and the write.
    let stored = app.state.get_task(id).await.map_err(Failure::state)?;
    match stored {
        Some(stored) if stored.state != "TASK_STATE_CANCELED" => Err(not_cancelable(&stored.state)),
        _ => Ok(task),
    }
}

/// Which skill a message asks for, and its arguments.
fn select_skill(message: &Value) -> Result<(&'static Skill, Value), Failure> {
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Failure::rpc(
                codes::INVALID_PARAMS,
                "params.message.parts must be a non-empty array".into(),
            )
        })?;
    let known = || SKILLS.iter().map(|s| s.id()).collect::<Vec<_>>().join(", ");
    for part in parts {
        if let Some(data) = part.get("data")
            && let Some(name) = data.get("skill").and_then(Value::as_str)
        {
            let skill = SKILLS.iter().find(|s| s.id() == name).ok_or_else(|| {
                Failure::rpc(
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
    let pick = |id: &str| SKILLS.iter().find(|s| s.id() == id);
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
    chosen.ok_or_else(|| Failure::rpc(codes::INVALID_PARAMS, format!("no skill matches {text:?}; send a data part {{\"skill\": ..., \"args\": {{...}}}} with one of: {}", known())))
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
    args: Args,
    task_id: String,
    context_id: String,
    history: Vec<Value>,
    meta: TaskMeta,
}

/// What a stored task records besides its document: who owns it and which skill it runs.
struct TaskMeta {
    owner: TaskOwner,
    skill: Option<String>,
}

/// The members of an A2A 1.0 `Message` this agent keeps, with the JSON type each must have.
const MESSAGE_MEMBERS: &[(&str, JsonKind)] = &[
    ("messageId", JsonKind::String),
    ("contextId", JsonKind::String),
    ("taskId", JsonKind::String),
    ("role", JsonKind::String),
    ("parts", JsonKind::Array),
    ("metadata", JsonKind::Object),
    ("extensions", JsonKind::Array),
    ("referenceTaskIds", JsonKind::Array),
];

/// The members of an A2A 1.0 `Part` this agent keeps (`data` is the client's own JSON).
const PART_MEMBERS: &[(&str, JsonKind)] = &[
    ("text", JsonKind::String),
    ("data", JsonKind::Any),
    ("url", JsonKind::String),
    ("raw", JsonKind::String),
    ("filename", JsonKind::String),
    ("mediaType", JsonKind::String),
    ("metadata", JsonKind::Object),
];

/// The roles of A2A 1.0.
const ROLES: &[&str] = &["ROLE_USER", "ROLE_AGENT"];

#[derive(Clone, Copy)]
enum JsonKind {
    String,
    Array,
    Object,
    Any,
}

impl JsonKind {
    fn admits(self, value: &Value) -> bool {
        match self {
            JsonKind::String => value.is_string(),
            JsonKind::Array => value.is_array(),
            JsonKind::Object => value.is_object(),
            JsonKind::Any => true,
        }
    }
}

/// Keeps the `members` of `object`, each checked for its JSON type; `null` counts as absent.
fn keep_members(
    object: &serde_json::Map<String, Value>,
    members: &[(&str, JsonKind)],
    at: &str,
) -> Result<serde_json::Map<String, Value>, Failure> {
    let mut kept = serde_json::Map::new();
    for (name, kind) in members {
        match object.get(*name) {
            None | Some(Value::Null) => {}
            Some(value) if kind.admits(value) => {
                kept.insert((*name).to_owned(), value.clone());
            }
            Some(_) => {
                return Err(invalid_field(
                    &format!("{at}.{name}"),
                    format!("params.{at}.{name} has the wrong type"),
                ));
            }
        }
    }
    Ok(kept)
}

fn invalid_field(field: &str, message: String) -> Failure {
    Failure::Rpc(RpcError {
        field: Some(field.to_owned()),
        ..RpcError::new(codes::INVALID_PARAMS, message)
    })
}

/// `params.message` reduced to the members of an A2A 1.0 `Message` (unknown members, of the
/// message and of its parts, are dropped and never stored): -32602 naming the field when
/// `messageId` is missing or empty, `role` is not `ROLE_USER` or `ROLE_AGENT`, or a part is not
/// exactly one of text, data, url and raw.
fn typed_message(message: &Value) -> Result<Value, Failure> {
    let object = message
        .as_object()
        .ok_or_else(|| invalid_field("message", "params.message must be an object".into()))?;
    let mut kept = keep_members(object, MESSAGE_MEMBERS, "message")?;
    if kept
        .get("messageId")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(invalid_field(
            "message.messageId",
            "params.message.messageId must be a non-empty string".into(),
        ));
    }
    let role = kept.get("role").and_then(Value::as_str).unwrap_or_default();
    if !ROLES.contains(&role) {
        return Err(invalid_field(
            "message.role",
            format!(
                "params.message.role must be one of {}, not {role:?}",
                ROLES.join(", ")
            ),
        ));
    }
    let parts = kept
        .get("parts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut typed_parts = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let at = format!("message.parts[{i}]");
        let object = part
            .as_object()
            .ok_or_else(|| invalid_field(&at, format!("params.{at} must be an object")))?;
        let part = keep_members(object, PART_MEMBERS, &at)?;
        let kinds = ["text", "data", "url", "raw"]
            .iter()
            .filter(|k| part.contains_key(**k))
            .count();
        if kinds != 1 {
            return Err(invalid_field(
                &at,
                format!("params.{at} must hold exactly one of text, data, url, raw"),
            ));
        }
        typed_parts.push(Value::Object(part));
    }
    kept.insert("parts".into(), Value::Array(typed_parts));
    Ok(Value::Object(kept))
}

/// Refuses a message past [`limits::MAX_PARTS`] or [`limits::MAX_MESSAGE_BYTES`].
fn check_message_limits(message: &Value) -> Result<(), Failure> {
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if parts > limits::MAX_PARTS {
        return Err(Failure::rpc(
            codes::INVALID_PARAMS,
            format!(
                "a message holds at most {} parts; this one has {parts}",
                limits::MAX_PARTS
            ),
        ));
    }
    let bytes = serde_json::to_vec(message).map_or(usize::MAX, |b| b.len());
    if bytes > limits::MAX_MESSAGE_BYTES {
        return Err(Failure::rpc(
            codes::INVALID_PARAMS,
            format!(
                "a message is stored up to {} bytes of JSON; this one has {bytes}",
                limits::MAX_MESSAGE_BYTES
            ),
        ));
    }
    Ok(())
}

async fn prepare(app: &App, principal: &Principal, params: &Value) -> Result<Prepared, Failure> {
    let message = params
        .get("message")
        .ok_or_else(|| Failure::rpc(codes::INVALID_PARAMS, "params.message is required".into()))?;
    check_message_limits(message)?;
    // Only the typed message is kept: unknown members are dropped, never stored.
    let message = &typed_message(message)?;
    // A message naming a task continues it: only its owner may, and no quietbox task waits for
    // input (each skill runs to a final state), so an existing task takes no further messages.
    if let Some(task_id) = message
        .get("taskId")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        let record = visible_task(app, principal, task_id).await?;
        return Err(Failure::rpc(
            codes::UNSUPPORTED_OPERATION,
            format!(
                "task {task_id} is {}; it takes no further messages: send a new message without taskId",
                record.state
            ),
        ));
    }
    let (skill, args) = select_skill(message)?;
    principal.require(skill.scope())?;
    // The skill's typed arguments, bounded: -32602 naming the argument, before any task exists.
    let args = Args::parse(skill.operation, args)?;
    // Every skill, reads included, takes a token of its per-tenant budget: 429 with Retry-After.
    operations::admit(app, principal, skill.operation).await?;
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
        meta: TaskMeta {
            owner: owner_of(principal),
            skill: Some(skill.id().to_owned()),
        },
    })
}

async fn save(app: &App, task: &Value, state: &str, meta: &TaskMeta) -> Result<(), Failure> {
    let now = Utc::now();
    let record = TaskRecord {
        id: task["id"].as_str().unwrap_or_default().to_owned(),
        context_id: task["contextId"].as_str().unwrap_or_default().to_owned(),
        state: state.to_owned(),
        payload: task.clone(),
        created_at: now,
        updated_at: now,
        owner: meta.owner.clone(),
        skill: meta.skill.clone(),
    };
    app.state.put_task(record).await.map_err(Failure::state)
}

/// Drops the tasks past `A2A_TASK_TTL_H` and beyond `A2A_MAX_TASKS`, after a new task is
/// stored. Best effort: a failure is logged, the request goes on.
async fn prune(app: &App) {
    let retention = TaskRetention {
        max_age: chrono::Duration::from_std(app.settings.a2a_task_ttl)
            .unwrap_or(chrono::Duration::MAX),
        max_tasks: app.settings.a2a_max_tasks,
    };
    match app.state.prune_tasks(retention, Utc::now()).await {
        Ok(0) => {}
        Ok(dropped) => tracing::debug!(dropped, "pruned A2A tasks"),
        Err(error) => tracing::warn!(%error, "could not prune A2A tasks"),
    }
}

/// The artifact of a completed skill: its result as a data part (the REST API's JSON) and the
/// summary as a text part.
fn artifact(skill: &Skill, output: &Output) -> Result<Value, ApiError> {
    let result = output
        .to_json()
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot serialize: {e}")))?;
    Ok(
        json!({"artifactId": uuid::Uuid::new_v4().to_string(), "name": skill.id(), "parts": [{"data": result}, {"text": output.summary()}]}),
    )
}

/// What running a skill gave: its typed result, its error (with core's code), or a panic.
type Outcome = Result<Result<Output, ApiError>, Panicked>;

/// A skill's worker panicked (the payload is not kept: it may hold request data).
#[derive(Debug)]
struct Panicked;

/// Runs a skill's future, turning a panic inside it into [`Panicked`] so that the task is
/// failed instead of left working.
async fn catch_panic(run: impl std::future::Future<Output = Result<Output, ApiError>>) -> Outcome {
    std::panic::AssertUnwindSafe(run)
        .catch_unwind()
        .await
        .map_err(|_| Panicked)
}

/// Runs the prepared skill; returns the final task (stored), its state and its artifact.
async fn finish(
    app: &App,
    principal: &Principal,
    p: &Prepared,
    progress: &dyn ScanProgress,
) -> Result<(Value, &'static str, Option<Value>), Failure> {
    let cx = Context {
        app,
        principal,
        progress,
    };
    let outcome = catch_panic(p.args.clone().run(cx)).await;
    settle(app, p, outcome).await
}

/// Stores the task's final state from the skill's outcome. A failed task carries the error's code
/// (core's, as REST's problem+json `code`) as `{"code": ...}` in a data part of its status
/// message, after the text; a panic fails it with the `internal` code.
async fn settle(
    app: &App,
    p: &Prepared,
    outcome: Outcome,
) -> Result<(Value, &'static str, Option<Value>), Failure> {
    let outcome = match outcome {
        Ok(Ok(output)) => match artifact(p.skill, &output) {
            Ok(art) => Ok(Ok((art, output.summary()))),
            Err(error) => Ok(Err(error)),
        },
        Ok(Err(error)) => Ok(Err(error)),
        Err(Panicked) => Err(Panicked),
    };
    let (state, art, text, code) = match outcome {
        Ok(Ok((art, summary))) => ("TASK_STATE_COMPLETED", Some(art), summary, None),
        Ok(Err(error)) => (
            "TASK_STATE_FAILED",
            None,
            error.detail,
            Some(error.code.name()),
        ),
        Err(Panicked) => {
            tracing::error!(task = %p.task_id, skill = p.skill.id(), "the skill panicked; its task fails");
            let code = ErrorCode::Internal.name();
            let text = format!(
                "internal error ({code}): {} stopped unexpectedly",
                p.skill.id()
            );
            ("TASK_STATE_FAILED", None, text, Some(code))
        }
    };
    let mut task_status = status(state, &p.context_id, &p.task_id, Some(&text));
    if let (Some(code), Some(parts)) = (code, task_status["message"]["parts"].as_array_mut()) {
        parts.push(json!({"data": {"code": code}}));
    }
    let task = json!({"id": p.task_id, "contextId": p.context_id, "status": task_status,
        "artifacts": art.iter().cloned().collect::<Vec<_>>(), "history": p.history});
    save(app, &task, state, &p.meta).await?;
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
    prune(app).await;
    Ok((task, art))
}

async fn stream(app: &App, principal: &Principal, request: &Value) -> Result<Response, Failure> {
    let (_, params) = check_envelope(request)?;
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let p = prepare(app, principal, &params).await?;
    let working = json!({"id": p.task_id, "contextId": p.context_id, "status": status("TASK_STATE_WORKING", &p.context_id, &p.task_id, None), "history": p.history});
    save(app, &working, "TASK_STATE_WORKING", &p.meta).await?;
    prune(app).await;
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
            "status": status("TASK_STATE_WORKING", &p.context_id, &p.task_id, Some(&format!("running {}", p.skill.id())))}}))
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
    Ok(sse(rx))
}

/// How often a `SubscribeToTask` stream looks at the stored task.
const SUBSCRIBE_POLL: Duration = Duration::from_millis(250);

/// `SubscribeToTask`: the task, then a status update (and its artifacts) each time its stored
/// status changes, until a final state. It reads the store, so a task running on another
/// replica streams too; the stream ends when the client goes. A task already final has nothing
/// left to stream: -32004 (GetTask returns it).
async fn subscribe(app: &App, principal: &Principal, request: &Value) -> Result<Response, Failure> {
    let (method, params) = check_envelope(request)?;
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let task_id = task_id_param(&params, method)?.to_owned();
    let record = visible_task(app, principal, &task_id).await?;
    if quietbox_state::FINAL_TASK_STATES.contains(&record.state.as_str()) {
        return Err(Failure::rpc(
            codes::UNSUPPORTED_OPERATION,
            format!(
                "task {task_id} is {}; there is nothing left to stream (GetTask returns it)",
                record.state
            ),
        ));
    }
    let app = app.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(16);
    tokio::spawn(async move {
        let context_id = record.context_id.clone();
        let mut last_status = record.payload["status"].clone();
        if tx
            .send(rpc_result(&id, json!({ "task": record.payload })))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(SUBSCRIBE_POLL) => {}
            }
            let current = match app.state.get_task(&task_id).await {
                Ok(Some(current)) => current,
                // Pruned, or the store failed: nothing more to tell.
                Ok(None) | Err(_) => return,
            };
            if current.payload["status"] == last_status {
                continue;
            }
            last_status = current.payload["status"].clone();
            let done = quietbox_state::FINAL_TASK_STATES.contains(&current.state.as_str());
            if done {
                for art in current.payload["artifacts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let update = json!({"artifactUpdate": {"taskId": task_id, "contextId": context_id, "artifact": art, "append": false, "lastChunk": true}});
                    if tx.send(rpc_result(&id, update)).await.is_err() {
                        return;
                    }
                }
            }
            let update = json!({"statusUpdate": {"taskId": task_id, "contextId": context_id, "status": last_status}});
            if tx.send(rpc_result(&id, update)).await.is_err() || done {
                return;
            }
        }
    });
    Ok(sse(rx))
}

/// An SSE response of the JSON-RPC answers sent on `rx`.
fn sse(rx: tokio::sync::mpsc::Receiver<Value>) -> Response {
    Sse::new(futures_stream(rx))
        .keep_alive(axum::response::sse::KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn futures_stream(
    rx: tokio::sync::mpsc::Receiver<Value>,
) -> impl futures::Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let value = rx.recv().await?;
        Some((Ok(Event::default().data(value.to_string())), rx))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use quietbox_runtime::config::{Binary, RawSettings, Settings};
    use quietbox_runtime::operations::HistoryList;

    /// An A2A app on the sample mailbox, its state in `dir`.
    async fn app(dir: &std::path::Path) -> App {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample");
        let env: HashMap<String, String> = [
            (
                "AGENT_API_KEY",
                "unit-test-api-key-0123456789abcdef".to_owned(),
            ),
            ("DATA_DIR", dir.display().to_string()),
            ("LOCAL_MBOX", format!("{sample}/inbox.mbox")),
            ("LOCAL_ICS", format!("{sample}/calendar.ics")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let raw = RawSettings::load_from(&env).unwrap();
        let settings = Settings::from_raw(Binary::A2a, &raw).unwrap();
        quietbox_runtime::wiring::build(settings).await.unwrap()
    }

    #[test]
    fn tasks_stored_without_an_owner_belong_to_the_api_key_principal() {
        assert_eq!(TaskOwner::legacy(), owner_of(&Principal::api_key()));
        // A token naming the key's tenant and subject is not the key.
        let impostor = Principal {
            method: AuthMethod::Jwt,
            ..Principal::api_key()
        };
        assert_ne!(owner_of(&impostor), TaskOwner::legacy());
    }

    #[tokio::test]
    async fn catching_a_panic_reports_it_instead_of_unwinding() {
        let outcome = catch_panic(async { panic!("boom at {}", 42) }).await;
        assert!(matches!(outcome, Err(Panicked)));
        let outcome =
            catch_panic(async { Ok(Output::from(HistoryList { entries: vec![] })) }).await;
        assert!(matches!(outcome, Ok(Ok(_))));
    }

    #[tokio::test]
    async fn a_panicking_skill_fails_its_task_with_the_internal_code() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path()).await;
        let principal = Principal::api_key();
        let params = json!({"message": {"messageId": "m1", "role": "ROLE_USER",
            "parts": [{"data": {"skill": "availability", "args": {}}}]}});
        let Ok(prepared) = prepare(&app, &principal, &params).await else {
            panic!("the message is valid");
        };
        let outcome = catch_panic(async {
            let minutes: i64 = "9223372036854775807".parse().unwrap();
            let _ = chrono::Duration::minutes(minutes);
            Ok(Output::from(HistoryList { entries: vec![] }))
        })
        .await;
        let Ok((task, state, artifact)) = settle(&app, &prepared, outcome).await else {
            panic!("the failed task is stored");
        };
        assert_eq!((state, artifact), ("TASK_STATE_FAILED", None));
        let parts = &task["status"]["message"]["parts"];
        assert!(
            parts[0]["text"]
                .as_str()
                .unwrap()
                .starts_with("internal error (internal)"),
            "{parts}"
        );
        assert_eq!(parts[1]["data"]["code"], "internal");
        let stored = app
            .state
            .get_task(&prepared.task_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.state, "TASK_STATE_FAILED");
        assert_eq!(stored.owner, owner_of(&principal));
        assert_eq!(stored.skill.as_deref(), Some("availability"));
    }
}
