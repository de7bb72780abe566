//! Ports for the outside world other than state: mail, calendar, outbound HTTP and the clock.
//!
//! **API Boundary:** `quietbox-gmail` implements [`MailProvider`] and [`CalendarProvider`] for
//! Google and for local files, and [`OneClickClient`] with an SSRF guard. Use cases only see these
//! traits, so they run the same on the local sample, the fake Google and the real one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::store::SubscriptionKey;

/// The headers and flags of one message that triage needs. Bodies are never read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Provider message id (Gmail id, or a stable id derived from the mbox entry).
    pub id: String,
    /// Thread id, when the provider has one.
    pub thread_id: Option<String>,
    /// Raw `From` header.
    pub from: String,
    /// Raw `To` header.
    pub to: Option<String>,
    /// `Subject` header.
    pub subject: Option<String>,
    /// Parsed `Date` header (or Gmail `internalDate`).
    pub date: Option<DateTime<Utc>>,
    /// `List-Id` header.
    pub list_id: Option<String>,
    /// `List-Unsubscribe` header, unparsed.
    pub list_unsubscribe: Option<String>,
    /// `List-Unsubscribe-Post` header.
    pub list_unsubscribe_post: Option<String>,
    /// `Precedence` header.
    pub precedence: Option<String>,
    /// `Auto-Submitted` header.
    pub auto_submitted: Option<String>,
    /// Provider labels (Gmail label ids, or `X-Gmail-Labels` of an mbox).
    pub labels: Vec<String>,
    /// Whether the message is unread.
    pub unread: bool,
}

/// What a scan asks of the mail provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanRequest {
    /// Provider search query (Gmail `q` syntax); the local provider ignores what it cannot apply.
    pub query: Option<String>,
    /// Only messages at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At most this many messages (0 = provider default).
    pub limit: usize,
    /// The cursor of the previous scan (Gmail `historyId`): when present and still valid, the
    /// provider returns only what changed since.
    pub cursor: Option<String>,
}

/// What the provider returns for a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanBatch {
    /// New or changed messages (all messages when `full`).
    pub messages: Vec<MessageMeta>,
    /// Ids of messages deleted since the cursor (empty when `full`).
    pub removed: Vec<String>,
    /// Cursor to store for the next incremental scan.
    pub cursor: Option<String>,
    /// `true` when this is a full listing (no cursor, or the cursor had expired).
    pub full: bool,
}

/// Receives scan progress (for a progress bar, or A2A/MCP progress notifications).
pub trait ScanProgress: Send + Sync {
    /// `done` messages fetched of `total` (when known).
    fn report(&self, done: usize, total: Option<usize>);
}

/// A [`ScanProgress`] that ignores reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ScanProgress for NoProgress {
    fn report(&self, _done: usize, _total: Option<usize>) {}
}

/// A fully formatted mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The RFC 5322 message bytes (headers and body).
    pub raw: Vec<u8>,
}

/// The provider's receipt for a sent mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMail {
    /// Provider id of the sent message (Gmail id, or the `.eml` file name).
    pub id: String,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered 5xx.
    #[error("mail provider unavailable: {0}")]
    Unavailable(String),
    /// The provider's quota is exhausted.
    #[error("mail provider rate limited{}", .retry_after.map(|wait| format!(": it asks to wait {} s before trying again", wait.as_secs())).unwrap_or_default())]
    RateLimited {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The stored credential is expired or revoked and cannot be refreshed.
    #[error("mail provider credential rejected: {0}")]
    AuthExpired(String),
    /// The request was invalid (bad query, bad address).
    #[error("invalid request to mail provider: {0}")]
    InvalidInput(String),
    /// The input data (mbox, .ics, token file) is unreadable.
    #[error("mail provider data unreadable: {0}")]
    BadData(String),
    /// The stored credential was not granted an OAuth scope this operation needs.
    #[error(
        "the mail provider's credential lacks the OAuth scope {scope}, which {needed_for} needs; {remedy}"
    )]
    MissingScope {
        /// The scope, as the provider names it (a Google scope URL).
        scope: String,
        /// The operation that needed it, e.g. `creating a Gmail filter`.
        needed_for: String,
        /// What the operator does about it.
        remedy: String,
    },
}

impl ProviderError {
    /// The error code reported to clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProviderError::Unavailable(_) | ProviderError::BadData(_) => {
                ErrorCode::UpstreamUnavailable
            }
            ProviderError::RateLimited { .. } => ErrorCode::UpstreamRateLimited,
            ProviderError::AuthExpired(_) => ErrorCode::UpstreamAuthExpired,
            ProviderError::MissingScope { .. } => ErrorCode::UpstreamScopeMissing,
            ProviderError::InvalidInput(_) => ErrorCode::InvalidRequest,
        }
    }
}

/// What [`MailProvider::auto_archive`] did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ArchiveOutcome {
    /// Whether the mailbox was changed. `false` for the local provider, which only reports what it
    /// would archive (an mbox is not rewritten).
    pub applied: bool,
    /// The provider's id of the rule that keeps future mail out of the inbox (a Gmail filter id).
    pub filter_id: Option<String>,
    /// Whether this call created that rule (`false` when it already existed).
    pub filter_created: bool,
    /// Messages taken out of the inbox by this call (or, when not `applied`, that would be).
    pub message_ids: Vec<String>,
}

/// Whether a message is in the inbox: it carries Gmail's `INBOX` label (an mbox export's
/// `X-Gmail-Labels` spells it `Inbox`).
pub fn in_inbox(message: &MessageMeta) -> bool {
    message
        .labels
        .iter()
        .any(|label| label.eq_ignore_ascii_case("inbox"))
}

/// A mailbox: list message metadata and send mail.
#[async_trait]
pub trait MailProvider: Send + Sync + 'static {
    /// The account address (the owner; digest mails go here by default).
    fn account(&self) -> &str;

    /// Lists message metadata, incrementally when `request.cursor` is valid.
    async fn scan(
        &self,
        request: &ScanRequest,
        progress: &dyn ScanProgress,
    ) -> Result<ScanBatch, ProviderError>;

    /// Sends a mail.
    async fn send(&self, mail: OutgoingMail) -> Result<SentMail, ProviderError>;

    /// Keeps future mail of `key` out of the inbox (its `List-Id` when it has one, else its
    /// sender address) and takes `message_ids` out of the inbox now. Idempotent: a second call
    /// finds the rule the first one made instead of making another.
    ///
    /// The default is for a mailbox quietbox cannot change (an mbox export): nothing is applied
    /// and `message_ids` are reported as what would leave the inbox.
    async fn auto_archive(
        &self,
        _key: &SubscriptionKey,
        message_ids: &[String],
    ) -> Result<ArchiveOutcome, ProviderError> {
        Ok(ArchiveOutcome {
            applied: false,
            filter_id: None,
            filter_created: false,
            message_ids: message_ids.to_vec(),
        })
    }

    /// Removes the rules [`MailProvider::auto_archive`] made for `key` (messages stay where
    /// they are). Returns how many rules were removed; the default has none to remove.
    async fn stop_auto_archive(&self, _key: &SubscriptionKey) -> Result<usize, ProviderError> {
        Ok(0)
    }

    /// Whether the provider can serve now (input readable, credential refreshable), for
    /// readiness probes. Cheap: no listing.
    async fn check(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// One busy interval of a calendar.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct BusyInterval {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
}

/// A calendar: busy intervals in a window.
#[async_trait]
pub trait CalendarProvider: Send + Sync + 'static {
    /// Busy intervals overlapping `[start, end)`, unmerged, in any order. `tz` is the IANA zone
    /// used to place all-day events.
    async fn busy(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        tz: &str,
    ) -> Result<Vec<BusyInterval>, ProviderError>;
}

/// What a one-click endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneClickResponse {
    /// Final HTTP status (after vetted redirects).
    pub status: u16,
}

/// Why an outbound request was not made or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The SSRF guard or the allow/deny lists refused the target.
    #[error("outbound request refused: {0}")]
    Refused(String),
    /// The request was made and failed (connect, timeout, TLS).
    #[error("outbound request failed: {0}")]
    Failed(String),
}

/// Sends RFC 8058 one-click unsubscribe requests, through an SSRF guard.
#[async_trait]
pub trait OneClickClient: Send + Sync + 'static {
    /// POSTs `List-Unsubscribe=One-Click` to `url`.
    async fn post_one_click(&self, url: &str) -> Result<OneClickResponse, OutboundError>;
}

/// The time source. Use cases never call `Utc::now()` directly, so tests drive time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stays where tests put it.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<std::sync::Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(std::sync::Mutex::new(at)))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
