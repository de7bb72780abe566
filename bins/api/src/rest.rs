//! The REST surface of `quietbox-api` (DESIGN.md §6). Each handler states its scope in its
//! type, extracts and validates input, calls one use case, and converts the result.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, NaiveTime, Utc};
use quietbox_auth::http::{AuthLayer, Authorized, scope};
use quietbox_core::ErrorCode;
use quietbox_core::availability::{AvailabilityQuery, WorkingHours};
use quietbox_core::candidates::Candidate;
use quietbox_core::ports::NoProgress;
use quietbox_core::service::{ScanOptions, UnsubscribeRequest, UnsubscribeTargetRef};
use quietbox_core::store::Decision;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::idempotency::{self, Begin};
use quietbox_runtime::operations::{Operation, admit};
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
    info(title = "quietbox REST API", description = "Personal mail-and-calendar agent."),
    paths(availability, scan, candidates, unsubscribe, history, digest, compliance, sender, decision, ready),
    components(schemas(ScanBody, UnsubscribeBody, DigestBody, DecisionBody)),
    modifiers(&Security, &ProblemResponses)
)]
pub struct ApiDoc;

/// Every `/v1` operation can answer with a problem: bad input, a missing or insufficient
/// credential, a rate limit, incident mode or an unreachable provider. Declared once here, so
/// no handler can forget one and clients (and schemathesis) see the real status set.
struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
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
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, description) in common {
                    if operation.responses.responses.contains_key(status) {
                        continue;
                    }
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/problem+json",
                            ContentBuilder::new()
                                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                                .build(),
                        )
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
#[utoipa::path(get, path = "/ready", responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
async fn ready(state: State<App>) -> Response {
    // Shared with MCP: also names a dependency (Google) still unreachable since start.
    quietbox_runtime::wiring::ready(state).await
}

/// Query of `GET /v1/availability`.
#[derive(Debug, Deserialize, IntoParams)]
struct AvailabilityParams {
    /// Window start (RFC 3339); default now. Within 5 years of now.
    start: Option<DateTime<Utc>>,
    /// Window end (RFC 3339); default start + 7 days. At most 62 days after start.
    end: Option<DateTime<Utc>>,
    /// Slot length in minutes, 5 to 1440; default 30.
    slot_minutes: Option<i64>,
    /// IANA time zone; default `DIGEST_TZ`.
    tz: Option<String>,
    /// Start of the working day, `HH:MM`; default 09:00.
    day_start: Option<String>,
    /// End of the working day, `HH:MM`; default 17:00.
    day_end: Option<String>,
}

fn time_of_day(
    field: &str,
    value: Option<&str>,
    default: NaiveTime,
) -> Result<NaiveTime, ApiError> {
    match value {
        None => Ok(default),
        Some(text) => NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("{field} must look like 09:00, not {text:?}"),
            )
        }),
    }
}

/// Busy intervals and free slots.
#[utoipa::path(get, path = "/v1/availability", params(AvailabilityParams),
    responses((status = 200, description = "busy intervals and free slots")), security(("api_key" = []), ("bearer" = [])))]
async fn availability(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::AvailabilityRead>,
    params: Result<Query<AvailabilityParams>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::Availability).await?;
    let Query(params) =
        params.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let tz: chrono_tz::Tz = match params.tz {
        None => app.settings.digest_tz,
        Some(tz_name) => tz_name.parse().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("tz {tz_name:?} is not an IANA time zone"),
            )
        })?,
    };
    let defaults = WorkingHours::default();
    let hours = WorkingHours {
        start: time_of_day("day_start", params.day_start.as_deref(), defaults.start)?,
        end: time_of_day("day_end", params.day_end.as_deref(), defaults.end)?,
        ..defaults
    };
    // Checked and bounded in core (window near now, slot_minutes 5..=1440): 400, never a panic.
    let query = AvailabilityQuery::from_request(
        Utc::now(),
        params.start,
        params.end,
        params.slot_minutes,
        hours,
        tz,
    )?;
    let result = app.quietbox.availability(query).await?;
    Ok(axum::Json(result))
}

/// Body of `POST /v1/mail/scan`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanBody {
    /// Provider query (Gmail `q` syntax).
    #[serde(default)]
    pub query: Option<String>,
    /// Only messages at or after this instant.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// At most this many messages listed (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Scans and triages the inbox.
#[utoipa::path(post, path = "/v1/mail/scan", request_body = ScanBody,
    responses((status = 200, description = "triage report"), (status = 429, description = "rate limited")), security(("api_key" = []), ("bearer" = [])))]
async fn scan(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::MailScan>,
    AppJson(body): AppJson<ScanBody>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::ScanInbox).await?;
    let limit = body.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "limit must be between 1 and 1000",
        ));
    }
    let options = ScanOptions {
        query: body.query,
        since: body.since,
        limit,
    };
    Ok(axum::Json(app.quietbox.scan(options, &NoProgress).await?))
}

/// Ranked unsubscribe candidates.
#[utoipa::path(get, path = "/v1/unsubscribe/candidates", responses((status = 200, description = "candidates, best first")),
    security(("api_key" = []), ("bearer" = [])))]
async fn candidates(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeRead>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::UnsubscribeCandidates).await?;
    let ranked = app.quietbox.shared_candidates().await?;
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

/// Body of `POST /v1/unsubscribe`: exactly one of `sender` and `candidate_id`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeBody {
    /// Sender address.
    #[serde(default)]
    pub sender: Option<String>,
    /// Candidate id from `/v1/unsubscribe/candidates`.
    #[serde(default)]
    pub candidate_id: Option<String>,
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
}

/// Unsubscribes (at most once per sender and list). Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/unsubscribe", request_body = UnsubscribeBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first answer for 24 h")),
    responses((status = 200, description = "outcome"), (status = 404, description = "unknown sender or candidate"), (status = 409, description = "key reused with another body"),
        (status = 503, description = "incident mode")), security(("api_key" = []), ("bearer" = [])))]
async fn unsubscribe(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeExecute>,
    headers: HeaderMap,
    AppJson(body): AppJson<UnsubscribeBody>,
) -> Result<Response, ApiError> {
    admit(&app, &who, Operation::Unsubscribe).await?;
    let target = match (&body.sender, &body.candidate_id) {
        (Some(sender), None) => UnsubscribeTargetRef::Sender(sender.clone()),
        (None, Some(id)) => UnsubscribeTargetRef::Candidate(id.clone()),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "give exactly one of sender and candidate_id",
            ));
        }
    };
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
    let outcome = app
        .quietbox
        .unsubscribe(UnsubscribeRequest {
            target,
            dry_run: body.dry_run,
            actor: who.subject.clone(),
        })
        .await?;
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

/// Query of `GET /v1/unsubscribe/history`.
#[derive(Debug, Deserialize, IntoParams)]
struct HistoryParams {
    /// Only this sender.
    sender: Option<String>,
}

/// Unsubscribe history.
#[utoipa::path(get, path = "/v1/unsubscribe/history", params(HistoryParams), responses((status = 200, description = "entries")),
    security(("api_key" = []), ("bearer" = [])))]
async fn history(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeRead>,
    Query(params): Query<HistoryParams>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::UnsubscribeHistory).await?;
    let entries = app.quietbox.history(params.sender.as_deref()).await?;
    Ok(axum::Json(serde_json::json!({ "entries": entries })))
}

/// Body of `POST /v1/unsubscribe/digest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestBody {
    /// Send the mail (default: preview only).
    #[serde(default)]
    pub send: bool,
}

/// Previews or sends the digest of new candidates.
#[utoipa::path(post, path = "/v1/unsubscribe/digest", request_body = DigestBody, responses((status = 200, description = "digest")),
    security(("api_key" = []), ("bearer" = [])))]
async fn digest(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeDigest>,
    AppJson(body): AppJson<DigestBody>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::UnsubscribeDigest).await?;
    Ok(axum::Json(app.quietbox.digest(body.send).await?))
}

/// Query of `GET /v1/unsubscribe/compliance`.
#[derive(Debug, Deserialize, IntoParams)]
struct ComplianceParams {
    /// Only this sender's unsubscribes.
    sender: Option<String>,
}

/// The compliance watch: per unsubscribed sender/list, `pending` (inside `UNSUBSCRIBE_GRACE_H`),
/// `compliant`, or `violating` with the count and the first and last violating dates.
#[utoipa::path(get, path = "/v1/unsubscribe/compliance", params(ComplianceParams),
    responses((status = 200, description = "compliance report: checked_at, grace_hours, enforcement, summary, entries")),
    security(("api_key" = []), ("bearer" = [])))]
async fn compliance(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeRead>,
    Query(params): Query<ComplianceParams>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::UnsubscribeCompliance).await?;
    let report = app.quietbox.compliance().await?;
    Ok(axum::Json(match params.sender {
        Some(sender) => report.for_sender(&sender),
        None => report,
    }))
}

/// What quietbox knows of one sender: aggregates, the owner's decision, and compliance.
#[utoipa::path(get, path = "/v1/senders/{address}", params(("address" = String, Path, description = "sender address")),
    responses((status = 200, description = "aggregates, decision and compliance"), (status = 404, description = "unknown sender")),
    security(("api_key" = []), ("bearer" = [])))]
async fn sender(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeRead>,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::SenderView).await?;
    Ok(axum::Json(app.quietbox.sender(&address).await?))
}

/// Body of `PUT /v1/senders/{address}/decision`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `keep` or `auto_archive`.
    pub decision: String,
}

/// Records a decision about a sender: `keep` (never a candidate again) or `auto_archive` (its
/// mail leaves the inbox: a Gmail filter plus the messages already there).
#[utoipa::path(put, path = "/v1/senders/{address}/decision", params(("address" = String, Path, description = "sender address")),
    request_body = DecisionBody, responses((status = 200, description = "recorded, with what the mail provider did"),
        (status = 404, description = "unknown sender"),
        (status = 502, description = "the mail provider failed, or the Google token lacks a scope (upstream_scope_missing, naming it)"),
        (status = 503, description = "incident mode")), security(("api_key" = []), ("bearer" = [])))]
async fn decision(
    State(app): State<App>,
    Authorized(who, ..): Authorized<scope::UnsubscribeExecute>,
    Path(address): Path<String>,
    AppJson(body): AppJson<DecisionBody>,
) -> Result<impl IntoResponse, ApiError> {
    admit(&app, &who, Operation::SenderDecision).await?;
    let decision = match body.decision.as_str() {
        "keep" => Decision::Keep,
        "auto_archive" => Decision::AutoArchive,
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("decision must be keep or auto_archive, not {other:?}"),
            ));
        }
    };
    let recorded = app
        .quietbox
        .set_decision(&address, decision, &who.subject)
        .await?;
    Ok((StatusCode::OK, axum::Json(recorded)))
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
