//! The compliance watch and its enforcement: did senders stop after an unsubscribe?

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{CoreError, Quietbox};
use crate::compliance::{self, ComplianceReport, ComplianceStatus, Enforcement};
use crate::ports::{ArchiveOutcome, MessageMeta, in_inbox};
use crate::store::{Decision, SenderDecision, UnsubscribeEntry};

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

impl Quietbox {
    /// The compliance watch: for every unsubscribe quietbox carried out, whether the sender
    /// stopped (`compliant`), may still send (`pending`, inside `UNSUBSCRIBE_GRACE_H`) or kept
    /// sending after the grace period (`violating`). Answered from the scan data already kept,
    /// refreshed incrementally when the provider has a change history.
    pub async fn compliance(&self) -> Result<ComplianceReport, CoreError> {
        let messages = self.current_messages().await?;
        self.assess(&messages).await
    }

    pub(super) async fn assess(
        &self,
        messages: &[MessageMeta],
    ) -> Result<ComplianceReport, CoreError> {
        let entries = self.state.unsubscribe_history(None).await?;
        let decisions = self.state.sender_decisions().await?;
        Ok(self.assess_with(messages, &entries, &decisions))
    }

    pub(super) fn assess_with(
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
}
