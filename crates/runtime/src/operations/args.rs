//! The typed arguments of every operation: one struct each, refusing unknown fields, with one
//! [`OperationArgs::validate`] that bounds every number before it is used. REST builds them from
//! its query or body, A2A from a data part's `args`, MCP from a tool call's `arguments`; the MCP
//! `inputSchema`s are generated from them (feature `json-schema`), the OpenAPI document too
//! (feature `openapi`).

use std::fmt;

use chrono::{DateTime, NaiveTime, Utc};
use quietbox_core::ErrorCode;
use quietbox_core::availability::{
    AvailabilityQuery, MAX_SLOT_MINUTES, MIN_SLOT_MINUTES, SLOT_MINUTES, WorkingHours,
};
use quietbox_core::service::UnsubscribeTargetRef;
use quietbox_core::store::Decision;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Operation;
use crate::problem::ApiError;

/// Scan `limit` when none is given.
pub const DEFAULT_SCAN_LIMIT: u64 = 100;
/// Largest scan `limit`.
pub const MAX_SCAN_LIMIT: u64 = 1000;

/// Arguments that do not fit their operation: the stable code (`malformed_body` when they do not
/// even have the struct's shape, `invalid_request` when a value is out of bounds), the argument
/// at fault when one is, and a message naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// The stable code.
    pub code: ErrorCode,
    /// The argument at fault (top-level name or JSON path), when one is.
    pub field: Option<String>,
    /// What is wrong, naming the argument.
    pub message: String,
}

impl ArgError {
    /// An out-of-bounds value of `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ArgError {
            code: ErrorCode::InvalidRequest,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ArgError {}

impl From<ArgError> for ApiError {
    fn from(error: ArgError) -> Self {
        ApiError::new(error.code, error.message)
    }
}

/// What every operation's argument struct provides.
pub trait OperationArgs: DeserializeOwned + Serialize + Send + Sync + Sized + 'static {
    /// The operation these arguments are for.
    const OPERATION: Operation;
    /// Refuses values out of bounds (numbers, time zones, times of day, exclusive choices),
    /// naming the argument. Runs before every use.
    fn validate(&self) -> Result<(), ArgError>;
    /// A minimal valid value (what a test or a client example sends).
    fn example() -> Self;
}

/// Builds `A` from a JSON value (`null` is no arguments) and validates it.
pub fn parse<A: OperationArgs>(value: Value) -> Result<A, ArgError> {
    let value = match value {
        Value::Null => Value::Object(Default::default()),
        Value::Object(map) => Value::Object(map),
        other => {
            return Err(ArgError {
                code: ErrorCode::InvalidRequest,
                field: None,
                message: format!(
                    "the arguments of {} must be a JSON object, not {}",
                    A::OPERATION.id(),
                    json_kind(&other)
                ),
            });
        }
    };
    let args: A = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let field = if path.is_empty() || path == "." {
            named_in(&inner)
        } else {
            Some(path)
        };
        let message = match &field {
            Some(field) if !inner.contains(&format!("`{field}`")) => format!("{field}: {inner}"),
            _ => inner,
        };
        ArgError {
            code: ErrorCode::MalformedBody,
            field,
            message,
        }
    })?;
    args.validate()?;
    Ok(args)
}

/// The field serde names in `unknown field `x`` / `missing field `x``.
fn named_in(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next().map(str::to_owned)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Arguments of [`Operation::Availability`] (`GET /v1/availability`'s query).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AvailabilityArgs {
    /// Window start (RFC 3339); default now. Within 5 years of now.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Window end (RFC 3339); default start + 7 days. At most 62 days after start.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// Slot length in minutes, 5 to 1440; default 30.
    #[serde(default)]
    #[cfg_attr(feature = "json-schema", schemars(range(min = 5, max = 1440)))]
    #[cfg_attr(feature = "openapi", param(minimum = 5, maximum = 1440))]
    pub slot_minutes: Option<i64>,
    /// IANA time zone, e.g. Europe/Paris; default `DIGEST_TZ`.
    #[serde(default)]
    pub tz: Option<String>,
    /// Start of the working day, `HH:MM`; default 09:00.
    #[serde(default)]
    pub day_start: Option<String>,
    /// End of the working day, `HH:MM`; default 17:00.
    #[serde(default)]
    pub day_end: Option<String>,
}

impl AvailabilityArgs {
    /// The core query at `now`, the time zone defaulting to `default_tz`.
    pub fn query(
        &self,
        now: DateTime<Utc>,
        default_tz: chrono_tz::Tz,
    ) -> Result<AvailabilityQuery, ArgError> {
        if let Some(minutes) = self.slot_minutes
            && !SLOT_MINUTES.contains(&minutes)
        {
            return Err(ArgError::invalid(
                "slot_minutes",
                format!(
                    "slot_minutes must be between {MIN_SLOT_MINUTES} and {MAX_SLOT_MINUTES}, not {minutes}"
                ),
            ));
        }
        let tz = match &self.tz {
            None => default_tz,
            Some(name) => name.parse().map_err(|_| {
                ArgError::invalid("tz", format!("tz {name:?} is not an IANA time zone"))
            })?,
        };
        let defaults = WorkingHours::default();
        let hours = WorkingHours {
            start: time_of_day("day_start", self.day_start.as_deref(), defaults.start)?,
            end: time_of_day("day_end", self.day_end.as_deref(), defaults.end)?,
            ..defaults
        };
        // Core bounds the window (near now, at most 62 days): every error names start or end.
        AvailabilityQuery::from_request(now, self.start, self.end, self.slot_minutes, hours, tz)
            .map_err(|error| {
                let message = error.to_string();
                let field = if message.starts_with("start") {
                    "start"
                } else if message.starts_with("slot") {
                    "slot_minutes"
                } else {
                    "end"
                };
                ArgError::invalid(field, message)
            })
    }
}

fn time_of_day(
    field: &str,
    value: Option<&str>,
    default: NaiveTime,
) -> Result<NaiveTime, ArgError> {
    match value {
        None => Ok(default),
        Some(text) => NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
            ArgError::invalid(field, format!("{field} must look like 09:00, not {text:?}"))
        }),
    }
}

impl OperationArgs for AvailabilityArgs {
    const OPERATION: Operation = Operation::Availability;
    fn validate(&self) -> Result<(), ArgError> {
        self.query(Utc::now(), chrono_tz::Tz::UTC).map(drop)
    }
    fn example() -> Self {
        AvailabilityArgs::default()
    }
}

/// Arguments of [`Operation::ScanInbox`] (`POST /v1/mail/scan`'s body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScanArgs {
    /// Provider query (Gmail `q` syntax).
    #[serde(default)]
    pub query: Option<String>,
    /// Only messages at or after this instant (RFC 3339).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// At most this many messages listed, 1 to 1000; default 100.
    #[serde(default)]
    #[cfg_attr(feature = "json-schema", schemars(range(min = 1, max = 1000)))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub limit: Option<u64>,
}

impl ScanArgs {
    /// The limit, defaulted.
    pub fn limit(&self) -> usize {
        let limit = self.limit.unwrap_or(DEFAULT_SCAN_LIMIT).min(MAX_SCAN_LIMIT);
        usize::try_from(limit).unwrap_or(1000)
    }
}

impl OperationArgs for ScanArgs {
    const OPERATION: Operation = Operation::ScanInbox;
    fn validate(&self) -> Result<(), ArgError> {
        match self.limit {
            Some(limit) if !(1..=MAX_SCAN_LIMIT).contains(&limit) => Err(ArgError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_SCAN_LIMIT}, not {limit}"),
            )),
            _ => Ok(()),
        }
    }
    fn example() -> Self {
        ScanArgs {
            limit: Some(1),
            ..ScanArgs::default()
        }
    }
}

/// Arguments of [`Operation::UnsubscribeCandidates`]: none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CandidatesArgs {}

impl OperationArgs for CandidatesArgs {
    const OPERATION: Operation = Operation::UnsubscribeCandidates;
    fn validate(&self) -> Result<(), ArgError> {
        Ok(())
    }
    fn example() -> Self {
        CandidatesArgs {}
    }
}

/// Arguments of [`Operation::UnsubscribeHistory`] (`GET /v1/unsubscribe/history`'s query).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct HistoryArgs {
    /// Only this sender.
    #[serde(default)]
    pub sender: Option<String>,
}

impl OperationArgs for HistoryArgs {
    const OPERATION: Operation = Operation::UnsubscribeHistory;
    fn validate(&self) -> Result<(), ArgError> {
        Ok(())
    }
    fn example() -> Self {
        HistoryArgs::default()
    }
}

/// Arguments of [`Operation::Unsubscribe`] (`POST /v1/unsubscribe`'s body): exactly one of
/// `sender` and `candidate_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeArgs {
    /// Sender address.
    #[serde(default)]
    pub sender: Option<String>,
    /// Candidate id from the candidates operation.
    #[serde(default)]
    pub candidate_id: Option<String>,
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
}

impl UnsubscribeArgs {
    /// What to unsubscribe from.
    pub fn target(&self) -> Result<UnsubscribeTargetRef, ArgError> {
        match (&self.sender, &self.candidate_id) {
            (Some(sender), None) => Ok(UnsubscribeTargetRef::Sender(sender.clone())),
            (None, Some(id)) => Ok(UnsubscribeTargetRef::Candidate(id.clone())),
            (Some(_), Some(_)) => Err(ArgError::invalid(
                "candidate_id",
                "give exactly one of sender and candidate_id",
            )),
            (None, None) => Err(ArgError::invalid(
                "sender",
                "give exactly one of sender and candidate_id",
            )),
        }
    }
}

impl OperationArgs for UnsubscribeArgs {
    const OPERATION: Operation = Operation::Unsubscribe;
    fn validate(&self) -> Result<(), ArgError> {
        self.target().map(drop)
    }
    fn example() -> Self {
        UnsubscribeArgs {
            sender: Some("deals@shop.example.com".into()),
            candidate_id: None,
            dry_run: true,
        }
    }
}

/// Arguments of [`Operation::UnsubscribeDigest`] (`POST /v1/unsubscribe/digest`'s body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DigestArgs {
    /// Send the mail; default false: preview only, on every protocol.
    #[serde(default)]
    pub send: bool,
}

impl OperationArgs for DigestArgs {
    const OPERATION: Operation = Operation::UnsubscribeDigest;
    fn validate(&self) -> Result<(), ArgError> {
        Ok(())
    }
    fn example() -> Self {
        DigestArgs::default()
    }
}

/// Arguments of [`Operation::SenderDecision`] (REST: the path's address and the body's
/// decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SenderDecisionArgs {
    /// Sender address.
    pub sender: String,
    /// `keep` (never a candidate again) or `auto_archive` (its mail leaves the inbox).
    #[cfg_attr(
        feature = "json-schema",
        schemars(extend("enum" = ["keep", "auto_archive"]))
    )]
    pub decision: String,
}

impl SenderDecisionArgs {
    /// The decision.
    pub fn decision(&self) -> Result<Decision, ArgError> {
        match self.decision.as_str() {
            "keep" => Ok(Decision::Keep),
            "auto_archive" => Ok(Decision::AutoArchive),
            other => Err(ArgError::invalid(
                "decision",
                format!("decision must be keep or auto_archive, not {other:?}"),
            )),
        }
    }
}

impl OperationArgs for SenderDecisionArgs {
    const OPERATION: Operation = Operation::SenderDecision;
    fn validate(&self) -> Result<(), ArgError> {
        self.decision().map(drop)
    }
    fn example() -> Self {
        SenderDecisionArgs {
            sender: "deals@shop.example.com".into(),
            decision: "keep".into(),
        }
    }
}

/// Arguments of [`Operation::UnsubscribeCompliance`] (`GET /v1/unsubscribe/compliance`'s
/// query).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ComplianceArgs {
    /// Only this sender's unsubscribes.
    #[serde(default)]
    pub sender: Option<String>,
}

impl OperationArgs for ComplianceArgs {
    const OPERATION: Operation = Operation::UnsubscribeCompliance;
    fn validate(&self) -> Result<(), ArgError> {
        Ok(())
    }
    fn example() -> Self {
        ComplianceArgs::default()
    }
}

/// Arguments of [`Operation::SenderView`] (REST: the path's address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SenderViewArgs {
    /// Sender address.
    pub address: String,
}

impl OperationArgs for SenderViewArgs {
    const OPERATION: Operation = Operation::SenderView;
    fn validate(&self) -> Result<(), ArgError> {
        Ok(())
    }
    fn example() -> Self {
        SenderViewArgs {
            address: "deals@shop.example.com".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_scan_limit_outside_1_to_1000_is_refused_naming_limit() {
        for limit in [0_u64, 1001, 5000, u64::MAX] {
            let error = parse::<ScanArgs>(json!({ "limit": limit })).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("limit"), "{limit}");
            assert_eq!(error.code, ErrorCode::InvalidRequest);
        }
        assert_eq!(
            parse::<ScanArgs>(json!({"limit": 1000})).unwrap().limit(),
            1000
        );
        assert_eq!(parse::<ScanArgs>(json!({})).unwrap().limit(), 100);
    }

    #[test]
    fn wrong_types_and_unknown_fields_name_the_argument() {
        let error = parse::<ScanArgs>(json!({"limit": "many"})).unwrap_err();
        assert_eq!(
            (error.code, error.field.as_deref()),
            (ErrorCode::MalformedBody, Some("limit"))
        );
        assert!(error.message.starts_with("limit: "), "{}", error.message);
        let error = parse::<ScanArgs>(json!({"limt": 3})).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("limt"));
        let error = parse::<SenderDecisionArgs>(json!({"decision": "keep"})).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("sender"));
        let error = parse::<CandidatesArgs>(json!([1])).unwrap_err();
        assert_eq!((error.code, error.field), (ErrorCode::InvalidRequest, None));
        assert!(parse::<CandidatesArgs>(Value::Null).is_ok());
    }

    #[test]
    fn huge_slot_and_window_values_are_refused_not_a_panic() {
        for (args, field) in [
            (json!({"slot_minutes": i64::MAX}), "slot_minutes"),
            (json!({"slot_minutes": i64::MIN}), "slot_minutes"),
            (json!({"slot_minutes": 4}), "slot_minutes"),
            (json!({"start": "+262142-12-31T00:00:00Z"}), "start"),
            (json!({"end": "9999-12-31T00:00:00Z"}), "end"),
            (json!({"tz": "Mars/Olympus"}), "tz"),
            (json!({"day_start": "25:00"}), "day_start"),
        ] {
            let error = parse::<AvailabilityArgs>(args.clone()).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{args}: {error}");
        }
        assert!(parse::<AvailabilityArgs>(json!({"slot_minutes": 1440})).is_ok());
    }

    #[test]
    fn exactly_one_unsubscribe_target_and_a_known_decision() {
        assert!(parse::<UnsubscribeArgs>(json!({})).is_err());
        assert!(parse::<UnsubscribeArgs>(json!({"sender": "a@b.c", "candidate_id": "x"})).is_err());
        assert!(parse::<UnsubscribeArgs>(json!({"candidate_id": "x"})).is_ok());
        let error = parse::<SenderDecisionArgs>(json!({"sender": "a@b.c", "decision": "burn"}))
            .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("decision"));
    }

    #[test]
    fn the_digest_previews_unless_asked_to_send() {
        assert!(!parse::<DigestArgs>(json!({})).unwrap().send);
    }
}
