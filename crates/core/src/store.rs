//! The state port: everything quietbox must remember between requests and across processes.
//!
//! **API Boundary:** `quietbox-state` implements [`StateStore`] twice (JSON files, PostgreSQL)
//! and runs one conformance suite against both. Use cases never touch files or SQL.
//!
//! Every method that depends on time takes `now` from the caller (the clock port), so expiry is
//! testable without sleeping. Every read-modify-write is atomic with respect to all processes
//! sharing the store: that is the backend's job, not the caller's.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ports::MessageMeta;

/// Why a state operation failed. Messages name the file or table involved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The stored data cannot be parsed. It is left untouched.
    #[error("state at {location} is corrupt: {detail}")]
    Corrupt {
        /// File path or table name.
        location: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The stored data was written by a newer quietbox. It is left untouched.
    #[error("state at {location} has version {found}, this build supports up to {supported}")]
    UnsupportedVersion {
        /// File path or table name.
        location: String,
        /// Version found in the data.
        found: u64,
        /// Highest version this build reads.
        supported: u64,
    },
    /// Reading or writing failed.
    #[error("state I/O failed at {location}: {detail}")]
    Io {
        /// File path or table name.
        location: String,
        /// The underlying error, as text.
        detail: String,
    },
    /// The database backend failed.
    #[error("state backend failed: {0}")]
    Backend(String),
    /// The caller asked for something inconsistent with the stored state
    /// (for example a stale fencing token).
    #[error("state conflict: {0}")]
    Conflict(String),
}

impl StateError {
    /// The error code reported to clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            StateError::Corrupt { .. } | StateError::UnsupportedVersion { .. } => {
                ErrorCode::StateCorrupt
            }
            StateError::Io { .. } | StateError::Backend(_) => ErrorCode::StateUnavailable,
            StateError::Conflict(_) => ErrorCode::Conflict,
        }
    }
}

/// How an unsubscribe was (or would be) carried out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeMethod {
    /// RFC 8058 one-click HTTPS POST.
    OneClick,
    /// A mail sent to the list's `mailto:` address.
    Mailto,
    /// A link recorded for the owner to visit; never visited by quietbox.
    Manual,
}

impl UnsubscribeMethod {
    /// The snake_case name, as used in metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            UnsubscribeMethod::OneClick => "one_click",
            UnsubscribeMethod::Mailto => "mailto",
            UnsubscribeMethod::Manual => "manual",
        }
    }
}

/// The state of one sender+list unsubscribe.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeStatus {
    /// Claimed by a worker that has not finished yet.
    InProgress,
    /// Done (one-click accepted, mail sent, or manual link recorded).
    Succeeded,
    /// The last attempt failed; a later attempt may claim it again.
    Failed,
}

/// Identifies one subscription: a sender address and, when the mail carried one, its `List-Id`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SubscriptionKey {
    /// Lower-cased sender address.
    pub sender: String,
    /// `List-Id` value, if any.
    pub list_id: Option<String>,
}

/// One attempt to unsubscribe, successful or not.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct UnsubscribeAttempt {
    /// Which subscription.
    pub key: SubscriptionKey,
    /// How it was attempted.
    pub method: UnsubscribeMethod,
    /// The URL or `mailto:` target used (or recorded, for manual).
    pub target: String,
    /// Outcome of this attempt.
    pub status: UnsubscribeStatus,
    /// Human-readable detail (HTTP status, error text).
    pub detail: Option<String>,
    /// Who asked (principal subject).
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The current state of one subscription's unsubscribe, with every attempt made.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct UnsubscribeEntry {
    /// Which subscription.
    pub key: SubscriptionKey,
    /// Status of the latest attempt.
    pub status: UnsubscribeStatus,
    /// Method of the latest attempt.
    pub method: UnsubscribeMethod,
    /// When the latest attempt began or finished.
    pub updated_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempts: Vec<UnsubscribeAttempt>,
}

/// The answer to [`StateStore::claim_unsubscribe`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The caller now owns the attempt and must call [`StateStore::complete_unsubscribe`].
    Claimed,
    /// Someone already did it or is doing it: nothing was changed.
    Existing(UnsubscribeEntry),
}

/// A link that was put into a digest mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentLink {
    /// The unsubscribe URL or `mailto:` target.
    pub link: String,
    /// The sender it belongs to.
    pub sender: String,
    /// When the digest carrying it was sent.
    pub sent_at: DateTime<Utc>,
}

/// Where the last scan of an account stopped, and what it had seen, so that the next scan asks
/// the provider only for changes (Gmail `historyId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCheckpoint {
    /// Account address or provider name.
    pub account: String,
    /// Opaque provider cursor (Gmail `historyId`); `None` when the provider has none.
    pub cursor: Option<String>,
    /// When it was stored.
    pub updated_at: DateTime<Utc>,
    /// Metadata of every message seen so far, keyed by nothing: ids are unique.
    pub messages: Vec<MessageMeta>,
}

/// Incident mode: mutations are refused until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Why (free text from the operator).
    pub reason: String,
    /// Who started it.
    pub started_by: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ends by itself.
    pub until: DateTime<Utc>,
}

impl Incident {
    /// Whether the incident is in force at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }
}

/// A protocol-neutral stored task (A2A uses it; the payload is the protocol's own JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Task id.
    pub id: String,
    /// Conversation / context id.
    pub context_id: String,
    /// Task state name, as the protocol spells it.
    pub state: String,
    /// The full task document.
    pub payload: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update time.
    pub updated_at: DateTime<Utc>,
    /// Who created it. Tasks stored before owners were recorded belong to
    /// [`TaskOwner::legacy`]. A store never changes a task's owner.
    #[serde(default)]
    pub owner: TaskOwner,
    /// The operation (A2A skill id) the task runs; `None` for tasks stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
}

/// The principal a task belongs to: only it sees the task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskOwner {
    /// The principal's tenant.
    pub tenant: String,
    /// The principal's subject (`api_key` for the API key).
    pub subject: String,
}

impl TaskOwner {
    /// The owner of tasks stored without one: the API-key principal (tenant `default`,
    /// subject `api_key`).
    pub fn legacy() -> Self {
        TaskOwner {
            tenant: "default".to_owned(),
            subject: "api_key".to_owned(),
        }
    }
}

impl Default for TaskOwner {
    /// [`TaskOwner::legacy`].
    fn default() -> Self {
        TaskOwner::legacy()
    }
}

/// How long and how many tasks a store keeps ([`StateStore::prune_tasks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRetention {
    /// Tasks not updated for longer than this are dropped.
    pub max_age: chrono::Duration,
    /// At most this many tasks are kept: the most recently updated ones.
    pub max_tasks: usize,
}

/// A page request for [`StateStore::list_tasks`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only tasks of this context.
    pub context_id: Option<String>,
    /// Only tasks in this state.
    pub state: Option<String>,
    /// Page size (the backend caps it at 100; 0 means the default of 50).
    pub page_size: usize,
    /// Opaque token from a previous page.
    pub page_token: Option<String>,
    /// Only tasks of this owner (`None`: every owner, for operators' tooling).
    pub owner: Option<TaskOwner>,
    /// Only tasks of these skills (`None`: any skill, and tasks with none recorded).
    pub skills: Option<Vec<String>>,
}

/// One page of tasks, newest `updated_at` first (ties by id).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    /// The tasks.
    pub tasks: Vec<TaskRecord>,
    /// Token for the next page, if there is one.
    pub next_page_token: Option<String>,
    /// Number of tasks matching the query in all pages.
    pub total_size: usize,
}

/// A scheduler lease. The fencing token grows with every new holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Job name.
    pub name: String,
    /// Node id of the holder.
    pub holder: String,
    /// Strictly increasing per lease name across holders.
    pub fencing_token: u64,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A stored response for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The client's key (scoped by the caller, e.g. `tenant:operation:key`).
    pub key: String,
    /// A hash of the request, to detect a key reused for a different request.
    pub request_hash: String,
    /// The stored response.
    pub response: serde_json::Value,
    /// When the record may be forgotten.
    pub expires_at: DateTime<Utc>,
}

/// The owner's decision about a sender.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Keep: never propose this sender as a candidate.
    Keep,
    /// Archive mail from this sender automatically.
    AutoArchive,
    /// Set by a successful unsubscribe.
    Unsubscribed,
}

impl Decision {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::AutoArchive => "auto_archive",
            Decision::Unsubscribed => "unsubscribed",
        }
    }
}

/// A recorded [`Decision`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SenderDecision {
    /// Lower-cased sender address.
    pub sender: String,
    /// The decision.
    pub decision: Decision,
    /// Who decided.
    pub actor: String,
    /// When.
    pub decided_at: DateTime<Utc>,
}

/// Everything in a store, for `state export` / `state import` between backends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Unsubscribe entries.
    pub unsubscribes: Vec<UnsubscribeEntry>,
    /// Digest links sent.
    pub sent_links: Vec<SentLink>,
    /// Scan checkpoints.
    pub scan_checkpoints: Vec<ScanCheckpoint>,
    /// Incident state.
    pub incident: Option<Incident>,
    /// Tasks.
    pub tasks: Vec<TaskRecord>,
    /// Leases.
    pub leases: Vec<Lease>,
    /// Idempotency records.
    pub idempotency: Vec<IdempotencyRecord>,
    /// Sender decisions.
    pub sender_decisions: Vec<SenderDecision>,
}

/// A part of the state whose changes [`StateStore::revision`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatePart {
    /// The scan checkpoints ([`StateStore::scan_checkpoint`]).
    ScanCheckpoints,
    /// The unsubscribe entries ([`StateStore::unsubscribe_history`], [`StateStore::unsubscribe_entry`]).
    Unsubscribes,
    /// The sender decisions ([`StateStore::sender_decisions`]).
    SenderDecisions,
}

/// The state port. Implementations must be safe to share between tasks and processes.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Atomically claims the unsubscribe of `attempt.key` (whose status the caller sets to
    /// `InProgress`). Claims when there is no entry, when the entry `Failed`, or when an
    /// `InProgress` entry is older than `stale_after` (its worker died). Otherwise returns
    /// the existing entry and changes nothing. This is what makes unsubscribe at-most-once.
    async fn claim_unsubscribe(
        &self,
        attempt: UnsubscribeAttempt,
        stale_after: Duration,
    ) -> Result<Claim, StateError>;

    /// Records the outcome of a claimed attempt (`Succeeded` or `Failed`), appending it to the
    /// entry's attempts.
    async fn complete_unsubscribe(&self, attempt: UnsubscribeAttempt) -> Result<(), StateError>;

    /// One subscription's entry.
    async fn unsubscribe_entry(
        &self,
        key: &SubscriptionKey,
    ) -> Result<Option<UnsubscribeEntry>, StateError>;

    /// All entries, optionally of one sender, ordered by sender then list id.
    async fn unsubscribe_history(
        &self,
        sender: Option<&str>,
    ) -> Result<Vec<UnsubscribeEntry>, StateError>;

    /// Records a digest link unless it is already there. Returns `true` when it was new.
    async fn insert_sent_link(&self, link: SentLink) -> Result<bool, StateError>;

    /// All digest links sent, oldest first.
    async fn sent_links(&self) -> Result<Vec<SentLink>, StateError>;

    /// Records each link unless it is already there; returns the links this call recorded. The
    /// file backend does it in one write, so a digest killed while claiming loses at most that
    /// one write's worth.
    async fn claim_sent_links(&self, links: Vec<SentLink>) -> Result<Vec<String>, StateError> {
        let mut claimed = Vec::new();
        for link in links {
            let name = link.link.clone();
            if self.insert_sent_link(link).await? {
                claimed.push(name);
            }
        }
        Ok(claimed)
    }

    /// Forgets digest links recorded by a digest whose mail then failed to go out, so that a
    /// later digest offers them again. Unknown links are ignored.
    async fn release_sent_links(&self, links: &[String]) -> Result<(), StateError>;

    /// The checkpoint of one account.
    async fn scan_checkpoint(&self, account: &str) -> Result<Option<ScanCheckpoint>, StateError>;

    /// Stores (replaces) the checkpoint of `checkpoint.account`.
    async fn set_scan_checkpoint(&self, checkpoint: ScanCheckpoint) -> Result<(), StateError>;

    /// The stored incident, whether or not it is still active.
    async fn incident(&self) -> Result<Option<Incident>, StateError>;

    /// Starts (`Some`) or ends (`None`) incident mode.
    async fn set_incident(&self, incident: Option<Incident>) -> Result<(), StateError>;

    /// Creates or replaces a task; a task in a final A2A state (completed, failed, canceled,
    /// rejected) never moves to another state, so that writers on two replicas cannot undo
    /// each other; a write naming another owner than the stored task's is ignored.
    async fn put_task(&self, task: TaskRecord) -> Result<(), StateError>;

    /// One task.
    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StateError>;

    /// A page of tasks.
    async fn list_tasks(&self, query: TaskQuery) -> Result<TaskPage, StateError>;

    /// Drops the tasks not updated within `retention.max_age` before `now`, then the least
    /// recently updated beyond `retention.max_tasks`. Returns how many it dropped.
    async fn prune_tasks(
        &self,
        retention: TaskRetention,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError>;

    /// Takes the lease `name` for `holder` if it is free or expired at `now` (a new fencing
    /// token), or extends it if `holder` already holds it (same token). `None` when another
    /// holder has it.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StateError>;

    /// Extends a held lease. Fails with [`StateError::Conflict`] when `lease` is no longer the
    /// current one (expired and taken by someone else: a stale fencing token).
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, StateError>;

    /// Gives a lease up; a stale lease is ignored.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StateError>;

    /// Whether `fencing_token` is the current token of lease `name` and unexpired at `now`.
    async fn check_fence(
        &self,
        name: &str,
        fencing_token: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError>;

    /// The unexpired record of `key` at `now`.
    async fn idempotency_get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError>;

    /// Stores `record` unless an unexpired one with the same key exists, which is returned
    /// instead (and nothing changes). Expired records may be purged here.
    async fn idempotency_put(
        &self,
        record: IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError>;

    /// Records (replaces) a sender decision.
    async fn set_sender_decision(&self, decision: SenderDecision) -> Result<(), StateError>;

    /// All sender decisions, ordered by sender.
    async fn sender_decisions(&self) -> Result<Vec<SenderDecision>, StateError>;

    /// A cheap token for the current content of `part`, so that callers can keep what they
    /// derived from it until it changes (another process may change it at any time).
    ///
    /// The contract: a store never hands out the same `Some(token)` for two different contents
    /// of a part. So when two calls return the same token, every read of that part made between
    /// them saw the content the token stands for. `None` means the backend gives no such token
    /// and callers must read every time; that is the default, always correct.
    async fn revision(&self, _part: StatePart) -> Result<Option<u64>, StateError> {
        Ok(None)
    }

    /// Whether the store can be read and written now, for readiness probes. Writes nothing.
    async fn check_writable(&self) -> Result<(), StateError> {
        self.incident().await.map(|_| ())
    }

    /// Everything, for copying between backends.
    async fn export(&self) -> Result<Snapshot, StateError>;

    /// Replaces everything with `snapshot`.
    async fn import(&self, snapshot: Snapshot) -> Result<(), StateError>;
}
