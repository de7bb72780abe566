//! The use cases over in-memory ports: a mailbox the test fills, a state store in a mutex, a
//! one-click endpoint that counts its calls and a clock the test moves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use super::{CoreError, UnsubscribeTargetRef};
use super::{Quietbox, ScanOptions, Settings, UnsubscribeRequest, UnsubscribeResult};
use crate::error::ErrorCode;
use crate::ports::{
    BusyInterval, CalendarProvider, Clock, MailProvider, ManualClock, MessageMeta, NoProgress,
    OneClickClient, OneClickResponse, OutboundError, OutgoingMail, ProviderError, ScanBatch,
    ScanProgress, ScanRequest, SentMail,
};
use crate::store::{
    Claim, Decision, IdempotencyRecord, Incident, Lease, ScanCheckpoint, SenderDecision, SentLink,
    Snapshot, StateError, StateStore, SubscriptionKey, TaskPage, TaskQuery, TaskRecord,
    TaskRetention, UnsubscribeAttempt, UnsubscribeEntry, UnsubscribeStatus,
};

const ACCOUNT: &str = "me@example.com";

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `count` newsletter messages from `sender` (`unread` of them unread), with a one-click link
/// `https://<domain>/u`.
fn newsletter(sender: &str, count: usize, unread: usize) -> Vec<MessageMeta> {
    (0..count)
        .map(|i| MessageMeta {
            id: format!("{sender}-{i}"),
            from: format!("News <{sender}>"),
            subject: Some(format!("Issue {i}")),
            date: Some(at(i as i64 * 3600)),
            list_id: Some(format!("<list.{sender}>")),
            list_unsubscribe: Some(format!("<{}>", link_of(sender))),
            list_unsubscribe_post: Some("List-Unsubscribe=One-Click".into()),
            labels: vec!["INBOX".into()],
            unread: i < unread,
            ..MessageMeta::default()
        })
        .collect()
}

fn link_of(sender: &str) -> String {
    format!("https://{}/u", sender.replace('@', "."))
}

/// A mailbox whose messages the test sets; counts scans and keeps what was sent.
#[derive(Default)]
struct Mailbox {
    messages: Mutex<Vec<MessageMeta>>,
    scans: Mutex<usize>,
    sent: Mutex<Vec<OutgoingMail>>,
}

impl Mailbox {
    fn set(&self, messages: Vec<MessageMeta>) {
        *lock(&self.messages) = messages;
    }
    fn scans(&self) -> usize {
        *lock(&self.scans)
    }
    fn sent(&self) -> Vec<String> {
        lock(&self.sent)
            .iter()
            .map(|m| String::from_utf8_lossy(&m.raw).into_owned())
            .collect()
    }
}

#[async_trait]
impl MailProvider for Mailbox {
    fn account(&self) -> &str {
        ACCOUNT
    }
    async fn scan(
        &self,
        _request: &ScanRequest,
        _progress: &dyn ScanProgress,
    ) -> Result<ScanBatch, ProviderError> {
        *lock(&self.scans) += 1;
        Ok(ScanBatch {
            messages: lock(&self.messages).clone(),
            removed: Vec::new(),
            cursor: None,
            full: true,
        })
    }
    async fn send(&self, mail: OutgoingMail) -> Result<SentMail, ProviderError> {
        let mut sent = lock(&self.sent);
        sent.push(mail);
        Ok(SentMail {
            id: format!("sent-{}", sent.len()),
        })
    }
}

struct NoCalendar;

#[async_trait]
impl CalendarProvider for NoCalendar {
    async fn busy(
        &self,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
        _tz: &str,
    ) -> Result<Vec<BusyInterval>, ProviderError> {
        Ok(Vec::new())
    }
}

/// A one-click endpoint that accepts every request and keeps the URLs posted to.
#[derive(Default)]
struct Endpoint(Mutex<Vec<String>>);

impl Endpoint {
    fn posts(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
}

#[async_trait]
impl OneClickClient for Endpoint {
    async fn post_one_click(&self, url: &str) -> Result<OneClickResponse, OutboundError> {
        lock(&self.0).push(url.to_owned());
        Ok(OneClickResponse { status: 200 })
    }
}

#[derive(Default)]
struct Memory {
    unsubscribes: BTreeMap<SubscriptionKey, UnsubscribeEntry>,
    sent_links: Vec<SentLink>,
    checkpoints: BTreeMap<String, ScanCheckpoint>,
    incident: Option<Incident>,
    decisions: BTreeMap<String, SenderDecision>,
    /// `sent_links()` answers empty, as a read made just before another digest claimed them.
    stale_sent_links: bool,
}

/// The domain part of [`StateStore`] in a mutex; tasks, leases and idempotency are not used by
/// the use cases and keep nothing.
#[derive(Default)]
struct MemoryStore(Mutex<Memory>);

#[async_trait]
impl StateStore for MemoryStore {
    async fn claim_unsubscribe(
        &self,
        attempt: UnsubscribeAttempt,
        stale_after: Duration,
    ) -> Result<Claim, StateError> {
        let mut memory = lock(&self.0);
        if let Some(entry) = memory.unsubscribes.get(&attempt.key) {
            let stale = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
            let takeable = match entry.status {
                UnsubscribeStatus::Failed => true,
                UnsubscribeStatus::InProgress => entry.updated_at + stale <= attempt.at,
                UnsubscribeStatus::Succeeded => false,
            };
            if !takeable {
                return Ok(Claim::Existing(entry.clone()));
            }
        }
        let entry = memory
            .unsubscribes
            .entry(attempt.key.clone())
            .or_insert_with(|| UnsubscribeEntry {
                key: attempt.key.clone(),
                status: attempt.status,
                method: attempt.method,
                updated_at: attempt.at,
                attempts: Vec::new(),
            });
        entry.status = attempt.status;
        entry.method = attempt.method;
        entry.updated_at = attempt.at;
        Ok(Claim::Claimed)
    }
    async fn complete_unsubscribe(&self, attempt: UnsubscribeAttempt) -> Result<(), StateError> {
        let mut memory = lock(&self.0);
        let entry = memory
            .unsubscribes
            .get_mut(&attempt.key)
            .ok_or_else(|| StateError::Conflict("completing an unclaimed unsubscribe".into()))?;
        entry.status = attempt.status;
        entry.method = attempt.method;
        entry.updated_at = attempt.at;
        entry.attempts.push(attempt);
        Ok(())
    }
    async fn unsubscribe_entry(
        &self,
        key: &SubscriptionKey,
    ) -> Result<Option<UnsubscribeEntry>, StateError> {
        Ok(lock(&self.0).unsubscribes.get(key).cloned())
    }
    async fn unsubscribe_history(
        &self,
        sender: Option<&str>,
    ) -> Result<Vec<UnsubscribeEntry>, StateError> {
        Ok(lock(&self.0)
            .unsubscribes
            .values()
            .filter(|e| sender.is_none_or(|s| e.key.sender == s))
            .cloned()
            .collect())
    }
    async fn insert_sent_link(&self, link: SentLink) -> Result<bool, StateError> {
        let mut memory = lock(&self.0);
        if memory.sent_links.iter().any(|l| l.link == link.link) {
            return Ok(false);
        }
        memory.sent_links.push(link);
        Ok(true)
    }
    async fn sent_links(&self) -> Result<Vec<SentLink>, StateError> {
        let memory = lock(&self.0);
        if memory.stale_sent_links {
            return Ok(Vec::new());
        }
        Ok(memory.sent_links.clone())
    }
    async fn release_sent_links(&self, links: &[String]) -> Result<(), StateError> {
        lock(&self.0)
            .sent_links
            .retain(|l| !links.contains(&l.link));
        Ok(())
    }
    async fn scan_checkpoint(&self, account: &str) -> Result<Option<ScanCheckpoint>, StateError> {
        Ok(lock(&self.0).checkpoints.get(account).cloned())
    }
    async fn set_scan_checkpoint(&self, checkpoint: ScanCheckpoint) -> Result<(), StateError> {
        lock(&self.0)
            .checkpoints
            .insert(checkpoint.account.clone(), checkpoint);
        Ok(())
    }
    async fn incident(&self) -> Result<Option<Incident>, StateError> {
        Ok(lock(&self.0).incident.clone())
    }
    async fn set_incident(&self, incident: Option<Incident>) -> Result<(), StateError> {
        lock(&self.0).incident = incident;
        Ok(())
    }
    async fn put_task(&self, _task: TaskRecord) -> Result<(), StateError> {
        Ok(())
    }
    async fn get_task(&self, _id: &str) -> Result<Option<TaskRecord>, StateError> {
        Ok(None)
    }
    async fn list_tasks(&self, _query: TaskQuery) -> Result<TaskPage, StateError> {
        Ok(TaskPage {
            tasks: Vec::new(),
            next_page_token: None,
            total_size: 0,
        })
    }
    async fn prune_tasks(
        &self,
        _retention: TaskRetention,
        _now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        Ok(0)
    }
    async fn acquire_lease(
        &self,
        _name: &str,
        _holder: &str,
        _ttl: Duration,
        _now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StateError> {
        Ok(None)
    }
    async fn renew_lease(
        &self,
        _lease: &Lease,
        _ttl: Duration,
        _now: DateTime<Utc>,
    ) -> Result<Lease, StateError> {
        Err(StateError::Conflict("no leases here".into()))
    }
    async fn release_lease(&self, _lease: &Lease) -> Result<(), StateError> {
        Ok(())
    }
    async fn check_fence(
        &self,
        _name: &str,
        _fencing_token: u64,
        _now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        Ok(false)
    }
    async fn idempotency_get(
        &self,
        _key: &str,
        _now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError> {
        Ok(None)
    }
    async fn idempotency_put(
        &self,
        _record: IdempotencyRecord,
        _now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError> {
        Ok(None)
    }
    async fn set_sender_decision(&self, decision: SenderDecision) -> Result<(), StateError> {
        lock(&self.0)
            .decisions
            .insert(decision.sender.clone(), decision);
        Ok(())
    }
    async fn sender_decisions(&self) -> Result<Vec<SenderDecision>, StateError> {
        Ok(lock(&self.0).decisions.values().cloned().collect())
    }
    async fn export(&self) -> Result<Snapshot, StateError> {
        Ok(Snapshot::default())
    }
    async fn import(&self, _snapshot: Snapshot) -> Result<(), StateError> {
        Ok(())
    }
}

/// A [`Quietbox`] over in-memory ports, with handles on each of them.
struct World {
    quietbox: Quietbox,
    mail: Arc<Mailbox>,
    state: Arc<MemoryStore>,
    endpoint: Arc<Endpoint>,
    clock: ManualClock,
}

fn world(messages: Vec<MessageMeta>) -> World {
    let mail = Arc::new(Mailbox::default());
    mail.set(messages);
    let state = Arc::new(MemoryStore::default());
    let endpoint = Arc::new(Endpoint::default());
    let clock = ManualClock::new(at(100 * 3600));
    let quietbox = Quietbox::new(
        mail.clone(),
        Arc::new(NoCalendar),
        state.clone(),
        endpoint.clone(),
        Arc::new(clock.clone()),
        Settings::default(),
    );
    World {
        quietbox,
        mail,
        state,
        endpoint,
        clock,
    }
}

/// Two newsletters: `heavy@` (10 messages, all unread) outranks `light@` (2, both read).
fn two_newsletters() -> Vec<MessageMeta> {
    let mut messages = newsletter("heavy@news.example", 10, 10);
    messages.extend(newsletter("light@news.example", 2, 0));
    messages
}

fn unsubscribe_from(sender: &str, dry_run: bool) -> UnsubscribeRequest {
    UnsubscribeRequest {
        target: UnsubscribeTargetRef::Sender(sender.to_owned()),
        dry_run,
        actor: "owner".to_owned(),
    }
}

async fn candidate_senders(quietbox: &Quietbox) -> Vec<String> {
    match quietbox.candidates().await {
        Ok(ranked) => ranked.into_iter().map(|c| c.sender.address).collect(),
        Err(error) => panic!("candidates failed: {error}"),
    }
}

#[tokio::test]
async fn candidates_are_ranked_from_the_last_scan() {
    let w = world(two_newsletters());
    let report = w
        .quietbox
        .scan(ScanOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!((report.total, report.fetched), (12, 12));
    assert_eq!(w.mail.scans(), 1);

    // Mail arriving after the scan is not ranked until the next scan.
    let mut later = two_newsletters();
    later.extend(newsletter("new@news.example", 20, 20));
    w.mail.set(later);
    assert_eq!(
        candidate_senders(&w.quietbox).await,
        ["heavy@news.example", "light@news.example"]
    );
    assert_eq!(w.mail.scans(), 1, "candidates read the checkpoint, no scan");
    let ranked = w.quietbox.candidates().await.unwrap();
    assert_eq!(ranked[0].link, link_of("heavy@news.example"));
    assert!(ranked[0].score > ranked[1].score);

    w.quietbox
        .scan(ScanOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        candidate_senders(&w.quietbox).await,
        [
            "new@news.example",
            "heavy@news.example",
            "light@news.example"
        ]
    );
}

#[tokio::test]
async fn unsubscribe_happens_once_per_sender_and_list() {
    let w = world(two_newsletters());
    let first = w
        .quietbox
        .unsubscribe(unsubscribe_from("heavy@news.example", false))
        .await
        .unwrap();
    assert_eq!(first.result, UnsubscribeResult::Unsubscribed);
    assert_eq!(w.endpoint.posts(), [link_of("heavy@news.example")]);

    let second = w
        .quietbox
        .unsubscribe(unsubscribe_from("HEAVY@news.example ", false))
        .await
        .unwrap();
    assert_eq!(second.result, UnsubscribeResult::AlreadyDone);
    assert_eq!(second.candidate_id, first.candidate_id);
    assert_eq!(
        w.endpoint.posts().len(),
        1,
        "the endpoint was not called again"
    );

    let history = w.quietbox.history(None).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, UnsubscribeStatus::Succeeded);
    assert_eq!(history[0].attempts.len(), 1);
    let decisions = w.state.sender_decisions().await.unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].decision, Decision::Unsubscribed);
    assert_eq!(candidate_senders(&w.quietbox).await, ["light@news.example"]);
}

#[tokio::test]
async fn a_dry_run_unsubscribe_records_nothing() {
    let w = world(two_newsletters());
    let outcome = w
        .quietbox
        .unsubscribe(unsubscribe_from("heavy@news.example", true))
        .await
        .unwrap();
    assert_eq!(outcome.result, UnsubscribeResult::WouldUnsubscribe);
    assert_eq!(outcome.link, link_of("heavy@news.example"));
    assert!(w.endpoint.posts().is_empty());
    assert!(w.quietbox.history(None).await.unwrap().is_empty());
    assert!(w.state.sender_decisions().await.unwrap().is_empty());
    assert_eq!(
        candidate_senders(&w.quietbox).await,
        ["heavy@news.example", "light@news.example"]
    );

    // After a real unsubscribe, a dry run says it was done.
    w.quietbox
        .unsubscribe(unsubscribe_from("heavy@news.example", false))
        .await
        .unwrap();
    let again = w
        .quietbox
        .unsubscribe(unsubscribe_from("heavy@news.example", true))
        .await
        .unwrap();
    assert_eq!(again.result, UnsubscribeResult::AlreadyDone);
    assert_eq!(w.endpoint.posts().len(), 1);
}

fn assert_incident(result: Result<impl std::fmt::Debug, CoreError>) {
    match result {
        Err(error @ CoreError::IncidentActive { .. }) => {
            assert_eq!(error.code(), ErrorCode::IncidentModeActive)
        }
        other => panic!("expected IncidentActive, got {other:?}"),
    }
}

#[tokio::test]
async fn incident_mode_refuses_mutations_until_its_ttl_lapses() {
    let w = world(two_newsletters());
    let incident = w
        .quietbox
        .incident_start(Duration::from_secs(3600), "breach drill", "operator")
        .await
        .unwrap();
    assert_eq!(incident.until, w.clock.now() + chrono::Duration::hours(1));
    assert!(w.quietbox.incident_status().await.unwrap().active);

    assert_incident(
        w.quietbox
            .unsubscribe(unsubscribe_from("heavy@news.example", false))
            .await,
    );
    assert_incident(
        w.quietbox
            .set_decision("heavy@news.example", Decision::Keep, "owner")
            .await,
    );
    assert_incident(w.quietbox.digest(true).await);
    assert!(w.endpoint.posts().is_empty());
    assert!(w.mail.sent().is_empty());
    assert!(w.quietbox.history(None).await.unwrap().is_empty());
    assert!(w.state.sent_links().await.unwrap().is_empty());
    // Reads and dry runs still answer.
    let dry = w
        .quietbox
        .unsubscribe(unsubscribe_from("heavy@news.example", true))
        .await
        .unwrap();
    assert_eq!(dry.result, UnsubscribeResult::WouldUnsubscribe);

    // One second before the end it still holds; at the end it has lapsed by itself.
    w.clock.advance(chrono::Duration::seconds(3599));
    assert_incident(
        w.quietbox
            .unsubscribe(unsubscribe_from("heavy@news.example", false))
            .await,
    );
    w.clock.advance(chrono::Duration::seconds(1));
    let status = w.quietbox.incident_status().await.unwrap();
    assert!(!status.active);
    assert_eq!(status.incident, Some(incident));
    let done = w
        .quietbox
        .unsubscribe(unsubscribe_from("heavy@news.example", false))
        .await
        .unwrap();
    assert_eq!(done.result, UnsubscribeResult::Unsubscribed);
    assert_eq!(w.endpoint.posts().len(), 1);
}

#[tokio::test]
async fn incident_end_lifts_the_refusal_at_once() {
    let w = world(two_newsletters());
    w.quietbox
        .incident_start(Duration::from_secs(3600), "drill", "operator")
        .await
        .unwrap();
    w.quietbox.incident_end("operator").await.unwrap();
    assert!(!w.quietbox.incident_status().await.unwrap().active);
    w.quietbox
        .set_decision("heavy@news.example", Decision::Keep, "owner")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_keep_decision_removes_the_sender_from_candidates() {
    let w = world(two_newsletters());
    assert_eq!(
        candidate_senders(&w.quietbox).await,
        ["heavy@news.example", "light@news.example"]
    );
    let outcome = w
        .quietbox
        .set_decision("Heavy@News.example", Decision::Keep, "owner")
        .await
        .unwrap();
    assert_eq!(outcome.decision.sender, "heavy@news.example");
    assert_eq!(outcome.decision.decided_at, w.clock.now());
    assert_eq!(outcome.previous, None);
    assert_eq!(candidate_senders(&w.quietbox).await, ["light@news.example"]);
    // Kept senders are not offered in a digest either.
    let digest = w.quietbox.digest(false).await.unwrap();
    let offered: Vec<&str> = digest
        .candidates
        .iter()
        .map(|c| c.sender.address.as_str())
        .collect();
    assert_eq!(offered, ["light@news.example"]);
}

#[tokio::test]
async fn a_digest_never_sends_the_same_link_twice() {
    let w = world(two_newsletters());

    // A preview sends and records nothing.
    let preview = w.quietbox.digest(false).await.unwrap();
    assert!(!preview.sent);
    assert_eq!(preview.candidates.len(), 2);
    assert!(w.mail.sent().is_empty());
    assert!(w.state.sent_links().await.unwrap().is_empty());

    let first = w.quietbox.digest(true).await.unwrap();
    assert!(first.sent);
    assert_eq!(first.to, ACCOUNT);
    let sent = w.mail.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains(&link_of("heavy@news.example")));
    assert!(sent[0].contains(&link_of("light@news.example")));
    assert_eq!(w.state.sent_links().await.unwrap().len(), 2);

    // Nothing new: no mail at all.
    w.clock.advance(chrono::Duration::days(1));
    let second = w.quietbox.digest(true).await.unwrap();
    assert!(!second.sent);
    assert!(second.candidates.is_empty());
    assert_eq!(w.mail.sent().len(), 1);

    // A new sender: the next digest carries only its link.
    let mut later = two_newsletters();
    later.extend(newsletter("new@news.example", 3, 3));
    w.mail.set(later);
    w.quietbox
        .scan(ScanOptions::default(), &NoProgress)
        .await
        .unwrap();
    let third = w.quietbox.digest(true).await.unwrap();
    assert!(third.sent);
    let links: Vec<&str> = third.candidates.iter().map(|c| c.link.as_str()).collect();
    assert_eq!(links, [link_of("new@news.example")]);
    let sent = w.mail.sent();
    assert_eq!(sent.len(), 2);
    assert!(sent[1].contains(&link_of("new@news.example")));
    assert!(!sent[1].contains(&link_of("heavy@news.example")));
    assert!(!sent[1].contains(&link_of("light@news.example")));
    assert_eq!(w.state.sent_links().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_digest_racing_another_mails_only_the_links_it_claimed() {
    let w = world(two_newsletters());
    // Another process claimed heavy@'s link after this digest read the sent links.
    let claimed = SentLink {
        link: link_of("heavy@news.example"),
        sender: "heavy@news.example".to_owned(),
        sent_at: at(0),
    };
    assert!(w.state.insert_sent_link(claimed).await.unwrap());
    lock(&w.state.0).stale_sent_links = true;

    let outcome = w.quietbox.digest(true).await.unwrap();
    assert!(outcome.sent);
    let links: Vec<&str> = outcome.candidates.iter().map(|c| c.link.as_str()).collect();
    assert_eq!(links, [link_of("light@news.example")]);
    let sent = w.mail.sent();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].contains(&link_of("heavy@news.example")));
    assert!(sent[0].contains(&link_of("light@news.example")));

    // Everything is claimed now: the next digest mails nothing.
    let again = w.quietbox.digest(true).await.unwrap();
    assert!(!again.sent);
    assert_eq!(w.mail.sent().len(), 1);
}
