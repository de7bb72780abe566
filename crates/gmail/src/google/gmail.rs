//! Gmail as a [`MailProvider`]: full listing (`messages.list` + `messages.get` metadata, in
//! parallel under the quota), incremental listing from a stored `historyId` (`history.list`;
//! a 404 for a too-old id falls back to a full listing; label changes refetch the message),
//! `messages.send`, and auto-archiving: one `users.settings.filters` filter per sender or list
//! that removes `INBOX`, plus `messages.batchModify` for what already arrived.

use std::collections::BTreeSet;

use async_trait::async_trait;
use base64::Engine;
use chrono::{TimeZone, Utc};
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
        let mut ids = Vec::new();
        let mut page: Option<String> = None;
        let mut q = request.query.clone().unwrap_or_default();
        if let Some(since) = request.since {
            q = format!("{q} after:{}", since.timestamp()).trim().to_owned();
        }
        loop {
            let mut query = vec![("maxResults", "500".to_owned())];
            if !q.is_empty() {
                query.push(("q", q.clone()));
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
            for message in body["messages"].as_array().into_iter().flatten() {
                if let Some(id) = message["id"].as_str() {
                    ids.push(id.to_owned());
                }
            }
            if request.limit > 0 && ids.len() >= request.limit {
                ids.truncate(request.limit);
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

    /// Metadata of `ids`, fetched concurrently; messages deleted meanwhile (404) are skipped.
    async fn fetch(
        &self,
        ids: Vec<String>,
        progress: &dyn ScanProgress,
    ) -> Result<Vec<MessageMeta>, ProviderError> {
        let total = ids.len();
        let query: Vec<(&str, String)> = std::iter::once(("format", "metadata".to_owned()))
            .chain(HEADERS.iter().map(|h| ("metadataHeaders", (*h).to_owned())))
            .collect();
        let mut stream = futures::stream::iter(ids)
            .map(|id| {
                let query = query.clone();
                async move {
                    self.api
                        .call(
                            "messages.get",
                            Method::GET,
                            &format!("/gmail/v1/users/me/messages/{id}"),
                            &query,
                            None,
                        )
                        .await
                }
            })
            .buffer_unordered(self.concurrency);
        let mut messages = Vec::with_capacity(total);
        let mut done = 0;
        while let Some(result) = stream.next().await {
            done += 1;
            match result {
                Ok(body) => messages.extend(meta(&body)),
                Err(CallError::Status(404, _)) => {}
                Err(other) => return Err(other.into()),
            }
            if done % 25 == 0 || done == total {
                progress.report(done, Some(total));
            }
        }
        Ok(messages)
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
    Some(MessageMeta {
        thread_id: body["threadId"].as_str().map(str::to_owned),
        from: header("From").unwrap_or_default(),
        to: header("To"),
        subject: header("Subject"),
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
            && let Some((added, removed, history_id)) = self.changes(cursor).await?
        {
            let messages = self.fetch(added, progress).await?;
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
        let messages = self.fetch(ids, progress).await?;
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
            message_ids: message_ids.to_vec(),
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

    async fn send(&self, mail: OutgoingMail) -> Result<SentMail, ProviderError> {
        let raw = base64::engine::general_purpose::URL_SAFE.encode(&mail.raw);
        let body = self
            .api
            .call(
                "messages.send",
                Method::POST,
                "/gmail/v1/users/me/messages/send",
                &[],
                Some(&json!({"raw": raw})),
            )
            .await?;
        Ok(SentMail {
            id: body["id"].as_str().unwrap_or_default().to_owned(),
        })
    }
}
