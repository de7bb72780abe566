//! Unsubscribe candidates: senders worth leaving, ranked, with stable ids.
//!
//! Score = ln(1 + volume) × (0.25 + unread ratio) × (1.25 if one-click). Volume matters less
//! than being ignored: a daily list you read is a worse candidate than a weekly one you never
//! open. Senders already unsubscribed (or in progress) and senders marked `keep` are excluded.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::senders::SenderStats;
use crate::store::UnsubscribeMethod;

/// One ranked candidate.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Candidate {
    /// Stable id: the same sender and list always get the same id.
    pub id: String,
    /// The score used for ranking (higher first).
    pub score: f64,
    /// The sender.
    pub sender: SenderStats,
    /// The method quietbox would use.
    pub method: UnsubscribeMethod,
    /// The link it would use (or record, for manual).
    pub link: String,
}

/// The stable id of a sender and list: 16 hex digits of FNV-1a (stable across releases and
/// platforms, unlike `std`'s hasher).
pub fn candidate_id(sender: &str, list_id: Option<&str>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sender
        .bytes()
        .chain([0u8])
        .chain(list_id.unwrap_or("").bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Ranks senders that offer a way out, skipping `excluded` addresses.
pub fn rank(senders: &[SenderStats], excluded: &HashSet<String>) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = senders
        .iter()
        .filter(|s| !excluded.contains(&s.address))
        .filter_map(|s| {
            let method = *s.methods.first()?;
            let link = match method {
                UnsubscribeMethod::OneClick => s.unsubscribe.one_click_url()?.to_owned(),
                UnsubscribeMethod::Mailto => s.unsubscribe.mailto()?.link(),
                UnsubscribeMethod::Manual => s.unsubscribe.url()?.to_owned(),
            };
            let one_click = if method == UnsubscribeMethod::OneClick {
                1.25
            } else {
                1.0
            };
            let score = (1.0 + s.count as f64).ln() * (0.25 + s.unread_ratio) * one_click;
            Some(Candidate {
                id: candidate_id(&s.address, s.list_id.as_deref()),
                score,
                sender: s.clone(),
                method,
                link,
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.sender.address.cmp(&b.sender.address))
    });
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list_unsubscribe;
    use crate::senders::methods;
    use crate::triage::Class;

    fn sender(
        address: &str,
        count: usize,
        unread: usize,
        header: &str,
        one_click: bool,
    ) -> SenderStats {
        let unsubscribe = list_unsubscribe::parse(
            Some(header),
            one_click.then_some("List-Unsubscribe=One-Click"),
        );
        SenderStats {
            address: address.into(),
            name: None,
            count,
            unread,
            unread_ratio: unread as f64 / count as f64,
            first_seen: None,
            last_seen: None,
            list_id: None,
            class: Class::Newsletter,
            methods: methods(&unsubscribe),
            unsubscribe,
        }
    }

    #[test]
    fn ignored_mail_ranks_above_read_mail_and_exclusions_are_skipped() {
        let senders = vec![
            sender("read@example.com", 30, 0, "<https://r.example/u>", true),
            sender("ignored@example.com", 10, 10, "<mailto:u@i.example>", false),
            sender("gone@example.com", 50, 50, "<https://g.example/u>", true),
            sender("person@example.com", 5, 5, "", false),
        ];
        let excluded = HashSet::from(["gone@example.com".to_owned()]);
        let ranked = rank(&senders, &excluded);
        let order: Vec<&str> = ranked.iter().map(|c| c.sender.address.as_str()).collect();
        assert_eq!(order, ["ignored@example.com", "read@example.com"]);
        assert_eq!(ranked[0].method, UnsubscribeMethod::Mailto);
        assert_eq!(ranked[1].method, UnsubscribeMethod::OneClick);
        assert_eq!(ranked[1].link, "https://r.example/u");
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(
            candidate_id("a@example.com", Some("<l>")),
            candidate_id("a@example.com", Some("<l>"))
        );
        assert_ne!(
            candidate_id("a@example.com", Some("<l>")),
            candidate_id("a@example.com", None)
        );
        assert_eq!(candidate_id("a@example.com", None).len(), 16);
    }
}
