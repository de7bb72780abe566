//! The REST surface of `quietbox-api` (DESIGN.md §6). Each handler states its scope in its
//! type, extracts and validates input, calls one use case, and converts the result.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::Utc;
use quietbox_auth::http::{AuthLayer, Authorized};
use quietbox_core::ErrorCode;
use quietbox_core::availability::Availability;
use quietbox_core::candidates::Candidate;
use quietbox_core::compliance::ComplianceReport;
use quietbox_core::ports::NoProgress;
use quietbox_core::service::{
    DecisionOutcome, DigestOutcome, ScanReport, SenderView, UnsubscribeOutcome,
};
use quietbox_runtime::operations::{CandidateList, HistoryList};
use quietbox_runtime::scopes::{Principal, scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{OpenApi, ToSchema};

use crate::idempotency::{self, Begin};
use quietbox_runtime::operations::{
    AvailabilityArgs, CandidatesArgs, ComplianceArgs, Context, DigestArgs, HistoryArgs, Operation,
    OperationArgs, ScanArgs, SenderDecisionArgs, SenderViewArgs, UnsubscribeArgs, admit, run,
};
use quietbox_runtime::problem::{ApiError, AppJson};
use quietbox_runtime::wiring::App;

/// The REST router (without the shared layers; see [`quietbox_runtime::http::with_common_layers`]).
pub fn router(app: App) -> Router {
    let protected = Router::new()
        .route("/v1/availability", get(availability))
        .route("/v1/mail/scan", post(scan))
        .route("/v1/unsubscribe/candidates", get(candidates))
        .route("/v1/unsubscribe", post(unsubscribe))
        .route("/v1/unsubscribe/history", get(history))
        .route("/v1/unsubscribe/digest", post(digest))
        .route("/v1/unsubscribe/compliance", get(compliance))
        .route("/v1/senders/{address}", get(sender))
        .route("/v1/senders/{address}/decision", put(decision))
        .layer(AuthLayer::new(app.auth.clone()));
    Router::new()
        .merge(protected)
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi))
        .with_state(app)
}

/// The OpenAPI document, generated from the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(title = "quietbox REST API", description = "Personal mail-and-calendar agent.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")),
    servers((url = "/", description = "the server this document was fetched from")),
    paths(availability, scan, candidates, unsubscribe, history, digest, compliance, sender, decision, ready),
    components(schemas(ScanArgs, UnsubscribeArgs, DigestArgs, DecisionBody, Ready)),
    modifiers(&Security, &ProblemResponses, &AvailabilityConstraints)
)]
pub struct ApiDoc;

/// Every `/v1` operation can answer with a problem: bad input, a missing or insufficient
/// credential, a rate limit, incident mode or an unreachable provider. Declared once here, so
/// no handler can forget one and clients (and schemathesis) see the real status set.
struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, ResponseBuilder};
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description.to_owned()))
        };
        let problem = ObjectBuilder::new()
            .description(Some(
                "RFC 9457 problem details; `code` is quietbox's stable error code.",
            ))
            .property("type", text("URI naming the error code"))
            .property("title", text("HTTP reason phrase"))
            .property("status", ObjectBuilder::new().schema_type(Type::Integer))
            .property("detail", text("what went wrong, for a person"))
            .property("code", text("stable snake_case error code"))
            .property(
                "missing",
                ArrayBuilder::new()
                    .items(text("a dependency"))
                    .description(Some(
                        "`/ready` only: the dependencies not reachable yet".to_owned(),
                    )),
            )
            .required("type")
            .required("title")
            .required("status")
            .required("code");
        openapi
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .insert("Problem".to_owned(), problem.into());
        let common = [
            ("400", "invalid input (query, path or body)"),
            (
                "401",
                "no or invalid credential (`WWW-Authenticate` says which)",
            ),
            ("403", "valid credential without the operation's scope"),
            ("413", "body too large"),
            ("415", "body is not `application/json`"),
            ("429", "rate limited (`Retry-After` says when to retry)"),
            ("500", "internal error"),
            ("502", "the mail or calendar provider failed"),
            ("503", "incident mode, or a dependency is unavailable"),
            ("504", "the mail or calendar provider timed out"),
        ];
        let problem_content = || {
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                // A declared error answer without a body is a problem too.
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response
                        && (status.starts_with('4') || status.starts_with('5'))
                        && response.content.is_empty()
                    {
                        response
                            .content
                            .insert("application/problem+json".to_owned(), problem_content());
                    }
                }
                if !path.starts_with("/v1/") {
                    continue;
                }
                for (status, description) in common {
                    if operation.responses.responses.contains_key(status) {
                        continue;
                    }
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content("application/problem+json", problem_content())
                        .build();
                    operation
                        .responses
                        .responses
                        .insert(status.to_owned(), response.into());
                }
            }
        }
    }
}

/// The constraints of `GET /v1/availability`'s query the handler enforces beyond the argument
/// types: `tz` is one of the IANA zone names it knows, `day_start`/`day_end` are `HH:MM`.
struct AvailabilityConstraints;

impl utoipa::Modify for AvailabilityConstraints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        let Some(operation) = openapi
            .paths
            .paths
            .get_mut("/v1/availability")
            .and_then(|item| item.get.as_mut())
        else {
            return;
        };
        for parameter in operation.parameters.iter_mut().flatten() {
            let schema = match parameter.name.as_str() {
                "tz" => ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()))),
                "day_start" | "day_end" => ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^([01][0-9]|2[0-3]):[0-5][0-9]$")),
                _ => continue,
            };
            parameter.schema = Some(Schema::Object(schema.build()).into());
        }
    }
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(e) => ApiError::new(ErrorCode::Internal, e.to_string()).into_response(),
    }
}

/// Readiness: the state store is writable and the mail provider can serve (mbox readable, or
/// Google token refreshable).
#[utoipa::path(get, path = "/ready", security(()),
    responses((status = 200, description = "ready", body = Ready, example = json!({"status": "ready"})),
        (status = 503, description = "not ready (`missing` names the dependencies)")))]
async fn ready(state: State<App>) -> Response {
    // Shared with MCP: also names a dependency (Google) still unreachable since start.
    quietbox_runtime::wiring::ready(state).await
}

/// The body of `GET /ready` when ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(pattern = "^ready$")]
    pub status: String,
}

/// The context of a REST call: no progress reporting.
fn cx<'a>(app: &'a App, who: &'a Principal) -> Context<'a> {
    Context {
        app,
        principal: who,
        progress: &NoProgress,
    }
}

/// A query string that is not the operation's arguments: 400 `invalid_request`, naming what.
fn query_args<A: OperationArgs>(
    query: Result<Query<A>, axum::extract::rejection::QueryRejection>,
) -> Result<A, ApiError> {
    let Query(args) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    args.validate()?;
    Ok(args)
}

/// A JSON body as the operation's arguments, validated. A number with a zero fraction (`180.0`)
/// is an integer, as in JSON Schema (the documented `integer`), so it is read as one.
fn body_args<A: OperationArgs>(mut body: serde_json::Value) -> Result<A, ApiError> {
    fn integral(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                    // Exact in f64 below 2^53; beyond that the value is out of every bound anyway.
                    if f.abs() < 9_007_199_254_740_992.0 {
                        *n = serde_json::Number::from(f as i64);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(integral),
            serde_json::Value::Object(map) => map.values_mut().for_each(integral),
            _ => {}
        }
    }
    integral(&mut body);
    Ok(quietbox_runtime::operations::parse::<A>(body)?)
}

/// Busy intervals and free slots.
#[utoipa::path(get, path = "/v1/availability", params(AvailabilityArgs),
    responses((status = 200, description = "busy intervals and free slots", body = Availability, example = json!({
        "busy": [{"start": "2026-12-02T09:00:00Z", "end": "2026-12-02T10:00:00Z"}],
        "slots": [{"start": "2026-12-02T10:00:00Z", "end": "2026-12-02T10:30:00Z"}]}))), security(("api_key" = []), ("bearer" = [])))]
async fn availability(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::AvailabilityRead>,
    params: Result<Query<AvailabilityArgs>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    // Bounded before use (window near now, slot_minutes 5..=1440): 400, never a panic.
    let args = query_args(params)?;
    admit(&app, &who, Operation::Availability).await?;
    Ok(axum::Json(run(cx(&app, &who), args).await?))
}

/// Scans and triages the inbox.
#[utoipa::path(post, path = "/v1/mail/scan", request_body = ScanArgs,
    responses((status = 200, description = "triage report", body = ScanReport, example = json!({
        "total": 1, "fetched": 1, "incremental": false,
        "classes": {"newsletter": 1, "notification": 0, "personal": 0, "other": 0},
        "messages": [{"id": "m1", "from": "News <news@example.com>", "subject": "Weekly", "date": "2026-12-01T08:00:00Z",
            "class": "newsletter", "reasons": ["list-id"]}],
        "senders": [{"address": "news@example.com", "name": "News", "count": 3, "unread": 3, "unread_ratio": 1.0,
            "first_seen": "2026-11-01T08:00:00Z", "last_seen": "2026-12-01T08:00:00Z", "list_id": "weekly.example.com",
            "class": "newsletter", "unsubscribe": {"targets": [{"kind": "url", "url": "https://example.com/u", "https": true}],
                "one_click": true}, "methods": ["one_click", "manual"]}]})), (status = 429, description = "rate limited")), security(("api_key" = []), ("bearer" = [])))]
async fn scan(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::MailScan>,
    AppJson(body): AppJson<serde_json::Value>,
) -> Result<impl IntoResponse, ApiError> {
    let args: ScanArgs = body_args(body)?;
    admit(&app, &who, Operation::ScanInbox).await?;
    Ok(axum::Json(run(cx(&app, &who), args).await?))
}

/// Ranked unsubscribe candidates.
#[utoipa::path(get, path = "/v1/unsubscribe/candidates", responses((status = 200, description = "candidates, best first", body = CandidateList, example = json!({
        "candidates": [{"id": "0123456789abcdef", "score": 1.5, "sender": {"address": "news@example.com", "name": "News", "count": 3, "unread": 3, "unread_ratio": 1.0,
            "first_seen": "2026-11-01T08:00:00Z", "last_seen": "2026-12-01T08:00:00Z", "list_id": "weekly.example.com",
            "class": "newsletter", "unsubscribe": {"targets": [{"kind": "url", "url": "https://example.com/u", "https": true}],
                "one_click": true}, "methods": ["one_click", "manual"]},
            "method": "one_click", "link": "https://example.com/u"}]}))),
    security(("api_key" = []), ("bearer" = [])))]
async fn candidates(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeRead>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::UnsubscribeCandidates).await?;
    let ranked = run(cx(&app, &who), CandidatesArgs {}).await?.candidates;
    let body = candidates_body(ranked)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot serialize: {e}")))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    ))
}

/// The JSON body of a ranking, serialized once per ranking: core returns the same `Arc` while
/// the ranking is unchanged, and the one kept here is held, so its address cannot be reused by
/// another ranking while the comparison relies on it.
fn candidates_body(ranked: Arc<Vec<Candidate>>) -> Result<Bytes, serde_json::Error> {
    static LAST: Mutex<Option<(Arc<Vec<Candidate>>, Bytes)>> = Mutex::new(None);
    if let Some((of, body)) = LAST.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
        && Arc::ptr_eq(of, &ranked)
    {
        return Ok(body.clone());
    }
    let body = Bytes::from(serde_json::to_vec(
        &serde_json::json!({ "candidates": ranked.as_slice() }),
    )?);
    *LAST.lock().unwrap_or_else(PoisonError::into_inner) = Some((ranked, body.clone()));
    Ok(body)
}

/// Unsubscribes (at most once per sender and list). Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/unsubscribe", request_body = UnsubscribeArgs,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first answer for 24 h",
        min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$")),
    responses((status = 200, description = "outcome", body = UnsubscribeOutcome, example = json!({
        "sender": "news@example.com", "list_id": "weekly.example.com", "candidate_id": "0123456789abcdef",
        "method": "one_click", "link": "https://example.com/u", "result": "would_unsubscribe", "detail": null})), (status = 404, description = "unknown sender or candidate"), (status = 409, description = "key reused with another body"),
        (status = 503, description = "incident mode")), security(("api_key" = []), ("bearer" = [])))]
async fn unsubscribe(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeExecute>,
    headers: HeaderMap,
    AppJson(body): AppJson<UnsubscribeArgs>,
) -> Result<Response, ApiError> {
    body.validate()?;
    admit(&app, &who, Operation::Unsubscribe).await?;
    let idempotency = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidRequest,
                        "Idempotency-Key must be 1-255 visible characters",
                    )
                })?;
            let hash = hex(&Sha256::digest(
                serde_json::to_vec(&body).unwrap_or_default(),
            ));
            Some((format!("{}:unsubscribe:{key}", who.tenant), hash))
        }
    };
    let now = Utc::now();
    // Reserved before running, so that replicas racing on one key run it once (see
    // `crate::idempotency`).
    if let Some((key, hash)) = &idempotency
        && let Begin::Replay(stored) =
            idempotency::begin(app.state.as_ref(), key, hash, now).await?
    {
        let mut response = axum::Json(stored).into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(response);
    }
    let outcome = run(cx(&app, &who), body).await?;
    let json = serde_json::to_value(&outcome)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    if let Some((key, hash)) = idempotency {
        idempotency::finish(app.state.as_ref(), key, hash, json.clone(), now).await?;
    }
    Ok(axum::Json(json).into_response())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unsubscribe history.
#[utoipa::path(get, path = "/v1/unsubscribe/history", params(HistoryArgs), responses((status = 200, description = "entries", body = HistoryList, example = json!({"entries": [{
        "key": {"sender": "news@example.com", "list_id": "weekly.example.com"}, "status": "succeeded", "method": "one_click",
        "updated_at": "2026-12-01T09:00:00Z", "attempts": [{"key": {"sender": "news@example.com", "list_id": "weekly.example.com"},
            "method": "one_click", "target": "https://example.com/u", "status": "succeeded", "detail": "HTTP 200",
            "actor": "owner", "at": "2026-12-01T09:00:00Z"}]}]}))),
    security(("api_key" = []), ("bearer" = [])))]
async fn history(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeRead>,
    params: Result<Query<HistoryArgs>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let args = query_args(params)?;
    admit(&app, &who, Operation::UnsubscribeHistory).await?;
    Ok(axum::Json(run(cx(&app, &who), args).await?))
}

/// Previews or sends the digest of new candidates.
#[utoipa::path(post, path = "/v1/unsubscribe/digest", request_body = DigestArgs, responses((status = 200, description = "digest", body = DigestOutcome, example = json!({
        "candidates": [], "still_sending": [], "sent": false, "message_id": null, "to": "owner@example.com",
        "text": "Nothing new to unsubscribe from."}))),
    security(("api_key" = []), ("bearer" = [])))]
async fn digest(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeDigest>,
    AppJson(args): AppJson<DigestArgs>,
) -> Result<impl IntoResponse, ApiError> {
    args.validate()?;
    admit(&app, &who, Operation::UnsubscribeDigest).await?;
    Ok(axum::Json(run(cx(&app, &who), args).await?))
}

/// The compliance watch: per unsubscribed sender/list, `pending` (inside `UNSUBSCRIBE_GRACE_H`),
/// `compliant`, or `violating` with the count and the first and last violating dates.
#[utoipa::path(get, path = "/v1/unsubscribe/compliance", params(ComplianceArgs),
    responses((status = 200, description = "compliance report: checked_at, grace_hours, enforcement, summary, entries",
        body = ComplianceReport, example = json!({"checked_at": "2026-12-02T09:00:00Z", "grace_hours": 72, "enforcement": "report",
            "summary": {"pending": 0, "compliant": 0, "violating": 1}, "entries": [{"sender": "news@example.com", "list_id": "weekly.example.com",
            "method": "one_click", "unsubscribed_at": "2026-11-20T09:00:00Z", "grace_ends_at": "2026-11-23T09:00:00Z",
            "status": "violating", "violations": 1, "first_violation_at": "2026-11-25T08:00:00Z",
            "last_violation_at": "2026-11-25T08:00:00Z", "violating_message_ids": ["m9"], "decision": "unsubscribed"}], "manual_not_watched": 0}))),
    security(("api_key" = []), ("bearer" = [])))]
async fn compliance(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeRead>,
    params: Result<Query<ComplianceArgs>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let args = query_args(params)?;
    admit(&app, &who, Operation::UnsubscribeCompliance).await?;
    Ok(axum::Json(run(cx(&app, &who), args).await?))
}

/// What quietbox knows of one sender: aggregates, the owner's decision, and compliance.
#[utoipa::path(get, path = "/v1/senders/{address}", params(("address" = String, Path, description = "sender address")),
    responses((status = 200, description = "aggregates, decision and compliance", body = SenderView, example = json!({
        "address": "news@example.com", "name": "News", "count": 3, "unread": 3, "unread_ratio": 1.0,
        "first_seen": "2026-11-01T08:00:00Z", "last_seen": "2026-12-01T08:00:00Z", "list_id": "weekly.example.com",
        "class": "newsletter", "unsubscribe": {"targets": [], "one_click": false}, "methods": ["manual"],
        "decision": null, "compliance": []})), (status = 404, description = "unknown sender")),
    security(("api_key" = []), ("bearer" = [])))]
async fn sender(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeRead>,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::SenderView).await?;
    Ok(axum::Json(
        run(cx(&app, &who), SenderViewArgs { address }).await?,
    ))
}

/// Body of `PUT /v1/senders/{address}/decision` (the path names the sender: together they are
/// [`SenderDecisionArgs`]).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `keep` or `auto_archive`.
    #[schema(value_type = DecisionChoice)]
    pub decision: String,
}

/// The decisions an owner can record (`unsubscribed` is set by an unsubscribe only).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum DecisionChoice {
    /// Never a candidate again.
    Keep,
    /// Its mail leaves the inbox.
    AutoArchive,
}

/// Records a decision about a sender: `keep` (never a candidate again) or `auto_archive` (its
/// mail leaves the inbox: a Gmail filter plus the messages already there).
#[utoipa::path(put, path = "/v1/senders/{address}/decision", params(("address" = String, Path, description = "sender address")),
    request_body = DecisionBody, responses((status = 200, description = "recorded, with what the mail provider did", body = DecisionOutcome, example = json!({
        "sender": "news@example.com", "decision": "auto_archive", "actor": "owner", "decided_at": "2026-12-02T09:00:00Z",
        "previous": null, "archive": {"applied": false, "filter_id": null, "filter_created": false, "message_ids": ["m1"]}})),
        (status = 404, description = "unknown sender"),
        (status = 502, description = "the mail provider failed, or the Google token lacks a scope (upstream_scope_missing, naming it)"),
        (status = 503, description = "incident mode")), security(("api_key" = []), ("bearer" = [])))]
async fn decision(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeExecute>,
    Path(address): Path<String>,
    AppJson(body): AppJson<DecisionBody>,
) -> Result<impl IntoResponse, ApiError> {
    let args = SenderDecisionArgs {
        sender: address,
        decision: body.decision,
    };
    args.validate()?;
    admit(&app, &who, Operation::SenderDecision).await?;
    Ok((StatusCode::OK, axum::Json(run(cx(&app, &who), args).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quietbox_core::list_unsubscribe::UnsubscribeOptions;
    use quietbox_core::senders::SenderStats;
    use quietbox_core::store::UnsubscribeMethod;
    use quietbox_core::triage::Class;

    fn ranking(address: &str) -> Arc<Vec<Candidate>> {
        Arc::new(vec![Candidate {
            id: "0123456789abcdef".into(),
            score: 1.5,
            sender: SenderStats {
                address: address.into(),
                name: None,
                count: 3,
                unread: 3,
                unread_ratio: 1.0,
                first_seen: None,
                last_seen: None,
                list_id: None,
                class: Class::Newsletter,
                unsubscribe: UnsubscribeOptions::default(),
                methods: vec![UnsubscribeMethod::Manual],
            },
            method: UnsubscribeMethod::Manual,
            link: "https://example.com/u".into(),
        }])
    }

    fn addresses(body: &Bytes) -> Vec<String> {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        value["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sender"]["address"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_body_is_reused_only_for_the_same_ranking() {
        let first = ranking("a@example.com");
        let body = candidates_body(Arc::clone(&first)).unwrap();
        assert_eq!(addresses(&body), ["a@example.com"]);
        assert_eq!(candidates_body(Arc::clone(&first)).unwrap(), body);
        // Another ranking (as after a write) gets its own body, whatever was kept before.
        let second = ranking("b@example.com");
        assert_eq!(
            addresses(&candidates_body(second).unwrap()),
            ["b@example.com"]
        );
        assert_eq!(
            addresses(&candidates_body(first).unwrap()),
            ["a@example.com"]
        );
    }
}
