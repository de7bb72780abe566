//! The scan use case: list the mailbox (incrementally from the stored checkpoint) and triage it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CoreError, Quietbox};
use crate::ports::{MessageMeta, NoProgress, ScanProgress, ScanRequest};
use crate::senders::{self, SenderStats};
use crate::store::ScanCheckpoint;
use crate::triage::{self, Class};

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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

impl Quietbox {
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
    pub(super) async fn current_messages(&self) -> Result<Vec<MessageMeta>, CoreError> {
        match self.state.scan_checkpoint(self.mail.account()).await? {
            Some(checkpoint) if checkpoint.cursor.is_none() => Ok(checkpoint.messages),
            _ => Ok(self.refresh(&ScanOptions::default(), &NoProgress).await?.0),
        }
    }

    /// Marks `ids` as out of the inbox in the stored checkpoint, after the provider archived
    /// them, so that a rerun does not archive them again. A scan racing with this may put the
    /// old labels back; the next incremental scan then sees Gmail's label change.
    pub(super) async fn forget_inbox_label(&self, ids: &[String]) -> Result<(), CoreError> {
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

    pub(super) async fn known_messages(&self) -> Result<Vec<MessageMeta>, CoreError> {
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
