//! The compliance watch: does a sender stop after quietbox unsubscribed the owner?
//!
//! Bulk senders have to honour an unsubscribe within two days (RFC 8058 and the Gmail and Yahoo
//! sender rules). For every unsubscribe quietbox carried out (one-click accepted, `mailto:` sent),
//! mail of that subscription dated after `unsubscribed_at + UNSUBSCRIBE_GRACE_H` is a violation:
//! - a subscription with a `List-Id` is matched on the `List-Id` (whatever the `From`), so a list
//!   that keeps mailing under another address is still caught, and other lists of the same sender
//!   are not blamed;
//! - a subscription without one is matched on the sender address.
//!
//! A `manual` unsubscribe only records a link for the owner to open; quietbox does not know when
//! (or whether) it was opened, so there is no instant to measure from and it is not watched.
//!
//! [`assess`] is a pure function of the unsubscribe history, the scan data already kept and the
//! clock: answering never needs a rescan.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::address::Sender;
use crate::ports::MessageMeta;
use crate::store::{
    Decision, SenderDecision, SubscriptionKey, UnsubscribeEntry, UnsubscribeMethod,
    UnsubscribeStatus,
};

/// `UNSUBSCRIBE_ENFORCE`: what happens to violating senders.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Report them (in the compliance report and the digest) only.
    #[default]
    Report,
    /// Give them `auto_archive`: their mail leaves the inbox.
    Archive,
}

/// Where one watched unsubscribe stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComplianceStatus {
    /// Mail arrived after the grace period: the sender ignores the unsubscribe.
    Violating,
    /// Still inside the grace period, with no violation.
    Pending,
    /// The grace period is over and nothing arrived after it.
    Compliant,
}

impl ComplianceStatus {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceStatus::Violating => "violating",
            ComplianceStatus::Pending => "pending",
            ComplianceStatus::Compliant => "compliant",
        }
    }
}

/// The compliance of one unsubscribed sender/list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ComplianceEntry {
    /// Lower-cased sender address.
    pub sender: String,
    /// `List-Id` of the subscription, if it had one.
    pub list_id: Option<String>,
    /// How quietbox unsubscribed.
    pub method: UnsubscribeMethod,
    /// When the unsubscribe succeeded.
    pub unsubscribed_at: DateTime<Utc>,
    /// `unsubscribed_at` + the grace period: mail dated after this is a violation.
    pub grace_ends_at: DateTime<Utc>,
    /// Pending, compliant or violating.
    pub status: ComplianceStatus,
    /// Messages dated after `grace_ends_at`.
    pub violations: usize,
    /// Date of the first of them.
    pub first_violation_at: Option<DateTime<Utc>>,
    /// Date of the last of them.
    pub last_violation_at: Option<DateTime<Utc>>,
    /// Their provider ids, oldest first.
    pub violating_message_ids: Vec<String>,
    /// The owner's current decision about the sender, if any.
    pub decision: Option<Decision>,
}

impl ComplianceEntry {
    /// The subscription this entry watches.
    pub fn key(&self) -> SubscriptionKey {
        SubscriptionKey {
            sender: self.sender.clone(),
            list_id: self.list_id.clone(),
        }
    }
}

/// Entries per status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ComplianceSummary {
    /// Inside the grace period.
    pub pending: usize,
    /// Honoured.
    pub compliant: usize,
    /// Ignored.
    pub violating: usize,
}

/// The compliance report.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ComplianceReport {
    /// The clock's time when it was computed.
    pub checked_at: DateTime<Utc>,
    /// `UNSUBSCRIBE_GRACE_H`.
    pub grace_hours: i64,
    /// `UNSUBSCRIBE_ENFORCE`.
    pub enforcement: Enforcement,
    /// Entries per status.
    pub summary: ComplianceSummary,
    /// Violating first (most violations first), then pending, then compliant; ties by sender.
    pub entries: Vec<ComplianceEntry>,
    /// Manual unsubscribes (a link recorded for the owner), which are not watched.
    pub manual_not_watched: usize,
}

impl ComplianceReport {
    /// The report restricted to the unsubscribes of one sender (any case), summary recounted.
    pub fn for_sender(mut self, sender: &str) -> Self {
        let sender = sender.trim().to_ascii_lowercase();
        self.entries.retain(|e| e.sender == sender);
        self.summary = ComplianceSummary::default();
        for entry in &self.entries {
            match entry.status {
                ComplianceStatus::Violating => self.summary.violating += 1,
                ComplianceStatus::Pending => self.summary.pending += 1,
                ComplianceStatus::Compliant => self.summary.compliant += 1,
            }
        }
        self
    }
}

/// A `List-Id` reduced to what identifies the list: `"News" <news.example.com>` and
/// `news.example.com` are the same list.
pub fn normalize_list_id(list_id: &str) -> String {
    let trimmed = list_id.trim();
    let inner = match (trimmed.rfind('<'), trimmed.rfind('>')) {
        (Some(open), Some(close)) if open < close => &trimmed[open + 1..close],
        _ => trimmed,
    };
    inner.trim().to_ascii_lowercase()
}

/// Whether `message` belongs to the subscription `key` (see the module documentation).
pub fn matches(key: &SubscriptionKey, message: &MessageMeta) -> bool {
    match &key.list_id {
        Some(list) => message
            .list_id
            .as_deref()
            .is_some_and(|l| normalize_list_id(l) == normalize_list_id(list)),
        None => Sender::parse(&message.from).is_some_and(|s| s.address == key.sender),
    }
}

/// When the unsubscribe of `entry` succeeded (its latest successful attempt).
fn unsubscribed_at(entry: &UnsubscribeEntry) -> DateTime<Utc> {
    entry
        .attempts
        .iter()
        .rev()
        .find(|a| a.status == UnsubscribeStatus::Succeeded)
        .map_or(entry.updated_at, |a| a.at)
}

/// Computes the compliance of every successful, watched unsubscribe in `entries` against
/// `messages`, at `now`, with `grace` after each unsubscribe.
pub fn assess(
    entries: &[UnsubscribeEntry],
    messages: &[MessageMeta],
    decisions: &[SenderDecision],
    grace: chrono::Duration,
    enforcement: Enforcement,
    now: DateTime<Utc>,
) -> ComplianceReport {
    let decisions: HashMap<&str, Decision> = decisions
        .iter()
        .map(|d| (d.sender.as_str(), d.decision))
        .collect();
    let mut summary = ComplianceSummary::default();
    let mut manual_not_watched = 0;
    let mut watched = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| e.status == UnsubscribeStatus::Succeeded)
    {
        if entry.method == UnsubscribeMethod::Manual {
            manual_not_watched += 1;
            continue;
        }
        let at = unsubscribed_at(entry);
        // Saturating: a stored date near the end of time must not panic the report.
        let grace_ends_at = at
            .checked_add_signed(grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut violating: Vec<(DateTime<Utc>, &str)> = messages
            .iter()
            .filter(|m| matches(&entry.key, m))
            .filter_map(|m| Some((m.date?, m.id.as_str())))
            .filter(|(date, _)| *date > grace_ends_at)
            .collect();
        violating.sort();
        let status = if !violating.is_empty() {
            summary.violating += 1;
            ComplianceStatus::Violating
        } else if now <= grace_ends_at {
            summary.pending += 1;
            ComplianceStatus::Pending
        } else {
            summary.compliant += 1;
            ComplianceStatus::Compliant
        };
        watched.push(ComplianceEntry {
            sender: entry.key.sender.clone(),
            list_id: entry.key.list_id.clone(),
            method: entry.method,
            unsubscribed_at: at,
            grace_ends_at,
            status,
            violations: violating.len(),
            first_violation_at: violating.first().map(|(d, _)| *d),
            last_violation_at: violating.last().map(|(d, _)| *d),
            violating_message_ids: violating.iter().map(|(_, id)| (*id).to_owned()).collect(),
            decision: decisions.get(entry.key.sender.as_str()).copied(),
        });
    }
    watched.sort_by(|a, b| {
        a.status
            .cmp(&b.status)
            .then_with(|| b.violations.cmp(&a.violations))
            .then_with(|| a.sender.cmp(&b.sender))
            .then_with(|| a.list_id.cmp(&b.list_id))
    });
    ComplianceReport {
        checked_at: now,
        grace_hours: grace.num_hours(),
        enforcement,
        summary,
        entries: watched,
        manual_not_watched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UnsubscribeAttempt;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn entry(sender: &str, list: Option<&str>, method: UnsubscribeMethod) -> UnsubscribeEntry {
        let key = SubscriptionKey {
            sender: sender.into(),
            list_id: list.map(str::to_owned),
        };
        let attempt = |status, when| UnsubscribeAttempt {
            key: key.clone(),
            method,
            target: "https://x.example/u".into(),
            status,
            detail: None,
            actor: "api_key".into(),
            at: when,
        };
        UnsubscribeEntry {
            key: key.clone(),
            status: UnsubscribeStatus::Succeeded,
            method,
            updated_at: at(2, 9),
            attempts: vec![
                attempt(UnsubscribeStatus::InProgress, at(1, 8)),
                attempt(UnsubscribeStatus::Succeeded, at(1, 9)),
            ],
        }
    }

    fn mail(id: &str, from: &str, list: Option<&str>, date: DateTime<Utc>) -> MessageMeta {
        MessageMeta {
            id: id.into(),
            from: from.into(),
            list_id: list.map(str::to_owned),
            date: Some(date),
            ..Default::default()
        }
    }

    fn check(
        entries: &[UnsubscribeEntry],
        messages: &[MessageMeta],
        now: DateTime<Utc>,
    ) -> Vec<(String, ComplianceStatus, usize)> {
        assess(
            entries,
            messages,
            &[],
            chrono::Duration::hours(48),
            Enforcement::Report,
            now,
        )
        .entries
        .into_iter()
        .map(|e| (e.sender, e.status, e.violations))
        .collect()
    }

    #[test]
    fn mail_inside_the_grace_period_is_pending_and_after_it_is_a_violation() {
        let entries = [entry("news@a.example", None, UnsubscribeMethod::OneClick)];
        let inside = mail("1", "News <NEWS@a.example>", None, at(2, 9));
        assert_eq!(
            check(&entries, std::slice::from_ref(&inside), at(2, 10)),
            [("news@a.example".into(), ComplianceStatus::Pending, 0)]
        );
        assert_eq!(
            check(&entries, std::slice::from_ref(&inside), at(3, 10)),
            [("news@a.example".into(), ComplianceStatus::Compliant, 0)],
            "grace over, nothing after it"
        );
        let late = mail("2", "news@a.example", None, at(3, 10));
        let report = assess(
            &entries,
            &[
                inside,
                late.clone(),
                mail("3", "news@a.example", None, at(5, 0)),
            ],
            &[],
            chrono::Duration::hours(48),
            Enforcement::Report,
            at(6, 0),
        );
        let e = &report.entries[0];
        assert_eq!((e.status, e.violations), (ComplianceStatus::Violating, 2));
        assert_eq!(e.unsubscribed_at, at(1, 9), "the successful attempt's time");
        assert_eq!(e.grace_ends_at, at(3, 9));
        assert_eq!(
            (e.first_violation_at, e.last_violation_at),
            (Some(at(3, 10)), Some(at(5, 0)))
        );
        assert_eq!(e.violating_message_ids, ["2", "3"]);
        assert_eq!(report.summary.violating, 1);
    }

    #[test]
    fn a_list_is_matched_on_its_list_id_and_a_sender_without_one_on_its_address() {
        let entries = [
            entry(
                "deals@shop.example",
                Some("<deals.shop.example>"),
                UnsubscribeMethod::Mailto,
            ),
            entry("solo@b.example", None, UnsubscribeMethod::OneClick),
        ];
        let late = at(10, 0);
        let messages = [
            // Same list under another address: still the list.
            mail(
                "1",
                "promo@shop.example",
                Some("Deals <DEALS.shop.example>"),
                late,
            ),
            // Same sender, another list: not the one left.
            mail(
                "2",
                "deals@shop.example",
                Some("<receipts.shop.example>"),
                late,
            ),
            mail("3", "solo@b.example", Some("<anything>"), late),
        ];
        assert_eq!(
            check(&entries, &messages, at(11, 0)),
            [
                ("deals@shop.example".into(), ComplianceStatus::Violating, 1),
                ("solo@b.example".into(), ComplianceStatus::Violating, 1),
            ]
        );
    }

    #[test]
    fn manual_and_unfinished_unsubscribes_are_not_watched() {
        let mut failed = entry("f@c.example", None, UnsubscribeMethod::OneClick);
        failed.status = UnsubscribeStatus::Failed;
        let report = assess(
            &[
                entry("m@c.example", None, UnsubscribeMethod::Manual),
                failed,
            ],
            &[mail("1", "m@c.example", None, at(20, 0))],
            &[],
            chrono::Duration::hours(48),
            Enforcement::Report,
            at(21, 0),
        );
        assert!(report.entries.is_empty());
        assert_eq!(report.manual_not_watched, 1);
    }

    #[test]
    fn violators_come_first_and_carry_the_owners_decision() {
        let entries = [
            entry("a@x.example", None, UnsubscribeMethod::OneClick),
            entry("b@x.example", None, UnsubscribeMethod::OneClick),
        ];
        let decisions = [SenderDecision {
            sender: "b@x.example".into(),
            decision: Decision::AutoArchive,
            actor: "scheduler".into(),
            decided_at: at(9, 0),
        }];
        let report = assess(
            &entries,
            &[mail("1", "b@x.example", None, at(8, 0))],
            &decisions,
            chrono::Duration::hours(48),
            Enforcement::Archive,
            at(9, 0),
        );
        assert_eq!(report.entries[0].sender, "b@x.example");
        assert_eq!(report.entries[0].decision, Some(Decision::AutoArchive));
        assert_eq!(report.entries[1].status, ComplianceStatus::Compliant);
        assert_eq!(report.grace_hours, 48);
    }

    #[test]
    fn list_ids_compare_without_brackets_names_or_case() {
        assert_eq!(
            normalize_list_id("\"News\" <News.Example.com>"),
            "news.example.com"
        );
        assert_eq!(normalize_list_id(" news.example.com "), "news.example.com");
    }
}
