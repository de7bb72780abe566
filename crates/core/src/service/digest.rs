//! The digest use case: mail the owner the candidates whose links were never sent.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::candidates::rank_candidates;
use super::{CoreError, Quietbox};
use crate::candidates::Candidate;
use crate::compliance::{ComplianceEntry, ComplianceStatus};
use crate::digest;
use crate::store::SentLink;

/// The result of a digest run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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

impl Quietbox {
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
}
