//! Per-sender aggregates over a set of messages.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::address::Sender;
use crate::list_unsubscribe::{self, UnsubscribeOptions};
use crate::ports::MessageMeta;
use crate::store::UnsubscribeMethod;
use crate::triage::{self, Class};

/// What quietbox knows about one sender.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SenderStats {
    /// Lower-cased address.
    pub address: String,
    /// Latest display name seen.
    pub name: Option<String>,
    /// Messages seen.
    pub count: usize,
    /// Of which unread.
    pub unread: usize,
    /// `unread / count`.
    pub unread_ratio: f64,
    /// Oldest message date.
    pub first_seen: Option<DateTime<Utc>>,
    /// Newest message date.
    pub last_seen: Option<DateTime<Utc>>,
    /// `List-Id` of the newest message that had one.
    pub list_id: Option<String>,
    /// Most frequent class of its messages.
    pub class: Class,
    /// Unsubscribe options of the newest message that offered any.
    pub unsubscribe: UnsubscribeOptions,
    /// Methods available, best first.
    pub methods: Vec<UnsubscribeMethod>,
}

#[derive(Default)]
struct Acc {
    name: Option<String>,
    count: usize,
    unread: usize,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    list_id: Option<(Option<DateTime<Utc>>, String)>,
    unsubscribe: Option<(Option<DateTime<Utc>>, UnsubscribeOptions)>,
    classes: BTreeMap<Class, usize>,
}

/// Aggregates messages by sender, most messages first (ties by address).
pub fn aggregate(messages: &[MessageMeta]) -> Vec<SenderStats> {
    let mut by_sender: BTreeMap<String, Acc> = BTreeMap::new();
    for message in messages {
        let Some(sender) = Sender::parse(&message.from) else {
            continue;
        };
        let acc = by_sender.entry(sender.address).or_default();
        acc.count += 1;
        acc.unread += usize::from(message.unread);
        if sender.name.is_some() {
            acc.name = sender.name;
        }
        if let Some(date) = message.date {
            acc.first = Some(acc.first.map_or(date, |f| f.min(date)));
            acc.last = Some(acc.last.map_or(date, |l| l.max(date)));
        }
        *acc.classes
            .entry(triage::classify(message).class)
            .or_default() += 1;
        if let Some(list_id) = &message.list_id
            && acc.list_id.as_ref().is_none_or(|(d, _)| *d <= message.date)
        {
            acc.list_id = Some((message.date, list_id.trim().to_owned()));
        }
        let options = list_unsubscribe::parse(
            message.list_unsubscribe.as_deref(),
            message.list_unsubscribe_post.as_deref(),
        );
        if !options.is_empty()
            && acc
                .unsubscribe
                .as_ref()
                .is_none_or(|(d, _)| *d <= message.date)
        {
            acc.unsubscribe = Some((message.date, options));
        }
    }
    let mut stats: Vec<SenderStats> = by_sender
        .into_iter()
        .map(|(address, acc)| {
            let unsubscribe = acc.unsubscribe.map(|(_, o)| o).unwrap_or_default();
            let class = acc
                .classes
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(c, _)| *c)
                .unwrap_or(Class::Other);
            SenderStats {
                methods: methods(&unsubscribe),
                address,
                name: acc.name,
                count: acc.count,
                unread: acc.unread,
                unread_ratio: if acc.count == 0 {
                    0.0
                } else {
                    acc.unread as f64 / acc.count as f64
                },
                first_seen: acc.first,
                last_seen: acc.last,
                list_id: acc.list_id.map(|(_, l)| l),
                class,
                unsubscribe,
            }
        })
        .collect();
    stats.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.address.cmp(&b.address))
    });
    stats
}

/// Methods an options set allows, in the order quietbox prefers them.
pub fn methods(options: &UnsubscribeOptions) -> Vec<UnsubscribeMethod> {
    let mut methods = Vec::new();
    if options.one_click_url().is_some() {
        methods.push(UnsubscribeMethod::OneClick);
    }
    if options.mailto().is_some() {
        methods.push(UnsubscribeMethod::Mailto);
    }
    if options.url().is_some() {
        methods.push(UnsubscribeMethod::Manual);
    }
    methods
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn msg(id: &str, from: &str, day: u32, unread: bool, unsub: Option<&str>) -> MessageMeta {
        MessageMeta {
            id: id.into(),
            from: from.into(),
            date: Some(Utc.with_ymd_and_hms(2026, 11, day, 9, 0, 0).unwrap()),
            unread,
            list_unsubscribe: unsub.map(str::to_owned),
            list_unsubscribe_post: unsub.map(|_| "List-Unsubscribe=One-Click".to_owned()),
            list_id: unsub.map(|_| "<news.example.com>".to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn messages_are_grouped_by_lower_cased_address() {
        let stats = aggregate(&[
            msg(
                "1",
                "News <NEWS@example.com>",
                1,
                true,
                Some("<https://news.example.com/u/1>"),
            ),
            msg(
                "2",
                "news@example.com",
                3,
                false,
                Some("<https://news.example.com/u/2>, <mailto:u@news.example.com>"),
            ),
            msg("3", "news@example.com", 2, true, None),
            msg("4", "alice@example.org", 2, false, None),
            msg("5", "garbage", 2, false, None),
        ]);
        assert_eq!(stats.len(), 2);
        let news = &stats[0];
        assert_eq!(
            (news.address.as_str(), news.count, news.unread),
            ("news@example.com", 3, 2)
        );
        assert!((news.unread_ratio - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(news.first_seen.unwrap().format("%d").to_string(), "01");
        assert_eq!(news.last_seen.unwrap().format("%d").to_string(), "03");
        assert_eq!(news.name.as_deref(), Some("News"));
        assert_eq!(
            news.unsubscribe.one_click_url(),
            Some("https://news.example.com/u/2"),
            "newest options win"
        );
        assert_eq!(
            news.methods,
            vec![
                UnsubscribeMethod::OneClick,
                UnsubscribeMethod::Mailto,
                UnsubscribeMethod::Manual
            ]
        );
        assert_eq!(stats[1].methods, vec![]);
        assert_eq!(stats[1].class, Class::Personal);
    }
}
