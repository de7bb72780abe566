//! The one table of operations the three protocols offer: [`Operation`] names each (id, scope,
//! rate-limit budget), [`args`] holds its typed, validated arguments, [`output`] its typed
//! result, and [`run`] executes it. REST, A2A and MCP each build the argument struct from their
//! own wire form and convert the result and the [`ApiError`] (core's error code) to theirs, so
//! bounds, defaults and error codes cannot drift between them.

use std::future::Future;

use chrono::Utc;
use quietbox_core::ports::ScanProgress;
use quietbox_core::service::{ScanOptions, UnsubscribeRequest};
use scopes::Principal;
use serde_json::Value;

use crate::problem::ApiError;
use crate::wiring::App;

pub mod args;
pub mod output;
pub mod scopes;

pub use args::{
    ArgError, AvailabilityArgs, CandidatesArgs, ComplianceArgs, DigestArgs, HistoryArgs,
    OperationArgs, ScanArgs, SenderDecisionArgs, SenderViewArgs, UnsubscribeArgs, parse,
};
pub use output::{CandidateList, HistoryList, Output};

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
    pub fn scope(self) -> scopes::Scope {
        use scopes::Scope;
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
) -> Result<(), scopes::AuthError> {
    app.limiter
        .check(&principal.tenant, operation.limit_key())
        .await
}

/// What an operation runs with: the app, the caller, and where scan progress goes.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The wired app.
    pub app: &'a App,
    /// The caller (scope and rate limit already checked).
    pub principal: &'a Principal,
    /// Scan progress (A2A streams it, MCP notifies it).
    pub progress: &'a dyn ScanProgress,
}

/// Runs one operation's use case with already validated arguments.
pub trait Execute: OperationArgs {
    /// The typed result.
    type Output: serde::Serialize + Into<Output> + Send;
    /// Calls the use case; core's errors keep their code.
    fn execute(
        self,
        cx: Context<'_>,
    ) -> impl Future<Output = Result<Self::Output, ApiError>> + Send;
}

/// Validates `args`, then runs its operation: the typed result, or an error carrying core's code.
/// Scope and rate-limit checks are the caller's, before this ([`admit`]).
pub async fn run<A: Execute>(cx: Context<'_>, args: A) -> Result<A::Output, ApiError> {
    args.validate()?;
    args.execute(cx).await
}

impl Execute for AvailabilityArgs {
    type Output = quietbox_core::availability::Availability;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        let query = self.query(Utc::now(), cx.app.settings.digest_tz)?;
        Ok(cx.app.quietbox.availability(query).await?)
    }
}

impl Execute for ScanArgs {
    type Output = quietbox_core::service::ScanReport;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        let limit = self.limit();
        let options = ScanOptions {
            query: self.query,
            since: self.since,
            limit,
        };
        Ok(cx.app.quietbox.scan(options, cx.progress).await?)
    }
}

impl Execute for CandidatesArgs {
    type Output = CandidateList;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        Ok(CandidateList {
            candidates: cx.app.quietbox.shared_candidates().await?,
        })
    }
}

impl Execute for HistoryArgs {
    type Output = HistoryList;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        Ok(HistoryList {
            entries: cx.app.quietbox.history(self.sender.as_deref()).await?,
        })
    }
}

impl Execute for UnsubscribeArgs {
    type Output = quietbox_core::service::UnsubscribeOutcome;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        let request = UnsubscribeRequest {
            target: self.target()?,
            dry_run: self.dry_run,
            actor: cx.principal.subject.clone(),
        };
        Ok(cx.app.quietbox.unsubscribe(request).await?)
    }
}

impl Execute for DigestArgs {
    type Output = quietbox_core::service::DigestOutcome;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        Ok(cx.app.quietbox.digest(self.send).await?)
    }
}

impl Execute for SenderDecisionArgs {
    type Output = quietbox_core::service::DecisionOutcome;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        let decision = self.decision()?;
        Ok(cx
            .app
            .quietbox
            .set_decision(&self.sender, decision, &cx.principal.subject)
            .await?)
    }
}

impl Execute for ComplianceArgs {
    type Output = quietbox_core::compliance::ComplianceReport;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        let report = cx.app.quietbox.compliance().await?;
        Ok(match self.sender {
            Some(sender) => report.for_sender(&sender),
            None => report,
        })
    }
}

impl Execute for SenderViewArgs {
    type Output = quietbox_core::service::SenderView;
    async fn execute(self, cx: Context<'_>) -> Result<Self::Output, ApiError> {
        Ok(cx.app.quietbox.sender(&self.address).await?)
    }
}

macro_rules! operation_table {
    ($($op:ident => $args:ty),* $(,)?) => {
        /// The validated arguments of any one operation (what A2A and MCP dispatch on).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Args {
            $(
                #[doc = concat!("[`Operation::", stringify!($op), "`].")]
                $op($args),
            )*
        }

        impl Args {
            /// The operation.
            pub fn operation(&self) -> Operation {
                match self { $(Args::$op(_) => Operation::$op,)* }
            }

            /// `operation`'s arguments from JSON (`null` is none), validated.
            pub fn parse(operation: Operation, value: Value) -> Result<Args, ArgError> {
                match operation { $(Operation::$op => parse::<$args>(value).map(Args::$op),)* }
            }

            /// The JSON of `operation`'s minimal valid arguments ([`OperationArgs::example`]).
            pub fn example(operation: Operation) -> Value {
                match operation {
                    $(Operation::$op => serde_json::to_value(<$args>::example()).unwrap_or(Value::Null),)*
                }
            }

            /// Runs the operation ([`run`]).
            pub async fn run(self, cx: Context<'_>) -> Result<Output, ApiError> {
                match self { $(Args::$op(args) => run(cx, args).await.map(Output::from),)* }
            }
        }

        /// The JSON Schema of `operation`'s arguments, generated from its struct: what MCP
        /// publishes as the tool's `inputSchema`, and exactly what [`Args::parse`] enforces.
        #[cfg(feature = "json-schema")]
        pub fn input_schema(operation: Operation) -> serde_json::Map<String, Value> {
            let schema = match operation { $(Operation::$op => schemars::schema_for!($args),)* };
            match serde_json::to_value(schema) {
                Ok(Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            }
        }
    };
}

operation_table! {
    Availability => AvailabilityArgs,
    ScanInbox => ScanArgs,
    UnsubscribeCandidates => CandidatesArgs,
    UnsubscribeHistory => HistoryArgs,
    Unsubscribe => UnsubscribeArgs,
    UnsubscribeDigest => DigestArgs,
    SenderDecision => SenderDecisionArgs,
    UnsubscribeCompliance => ComplianceArgs,
    SenderView => SenderViewArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operations_example_is_valid_and_its_own() {
        for operation in Operation::ALL {
            let example = Args::example(operation);
            let args = Args::parse(operation, example.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", operation.id()));
            assert_eq!(args.operation(), operation, "{example}");
        }
    }

    #[test]
    fn an_unknown_property_is_refused_for_every_operation() {
        for operation in Operation::ALL {
            let mut example = Args::example(operation);
            example["surprise"] = Value::Bool(true);
            let error = Args::parse(operation, example).unwrap_err();
            assert_eq!(
                error.field.as_deref(),
                Some("surprise"),
                "{}",
                operation.id()
            );
        }
    }
}
