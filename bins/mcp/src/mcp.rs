//! The MCP surface of `quietbox-mcp`, on `rmcp`: the tools of DESIGN.md §6 over stdio and
//! streamable HTTP (`/mcp`).
//!
//! Over HTTP, every request to `/mcp` passes, outermost first:
//! - the `Origin` check ([`AllowedOrigins`], `MCP_ALLOWED_ORIGINS`): 403 `origin_not_allowed`;
//! - the auth crate's layer (in `MCP_AUTH_MODE=oauth` an OAuth 2.1 resource server that serves
//!   `/.well-known/oauth-protected-resource` and answers 401 with `resource_metadata`); its 401
//!   challenge names `scope="…"`, the scopes of the listed tools, so a client knows what to ask
//!   for;
//! - the admission gate: a principal without any scope gets 403 and no session; a `tools/call`
//!   whose tool needs a scope the principal lacks gets 403 with `WWW-Authenticate: Bearer
//!   error="insufficient_scope", scope="…"` (MCP 2025-11-25 step-up), before rmcp sees it; a new
//!   session past the tenant's `MCP_MAX_SESSIONS` (or 4 times it over all tenants) gets 503.
//!
//! Each tool's `inputSchema` is generated from its operation's argument struct, the one the call
//! enforces: arguments breaking it are an `isError` result naming the argument, with the code in
//! `structuredContent` (as is every failed call's, REST's problem+json `code`); a `tools/call`
//! whose params are not one is -32602.
//!
//! rmcp then hands the request's parts to the tool call, which checks the scope again (stdio has
//! no HTTP, so there the refusal is an `isError` result), takes the operation's rate-limit token
//! and runs it with panics caught, so every call is answered. Over stdio the caller is the local
//! operator. Mutation tools are hidden and refused with `MCP_ENABLE_MUTATION_TOOLS=false`; an
//! active incident refuses them through the core, without restart.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use quietbox_auth::http::{AuthLayer, protected_resource_routes};
use quietbox_auth::{AuthMethod, Reason};
use quietbox_core::ErrorCode;
use quietbox_core::ports::{NoProgress, ScanProgress};
use quietbox_runtime::scopes::{
    AuthError, AuthRejection, Authenticator, Principal, Scope, ScopeSet,
};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::SessionId;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::{Value, json};

pub use quietbox_runtime::config::origins::{
    AllowedOrigin, AllowedOrigins, BadOrigin, OriginPort, OriginScheme,
};

use quietbox_runtime::operations::{self, Args, Context, Operation, Output};
use quietbox_runtime::problem::ApiError;
use quietbox_runtime::wiring::App;

/// Largest `/mcp` POST body: read whole by the admission gate (to see a `tools/call`'s tool) and
/// by rmcp; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// All tenants together may hold this many times `MCP_MAX_SESSIONS` live sessions.
pub const TOTAL_SESSIONS_FACTOR: usize = 4;

/// One tool: its name, the operation it runs (which decides its scope and rate-limit bucket),
/// and how it behaves.
struct ToolSpec {
    name: &'static str,
    /// For a person (`title`, MCP 2025-06-18).
    title: &'static str,
    operation: Operation,
    description: &'static str,
    mutation: bool,
    idempotent: bool,
}

const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "get_availability",
        title: "Calendar availability",
        operation: Operation::Availability,
        description: "Busy intervals and free slots in the owner's calendar.",
        mutation: false,
        idempotent: true,
    },
    ToolSpec {
        name: "scan_inbox",
        title: "Scan the inbox",
        operation: Operation::ScanInbox,
        description: "Scans the inbox (incrementally when possible) and triages every message: newsletter, notification, personal, other, with reasons.",
        mutation: false,
        idempotent: true,
    },
    ToolSpec {
        name: "list_unsubscribe_candidates",
        title: "Unsubscribe candidates",
        operation: Operation::UnsubscribeCandidates,
        description: "Senders worth unsubscribing from, best first, with the method quietbox would use.",
        mutation: false,
        idempotent: true,
    },
    ToolSpec {
        name: "unsubscribe_history",
        title: "Unsubscribe history",
        operation: Operation::UnsubscribeHistory,
        description: "Every unsubscribe attempt and its result.",
        mutation: false,
        idempotent: true,
    },
    ToolSpec {
        name: "unsubscribe",
        title: "Unsubscribe from a sender",
        operation: Operation::Unsubscribe,
        description: "Unsubscribes from a sender: RFC 8058 one-click, else mailto, else a recorded link. At most once per sender and list.",
        mutation: true,
        idempotent: true,
    },
    ToolSpec {
        name: "send_unsubscribe_digest",
        title: "Unsubscribe digest",
        operation: Operation::UnsubscribeDigest,
        description: "The digest of candidates not sent before: a preview, or mailed to the owner with send=true.",
        mutation: true,
        idempotent: false,
    },
    ToolSpec {
        name: "unsubscribe_compliance",
        title: "Unsubscribe compliance",
        operation: Operation::UnsubscribeCompliance,
        description: "Whether unsubscribed senders stopped mailing: pending (inside the grace period), compliant, or violating with the count and the first and last violating dates.",
        mutation: false,
        idempotent: true,
    },
    ToolSpec {
        name: "set_sender_decision",
        title: "Sender decision",
        operation: Operation::SenderDecision,
        description: "Records keep (never a candidate again) or auto_archive (its mail leaves the inbox: a Gmail filter plus what is there now) for a sender.",
        mutation: true,
        idempotent: true,
    },
];

/// The name of the tool that runs `operation`, when one does (with every tool offered).
pub fn tool_name(operation: Operation) -> Option<&'static str> {
    TOOLS
        .iter()
        .find(|t| t.operation == operation)
        .map(|t| t.name)
}

/// The MCP server: one per session, cheap to clone.
#[derive(Clone)]
pub struct QuietboxMcp {
    app: App,
    /// `Some` over stdio: the local operator, who holds every scope.
    local: Option<Principal>,
}

impl QuietboxMcp {
    fn visible(&self) -> impl Iterator<Item = &'static ToolSpec> + '_ {
        visible_tools(self.app.settings.mcp_enable_mutation_tools)
    }

    fn principal(&self, context: &RequestContext<RoleServer>) -> Option<Principal> {
        if let Some(local) = &self.local {
            return Some(local.clone());
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>().cloned())
    }
}

/// The tools offered: all, or without the mutation tools.
fn visible_tools(mutation_tools: bool) -> impl Iterator<Item = &'static ToolSpec> {
    TOOLS.iter().filter(move |t| !t.mutation || mutation_tools)
}

fn tool(spec: &ToolSpec) -> Tool {
    // Generated from the operation's argument struct: the schema a client sees is the one
    // `Args::parse` enforces.
    let schema: JsonObject = operations::input_schema(spec.operation);
    let description = format!(
        "{} Requires scope {}.",
        spec.description,
        spec.operation.scope()
    );
    let tool = Tool::new(spec.name, description, Arc::new(schema)).with_title(spec.title);
    with_output_schema(tool, spec.operation).with_annotations(
        ToolAnnotations::new()
            .read_only(!spec.mutation)
            .destructive(spec.mutation && spec.operation != Operation::SenderDecision)
            .idempotent(spec.idempotent)
            .open_world(matches!(
                spec.operation,
                Operation::Unsubscribe | Operation::UnsubscribeDigest
            )),
    )
}

/// The schema of a list result, as `CandidateList` serializes it.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct CandidatesSchema {
    /// Best first.
    candidates: Vec<quietbox_core::candidates::Candidate>,
}

/// The schema of a history result, as `HistoryList` serializes it.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct HistorySchema {
    /// Every attempt.
    entries: Vec<quietbox_core::store::UnsubscribeEntry>,
}

/// `tool` with its `outputSchema`: the structured content of a result is either the
/// operation's typed result (what [`Output::to_json`] of it serializes, generated with schemars
/// as rmcp does for its typed tools) or, with `isError`, a [`failure`]'s `{code, message,
/// field?}`. Clients validate `structuredContent` against it in both cases (the TypeScript SDK
/// does), so the schema says both: an object that is one or the other, the result's `$defs` at
/// the root.
fn with_output_schema(tool: Tool, operation: Operation) -> Tool {
    let mut tool = with_result_schema(tool, operation);
    if let Some(result) = tool.output_schema.take() {
        let mut result = Arc::unwrap_or_clone(result);
        let mut schema = JsonObject::new();
        for key in ["$schema", "$defs"] {
            if let Some(value) = result.remove(key) {
                schema.insert(key.into(), value);
            }
        }
        schema.insert("type".into(), json!("object"));
        schema.insert(
            "anyOf".into(),
            json!([
                result,
                {
                    "description": "a failed call (isError): the code, as REST's problem+json has it, the message and, for bad arguments, the argument at fault",
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"}
                    },
                    "required": ["code", "message"]
                }
            ]),
        );
        tool.output_schema = Some(Arc::new(schema));
    }
    tool
}

/// `tool` with the schema of its operation's typed result as `outputSchema`.
fn with_result_schema(tool: Tool, operation: Operation) -> Tool {
    use quietbox_core::availability::Availability;
    use quietbox_core::compliance::ComplianceReport;
    use quietbox_core::service::{
        DecisionOutcome, DigestOutcome, ScanReport, SenderView, UnsubscribeOutcome,
    };
    match operation {
        Operation::Availability => tool.with_output_schema::<Availability>(),
        Operation::ScanInbox => tool.with_output_schema::<ScanReport>(),
        Operation::UnsubscribeCandidates => tool.with_output_schema::<CandidatesSchema>(),
        Operation::UnsubscribeHistory => tool.with_output_schema::<HistorySchema>(),
        Operation::Unsubscribe => tool.with_output_schema::<UnsubscribeOutcome>(),
        Operation::UnsubscribeDigest => tool.with_output_schema::<DigestOutcome>(),
        Operation::SenderDecision => tool.with_output_schema::<DecisionOutcome>(),
        Operation::UnsubscribeCompliance => tool.with_output_schema::<ComplianceReport>(),
        Operation::SenderView => tool.with_output_schema::<SenderView>(),
    }
}

/// A refused or failed tool call: `isError`, the message as text, and in `structuredContent`
/// the stable code (REST's problem+json `code` for the same failure), the message and, for bad
/// arguments, the argument at fault.
fn failure(code: ErrorCode, message: String, field: Option<&str>) -> CallToolResult {
    let mut structured = json!({"code": code.name(), "message": message});
    if let Some(field) = field {
        structured["field"] = json!(field);
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
    result.structured_content = Some(structured);
    result
}

/// The tool result of an operation's error: its code, as REST's problem+json has it.
fn refused(error: ApiError) -> CallToolResult {
    failure(error.code, error.detail, None)
}

/// What a tool's work gives: the typed result, or the error with core's code.
type Outcome = Result<Output, ApiError>;

/// Runs a tool's work with its panics caught: a bug reachable from some input must still give
/// the client an answer (rmcp runs each call in its own task, and a panicking task answers
/// nothing). `Err` is the JSON-RPC internal error, with the `internal` code in its data.
async fn guarded(
    tool: &str,
    work: impl std::future::Future<Output = Outcome>,
) -> Result<Outcome, McpError> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(outcome) => Ok(outcome),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(tool, panic = ?message, "MCP tool call panicked");
            Err(McpError::internal_error(
                format!("{tool} failed on an internal error (logged); the call was not completed"),
                Some(json!({"code": ErrorCode::Internal.name()})),
            ))
        }
    }
}

impl ServerHandler for QuietboxMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("quietbox", env!("CARGO_PKG_VERSION")))
            .with_instructions("quietbox: calendar availability, inbox triage, unsubscribe candidates, unsubscribes, sender decisions, the unsubscribe compliance watch and a digest for one mailbox.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            self.visible().map(tool).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(spec) = self.visible().find(|t| t.name == request.name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool {:?}", request.name),
                Some(json!({"code": ErrorCode::NotFound.name()})),
            ));
        };
        let operation = spec.operation;
        let Some(principal) = self.principal(&context) else {
            return Ok(failure(
                ErrorCode::Unauthenticated,
                "no authenticated principal for this call".into(),
                None,
            )
            .into());
        };
        // Over HTTP the admission gate answered 403 already; this is stdio's refusal (and the
        // HTTP one for a request the gate could not read).
        if !principal.scopes.contains(operation.scope()) {
            let message = format!(
                "insufficient_scope: {} needs scope {}",
                spec.name,
                operation.scope()
            );
            return Ok(failure(ErrorCode::Forbidden, message, None).into());
        }
        // The tool's typed arguments, as its inputSchema says: a violation names the argument.
        let args = match Args::parse(
            operation,
            Value::Object(request.arguments.unwrap_or_default()),
        ) {
            Ok(args) => args,
            Err(bad) => {
                return Ok(failure(bad.code, bad.message, bad.field.as_deref()).into());
            }
        };
        if let Err(limited) = operations::admit(&self.app, &principal, operation).await {
            return Ok(refused(ApiError::from(limited)).into());
        }
        // Progress notifications go through one forwarding task that the call waits for, so
        // every notification reaches the client before the result.
        let (progress, forwarder) = match context.meta.get_progress_token() {
            Some(token) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Option<usize>)>();
                let peer = context.peer.clone();
                let forwarder = tokio::spawn(async move {
                    while let Some((done, total)) = rx.recv().await {
                        let mut param = ProgressNotificationParam::new(token.clone(), done as f64);
                        param.total = total.map(|t| t as f64);
                        param.message = Some(format!("scanned {done} messages"));
                        let _ = peer.notify_progress(param).await;
                    }
                });
                (Some(PeerProgress(tx)), Some(forwarder))
            }
            None => (None, None),
        };
        let reporter: &dyn ScanProgress = match &progress {
            Some(progress) => progress,
            None => &NoProgress,
        };
        let cx = Context {
            app: &self.app,
            principal: &principal,
            progress: reporter,
        };
        let outcome = guarded(spec.name, args.run(cx)).await;
        drop(progress);
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        let result = outcome?.and_then(|output| {
            let json = output.to_json().map_err(|e| {
                ApiError::new(ErrorCode::Internal, format!("cannot serialize: {e}"))
            })?;
            // The text carries the result itself (MCP: a tool returning structured content
            // SHOULD also return it serialized in a text block), for clients that read only
            // `content`.
            let text = json.to_string();
            let mut done = CallToolResult::success(vec![ContentBlock::text(text)]);
            done.structured_content = Some(json);
            Ok(done)
        });
        Ok(match result {
            Ok(done) => done,
            Err(error) => refused(error),
        }
        .into())
    }

    /// A `tools/call` rmcp could not read as one (its `arguments` not an object, its `name`
    /// missing or not a string) arrives here: -32602 Invalid params, not -32601, since the
    /// method exists. Any other unknown method is -32601.
    async fn on_custom_request(
        &self,
        request: rmcp::model::CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CustomResult, McpError> {
        if request.method != "tools/call" {
            return Err(McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                request.method,
                Some(json!({"code": ErrorCode::NotFound.name()})),
            ));
        }
        let params = request.params.unwrap_or(Value::Null);
        let (field, problem) = match params.get("name") {
            _ if !params.is_object() => ("params", "must be an object"),
            None => ("name", "is required"),
            Some(name) if !name.is_string() => ("name", "must be a string"),
            _ => match params.get("arguments") {
                Some(arguments) if !arguments.is_object() && !arguments.is_null() => {
                    ("arguments", "must be an object")
                }
                _ => ("params", "do not have the shape of tools/call"),
            },
        };
        Err(McpError::invalid_params(
            format!("tools/call: {field} {problem}"),
            Some(json!({"code": ErrorCode::InvalidRequest.name(), "field": field})),
        ))
    }
}

/// Scan progress handed to the forwarding task of one tool call.
struct PeerProgress(tokio::sync::mpsc::UnboundedSender<(usize, Option<usize>)>);

impl ScanProgress for PeerProgress {
    fn report(&self, done: usize, total: Option<usize>) {
        let _ = self.0.send((done, total));
    }
}

/// The operator at the terminal (stdio transport): every scope.
fn local_operator() -> Principal {
    Principal {
        subject: "local-operator".into(),
        tenant: "default".into(),
        scopes: ScopeSet::all(),
        method: AuthMethod::ApiKey,
    }
}

/// The streamable HTTP router: `/mcp` behind the `Origin` check, the auth layer and the
/// admission gate, plus the RFC 9728 document.
pub fn router(app: App) -> Router {
    let server = QuietboxMcp {
        app: app.clone(),
        local: None,
    };
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(app.settings.mcp_allowed_hosts.clone());
    config.max_request_body_bytes = MAX_BODY_BYTES;
    let sessions = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(move || Ok(server.clone()), sessions.clone(), config);
    let mutation_tools = app.settings.mcp_enable_mutation_tools;
    let gate = Arc::new(Gate {
        mutation_tools,
        ledger: SessionLedger::new(
            sessions,
            app.settings.mcp_max_sessions,
            app.settings
                .mcp_max_sessions
                .saturating_mul(TOTAL_SESSIONS_FACTOR),
        ),
    });
    let origins = Arc::new(app.settings.mcp_allowed_origins.clone());
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(gate, admission))
        .layer(AuthLayer::new(app.auth.clone()).naming_scopes(&tool_scopes(mutation_tools)))
        .layer(axum::middleware::from_fn_with_state(origins, check_origin))
        .merge(protected_resource_routes(app.auth.clone()))
        .merge(quietbox_runtime::wiring::ready_routes(app.clone()))
}

/// The scopes of the offered tools, in table order.
pub fn tool_scopes(mutation_tools: bool) -> Vec<Scope> {
    let scopes: ScopeSet = visible_tools(mutation_tools)
        .map(|t| t.operation.scope())
        .collect();
    scopes.iter().collect()
}

/// 403 `origin_not_allowed` to a request whose `Origin` is not allowed (MCP 2025-11-25
/// transports: servers MUST validate it on every request).
async fn check_origin(
    State(origins): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(HeaderValue::as_bytes);
    if !origins.allows(origin) {
        return ApiError::new(
            ErrorCode::OriginNotAllowed,
            "this Origin may not use the MCP endpoint (MCP_ALLOWED_ORIGINS lists the allowed ones)",
        )
        .into_response();
    }
    next.run(request).await
}

/// What the admission gate needs: which tools are offered, and the session ledger.
struct Gate {
    mutation_tools: bool,
    ledger: SessionLedger,
}

/// The parts of a JSON-RPC message the gate reads; everything else is rmcp's.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<PeekParams<'a>>,
}

#[derive(Deserialize)]
struct PeekParams<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
}

/// The scope the tool of a `tools/call` body needs, when the body is one and names an offered
/// tool. Anything else (other methods, unknown tools, bodies that are not JSON) is rmcp's to
/// answer.
fn called_tool_scope(body: &[u8], mutation_tools: bool) -> Option<Scope> {
    let peek: Peek<'_> = serde_json::from_slice(body).ok()?;
    if peek.method.as_deref() != Some("tools/call") {
        return None;
    }
    let name = peek.params?.name?;
    visible_tools(mutation_tools)
        .find(|t| t.name == name)
        .map(|t| t.operation.scope())
}

/// Inside the auth layer: refuses a principal without any scope (403, no session); answers a
/// request on another principal's session 404, as if it did not exist (a session belongs to the
/// tenant and subject that opened it); answers a `tools/call` the principal has no scope for with
/// 403 and the step-up challenge; counts new sessions per tenant.
async fn admission(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let Some(principal) = request.extensions().get::<Principal>().cloned() else {
        // The auth layer in front always sets one; without it there is nobody to admit.
        return AuthRejection::new(AuthError::Unauthenticated(Reason::Missing), None)
            .into_response();
    };
    let auth = request.extensions().get::<Arc<Authenticator>>().cloned();
    if principal.scopes == ScopeSet::empty() {
        let all = tool_scopes(gate.mutation_tools);
        let names: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        let mut refusal = ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "this credential carries no quietbox scope ({}): it gets no MCP session",
                names.join(" ")
            ),
        );
        if let Some(auth) = &auth {
            refusal = refusal.with_www_authenticate(auth.insufficient_scope_challenge(&all));
        }
        return refusal.into_response();
    }
    if let Some(id) = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        && !gate.ledger.belongs_to(id, &principal)
    {
        return ApiError::new(
            ErrorCode::NotFound,
            "this credential has no MCP session with that id; open one with initialize",
        )
        .into_response();
    }
    if request.method() == Method::DELETE {
        // MCP 2025-11-25: a session that does not exist (never did, or ended) is 404, and a
        // terminated one answers 200/204 (rmcp says 202).
        let id = request
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(SessionId::from);
        let live = match &id {
            Some(id) => gate.ledger.sessions.sessions.read().await.contains_key(id),
            None => false,
        };
        if id.is_some() && !live {
            return ApiError::new(
                ErrorCode::NotFound,
                "no MCP session with that id (it ended or never existed)",
            )
            .into_response();
        }
        let mut response = next.run(request).await;
        if response.status() == axum::http::StatusCode::ACCEPTED {
            *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
        }
        return response;
    }
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("an MCP message is at most {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
        // JSON-RPC: a body that is not JSON is a parse error (-32700, id null), over HTTP 400.
        let error = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error: the body is not JSON"}});
        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    if let Some(scope) = called_tool_scope(&bytes, gate.mutation_tools)
        && !principal.scopes.contains(scope)
    {
        return AuthRejection::new(AuthError::Forbidden(scope), auth.as_deref()).into_response();
    }
    let opens_session = !parts.headers.contains_key("mcp-session-id");
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    if !opens_session {
        return next.run(request).await;
    }
    let mut reservation = match gate.ledger.reserve(&principal).await {
        Ok(reservation) => reservation,
        Err(refusal) => return refusal.into_response(),
    };
    let response = next.run(request).await;
    reservation.session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(SessionId::from);
    drop(reservation);
    response
}

/// Live MCP sessions per tenant. rmcp's session manager knows the sessions (it drops one on
/// DELETE and when it idles out); the ledger knows whose they are, and forgets ids the manager
/// no longer holds each time it counts.
struct SessionLedger {
    sessions: Arc<LocalSessionManager>,
    per_tenant: usize,
    total: usize,
    tenants: Mutex<HashMap<String, TenantSessions>>,
}

#[derive(Default)]
struct TenantSessions {
    /// Each live session and the subject that opened it.
    live: HashMap<SessionId, String>,
    /// `initialize` requests admitted and not answered yet.
    opening: usize,
}

/// A session being opened for a tenant: counted until dropped, when the new session's id (if the
/// `initialize` succeeded) joins the tenant's live sessions.
struct Reservation<'a> {
    ledger: &'a SessionLedger,
    tenant: String,
    subject: String,
    session: Option<SessionId>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut tenants = self
            .ledger
            .tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = tenants.entry(self.tenant.clone()).or_default();
        entry.opening = entry.opening.saturating_sub(1);
        if let Some(id) = self.session.take() {
            entry.live.insert(id, std::mem::take(&mut self.subject));
        }
    }
}

impl SessionLedger {
    fn new(sessions: Arc<LocalSessionManager>, per_tenant: usize, total: usize) -> Self {
        SessionLedger {
            sessions,
            per_tenant,
            total,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one more session for `tenant`, or 503 with `Retry-After` when the tenant (or all
    /// tenants together) are at the cap.
    async fn reserve(&self, principal: &Principal) -> Result<Reservation<'_>, ApiError> {
        let tenant = principal.tenant.as_str();
        let live = self.sessions.sessions.read().await;
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants.retain(|_, t| {
            t.live.retain(|id, _| live.contains_key(id));
            !t.live.is_empty() || t.opening > 0
        });
        let refuse = |detail: String| {
            ApiError::new(ErrorCode::NotReady, detail)
                .with_retry_after(std::time::Duration::from_secs(30))
        };
        let opening: usize = tenants.values().map(|t| t.opening).sum();
        if live.len().saturating_add(opening) >= self.total {
            return Err(refuse(format!(
                "{} MCP sessions are open over all tenants ({TOTAL_SESSIONS_FACTOR} x MCP_MAX_SESSIONS); retry when idle ones expire",
                self.total
            )));
        }
        let entry = tenants.entry(tenant.to_owned()).or_default();
        if entry.live.len().saturating_add(entry.opening) >= self.per_tenant {
            return Err(refuse(format!(
                "{} MCP sessions are open for this tenant (MCP_MAX_SESSIONS, per tenant); close one (DELETE /mcp) or retry when idle ones expire",
                self.per_tenant
            )));
        }
        entry.opening += 1;
        Ok(Reservation {
            ledger: self,
            tenant: tenant.to_owned(),
            subject: principal.subject.clone(),
            session: None,
        })
    }

    /// Whether the session `id` may be used by `principal`: `false` when another tenant or
    /// subject opened it. An id the ledger does not know is rmcp's to answer (404).
    fn belongs_to(&self, id: &str, principal: &Principal) -> bool {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        for (tenant, sessions) in tenants.iter() {
            if let Some(subject) = sessions.live.get(id) {
                return *tenant == principal.tenant && *subject == principal.subject;
            }
        }
        true
    }
}

/// Serves MCP over stdin/stdout until the client closes it.
pub async fn serve_stdio(app: App) -> Result<(), String> {
    let server = QuietboxMcp {
        app,
        local: Some(local_operator()),
    };
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP stdio: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("MCP stdio: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quietbox_runtime::operations::HistoryList;

    #[tokio::test]
    async fn a_panicking_tool_is_answered_with_an_internal_error() {
        let answer = guarded("get_availability", async {
            let minutes: i64 = "9223372036854775807".parse().unwrap();
            // chrono panics on a delta out of range: stands for any bug reachable from input.
            let _ = chrono::Duration::minutes(minutes);
            Ok(Output::from(HistoryList { entries: vec![] }))
        })
        .await;
        let error = answer.expect_err("a panic is an internal error");
        assert_eq!(error.code, rmcp::model::ErrorCode::INTERNAL_ERROR);
        assert_eq!(error.data, Some(json!({"code": "internal"})));
        assert!(
            error.message.contains("get_availability"),
            "{}",
            error.message
        );
    }

    #[tokio::test]
    async fn work_that_does_not_panic_passes_through() {
        let refusal = ApiError::new(ErrorCode::NotFound, "refused");
        let answer = guarded("t", async { Err(refusal) }).await;
        let Ok(Err(error)) = answer else {
            panic!("the refusal passes through");
        };
        assert_eq!(
            (error.code, error.detail.as_str()),
            (ErrorCode::NotFound, "refused")
        );
    }

    #[test]
    fn the_gate_reads_the_scope_of_an_offered_tools_call_only() {
        let call = |name: &str| {
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}})
                .to_string()
        };
        assert_eq!(
            called_tool_scope(call("unsubscribe").as_bytes(), true),
            Some(Scope::UnsubscribeExecute)
        );
        assert_eq!(
            called_tool_scope(call("get_availability").as_bytes(), true),
            Some(Scope::AvailabilityRead)
        );
        // A hidden mutation tool is rmcp's to refuse as unknown.
        assert_eq!(
            called_tool_scope(call("unsubscribe").as_bytes(), false),
            None
        );
        assert_eq!(called_tool_scope(call("nope").as_bytes(), true), None);
        assert_eq!(
            called_tool_scope(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, true),
            None
        );
        assert_eq!(called_tool_scope(b"not json", true), None);
    }

    fn principal(tenant: &str, subject: &str) -> Principal {
        Principal {
            subject: subject.to_owned(),
            tenant: tenant.to_owned(),
            scopes: ScopeSet::all(),
            method: AuthMethod::Jwt,
        }
    }

    #[tokio::test]
    async fn a_session_rmcp_dropped_frees_its_tenants_slot() {
        use rmcp::transport::streamable_http_server::session::SessionManager;
        let manager = Arc::new(LocalSessionManager::default());
        let ledger = SessionLedger::new(manager.clone(), 1, 4);
        let owner = principal("t1", "desk-1");
        let mut reservation = ledger.reserve(&owner).await.unwrap();
        let (id, _transport) = manager.create_session().await.unwrap();
        reservation.session = Some(id.clone());
        drop(reservation);
        assert!(ledger.reserve(&owner).await.is_err(), "t1 is at its cap");
        assert!(ledger.belongs_to(&id, &owner));
        assert!(!ledger.belongs_to(&id, &principal("t1", "desk-2")));
        assert!(!ledger.belongs_to(&id, &principal("t2", "desk-1")));
        drop(ledger.reserve(&principal("t2", "desk-9")).await.unwrap());
        // What DELETE and the idle timeout do: rmcp closes the session.
        manager.close_session(&id).await.unwrap();
        assert!(
            ledger.reserve(&owner).await.is_ok(),
            "the slot is free again"
        );
    }

    #[test]
    fn the_challenge_scopes_follow_the_offered_tools() {
        assert_eq!(tool_scopes(true), Scope::ALL);
        assert_eq!(
            tool_scopes(false),
            [
                Scope::AvailabilityRead,
                Scope::MailScan,
                Scope::UnsubscribeRead
            ]
        );
    }
}
