//! The MCP surface of `quietbox-mcp`, on `rmcp`: the tools of DESIGN.md §6 over stdio and
//! streamable HTTP (`/mcp`).
//!
//! Over HTTP, the auth crate's layer authenticates every request (in `MCP_AUTH_MODE=oauth` it is
//! an OAuth 2.1 resource server that serves `/.well-known/oauth-protected-resource` and answers
//! 401 with `resource_metadata`); rmcp hands the request's parts to the tool call, where the
//! principal's scope is checked against the tool's. Over stdio the caller is the local operator.
//! Mutation tools are hidden and refused with `MCP_ENABLE_MUTATION_TOOLS=false`; an active
//! incident refuses them through the core, without restart.

use std::sync::Arc;

use axum::Router;
use quietbox_auth::http::{AuthLayer, protected_resource_routes};
use quietbox_auth::{AuthMethod, Principal, Scope, ScopeSet};
use quietbox_core::ports::{NoProgress, ScanProgress};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

use crate::operations;
use crate::wiring::App;

/// One tool: its name, the operation it runs, its scope, and how it behaves.
struct ToolSpec {
    name: &'static str,
    operation: &'static str,
    description: &'static str,
    scope: Scope,
    mutation: bool,
    idempotent: bool,
    schema: fn() -> Value,
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "get_availability",
        operation: "availability",
        description: "Busy intervals and free slots in the owner's calendar.",
        scope: Scope::AvailabilityRead,
        mutation: false,
        idempotent: true,
        schema: || {
            json!({"type": "object", "properties": {
            "start": {"type": "string", "format": "date-time", "description": "window start (default now)"},
            "end": {"type": "string", "format": "date-time", "description": "window end (default start + 7 days)"},
            "slot_minutes": {"type": "integer", "minimum": 5, "description": "slot length (default 30)"},
            "tz": {"type": "string", "description": "IANA time zone, e.g. Europe/Paris"},
            "day_start": {"type": "string", "description": "working day start, HH:MM"},
            "day_end": {"type": "string", "description": "working day end, HH:MM"}}, "additionalProperties": false})
        },
    },
    ToolSpec {
        name: "scan_inbox",
        operation: "scan_inbox",
        description: "Scans the inbox (incrementally when possible) and triages every message: newsletter, notification, personal, other, with reasons.",
        scope: Scope::MailScan,
        mutation: false,
        idempotent: true,
        schema: || {
            json!({"type": "object", "properties": {
            "query": {"type": "string", "description": "Gmail search query"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "messages listed (default 100)"}}, "additionalProperties": false})
        },
    },
    ToolSpec {
        name: "list_unsubscribe_candidates",
        operation: "unsubscribe_candidates",
        description: "Senders worth unsubscribing from, best first, with the method quietbox would use.",
        scope: Scope::UnsubscribeRead,
        mutation: false,
        idempotent: true,
        schema: no_args,
    },
    ToolSpec {
        name: "unsubscribe_history",
        operation: "unsubscribe_history",
        description: "Every unsubscribe attempt and its result.",
        scope: Scope::UnsubscribeRead,
        mutation: false,
        idempotent: true,
        schema: || json!({"type": "object", "properties": {"sender": {"type": "string", "description": "only this sender"}}, "additionalProperties": false}),
    },
    ToolSpec {
        name: "unsubscribe",
        operation: "unsubscribe",
        description: "Unsubscribes from a sender: RFC 8058 one-click, else mailto, else a recorded link. At most once per sender and list.",
        scope: Scope::UnsubscribeExecute,
        mutation: true,
        idempotent: true,
        schema: || {
            json!({"type": "object", "properties": {
            "sender": {"type": "string", "description": "sender address"},
            "candidate_id": {"type": "string", "description": "id from list_unsubscribe_candidates"},
            "dry_run": {"type": "boolean", "description": "only say what would be done"}}, "additionalProperties": false})
        },
    },
    ToolSpec {
        name: "send_unsubscribe_digest",
        operation: "unsubscribe_digest",
        description: "Mails the owner a digest of candidates not sent before (send=false previews).",
        scope: Scope::UnsubscribeDigest,
        mutation: true,
        idempotent: false,
        schema: || json!({"type": "object", "properties": {"send": {"type": "boolean", "description": "send the mail (default true)"}}, "additionalProperties": false}),
    },
    ToolSpec {
        name: "unsubscribe_compliance",
        operation: "unsubscribe_compliance",
        description: "Whether unsubscribed senders stopped mailing: pending (inside the grace period), compliant, or violating with the count and the first and last violating dates.",
        scope: Scope::UnsubscribeRead,
        mutation: false,
        idempotent: true,
        schema: || json!({"type": "object", "properties": {"sender": {"type": "string", "description": "only this sender"}}, "additionalProperties": false}),
    },
    ToolSpec {
        name: "set_sender_decision",
        operation: "sender_decision",
        description: "Records keep (never a candidate again) or auto_archive (its mail leaves the inbox: a Gmail filter plus what is there now) for a sender.",
        scope: Scope::UnsubscribeExecute,
        mutation: true,
        idempotent: true,
        schema: || {
            json!({"type": "object", "properties": {
            "sender": {"type": "string"}, "decision": {"type": "string", "enum": ["keep", "auto_archive"]}}, "required": ["sender", "decision"], "additionalProperties": false})
        },
    },
];

/// The MCP server: one per session, cheap to clone.
#[derive(Clone)]
pub struct QuietboxMcp {
    app: App,
    /// `Some` over stdio: the local operator, who holds every scope.
    local: Option<Principal>,
}

impl QuietboxMcp {
    fn visible(&self) -> impl Iterator<Item = &'static ToolSpec> + '_ {
        TOOLS
            .iter()
            .filter(|t| !t.mutation || self.app.settings.mcp_enable_mutation_tools)
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

fn tool(spec: &ToolSpec) -> Tool {
    let schema: JsonObject = match (spec.schema)() {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    };
    let description = format!("{} Requires scope {}.", spec.description, spec.scope);
    Tool::new(spec.name, description, Arc::new(schema)).with_annotations(
        ToolAnnotations::new()
            .read_only(!spec.mutation)
            .destructive(spec.mutation && spec.name != "set_sender_decision")
            .idempotent(spec.idempotent)
            .open_world(spec.name == "unsubscribe" || spec.name == "send_unsubscribe_digest"),
    )
}

fn failure(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
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
                None,
            ));
        };
        let Some(principal) = self.principal(&context) else {
            return Ok(failure("no authenticated principal for this call".into()).into());
        };
        if !principal.scopes.contains(spec.scope) {
            return Ok(failure(format!(
                "insufficient_scope: {} needs scope {}",
                spec.name, spec.scope
            ))
            .into());
        }
        let operation = match spec.operation {
            "scan_inbox" => Some("scan"),
            "unsubscribe" => Some("unsubscribe"),
            "unsubscribe_digest" => Some("digest"),
            _ => None,
        };
        if let Some(operation) = operation
            && let Err(limited) = self.app.limiter.check(&principal.tenant, operation).await
        {
            return Ok(failure(limited.to_string()).into());
        }
        let mut args = Value::Object(request.arguments.unwrap_or_default());
        if spec.name == "send_unsubscribe_digest" && args.get("send").is_none() {
            args["send"] = Value::Bool(true);
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
        let outcome = match &progress {
            Some(progress) => {
                operations::execute(&self.app, &principal, spec.operation, &args, progress).await
            }
            None => {
                operations::execute(&self.app, &principal, spec.operation, &args, &NoProgress).await
            }
        };
        drop(progress);
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        Ok(match outcome {
            Ok((result, summary)) => {
                let mut done = CallToolResult::success(vec![ContentBlock::text(summary)]);
                done.structured_content = Some(result);
                done
            }
            Err(error) => failure(error),
        }
        .into())
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

/// The streamable HTTP router: `/mcp` behind the auth layer, plus the RFC 9728 document.
pub fn router(app: App) -> Router {
    let server = QuietboxMcp {
        app: app.clone(),
        local: None,
    };
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(app.settings.mcp_allowed_hosts.clone());
    let sessions = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(move || Ok(server.clone()), sessions.clone(), config);
    let max_sessions = app.settings.mcp_max_sessions;
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(move |request, next| {
            session_cap(sessions.clone(), max_sessions, request, next)
        }))
        .layer(AuthLayer::new(app.auth.clone()))
        .merge(protected_resource_routes(app.auth.clone()))
}

/// Refuses a request that would open a new MCP session (a POST without `Mcp-Session-Id`) while
/// `max` sessions are live. rmcp keeps every session until it idles out, so without a cap a
/// client looping on `initialize` grows memory without bound (the soak test saw 1 GB in 8 s).
/// Requests within existing sessions are never refused.
async fn session_cap(
    sessions: Arc<LocalSessionManager>,
    max: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let opens_session = request.method() == axum::http::Method::POST
        && !request.headers().contains_key("mcp-session-id");
    if opens_session && sessions.sessions.read().await.len() >= max {
        return crate::problem::ApiError::new(
            quietbox_core::ErrorCode::NotReady,
            format!(
                "{max} MCP sessions are open (MCP_MAX_SESSIONS); close one (DELETE /mcp) or retry when idle ones expire"
            ),
        )
        .with_retry_after(std::time::Duration::from_secs(30))
        .into_response();
    }
    next.run(request).await
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
