//! The owner's decisions about senders, and what quietbox knows of one sender.

use serde::{Deserialize, Serialize};

use super::{CoreError, Quietbox};
use crate::compliance::{self, ComplianceEntry};
use crate::ports::{ArchiveOutcome, in_inbox};
use crate::senders::{self, SenderStats};
use crate::store::{Decision, SenderDecision, SubscriptionKey};

/// What quietbox knows of one sender: aggregates of its mail, the owner's decision, and the
/// compliance of every unsubscribe from it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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

impl Quietbox {
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

    pub(super) async fn decision_of(&self, sender: &str) -> Result<Option<Decision>, CoreError> {
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
}
