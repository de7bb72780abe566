//! The typed result of every operation, and [`Output`], the one of any operation, with the
//! one-line summary A2A and MCP show beside it. Each protocol converts these to its wire form
//! next to its own code (REST: the JSON body; A2A: an artifact; MCP: `structuredContent`).

use std::sync::Arc;

use quietbox_core::availability::Availability;
use quietbox_core::candidates::Candidate;
use quietbox_core::compliance::ComplianceReport;
use quietbox_core::service::{
    DecisionOutcome, DigestOutcome, ScanReport, SenderView, UnsubscribeOutcome, UnsubscribeResult,
};
use quietbox_core::store::UnsubscribeEntry;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::Operation;

/// The ranked candidates, serialized as `{"candidates": [...]}`. Core shares one `Arc` while the
/// ranking is unchanged.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CandidateList {
    /// Best first.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Candidate>))]
    pub candidates: Arc<Vec<Candidate>>,
}

impl Serialize for CandidateList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("candidates", self.candidates.as_slice())?;
        map.end()
    }
}

/// The unsubscribe history, serialized as `{"entries": [...]}`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryList {
    /// Every attempt.
    pub entries: Vec<UnsubscribeEntry>,
}

/// The result of one operation.
#[derive(Debug, Clone)]
pub enum Output {
    /// [`Operation::Availability`].
    Availability(Availability),
    /// [`Operation::ScanInbox`].
    ScanInbox(ScanReport),
    /// [`Operation::UnsubscribeCandidates`].
    UnsubscribeCandidates(CandidateList),
    /// [`Operation::UnsubscribeHistory`].
    UnsubscribeHistory(HistoryList),
    /// [`Operation::Unsubscribe`].
    Unsubscribe(UnsubscribeOutcome),
    /// [`Operation::UnsubscribeDigest`].
    UnsubscribeDigest(DigestOutcome),
    /// [`Operation::SenderDecision`].
    SenderDecision(DecisionOutcome),
    /// [`Operation::UnsubscribeCompliance`].
    UnsubscribeCompliance(ComplianceReport),
    /// [`Operation::SenderView`].
    SenderView(SenderView),
}

macro_rules! from_outputs {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Output {
            fn from(value: $ty) -> Self {
                Output::$variant(value)
            }
        })*

        impl Output {
            /// The operation this is the result of.
            pub fn operation(&self) -> Operation {
                match self { $(Output::$variant(_) => Operation::$variant,)* }
            }

            /// The REST API's JSON of this result.
            pub fn to_json(&self) -> Result<Value, serde_json::Error> {
                match self { $(Output::$variant(value) => serde_json::to_value(value),)* }
            }
        }
    };
}

from_outputs! {
    Availability(Availability),
    ScanInbox(ScanReport),
    UnsubscribeCandidates(CandidateList),
    UnsubscribeHistory(HistoryList),
    Unsubscribe(UnsubscribeOutcome),
    UnsubscribeDigest(DigestOutcome),
    SenderDecision(DecisionOutcome),
    UnsubscribeCompliance(ComplianceReport),
    SenderView(SenderView),
}

impl Output {
    /// One line for a person (the A2A artifact's text part, the MCP tool result's text).
    pub fn summary(&self) -> String {
        match self {
            Output::Availability(result) => format!(
                "{} free slots, {} busy intervals",
                result.slots.len(),
                result.busy.len()
            ),
            Output::ScanInbox(report) => {
                let c = &report.classes;
                format!(
                    "{} messages: {} newsletters, {} notifications, {} personal, {} other",
                    report.total, c.newsletter, c.notification, c.personal, c.other
                )
            }
            Output::UnsubscribeCandidates(list) => format!("{} candidates", list.candidates.len()),
            Output::UnsubscribeHistory(list) => format!("{} entries", list.entries.len()),
            Output::Unsubscribe(outcome) => {
                let result = match outcome.result {
                    UnsubscribeResult::Unsubscribed => "unsubscribed",
                    UnsubscribeResult::ManualLinkRecorded => "manual link recorded",
                    UnsubscribeResult::WouldUnsubscribe => "would unsubscribe",
                    UnsubscribeResult::AlreadyDone => "already done",
                    UnsubscribeResult::Failed => "failed",
                };
                format!(
                    "{}: {result} via {}",
                    outcome.sender,
                    outcome.method.as_str()
                )
            }
            Output::UnsubscribeDigest(outcome) => format!(
                "{} new candidates; {}",
                outcome.candidates.len(),
                if outcome.sent {
                    "digest sent"
                } else {
                    "not sent"
                }
            ),
            Output::SenderDecision(outcome) => {
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
                summary
            }
            Output::UnsubscribeCompliance(report) => {
                let s = &report.summary;
                format!(
                    "{} unsubscribes watched: {} violating, {} pending, {} compliant",
                    report.entries.len(),
                    s.violating,
                    s.pending,
                    s.compliant
                )
            }
            Output::SenderView(view) => format!(
                "{}: {} messages, {} compliance entries",
                view.stats.address,
                view.stats.count,
                view.compliance.len()
            ),
        }
    }
}
