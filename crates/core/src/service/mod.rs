//! [`Quietbox`]: the use cases every protocol calls, one method per operation.
//!
//! Handlers in the three binaries extract their input, call one method here, and convert the
//! result; rules live here once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::availability::{self, Availability, AvailabilityQuery};
use crate::candidates::{self, Candidate};
use crate::compliance::{self, ComplianceEntry, ComplianceReport, ComplianceStatus, Enforcement};
use crate::error::ErrorCode;
use crate::list_unsubscribe::UnsubscribeTarget;
use crate::ports::{
    ArchiveOutcome, CalendarProvider, Clock, MailProvider, MessageMeta, NoProgress, OneClickClient,
    OutboundError, OutgoingMail, ProviderError, ScanProgress, ScanRequest, in_inbox,
};
use crate::senders::{self, SenderStats};
use crate::store::{
    Claim, Decision, Incident, ScanCheckpoint, SenderDecision, SentLink, StateError, StatePart,
    StateStore, SubscriptionKey, UnsubscribeAttempt, UnsubscribeEntry, UnsubscribeMethod,
    UnsubscribeStatus,
};
use crate::triage::{self, Class};
use crate::{digest, unsubscribe};

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// Incident mode refuses mutations until it ends.
    #[error("incident mode is active until {until}: mutations are disabled ({reason})")]
    IncidentActive {
        /// When it ends by itself.
        until: DateTime<Utc>,
        /// The operator's reason.
        reason: String,
    },
    /// The mail or calendar provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// State could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A message could not be built.
    #[error("could not build the message: {0}")]
    Message(String),
}

impl CoreError {
    /// The error code reported to clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::NotFound(_) => ErrorCode::NotFound,
            CoreError::InvalidInput(_) => ErrorCode::InvalidRequest,
            CoreError::IncidentActive { .. } => ErrorCode::IncidentModeActive,
            CoreError::Provider(e) => e.code(),
            CoreError::State(e) => e.code(),
            CoreError::Message(_) => ErrorCode::InvalidRequest,
        }
    }
}

/// Settings of the use cases (the runtime maps configuration onto this).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Digest recipient (`DIGEST_TO`); the account address when `None`.
    pub digest_to: Option<String>,
    /// An in-progress unsubscribe older than this is taken over (its worker died).
    pub unsubscribe_stale_after: Duration,
    /// Default time zone for availability.
    pub default_tz: chrono_tz::Tz,
    /// At most this many candidates in one digest.
    pub digest_limit: usize,
    /// `UNSUBSCRIBE_GRACE_H`: how long a sender has to honour an unsubscribe.
    pub unsubscribe_grace: Duration,
    /// `UNSUBSCRIBE_ENFORCE`: what [`Quietbox::enforce`] does to violating senders.
    pub enforcement: Enforcement,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            digest_to: None,
            unsubscribe_stale_after: Duration::from_secs(600),
            default_tz: chrono_tz::UTC,
            digest_limit: 20,
            unsubscribe_grace: Duration::from_secs(48 * 3600),
            enforcement: Enforcement::Report,
        }
    }
}

/// What a scan asks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanOptions {
    /// Provider query (Gmail `q` syntax).
    pub query: Option<String>,
    /// Only messages at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At most this many messages in the report's message list (0 = 100).
    pub limit: usize,
}

/// One triaged message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriagedMessage {
    /// Provider id.
    pub id: String,
    /// `From`.
    pub from: String,
    /// `Subject`.
    pub subject: Option<String>,
    /// Date.
    pub date: Option<DateTime<Utc>>,
    /// Class.
    pub class: Class,
    /// Why.
    pub reasons: Vec<String>,
}

/// Messages per class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Newsletters.
    pub newsletter: usize,
    /// Notifications.
    pub notification: usize,
    /// Personal mail.
    pub personal: usize,
    /// Other.
    pub other: usize,
}

/// The result of a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Messages known after the scan.
    pub total: usize,
    /// Messages the provider returned this time (all of them on a full scan).
    pub fetched: usize,
    /// Whether only changes since the last scan were fetched.
    pub incremental: bool,
    /// Counts per class.
    pub classes: ClassCounts,
    /// Newest messages first, up to the limit.
    pub messages: Vec<TriagedMessage>,
    /// Senders, most messages first.
    pub senders: Vec<SenderStats>,
}

/// Which subscription to leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeTargetRef {
    /// A sender address.
    Sender(String),
    /// A candidate id from `candidates()`.
    Candidate(String),
}

/// An unsubscribe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeRequest {
    /// What to leave.
    pub target: UnsubscribeTargetRef,
    /// Only say what would be done.
    pub dry_run: bool,
    /// Who asks (principal subject).
    pub actor: String,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeResult {
    /// Done now (one-click accepted, mail sent).
    Unsubscribed,
    /// The link was recorded for the owner to open.
    ManualLinkRecorded,
    /// Dry run: nothing was done.
    WouldUnsubscribe,
    /// Done before (or being done by another request): nothing was repeated.
    AlreadyDone,
    /// Tried and failed; may be retried.
    Failed,
}

/// The answer to an unsubscribe request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeOutcome {
    /// Sender address.
    pub sender: String,
    /// List id.
    pub list_id: Option<String>,
    /// Candidate id.
    pub candidate_id: String,
    /// Method used (or that would be).
    pub method: UnsubscribeMethod,
    /// Link used.
    pub link: String,
    /// Result.
    pub result: UnsubscribeResult,
    /// Detail (HTTP status, error).
    pub detail: Option<String>,
}

/// The result of a digest run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestOutcome {
    /// Candidates not sent before (the digest's content).
    pub candidates: Vec<Candidate>,
    /// Senders still sending after an unsubscribe (the digest's "still sending" section).
    pub still_sending: Vec<ComplianceEntry>,
    /// Whether a mail was sent.
    pub sent: bool,
    /// Provider id of the sent mail.
    pub message_id: Option<String>,
    /// Recipient.
    pub to: String,
    /// The text body (also for previews).
    pub text: String,
}

/// What quietbox knows of one sender: aggregates of its mail, the owner's decision, and the
/// compliance of every unsubscribe from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SenderView {
    /// Aggregates of its mail (flattened: `address`, `count`, `unread_ratio`...).
    #[serde(flatten)]
    pub stats: SenderStats,
    /// The owner's current decision, if any.
    pub decision: Option<SenderDecision>,
    /// One entry per watched unsubscribe of this sender.
    pub compliance: Vec<ComplianceEntry>,
}

/// The answer to [`Quietbox::set_decision`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionOutcome {
    /// The recorded decision (flattened: `sender`, `decision`, `actor`, `decided_at`).
    #[serde(flatten)]
    pub decision: SenderDecision,
    /// The decision it replaced, if any.
    pub previous: Option<Decision>,
    /// For `auto_archive`: what the mail provider did (Gmail: a filter and the messages taken out
    /// of the inbox; local: the messages that would be, reported only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveOutcome>,
    /// For `keep` after `auto_archive`: how many of quietbox's archiving rules were removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_removed: Option<usize>,
}

/// What enforcement did about one violating sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementAction {
    /// Sender address.
    pub sender: String,
    /// List id of the subscription.
    pub list_id: Option<String>,
    /// Violations counted.
    pub violations: usize,
    /// Why nothing was done, when nothing was (the owner keeps the sender).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Whether the sender's decision became `auto_archive` now (`false`: it already was).
    pub decision_changed: bool,
    /// What the mail provider did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveOutcome>,
}

/// The answer to [`Quietbox::enforce`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementOutcome {
    /// The compliance report enforcement acted on.
    pub report: ComplianceReport,
    /// One action per violating sender (none with `UNSUBSCRIBE_ENFORCE=report`).
    pub actions: Vec<EnforcementAction>,
}

/// Incident mode as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentStatus {
    /// Whether mutations are refused now.
    pub active: bool,
    /// The stored incident (also when it has lapsed).
    pub incident: Option<Incident>,
}

/// The use cases.
#[derive(Clone)]
pub struct Quietbox {
    mail: Arc<dyn MailProvider>,
    calendar: Arc<dyn CalendarProvider>,
    state: Arc<dyn StateStore>,
    one_click: Arc<dyn OneClickClient>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    ranked: Arc<RankedCandidates>,
}

/// The revisions of the state parts candidates are ranked from (see [`StateStore::revision`]).
type CandidateInputs = [u64; 3];

/// The last ranking, with the revisions of the state it was ranked from. Shared by clones of a
/// [`Quietbox`]; a ranking is reused only while the store reports the same revisions.
#[derive(Debug, Default)]
struct RankedCandidates(Mutex<Option<(CandidateInputs, Arc<Vec<Candidate>>)>>);

impl RankedCandidates {
    fn get(&self, inputs: CandidateInputs) -> Option<Arc<Vec<Candidate>>> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.as_ref()
            .filter(|(of, _)| *of == inputs)
            .map(|(_, ranked)| Arc::clone(ranked))
    }

    fn put(&self, inputs: CandidateInputs, ranked: Arc<Vec<Candidate>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((inputs, ranked));
    }
}

impl std::fmt::Debug for Quietbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quietbox")
            .field("account", &self.mail.account())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Quietbox {
    /// Wires the use cases to their ports.
    pub fn new(
        mail: Arc<dyn MailProvider>,
        calendar: Arc<dyn CalendarProvider>,
        state: Arc<dyn StateStore>,
        one_click: Arc<dyn OneClickClient>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Quietbox {
            mail,
            calendar,
            state,
            one_click,
            clock,
            settings,
            ranked: Arc::default(),
        }
    }

    /// The state store (for operator commands and readiness checks).
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// Readiness: the state store is writable and the mail provider can serve.
    pub async fn check_ready(&self) -> Result<(), CoreError> {
        self.state.check_writable().await?;
        self.mail.check().await?;
        Ok(())
    }

    /// The mailbox owner's address.
    pub fn account(&self) -> &str {
        self.mail.account()
    }

    /// Busy intervals and free slots. The query is [`AvailabilityQuery::validate`]d against the
    /// clock first (window near now, at most 62 days, slots of 5 to 1440 minutes), so the work
    /// per request is bounded.
    pub async fn availability(&self, query: AvailabilityQuery) -> Result<Availability, CoreError> {
        query.validate(self.clock.now())?;
        let busy = self
            .calendar
            .busy(query.start, query.end, query.tz.name())
            .await?;
        Ok(availability::free_slots(&query, busy))
    }

    /// Scans the mailbox (incrementally when a checkpoint is stored) and triages it.
    pub async fn scan(
        &self,
        options: ScanOptions,
        progress: &dyn ScanProgress,
    ) -> Result<ScanReport, CoreError> {
        let (messages, fetched, incremental) = self.refresh(&options, progress).await?;
        Ok(report(messages, fetched, incremental, &options))
    }

    /// Asks the provider for what changed since the stored checkpoint (everything when there is
    /// none or it expired), stores the new checkpoint, and returns every known message with the
    /// number fetched and whether the listing was incremental.
    async fn refresh(
        &self,
        options: &ScanOptions,
        progress: &dyn ScanProgress,
    ) -> Result<(Vec<MessageMeta>, usize, bool), CoreError> {
        let account = self.mail.account().to_owned();
        let previous = self.state.scan_checkpoint(&account).await?;
        let request = ScanRequest {
            query: options.query.clone(),
            since: options.since,
            limit: 0,
            cursor: previous.as_ref().and_then(|cp| cp.cursor.clone()),
        };
        let batch = self.mail.scan(&request, progress).await?;
        let fetched = batch.messages.len();
        let incremental = !batch.full;
        let messages = if batch.full {
            batch.messages
        } else {
            let mut known = previous.map(|cp| cp.messages).unwrap_or_default();
            let removed: HashSet<&String> = batch.removed.iter().collect();
            known.retain(|m| !removed.contains(&m.id));
            for message in batch.messages {
                match known.iter_mut().find(|m| m.id == message.id) {
                    Some(existing) => *existing = message,
                    None => known.push(message),
                }
            }
            known
        };
        self.state
            .set_scan_checkpoint(ScanCheckpoint {
                account,
                cursor: batch.cursor,
                updated_at: self.clock.now(),
                messages: messages.clone(),
            })
            .await?;
        Ok((messages, fetched, incremental))
    }

    /// The messages of the stored checkpoint, brought up to date first when the provider keeps a
    /// change history (Gmail `historyId`: only the changes are fetched). Without a history (an
    /// mbox) the checkpoint is used as it is; without a checkpoint, this scans.
    async fn current_messages(&self) -> Result<Vec<MessageMeta>, CoreError> {
        match self.state.scan_checkpoint(self.mail.account()).await? {
            Some(checkpoint) if checkpoint.cursor.is_none() => Ok(checkpoint.messages),
            _ => Ok(self.refresh(&ScanOptions::default(), &NoProgress).await?.0),
        }
    }

    /// Marks `ids` as out of the inbox in the stored checkpoint, after the provider archived
    /// them, so that a rerun does not archive them again. A scan racing with this may put the
    /// old labels back; the next incremental scan then sees Gmail's label change.
    async fn forget_inbox_label(&self, ids: &[String]) -> Result<(), CoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let Some(mut checkpoint) = self.state.scan_checkpoint(self.mail.account()).await? else {
            return Ok(());
        };
        let ids: HashSet<&String> = ids.iter().collect();
        for message in checkpoint
            .messages
            .iter_mut()
            .filter(|m| ids.contains(&m.id))
        {
            message.labels.retain(|l| !l.eq_ignore_ascii_case("inbox"));
        }
        self.state.set_scan_checkpoint(checkpoint).await?;
        Ok(())
    }

    async fn known_messages(&self) -> Result<Vec<MessageMeta>, CoreError> {
        match self.state.scan_checkpoint(self.mail.account()).await? {
            Some(checkpoint) => Ok(checkpoint.messages),
            None => {
                self.scan(ScanOptions::default(), &crate::ports::NoProgress)
                    .await?;
                Ok(self
                    .state
                    .scan_checkpoint(self.mail.account())
                    .await?
                    .map(|cp| cp.messages)
                    .unwrap_or_default())
            }
        }
    }

    /// Ranked unsubscribe candidates from the last scan (scanning first if there was none),
    /// without senders already unsubscribed or kept.
    ///
    /// The ranking is a pure function of the checkpoint, the unsubscribes and the decisions, so
    /// while the store reports the same revisions of those three (another process may change
    /// them at any time) the last ranking is answered again without reading them.
    pub async fn candidates(&self) -> Result<Vec<Candidate>, CoreError> {
        Ok(self.shared_candidates().await?.as_ref().clone())
    }

    /// [`Quietbox::candidates`] without a copy: while the ranking is kept, every call returns
    /// the same allocation, so a caller may keep what it derived from it (a serialized body)
    /// for as long as [`Arc::ptr_eq`] says it got the same ranking again.
    pub async fn shared_candidates(&self) -> Result<Arc<Vec<Candidate>>, CoreError> {
        let before = self.candidate_inputs().await?;
        if let Some(ranked) = before.and_then(|inputs| self.ranked.get(inputs)) {
            return Ok(ranked);
        }
        let messages = self.known_messages().await?;
        let entries = self.state.unsubscribe_history(None).await?;
        let decisions = self.state.sender_decisions().await?;
        let ranked = Arc::new(rank_candidates(&messages, &entries, &decisions));
        // Kept only when nothing changed while reading: then the reads saw exactly the content
        // of these revisions (a store never gives one revision to two contents).
        if let Some(inputs) = before
            && self.candidate_inputs().await? == before
        {
            self.ranked.put(inputs, Arc::clone(&ranked));
        }
        Ok(ranked)
    }

    /// The revisions of what [`Quietbox::candidates`] ranks from; `None` when the store gives
    /// no revisions.
    async fn candidate_inputs(&self) -> Result<Option<CandidateInputs>, CoreError> {
        let mut inputs = [0; 3];
        let parts = [
            StatePart::ScanCheckpoints,
            StatePart::Unsubscribes,
            StatePart::SenderDecisions,
        ];
        for (slot, part) in inputs.iter_mut().zip(parts) {
            match self.state.revision(part).await? {
                Some(revision) => *slot = revision,
                None => return Ok(None),
            }
        }
        Ok(Some(inputs))
    }

    /// What quietbox knows of one sender: aggregates of its mail, the owner's decision, and the
    /// compliance of its unsubscribes.
    pub async fn sender(&self, address: &str) -> Result<SenderView, CoreError> {
        let address = crate::address::Sender::parse_address(address).ok_or_else(|| {
            CoreError::InvalidInput(format!("{address:?} is not an email address"))
        })?;
        let messages = self.known_messages().await?;
        let stats = senders::aggregate(&messages)
            .into_iter()
            .find(|s| s.address == address)
            .ok_or_else(|| {
                CoreError::NotFound(format!("no mail from {address} in the last scan"))
            })?;
        let decision = self
            .state
            .sender_decisions()
            .await?
            .into_iter()
            .find(|d| d.sender == address);
        let compliance = self
            .assess(&messages)
            .await?
            .entries
            .into_iter()
            .filter(|e| e.sender == address)
            .collect();
        Ok(SenderView {
            stats,
            decision,
            compliance,
        })
    }

    /// The compliance watch: for every unsubscribe quietbox carried out, whether the sender
    /// stopped (`compliant`), may still send (`pending`, inside `UNSUBSCRIBE_GRACE_H`) or kept
    /// sending after the grace period (`violating`). Answered from the scan data already kept,
    /// refreshed incrementally when the provider has a change history.
    pub async fn compliance(&self) -> Result<ComplianceReport, CoreError> {
        let messages = self.current_messages().await?;
        self.assess(&messages).await
    }

    async fn assess(&self, messages: &[MessageMeta]) -> Result<ComplianceReport, CoreError> {
        let entries = self.state.unsubscribe_history(None).await?;
        let decisions = self.state.sender_decisions().await?;
        Ok(self.assess_with(messages, &entries, &decisions))
    }

    fn assess_with(
        &self,
        messages: &[MessageMeta],
        entries: &[UnsubscribeEntry],
        decisions: &[SenderDecision],
    ) -> ComplianceReport {
        let grace = chrono::Duration::from_std(self.settings.unsubscribe_grace)
            .unwrap_or(chrono::Duration::MAX);
        compliance::assess(
            entries,
            messages,
            decisions,
            grace,
            self.settings.enforcement,
            self.clock.now(),
        )
    }

    /// Acts on the compliance report as `UNSUBSCRIBE_ENFORCE` says. With `archive`, every
    /// violating sender the owner does not keep gets `auto_archive`: the provider keeps the
    /// subscription's future mail out of the inbox (a Gmail filter on its `List-Id` or address)
    /// and takes the violating messages still in the inbox out of it (the local provider only
    /// reports them). Idempotent: a rerun finds the filter and the decision already there. With
    /// `report`, nothing changes. A mutation: refused during an incident.
    pub async fn enforce(&self, actor: &str) -> Result<EnforcementOutcome, CoreError> {
        let messages = self.current_messages().await?;
        let report = self.assess(&messages).await?;
        if self.settings.enforcement == Enforcement::Report {
            return Ok(EnforcementOutcome {
                report,
                actions: Vec::new(),
            });
        }
        self.ensure_mutations_allowed().await?;
        let inbox: HashSet<&str> = messages
            .iter()
            .filter(|m| in_inbox(m))
            .map(|m| m.id.as_str())
            .collect();
        let mut actions = Vec::new();
        for entry in report
            .entries
            .iter()
            .filter(|e| e.status == ComplianceStatus::Violating)
        {
            let mut action = EnforcementAction {
                sender: entry.sender.clone(),
                list_id: entry.list_id.clone(),
                violations: entry.violations,
                skipped: None,
                decision_changed: false,
                archive: None,
            };
            if entry.decision == Some(Decision::Keep) {
                action.skipped = Some("the owner keeps this sender".to_owned());
                actions.push(action);
                continue;
            }
            let ids: Vec<String> = entry
                .violating_message_ids
                .iter()
                .filter(|id| inbox.contains(id.as_str()))
                .cloned()
                .collect();
            let outcome = self.mail.auto_archive(&entry.key(), &ids).await?;
            if outcome.applied {
                self.forget_inbox_label(&outcome.message_ids).await?;
            }
            if entry.decision != Some(Decision::AutoArchive) {
                self.state
                    .set_sender_decision(SenderDecision {
                        sender: entry.sender.clone(),
                        decision: Decision::AutoArchive,
                        actor: actor.to_owned(),
                        decided_at: self.clock.now(),
                    })
                    .await?;
                action.decision_changed = true;
            }
            tracing::info!(
                sender = %entry.sender,
                violations = entry.violations,
                archived = outcome.message_ids.len(),
                applied = outcome.applied,
                filter_created = outcome.filter_created,
                actor,
                "unsubscribe ignored: sender auto-archived"
            );
            action.archive = Some(outcome);
            actions.push(action);
        }
        Ok(EnforcementOutcome { report, actions })
    }

    /// Unsubscribe history, optionally of one sender.
    pub async fn history(&self, sender: Option<&str>) -> Result<Vec<UnsubscribeEntry>, CoreError> {
        let sender = sender.map(|s| s.trim().to_ascii_lowercase());
        Ok(self.state.unsubscribe_history(sender.as_deref()).await?)
    }

    /// Refuses mutations while an incident is active.
    pub async fn ensure_mutations_allowed(&self) -> Result<(), CoreError> {
        if let Some(incident) = self.state.incident().await?
            && incident.is_active(self.clock.now())
        {
            return Err(CoreError::IncidentActive {
                until: incident.until,
                reason: incident.reason,
            });
        }
        Ok(())
    }

    /// Unsubscribes from one subscription, at most once (also when requests race).
    pub async fn unsubscribe(
        &self,
        request: UnsubscribeRequest,
    ) -> Result<UnsubscribeOutcome, CoreError> {
        let senders = senders::aggregate(&self.known_messages().await?);
        let sender = match &request.target {
            UnsubscribeTargetRef::Sender(address) => {
                let address = address.trim().to_ascii_lowercase();
                senders.into_iter().find(|s| s.address == address)
            }
            UnsubscribeTargetRef::Candidate(id) => senders
                .into_iter()
                .find(|s| candidates::candidate_id(&s.address, s.list_id.as_deref()) == *id),
        }
        .ok_or_else(|| {
            CoreError::NotFound(format!("no known sender matches {:?}", request.target))
        })?;
        let (method, link) = unsubscribe::choose(&sender.unsubscribe).ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "{} offers no List-Unsubscribe method",
                sender.address
            ))
        })?;
        let mut outcome = UnsubscribeOutcome {
            candidate_id: candidates::candidate_id(&sender.address, sender.list_id.as_deref()),
            sender: sender.address.clone(),
            list_id: sender.list_id.clone(),
            method,
            link: link.clone(),
            result: UnsubscribeResult::WouldUnsubscribe,
            detail: None,
        };
        let key = SubscriptionKey {
            sender: sender.address.clone(),
            list_id: sender.list_id.clone(),
        };
        if request.dry_run {
            if let Some(entry) = self.state.unsubscribe_entry(&key).await?
                && entry.status != UnsubscribeStatus::Failed
            {
                outcome.result = UnsubscribeResult::AlreadyDone;
            }
            return Ok(outcome);
        }
        self.ensure_mutations_allowed().await?;
        let attempt = |status, detail: Option<String>| UnsubscribeAttempt {
            key: key.clone(),
            method,
            target: link.clone(),
            status,
            detail,
            actor: request.actor.clone(),
            at: self.clock.now(),
        };
        let claim = self
            .state
            .claim_unsubscribe(
                attempt(UnsubscribeStatus::InProgress, None),
                self.settings.unsubscribe_stale_after,
            )
            .await?;
        if let Claim::Existing(entry) = claim {
            outcome.result = UnsubscribeResult::AlreadyDone;
            outcome.method = entry.method;
            outcome.detail =
                Some(format!("already {:?} at {}", entry.status, entry.updated_at).to_lowercase());
            return Ok(outcome);
        }
        let executed: Result<Option<String>, String> = match method {
            UnsubscribeMethod::OneClick => match self.one_click.post_one_click(&link).await {
                Ok(response) if (200..300).contains(&response.status) => {
                    Ok(Some(format!("HTTP {}", response.status)))
                }
                Ok(response) => Err(format!("HTTP {}", response.status)),
                Err(OutboundError::Refused(why)) => Err(format!("refused: {why}")),
                Err(OutboundError::Failed(why)) => Err(why),
            },
            UnsubscribeMethod::Mailto => self.send_mailto(&sender).await,
            UnsubscribeMethod::Manual => {
                Ok(Some("link recorded for the owner; not visited".to_owned()))
            }
        };
        let (status, result, detail) = match executed {
            Ok(detail) if method == UnsubscribeMethod::Manual => (
                UnsubscribeStatus::Succeeded,
                UnsubscribeResult::ManualLinkRecorded,
                detail,
            ),
            Ok(detail) => (
                UnsubscribeStatus::Succeeded,
                UnsubscribeResult::Unsubscribed,
                detail,
            ),
            Err(error) => (
                UnsubscribeStatus::Failed,
                UnsubscribeResult::Failed,
                Some(error),
            ),
        };
        self.state
            .complete_unsubscribe(attempt(status, detail.clone()))
            .await?;
        // A successful unsubscribe records `unsubscribed`, except over `auto_archive`: that
        // decision still has a rule in the mailbox, and the record must keep saying so.
        if status == UnsubscribeStatus::Succeeded
            && self.decision_of(&sender.address).await? != Some(Decision::AutoArchive)
        {
            self.state
                .set_sender_decision(SenderDecision {
                    sender: sender.address.clone(),
                    decision: Decision::Unsubscribed,
                    actor: request.actor.clone(),
                    decided_at: self.clock.now(),
                })
                .await?;
        }
        let label = if status == UnsubscribeStatus::Succeeded {
            "success"
        } else {
            "failure"
        };
        metrics::counter!("unsubscribe_total", "method" => method.as_str(), "result" => label)
            .increment(1);
        tracing::info!(sender = %sender.address, method = method.as_str(), result = label, "unsubscribe");
        outcome.result = result;
        outcome.detail = detail;
        Ok(outcome)
    }

    async fn send_mailto(&self, sender: &SenderStats) -> Result<Option<String>, String> {
        let target: &UnsubscribeTarget = sender.unsubscribe.mailto().ok_or("no mailto target")?;
        let message = unsubscribe::mailto_message(self.mail.account(), target)?;
        let sent = self.send(message).await.map_err(|e| e.to_string())?;
        Ok(Some(format!("mail sent ({})", sent)))
    }

    async fn send(&self, message: lettre::Message) -> Result<String, CoreError> {
        let envelope = message.envelope();
        let mail = OutgoingMail {
            from: envelope
                .from()
                .map(|a| a.to_string())
                .unwrap_or_else(|| self.mail.account().to_owned()),
            to: envelope.to().iter().map(|a| a.to_string()).collect(),
            raw: message.formatted(),
        };
        Ok(self.mail.send(mail).await?.id)
    }

    /// The digest of candidates whose links were never sent, and of senders still sending after
    /// an unsubscribe; with `send`, mails it to the owner and records each link so it is never
    /// sent again. Nothing new (no new candidate, no violation since the last digest that carried
    /// links) means no mail.
    ///
    /// Each link is claimed (recorded) before the mail goes out, and only the links this call
    /// claimed are in it: a digest racing on another process, or a retry after this process was
    /// killed between sending and recording, can never mail a link twice. A send that fails
    /// releases its claims, so an ordinary error loses nothing; a kill between claiming and
    /// sending leaves those links recorded but unsent (at most once, never twice).
    pub async fn digest(&self, send: bool) -> Result<DigestOutcome, CoreError> {
        let sent_links = self.state.sent_links().await?;
        let last_digest = sent_links.iter().map(|l| l.sent_at).max();
        let sent: HashSet<String> = sent_links.into_iter().map(|l| l.link).collect();
        // One read of each collection for both sections.
        let messages = self.known_messages().await?;
        let entries = self.state.unsubscribe_history(None).await?;
        let decisions = self.state.sender_decisions().await?;
        let mut fresh: Vec<Candidate> = rank_candidates(&messages, &entries, &decisions)
            .into_iter()
            .filter(|c| !sent.contains(&c.link))
            .take(self.settings.digest_limit)
            .collect();
        let still_sending: Vec<ComplianceEntry> = self
            .assess_with(&messages, &entries, &decisions)
            .entries
            .into_iter()
            .filter(|e| e.status == ComplianceStatus::Violating)
            .collect();
        // Violations are news when one arrived after the last digest that carried links.
        let new_violations = still_sending
            .iter()
            .any(|e| last_digest.is_none_or(|last| e.last_violation_at.is_some_and(|v| v > last)));
        let to = self
            .settings
            .digest_to
            .clone()
            .unwrap_or_else(|| self.mail.account().to_owned());
        let now = self.clock.now();
        if send && (!fresh.is_empty() || new_violations) {
            self.ensure_mutations_allowed().await?;
            if !fresh.is_empty() {
                fresh = self.claim_links(fresh, now).await?;
            }
        }
        let (text, html) =
            digest::render(&fresh, &still_sending, now).map_err(CoreError::Message)?;
        let mut outcome = DigestOutcome {
            candidates: fresh,
            still_sending,
            sent: false,
            message_id: None,
            to,
            text,
        };
        if !send || (outcome.candidates.is_empty() && !new_violations) {
            return Ok(outcome);
        }
        let subject = digest::subject(outcome.candidates.len(), outcome.still_sending.len());
        let sent = match digest::message(
            self.mail.account(),
            &outcome.to,
            &subject,
            outcome.text.clone(),
            html,
        )
        .map_err(CoreError::Message)
        {
            Ok(message) => self.send(message).await,
            Err(error) => Err(error),
        };
        match sent {
            Ok(id) => {
                outcome.message_id = Some(id);
                outcome.sent = true;
                Ok(outcome)
            }
            Err(error) => {
                let links: Vec<String> =
                    outcome.candidates.iter().map(|c| c.link.clone()).collect();
                if let Err(release) = self.state.release_sent_links(&links).await {
                    tracing::warn!(error = %release, links = links.len(), "digest not sent and its links not released: they will not be offered again");
                }
                Err(error)
            }
        }
    }

    /// Records each candidate's link unless another digest already did; returns the candidates
    /// whose link this call recorded (the file backend records them in one write).
    async fn claim_links(
        &self,
        candidates: Vec<Candidate>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Candidate>, CoreError> {
        let links = candidates
            .iter()
            .map(|c| SentLink {
                link: c.link.clone(),
                sender: c.sender.address.clone(),
                sent_at: now,
            })
            .collect();
        let claimed: HashSet<String> = self
            .state
            .claim_sent_links(links)
            .await?
            .into_iter()
            .collect();
        Ok(candidates
            .into_iter()
            .filter(|c| claimed.contains(&c.link))
            .collect())
    }

    async fn decision_of(&self, sender: &str) -> Result<Option<Decision>, CoreError> {
        Ok(self
            .state
            .sender_decisions()
            .await?
            .into_iter()
            .find(|d| d.sender == sender)
            .map(|d| d.decision))
    }

    /// Records the owner's decision about a sender, with the actor and the clock's time (a
    /// mutation: refused during an incident).
    /// - `keep`: the sender is never a candidate again. Replacing `auto_archive`, it also removes
    ///   the archiving rules quietbox made for the sender (its address and its unsubscribed lists).
    /// - `auto_archive`: the provider keeps the sender's future mail out of the inbox and takes
    ///   what is in the inbox now out of it (the local provider only reports the message ids).
    ///
    /// `unsubscribed` is not the owner's to set: a successful unsubscribe records it.
    pub async fn set_decision(
        &self,
        sender: &str,
        decision: Decision,
        actor: &str,
    ) -> Result<DecisionOutcome, CoreError> {
        self.ensure_mutations_allowed().await?;
        // The parsed, lower-cased address is what is stored and matched, never the raw value
        // (which may carry CR, LF or ESC); `{:?}` escapes them in the message.
        let sender = crate::address::Sender::parse_address(sender).ok_or_else(|| {
            CoreError::InvalidInput(format!("{sender:?} is not an email address"))
        })?;
        if decision == Decision::Unsubscribed {
            return Err(CoreError::InvalidInput(
                "unsubscribed is recorded by a successful unsubscribe; decide keep or auto_archive"
                    .into(),
            ));
        }
        let previous = self.decision_of(&sender).await?;
        let by_address = SubscriptionKey {
            sender: sender.clone(),
            list_id: None,
        };
        let mut archive = None;
        let mut rules_removed = None;
        match decision {
            Decision::AutoArchive => {
                let ids: Vec<String> = self
                    .current_messages()
                    .await?
                    .iter()
                    .filter(|m| in_inbox(m) && compliance::matches(&by_address, m))
                    .map(|m| m.id.clone())
                    .collect();
                let outcome = self.mail.auto_archive(&by_address, &ids).await?;
                if outcome.applied {
                    self.forget_inbox_label(&outcome.message_ids).await?;
                }
                archive = Some(outcome);
            }
            Decision::Keep if previous == Some(Decision::AutoArchive) => {
                let mut keys = vec![by_address];
                keys.extend(
                    self.state
                        .unsubscribe_history(Some(&sender))
                        .await?
                        .into_iter()
                        .filter(|e| e.key.list_id.is_some())
                        .map(|e| e.key),
                );
                let mut removed = 0;
                for key in &keys {
                    removed += self.mail.stop_auto_archive(key).await?;
                }
                rules_removed = Some(removed);
            }
            Decision::Keep | Decision::Unsubscribed => {}
        }
        let record = SenderDecision {
            sender,
            decision,
            actor: actor.to_owned(),
            decided_at: self.clock.now(),
        };
        self.state.set_sender_decision(record.clone()).await?;
        tracing::info!(sender = %record.sender, decision = ?record.decision, previous = ?previous, actor, "sender decision recorded");
        Ok(DecisionOutcome {
            decision: record,
            previous,
            archive,
            rules_removed,
        })
    }

    /// Starts incident mode for `ttl`.
    pub async fn incident_start(
        &self,
        ttl: Duration,
        reason: &str,
        actor: &str,
    ) -> Result<Incident, CoreError> {
        let ttl = chrono::Duration::from_std(ttl)
            .map_err(|_| CoreError::InvalidInput("TTL out of range".into()))?;
        if ttl <= chrono::Duration::zero() {
            return Err(CoreError::InvalidInput(
                "the incident TTL must be positive".into(),
            ));
        }
        let now = self.clock.now();
        let until = now
            .checked_add_signed(ttl)
            .ok_or_else(|| CoreError::InvalidInput("the incident TTL is too long".into()))?;
        let incident = Incident {
            reason: reason.to_owned(),
            started_by: actor.to_owned(),
            started_at: now,
            until,
        };
        self.state.set_incident(Some(incident.clone())).await?;
        tracing::warn!(until = %incident.until, reason, actor, "incident mode started: mutations disabled");
        Ok(incident)
    }

    /// Ends incident mode now.
    pub async fn incident_end(&self, actor: &str) -> Result<(), CoreError> {
        self.state.set_incident(None).await?;
        tracing::warn!(actor, "incident mode ended");
        Ok(())
    }

    /// Whether incident mode is active.
    pub async fn incident_status(&self) -> Result<IncidentStatus, CoreError> {
        let incident = self.state.incident().await?;
        let active = incident
            .as_ref()
            .is_some_and(|i| i.is_active(self.clock.now()));
        Ok(IncidentStatus { active, incident })
    }
}

/// Ranked candidates among the senders of `messages`, without those unsubscribed (or being) and
/// those the owner keeps.
fn rank_candidates(
    messages: &[MessageMeta],
    entries: &[UnsubscribeEntry],
    decisions: &[SenderDecision],
) -> Vec<Candidate> {
    let excluded: HashSet<String> = entries
        .iter()
        .filter(|e| e.status != UnsubscribeStatus::Failed)
        .map(|e| e.key.sender.clone())
        .chain(
            decisions
                .iter()
                .filter(|d| d.decision == Decision::Keep)
                .map(|d| d.sender.clone()),
        )
        .collect();
    candidates::rank(&senders::aggregate(messages), &excluded)
}

fn report(
    messages: Vec<MessageMeta>,
    fetched: usize,
    incremental: bool,
    options: &ScanOptions,
) -> ScanReport {
    let mut classes = ClassCounts::default();
    let mut triaged: Vec<TriagedMessage> = messages
        .iter()
        .filter(|m| {
            options
                .since
                .is_none_or(|since| m.date.is_some_and(|d| d >= since))
        })
        .map(|m| {
            let t = triage::classify(m);
            match t.class {
                Class::Newsletter => classes.newsletter += 1,
                Class::Notification => classes.notification += 1,
                Class::Personal => classes.personal += 1,
                Class::Other => classes.other += 1,
            }
            TriagedMessage {
                id: m.id.clone(),
                from: m.from.clone(),
                subject: m.subject.clone(),
                date: m.date,
                class: t.class,
                reasons: t.reasons,
            }
        })
        .collect();
    triaged.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
    let limit = if options.limit == 0 {
        100
    } else {
        options.limit
    };
    triaged.truncate(limit);
    ScanReport {
        total: messages.len(),
        fetched,
        incremental,
        classes,
        messages: triaged,
        senders: senders::aggregate(&messages),
    }
}
