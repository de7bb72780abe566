//! Gmail as a [`MailProvider`]: full listing (`messages.list` + `messages.get` metadata, in
//! parallel under the quota), incremental listing from a stored `historyId` (`history.list`;
//! a 404 for a too-old id falls back to a full listing; label changes refetch the message),
//! `messages.send`, and auto-archiving: one `users.settings.filters` filter per sender or list
//! that removes `INBOX`, plus `messages.batchModify` for what already arrived.
//!
//! Both listings report the same messages: the request's `query` and `since` apply to the
//! incremental one too, and neither reports SPAM, TRASH or DRAFT (a message that moved there
//! or out of the query is reported removed). Each id is fetched once, however often the
//! listing or the history names it.

use std::collections::{BTreeSet, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use quietbox_core::compliance::normalize_list_id;
use quietbox_core::ports::{
    ArchiveOutcome, MailProvider, MessageMeta, OutgoingMail, ProviderError, ScanBatch,
    ScanProgress, ScanRequest, SentMail,
};
use quietbox_core::store::SubscriptionKey;
use reqwest::Method;
use serde_json::{Value, json};

use super::api::{CallError, GoogleApi};

/// Headers asked for with `format=metadata`.
const HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Precedence",
    "Auto-Submitted",
];

/// Labels no scan reports: `messages.list` leaves SPAM and TRASH out unless asked
/// (`includeSpamTrash`), and a DRAFT is not mail received.
const SKIPPED_LABELS: [&str; 3] = ["SPAM", "TRASH", "DRAFT"];

/// Whether a scan for `request` reports `message`: not in SPAM, TRASH or DRAFT, and not older
/// than `since`. The same test for the full and the incremental listing.
fn in_scope(message: &MessageMeta, request: &ScanRequest) -> bool {
    let skipped = message
        .labels
        .iter()
        .any(|l| SKIPPED_LABELS.contains(&l.as_str()));
    let recent = request
        .since
        .is_none_or(|since| message.date.is_none_or(|date| date >= since));
    !skipped && recent
}

/// `ids` without repeats, in first-seen order.
fn unique(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// The request's query (`q`), if any.
fn query_of(request: &ScanRequest) -> Option<&str> {
    request
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
}

/// A Gmail mailbox.
#[derive(Debug, Clone)]
pub struct GmailProvider {
    api: GoogleApi,
    account: String,
    concurrency: usize,
}

impl GmailProvider {
    /// The mailbox of `account` (its address, for digests and sending), fetching up to
    /// `concurrency` messages at once.
    pub fn new(api: GoogleApi, account: impl Into<String>, concurrency: usize) -> Self {
        GmailProvider {
            api,
            account: account.into(),
            concurrency: concurrency.max(1),
        }
    }

    /// Like [`GmailProvider::new`], taking the account address from `users.getProfile`.
    pub async fn connect(api: GoogleApi, concurrency: usize) -> Result<Self, ProviderError> {
        let profile = api
            .call(
                "getProfile",
                Method::GET,
                "/gmail/v1/users/me/profile",
                &[],
                None,
            )
            .await?;
        let account = profile["emailAddress"]
            .as_str()
            .ok_or_else(|| ProviderError::Unavailable("profile without emailAddress".into()))?
            .to_owned();
        Ok(GmailProvider::new(api, account, concurrency))
    }

    async fn history_id(&self) -> Result<String, ProviderError> {
        let profile = self
            .api
            .call(
                "getProfile",
                Method::GET,
                "/gmail/v1/users/me/profile",
                &[],
                None,
            )
            .await?;
        profile["historyId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Unavailable("profile without historyId".into()))
    }

    async fn list_ids(&self, request: &ScanRequest) -> Result<Vec<String>, ProviderError> {
        let mut q = query_of(request).unwrap_or_default().to_owned();
        if let Some(since) = request.since {
            q = format!("{q} after:{}", since.timestamp()).trim().to_owned();
        }
        self.list_matching(&q, request.limit).await
    }

    /// The ids `messages.list` gives for `q` (everything when empty), each once, at most
    /// `limit` (0: all).
    async fn list_matching(&self, q: &str, limit: usize) -> Result<Vec<String>, ProviderError> {
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        let mut page: Option<String> = None;
        loop {
            let mut query = vec![("maxResults", "500".to_owned())];
            if !q.is_empty() {
                query.push(("q", q.to_owned()));
            }
            if let Some(token) = &page {
                query.push(("pageToken", token.clone()));
            }
            let body = self
                .api
                .call(
                    "messages.list",
                    Method::GET,
                    "/gmail/v1/users/me/messages",
                    &query,
                    None,
                )
                .await?;
            // A message arriving while the pages are read shifts them: an id can come twice.
            for message in body["messages"].as_array().into_iter().flatten() {
                if let Some(id) = message["id"].as_str()
                    && seen.insert(id.to_owned())
                {
                    ids.push(id.to_owned());
                }
            }
            if limit > 0 && ids.len() >= limit {
                ids.truncate(limit);
                return Ok(ids);
            }
            match body["nextPageToken"].as_str() {
                Some(token) => page = Some(token.to_owned()),
                None => return Ok(ids),
            }
        }
    }

    /// `(added, deleted, new cursor)` since `cursor`, or `None` when the id is too old.
    async fn changes(
        &self,
        cursor: &str,
    ) -> Result<Option<(Vec<String>, Vec<String>, String)>, ProviderError> {
        let mut added = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        let mut page: Option<String> = None;
        loop {
            let mut query = vec![
                ("startHistoryId", cursor.to_owned()),
                ("maxResults", "500".to_owned()),
            ];
            if let Some(token) = &page {
                query.push(("pageToken", token.clone()));
            }
            let body = match self
                .api
                .call(
                    "history.list",
                    Method::GET,
                    "/gmail/v1/users/me/history",
                    &query,
                    None,
                )
                .await
            {
                Ok(body) => body,
                Err(CallError::Status(404, _)) => return Ok(None),
                Err(other) => return Err(other.into()),
            };
            for record in body["history"].as_array().into_iter().flatten() {
                for entry in record["messagesAdded"].as_array().into_iter().flatten() {
                    if let Some(id) = entry["message"]["id"].as_str() {
                        deleted.remove(id);
                        added.insert(id.to_owned());
                    }
                }
                // A label change (read, archived) is refetched, so the labels kept are current.
                let relabelled = ["labelsAdded", "labelsRemoved"]
                    .into_iter()
                    .flat_map(|kind| record[kind].as_array().into_iter().flatten());
                for entry in relabelled {
                    if let Some(id) = entry["message"]["id"].as_str()
                        && !deleted.contains(id)
                    {
                        added.insert(id.to_owned());
                    }
                }
                for entry in record["messagesDeleted"].as_array().into_iter().flatten() {
                    if let Some(id) = entry["message"]["id"].as_str() {
                        added.remove(id);
                        deleted.insert(id.to_owned());
                    }
                }
            }
            match body["nextPageToken"].as_str() {
                Some(token) => page = Some(token.to_owned()),
                None => {
                    let history_id = body["historyId"].as_str().unwrap_or(cursor).to_owned();
                    return Ok(Some((
                        added.into_iter().collect(),
                        deleted.into_iter().collect(),
                        history_id,
                    )));
                }
            }
        }
    }

    /// Metadata of `ids` (each fetched once), fetched concurrently, and the ids of messages
    /// deleted meanwhile (404).
    async fn fetch(
        &self,
        ids: Vec<String>,
        progress: &dyn ScanProgress,
    ) -> Result<(Vec<MessageMeta>, Vec<String>), ProviderError> {
        let ids = unique(ids);
        let total = ids.len();
        let query: Vec<(&str, String)> = std::iter::once(("format", "metadata".to_owned()))
            .chain(HEADERS.iter().map(|h| ("metadataHeaders", (*h).to_owned())))
            .collect();
        let mut stream = futures::stream::iter(ids)
            .map(|id| {
                let query = query.clone();
                async move {
                    let answer = self
                        .api
                        .call(
                            "messages.get",
                            Method::GET,
                            &format!("/gmail/v1/users/me/messages/{id}"),
                            &query,
                            None,
                        )
                        .await;
                    (id, answer)
                }
            })
            .buffer_unordered(self.concurrency);
        let mut messages = Vec::with_capacity(total);
        let mut missing = Vec::new();
        let mut done = 0;
        while let Some((id, result)) = stream.next().await {
            done += 1;
            match result {
                Ok(body) => messages.extend(meta(&body)),
                Err(CallError::Status(404, _)) => missing.push(id),
                Err(other) => return Err(other.into()),
            }
            if done % 25 == 0 || done == total {
                progress.report(done, Some(total));
            }
        }
        Ok((messages, missing))
    }

    /// The incremental scan's answer for the `added` (new or relabelled) and `deleted` ids:
    /// what a full scan for `request` would report among them, the rest as removed.
    async fn changed(
        &self,
        request: &ScanRequest,
        added: Vec<String>,
        deleted: Vec<String>,
        progress: &dyn ScanProgress,
    ) -> Result<(Vec<MessageMeta>, Vec<String>), ProviderError> {
        let (fetched, missing) = self.fetch(added, progress).await?;
        let mut removed = deleted;
        removed.extend(missing);
        let (mut kept, out): (Vec<MessageMeta>, Vec<MessageMeta>) =
            fetched.into_iter().partition(|m| in_scope(m, request));
        removed.extend(out.into_iter().map(|m| m.id));
        if let Some(q) = query_of(request)
            && !kept.is_empty()
        {
            // Gmail's search syntax is Gmail's to apply: list what matches the query from the
            // oldest changed message on (usually one page) and keep the changed ones in it.
            let earliest: Option<DateTime<Utc>> = if kept.iter().all(|m| m.date.is_some()) {
                kept.iter().filter_map(|m| m.date).min()
            } else {
                None
            };
            let q = match earliest {
                Some(earliest) => format!("{q} after:{}", earliest.timestamp() - 1),
                None => q.to_owned(),
            };
            let matching: HashSet<String> = self.list_matching(&q, 0).await?.into_iter().collect();
            let (matched, unmatched): (Vec<MessageMeta>, Vec<MessageMeta>) =
                kept.into_iter().partition(|m| matching.contains(&m.id));
            kept = matched;
            removed.extend(unmatched.into_iter().map(|m| m.id));
        }
        Ok((kept, unique(removed)))
    }
}

/// Most ids `messages.batchModify` takes in one call.
const BATCH_MODIFY_MAX: usize = 1000;

/// The filter criteria for `key`: its `List-Id` (Gmail's `list:` search operator) when it has
/// one, else its sender address.
fn filter_criteria(key: &SubscriptionKey) -> Value {
    match &key.list_id {
        Some(list) => json!({"query": format!("list:{}", normalize_list_id(list))}),
        None => json!({"from": key.sender}),
    }
}

/// Whether `filter` (a `users.settings.filters` resource) is the archiving filter for `criteria`.
fn is_archive_filter(filter: &Value, criteria: &Value) -> bool {
    filter["criteria"] == *criteria
        && filter["action"]["removeLabelIds"]
            .as_array()
            .is_some_and(|labels| labels.iter().any(|l| l == "INBOX"))
}

impl GmailProvider {
    async fn filters(&self) -> Result<Vec<Value>, ProviderError> {
        let body = self
            .api
            .call(
                "settings.filters.list",
                Method::GET,
                "/gmail/v1/users/me/settings/filters",
                &[],
                None,
            )
            .await?;
        Ok(body["filter"].as_array().cloned().unwrap_or_default())
    }

    /// The archiving filter for `criteria`: found, or created. `(id, created)`.
    async fn ensure_filter(&self, criteria: &Value) -> Result<(String, bool), ProviderError> {
        let existing = |filters: Vec<Value>| {
            filters
                .into_iter()
                .find(|f| is_archive_filter(f, criteria))
                .and_then(|f| f["id"].as_str().map(str::to_owned))
        };
        if let Some(id) = existing(self.filters().await?) {
            return Ok((id, false));
        }
        let filter = json!({"criteria": criteria, "action": {"removeLabelIds": ["INBOX"]}});
        match self
            .api
            .call(
                "settings.filters.create",
                Method::POST,
                "/gmail/v1/users/me/settings/filters",
                &[],
                Some(&filter),
            )
            .await
        {
            Ok(created) => created["id"]
                .as_str()
                .map(|id| (id.to_owned(), true))
                .ok_or_else(|| ProviderError::Unavailable("filter created without an id".into())),
            // Another process created it between our listing and our create.
            Err(CallError::Status(400, body)) if body.contains("already exists") => {
                existing(self.filters().await?)
                    .map(|id| (id, false))
                    .ok_or_else(|| ProviderError::Unavailable(format!("filters.create: {body}")))
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// The `From` and `Subject` of a `messages.get` answer, decoded the way the mbox provider
/// decodes them (mail-parser: RFC 2047 encoded-words in the display name and the subject).
///
/// Google documents a header's `value` as "the value of the header after the `:` separator"
/// (`MessagePartHeader`, <https://developers.google.com/gmail/api/reference/rest/v1/users.messages#MessagePartHeader>)
/// and says nothing of decoding, and `format=metadata` "returns only email message ID,
/// labels, and email headers" (`Format`,
/// <https://developers.google.com/gmail/api/reference/rest/v1/Format>): the field body as
/// written, so an encoded-word (`=?UTF-8?B?…?=`) can reach us raw. Decoding is a no-op on text
/// that has none, so it is applied to every value.
fn decode_from_subject(from: Option<String>, subject: Option<String>) -> (String, Option<String>) {
    // One line per header: a CR or LF in a value must not start another header.
    let line = |v: &str| v.replace(['\r', '\n'], " ");
    let mut block = String::new();
    if let Some(from) = &from {
        block.push_str(&format!("From: {}\r\n", line(from)));
    }
    if let Some(subject) = &subject {
        block.push_str(&format!("Subject: {}\r\n", line(subject)));
    }
    block.push_str("\r\n");
    let parser = mail_parser::MessageParser::new()
        .header_address(mail_parser::HeaderName::From)
        .header_text(mail_parser::HeaderName::Subject)
        .default_header_raw();
    let parsed = parser.parse_headers(block.as_bytes());
    let decoded_from = parsed.as_ref().and_then(|p| {
        let addr = p.from()?.first()?;
        let address = addr.address.as_deref()?;
        Some(match addr.name.as_deref() {
            Some(name) if !name.is_empty() => format!("\"{}\" <{address}>", name.replace('"', "")),
            _ => address.to_owned(),
        })
    });
    let decoded_subject = parsed
        .as_ref()
        .and_then(|p| p.subject().map(str::to_owned))
        .or(subject);
    (decoded_from.or(from).unwrap_or_default(), decoded_subject)
}

fn meta(body: &Value) -> Option<MessageMeta> {
    let id = body["id"].as_str()?.to_owned();
    let header = |name: &str| {
        body["payload"]["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|h| {
                (h["name"].as_str()?.eq_ignore_ascii_case(name))
                    .then(|| h["value"].as_str().map(str::to_owned))
                    .flatten()
            })
    };
    let labels: Vec<String> = body["labelIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    let date = body["internalDate"]
        .as_str()
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    let (from, subject) = decode_from_subject(header("From"), header("Subject"));
    Some(MessageMeta {
        thread_id: body["threadId"].as_str().map(str::to_owned),
        from,
        to: header("To"),
        subject,
        date,
        list_id: header("List-Id"),
        list_unsubscribe: header("List-Unsubscribe"),
        list_unsubscribe_post: header("List-Unsubscribe-Post"),
        precedence: header("Precedence"),
        auto_submitted: header("Auto-Submitted"),
        unread: labels.iter().any(|l| l == "UNREAD"),
        labels,
        id,
    })
}

#[async_trait]
impl MailProvider for GmailProvider {
    fn account(&self) -> &str {
        &self.account
    }

    async fn scan(
        &self,
        request: &ScanRequest,
        progress: &dyn ScanProgress,
    ) -> Result<ScanBatch, ProviderError> {
        if let Some(cursor) = &request.cursor
            && let Some((added, deleted, history_id)) = self.changes(cursor).await?
        {
            let (messages, removed) = self.changed(request, added, deleted, progress).await?;
            return Ok(ScanBatch {
                messages,
                removed,
                cursor: Some(history_id),
                full: false,
            });
        }
        // Take the history id before listing, so changes made during the listing are caught by
        // the next incremental scan rather than lost.
        let history_id = self.history_id().await?;
        let ids = self.list_ids(request).await?;
        let (mut messages, _) = self.fetch(ids, progress).await?;
        messages.retain(|m| in_scope(m, request));
        Ok(ScanBatch {
            messages,
            removed: Vec::new(),
            cursor: Some(history_id),
            full: true,
        })
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.api.check_token().await
    }

    async fn auto_archive(
        &self,
        key: &SubscriptionKey,
        message_ids: &[String],
    ) -> Result<ArchiveOutcome, ProviderError> {
        // The filter first: from then on nothing new of the sender lands in the inbox.
        let (filter_id, filter_created) = self.ensure_filter(&filter_criteria(key)).await?;
        let message_ids = unique(message_ids.iter().cloned());
        for chunk in message_ids.chunks(BATCH_MODIFY_MAX) {
            self.api
                .call(
                    "messages.batchModify",
                    Method::POST,
                    "/gmail/v1/users/me/messages/batchModify",
                    &[],
                    Some(&json!({"ids": chunk, "removeLabelIds": ["INBOX"]})),
                )
                .await?;
        }
        Ok(ArchiveOutcome {
            applied: true,
            filter_id: Some(filter_id),
            filter_created,
            message_ids,
        })
    }

    async fn stop_auto_archive(&self, key: &SubscriptionKey) -> Result<usize, ProviderError> {
        let criteria = filter_criteria(key);
        let mut removed = 0;
        for filter in self.filters().await? {
            let Some(id) = filter["id"]
                .as_str()
                .filter(|_| is_archive_filter(&filter, &criteria))
            else {
                continue;
            };
            match self
                .api
                .call(
                    "settings.filters.delete",
                    Method::DELETE,
                    &format!("/gmail/v1/users/me/settings/filters/{id}"),
                    &[],
                    None,
                )
                .await
            {
                Ok(_) => removed += 1,
                Err(CallError::Status(404, _)) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(removed)
    }

    /// At most once: see `send.rs`.
    async fn send(&self, mail: OutgoingMail) -> Result<SentMail, ProviderError> {
        super::send::send_at_most_once(&self.api, &self.account, &mail.raw).await
    }
}
