//! Triage: each message gets one class and the reasons that decided it.
//!
//! The rules read only headers and labels, in this order: mailing-list evidence (`List-Id`,
//! `Precedence: bulk|list`, Gmail's Promotions category) makes a newsletter; automation evidence
//! (`Auto-Submitted`, a no-reply sender, Gmail's Updates category) makes a notification; a bare
//! `List-Unsubscribe` makes a newsletter; a readable sender with none of that is personal; the
//! rest is other. Reasons are kept so that a person can see why.

use serde::{Deserialize, Serialize};

use crate::address::Sender;
use crate::ports::MessageMeta;

/// The class of a message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Bulk mail from a list.
    Newsletter,
    /// Machine-sent updates (receipts, alerts, notifications).
    Notification,
    /// Mail from a person.
    Personal,
    /// Could not be told.
    Other,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 4] = [
        Class::Newsletter,
        Class::Notification,
        Class::Personal,
        Class::Other,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Newsletter => "newsletter",
            Class::Notification => "notification",
            Class::Personal => "personal",
            Class::Other => "other",
        }
    }
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triage {
    /// The class.
    pub class: Class,
    /// Why, in plain words.
    pub reasons: Vec<String>,
}

const NO_REPLY: [&str; 8] = [
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "notifications",
    "notification",
    "alerts",
];

/// Classifies one message.
pub fn classify(message: &MessageMeta) -> Triage {
    let Some(sender) = Sender::parse(&message.from) else {
        return Triage {
            class: Class::Other,
            reasons: vec!["sender address unreadable".to_owned()],
        };
    };
    let mut list = Vec::new();
    if message.list_id.is_some() {
        list.push("List-Id header".to_owned());
    }
    if let Some(precedence) = &message.precedence {
        let p = precedence.trim().to_ascii_lowercase();
        if p == "bulk" || p == "list" {
            list.push(format!("Precedence: {p}"));
        }
    }
    if has_label(message, "CATEGORY_PROMOTIONS") {
        list.push("Gmail category Promotions".to_owned());
    }
    let mut automated = Vec::new();
    if let Some(auto) = &message.auto_submitted
        && !auto.trim().eq_ignore_ascii_case("no")
    {
        automated.push(format!("Auto-Submitted: {}", auto.trim()));
    }
    let local = sender.local_part();
    if NO_REPLY.iter().any(|n| {
        local == *n || local.starts_with(&format!("{n}+")) || local.starts_with(&format!("{n}-"))
    }) {
        automated.push(format!("no-reply sender {local}@…"));
    }
    if has_label(message, "CATEGORY_UPDATES") {
        automated.push("Gmail category Updates".to_owned());
    }
    let unsubscribe = message
        .list_unsubscribe
        .as_deref()
        .is_some_and(|h| !h.trim().is_empty());

    if !list.is_empty() {
        if unsubscribe {
            list.push("List-Unsubscribe header".to_owned());
        }
        return Triage {
            class: Class::Newsletter,
            reasons: list,
        };
    }
    if !automated.is_empty() {
        return Triage {
            class: Class::Notification,
            reasons: automated,
        };
    }
    if unsubscribe {
        return Triage {
            class: Class::Newsletter,
            reasons: vec!["List-Unsubscribe header".to_owned()],
        };
    }
    if has_label(message, "CATEGORY_SOCIAL") || has_label(message, "CATEGORY_FORUMS") {
        return Triage {
            class: Class::Other,
            reasons: vec!["Gmail category Social/Forums without list headers".to_owned()],
        };
    }
    Triage {
        class: Class::Personal,
        reasons: vec!["no list or automation headers".to_owned()],
    }
}

fn has_label(message: &MessageMeta, label: &str) -> bool {
    message.labels.iter().any(|l| l.eq_ignore_ascii_case(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: &str) -> MessageMeta {
        MessageMeta {
            id: "1".into(),
            from: from.into(),
            ..Default::default()
        }
    }

    fn check(message: MessageMeta, class: Class, reason_fragment: &str) {
        let triage = classify(&message);
        assert_eq!(triage.class, class, "{message:?} -> {triage:?}");
        assert!(
            triage.reasons.iter().any(|r| r.contains(reason_fragment)),
            "{triage:?} lacks {reason_fragment:?}"
        );
    }

    #[test]
    fn list_headers_make_a_newsletter() {
        check(
            MessageMeta {
                list_id: Some("<weekly.news.example.com>".into()),
                ..message("news@example.com")
            },
            Class::Newsletter,
            "List-Id",
        );
        check(
            MessageMeta {
                precedence: Some("Bulk".into()),
                ..message("a@example.com")
            },
            Class::Newsletter,
            "Precedence: bulk",
        );
        check(
            MessageMeta {
                list_unsubscribe: Some("<https://x.example/u>".into()),
                ..message("a@example.com")
            },
            Class::Newsletter,
            "List-Unsubscribe",
        );
    }

    #[test]
    fn automation_makes_a_notification() {
        check(
            MessageMeta {
                auto_submitted: Some("auto-generated".into()),
                ..message("bank@example.com")
            },
            Class::Notification,
            "Auto-Submitted",
        );
        check(
            message("no-reply@shop.example.com"),
            Class::Notification,
            "no-reply",
        );
        check(
            MessageMeta {
                auto_submitted: Some("no".into()),
                ..message("friend@example.org")
            },
            Class::Personal,
            "no list",
        );
    }

    #[test]
    fn plain_mail_from_a_person_is_personal_and_garbage_is_other() {
        check(
            message("Alice <alice@example.org>"),
            Class::Personal,
            "no list",
        );
        check(
            message("undisclosed-recipients:;"),
            Class::Other,
            "unreadable",
        );
    }
}
