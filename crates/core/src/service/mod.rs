//! [`Quietbox`]: the use cases every protocol calls, one method per operation.
//!
//! Handlers in the three binaries extract their input, call one method here, and convert the
//! result; rules live here once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::compliance::Enforcement;
use crate::error::ErrorCode;
use crate::ports::{
    CalendarProvider, Clock, MailProvider, OneClickClient, OutgoingMail, ProviderError,
};
use crate::store::{StateError, StateStore};

mod availability;
mod candidates;
mod compliance;
mod decisions;
mod digest;
mod incident;
mod scan;
mod unsubscribe;

#[cfg(test)]
mod tests;

pub use compliance::{EnforcementAction, EnforcementOutcome};
pub use decisions::{DecisionOutcome, SenderView};
pub use digest::DigestOutcome;
pub use incident::IncidentStatus;
pub use scan::{ClassCounts, ScanOptions, ScanReport, TriagedMessage};
pub use unsubscribe::{
    UnsubscribeOutcome, UnsubscribeRequest, UnsubscribeResult, UnsubscribeTargetRef,
};

use candidates::RankedCandidates;

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
}
