//! Protocol-neutral operations for the JSON-RPC surfaces (A2A skills, MCP tools): one
//! operation id plus JSON arguments in, the REST API's JSON plus a one-line summary out.
//! Written once so the two protocols cannot drift apart.

use chrono::{NaiveTime, Utc};
use quietbox_auth::Principal;
use quietbox_core::availability::{AvailabilityQuery, WorkingHours};
use quietbox_core::ports::ScanProgress;
use quietbox_core::service::{ScanOptions, UnsubscribeRequest, UnsubscribeTargetRef};
use quietbox_core::store::Decision;
use serde_json::{Value, json};

use crate::wiring::App;

/// How much a call may cost a tenant's budget: every operation takes one token from the
/// bucket of its [`Operation::limit_key`]; the class decides the bucket's size
/// (see `wiring::rate_limiter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// A read answered from state (candidates, history, compliance, sender view, availability).
    Read,
    /// A read that does real work against the mailbox (scan, digest preview).
    Work,
    /// A change: unsubscribe, a sender decision (auto_archive creates a Gmail filter), a digest sent.
    Mutation,
}

/// Every operation the three protocols offer, named once. The id is the A2A skill id (MCP tools
/// name theirs); scope and rate-limit bucket come from here, never from a protocol module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Free/busy and free slots.
    Availability,
    /// Inbox scan and triage.
    ScanInbox,
    /// Ranked unsubscribe candidates.
    UnsubscribeCandidates,
    /// The unsubscribe history.
    UnsubscribeHistory,
    /// One unsubscribe (one-click, mailto or a recorded manual link).
    Unsubscribe,
    /// The digest: preview, or sent to the owner.
    UnsubscribeDigest,
    /// A `keep` / `auto_archive` decision about a sender.
    SenderDecision,
    /// The compliance watch of unsubscribed senders.
    UnsubscribeCompliance,
    /// `GET /v1/senders/{address}` (REST only today).
    SenderView,
}

impl Operation {
    /// Every operation, in the order the agent card and the tool list show them.
    pub const ALL: [Operation; 9] = [
        Operation::Availability,
        Operation::ScanInbox,
        Operation::UnsubscribeCandidates,
        Operation::UnsubscribeHistory,
        Operation::Unsubscribe,
        Operation::UnsubscribeDigest,
        Operation::SenderDecision,
        Operation::UnsubscribeCompliance,
        Operation::SenderView,
    ];

    /// The operation of an A2A skill id / MCP operation id.
    pub fn from_id(id: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.id() == id)
    }

    /// The id (A2A skill id).
    pub fn id(self) -> &'static str {
        match self {
            Operation::Availability => "availability",
            Operation::ScanInbox => "scan_inbox",
            Operation::UnsubscribeCandidates => "unsubscribe_candidates",
            Operation::UnsubscribeHistory => "unsubscribe_history",
            Operation::Unsubscribe => "unsubscribe",
            Operation::UnsubscribeDigest => "unsubscribe_digest",
            Operation::SenderDecision => "sender_decision",
            Operation::UnsubscribeCompliance => "unsubscribe_compliance",
            Operation::SenderView => "sender_view",
        }
    }

    /// The scope a caller needs, the same on every protocol.
    pub fn scope(self) -> quietbox_auth::Scope {
        use quietbox_auth::Scope;
        match self {
            Operation::Availability => Scope::AvailabilityRead,
            Operation::ScanInbox => Scope::MailScan,
            Operation::UnsubscribeCandidates
            | Operation::UnsubscribeHistory
            | Operation::UnsubscribeCompliance
            | Operation::SenderView => Scope::UnsubscribeRead,
            Operation::Unsubscribe | Operation::SenderDecision => Scope::UnsubscribeExecute,
            Operation::UnsubscribeDigest => Scope::UnsubscribeDigest,
        }
    }

    /// The rate-limit bucket (per tenant). REST, A2A and MCP share it: a tenant's scans over
    /// MCP and over REST come out of one budget.
    pub fn limit_key(self) -> &'static str {
        match self {
            Operation::Availability => "availability",
            Operation::ScanInbox => "scan",
            Operation::UnsubscribeCandidates => "candidates",
            Operation::UnsubscribeHistory => "history",
            Operation::Unsubscribe => "unsubscribe",
            Operation::UnsubscribeDigest => "digest",
            Operation::SenderDecision => "decision",
            Operation::UnsubscribeCompliance => "compliance",
            Operation::SenderView => "sender",
        }
    }

    /// The budget class of the operation's bucket.
    pub fn budget(self) -> Budget {
        match self {
            Operation::Availability
            | Operation::UnsubscribeCandidates
            | Operation::UnsubscribeHistory
            | Operation::UnsubscribeCompliance
            | Operation::SenderView => Budget::Read,
            Operation::ScanInbox => Budget::Work,
            Operation::Unsubscribe | Operation::SenderDecision | Operation::UnsubscribeDigest => {
                Budget::Mutation
            }
        }
    }
}

/// Takes one token of `operation`'s budget for the principal's tenant: `Err` is the auth
/// crate's 429 (or 503 while the limiter's backend is down and the policy is closed).
/// Every protocol calls this before running an operation.
pub async fn admit(
    app: &App,
    principal: &Principal,
    operation: Operation,
) -> Result<(), quietbox_auth::AuthError> {
    app.limiter
        .check(&principal.tenant, operation.limit_key())
        .await
}

/// A string argument.
pub fn arg_str<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

/// Runs `operation` (an A2A skill id) with JSON `args`: `Ok((result, one-line summary))` or
/// `Err(message)`. Scope and rate-limit checks are the caller's, before this.
pub async fn execute(
    app: &App,
    principal: &Principal,
    operation: &str,
    args: &Value,
    progress: &dyn ScanProgress,
) -> Result<(Value, String), String> {
    let q = &app.quietbox;
    match operation {
        "availability" => {
            let now = Utc::now();
            let parse_time = |k: &str| {
                arg_str(args, k)
                    .map(|t| {
                        chrono::DateTime::parse_from_rfc3339(t)
                            .map(|d| d.to_utc())
                            .map_err(|e| format!("{k}: {e}"))
                    })
                    .transpose()
            };
            let start = parse_time("start")?;
            let end = parse_time("end")?;
            let tz: chrono_tz::Tz = match arg_str(args, "tz") {
                None => app.settings.digest_tz,
                Some(tz_name) => tz_name
                    .parse()
                    .map_err(|_| format!("tz {tz_name:?} is not an IANA time zone"))?,
            };
            let defaults = WorkingHours::default();
            let time = |k: &str, d: NaiveTime| {
                arg_str(args, k)
                    .map(|t| NaiveTime::parse_from_str(t, "%H:%M").map_err(|e| format!("{k}: {e}")))
                    .transpose()
                    .map(|t| t.unwrap_or(d))
            };
            let hours = WorkingHours {
                start: time("day_start", defaults.start)?,
                end: time("day_end", defaults.end)?,
                ..defaults
            };
            let slot_minutes = match args.get("slot_minutes") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().ok_or_else(|| {
                    format!("slot_minutes must be a whole number of minutes, not {v}")
                })?),
            };
            // Checked and bounded in core (window near now, slot_minutes 5..=1440).
            let query = AvailabilityQuery::from_request(now, start, end, slot_minutes, hours, tz)
                .map_err(|e| e.to_string())?;
            let result = q.availability(query).await.map_err(|e| e.to_string())?;
            let summary = format!(
                "{} free slots, {} busy intervals",
                result.slots.len(),
                result.busy.len()
            );
            Ok((to_json(&result), summary))
        }
        "scan_inbox" => {
            let options = ScanOptions {
                query: arg_str(args, "query").map(str::to_owned),
                since: None,
                limit: args.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize,
            };
            let report = q.scan(options, progress).await.map_err(|e| e.to_string())?;
            let c = &report.classes;
            let summary = format!(
                "{} messages: {} newsletters, {} notifications, {} personal, {} other",
                report.total, c.newsletter, c.notification, c.personal, c.other
            );
            Ok((to_json(&report), summary))
        }
        "unsubscribe_candidates" => {
            let candidates = q.candidates().await.map_err(|e| e.to_string())?;
            let summary = format!("{} candidates", candidates.len());
            Ok((json!({ "candidates": to_json(&candidates) }), summary))
        }
        "unsubscribe_history" => {
            let entries = q
                .history(arg_str(args, "sender"))
                .await
                .map_err(|e| e.to_string())?;
            let summary = format!("{} entries", entries.len());
            Ok((json!({ "entries": to_json(&entries) }), summary))
        }
        "unsubscribe" => {
            let target = match (arg_str(args, "sender"), arg_str(args, "candidate_id")) {
                (Some(sender), None) => UnsubscribeTargetRef::Sender(sender.to_owned()),
                (None, Some(id)) => UnsubscribeTargetRef::Candidate(id.to_owned()),
                _ => return Err("give exactly one of args.sender and args.candidate_id".into()),
            };
            let dry_run = args
                .get("dry_run")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let outcome = q
                .unsubscribe(UnsubscribeRequest {
                    target,
                    dry_run,
                    actor: principal.subject.clone(),
                })
                .await
                .map_err(|e| e.to_string())?;
            let summary = format!(
                "{}: {:?} via {}",
                outcome.sender,
                outcome.result,
                outcome.method.as_str()
            )
            .to_lowercase();
            Ok((to_json(&outcome), summary))
        }
        "unsubscribe_digest" => {
            let send = args.get("send").and_then(Value::as_bool).unwrap_or(false);
            let outcome = q.digest(send).await.map_err(|e| e.to_string())?;
            let summary = format!(
                "{} new candidates; {}",
                outcome.candidates.len(),
                if outcome.sent {
                    "digest sent"
                } else {
                    "not sent"
                }
            );
            Ok((to_json(&outcome), summary))
        }
        "sender_decision" => {
            let sender = arg_str(args, "sender").ok_or("args.sender is required")?;
            let decision = match arg_str(args, "decision") {
                Some("keep") => Decision::Keep,
                Some("auto_archive") => Decision::AutoArchive,
                other => {
                    return Err(format!(
                        "args.decision must be keep or auto_archive, not {other:?}"
                    ));
                }
            };
            let outcome = q
                .set_decision(sender, decision, &principal.subject)
                .await
                .map_err(|e| e.to_string())?;
            let mut summary = format!(
                "{}: {}",
                outcome.decision.sender,
                outcome.decision.decision.as_str()
            );
            if let Some(archive) = &outcome.archive {
                let verb = if archive.applied {
                    "taken out of the inbox"
                } else {
                    "would leave the inbox (reported only)"
                };
                summary.push_str(&format!("; {} messages {verb}", archive.message_ids.len()));
            }
            Ok((to_json(&outcome), summary))
        }
        "unsubscribe_compliance" => {
            let mut report = q.compliance().await.map_err(|e| e.to_string())?;
            if let Some(sender) = arg_str(args, "sender") {
                report = report.for_sender(sender);
            }
            let s = &report.summary;
            let summary = format!(
                "{} unsubscribes watched: {} violating, {} pending, {} compliant",
                report.entries.len(),
                s.violating,
                s.pending,
                s.compliant
            );
            Ok((to_json(&report), summary))
        }
        other => Err(format!("operation {other} does not exist")),
    }
}

/// Results as the same JSON the REST API returns.
pub fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
