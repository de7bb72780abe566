//! The unsubscribe use case: leave one subscription at most once, and its history.

use serde::{Deserialize, Serialize};

use super::{CoreError, Quietbox};
use crate::candidates;
use crate::list_unsubscribe::UnsubscribeTarget;
use crate::ports::OutboundError;
use crate::senders::{self, SenderStats};
use crate::store::{
    Claim, Decision, SenderDecision, SubscriptionKey, UnsubscribeAttempt, UnsubscribeEntry,
    UnsubscribeMethod, UnsubscribeStatus,
};
use crate::unsubscribe;

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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

impl Quietbox {
    /// Unsubscribe history, optionally of one sender.
    pub async fn history(&self, sender: Option<&str>) -> Result<Vec<UnsubscribeEntry>, CoreError> {
        let sender = sender.map(|s| s.trim().to_ascii_lowercase());
        Ok(self.state.unsubscribe_history(sender.as_deref()).await?)
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
}
