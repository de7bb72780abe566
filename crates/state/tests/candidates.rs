//! `Quietbox::candidates` over the file backend keeps its last ranking while the state it was
//! ranked from is unchanged, and ranks again as soon as this process or another one changes
//! the checkpoint, the unsubscribes or the decisions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use quietbox_core::Quietbox;
use quietbox_core::ports::{
    BusyInterval, CalendarProvider, MailProvider, MessageMeta, OneClickClient, OneClickResponse,
    OutboundError, OutgoingMail, ProviderError, ScanBatch, ScanProgress, ScanRequest, SentMail,
    SystemClock,
};
use quietbox_core::service::Settings;
use quietbox_core::store::{
    Claim, Decision, IdempotencyRecord, Incident, Lease, ScanCheckpoint, SenderDecision, SentLink,
    Snapshot, StateError, StatePart, StateStore, SubscriptionKey, TaskPage, TaskQuery, TaskRecord,
    UnsubscribeAttempt, UnsubscribeEntry, UnsubscribeMethod, UnsubscribeStatus,
};
use quietbox_state::FileStore;

const ACCOUNT: &str = "me@example.com";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

/// `count` unread newsletter messages from `sender`, with a one-click unsubscribe.
fn newsletter(sender: &str, count: usize) -> Vec<MessageMeta> {
    (0..count)
        .map(|i| MessageMeta {
            id: format!("{sender}-{i}"),
            from: format!("News <{sender}>"),
            subject: Some(format!("Issue {i}")),
            date: Some(t(i as i64 * 3600)),
            list_id: Some(format!("<list.{sender}>")),
            list_unsubscribe: Some(format!("<https://{}/u>", sender.replace('@', "."))),
            list_unsubscribe_post: Some("List-Unsubscribe=One-Click".into()),
            labels: vec!["INBOX".into()],
            unread: true,
            ..MessageMeta::default()
        })
        .collect()
}

struct Mailbox(Vec<MessageMeta>);

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
        Ok(ScanBatch {
            messages: self.0.clone(),
            removed: Vec::new(),
            cursor: None,
            full: true,
        })
    }
    async fn send(&self, _mail: OutgoingMail) -> Result<SentMail, ProviderError> {
        Err(ProviderError::Unavailable("not in this test".into()))
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

struct NoOneClick;

#[async_trait]
impl OneClickClient for NoOneClick {
    async fn post_one_click(&self, _url: &str) -> Result<OneClickResponse, OutboundError> {
        Err(OutboundError::Refused("not in this test".into()))
    }
}

/// A file store that counts the reads candidates rank from, and optionally hides its revisions
/// (as a backend without them would).
struct Counting {
    inner: FileStore,
    reads: AtomicUsize,
    revisions: bool,
}

impl Counting {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

fn quietbox(state: Arc<dyn StateStore>, messages: Vec<MessageMeta>) -> Quietbox {
    Quietbox::new(
        Arc::new(Mailbox(messages)),
        Arc::new(NoCalendar),
        state,
        Arc::new(NoOneClick),
        Arc::new(SystemClock),
        Settings::default(),
    )
}

fn senders(candidates: &[quietbox_core::candidates::Candidate]) -> Vec<&str> {
    candidates
        .iter()
        .map(|c| c.sender.address.as_str())
        .collect()
}

fn mailbox() -> Vec<MessageMeta> {
    let mut messages = newsletter("daily@a.example", 9);
    messages.extend(newsletter("weekly@b.example", 3));
    messages
}

#[tokio::test]
async fn candidates_follow_writes_of_this_process_and_of_others() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(Counting {
        inner: FileStore::open(dir.path()).unwrap(),
        reads: AtomicUsize::new(0),
        revisions: true,
    });
    let qb = quietbox(state.clone(), mailbox());
    // Another process on the same directory: its own store, its own cache.
    let other = FileStore::open(dir.path()).unwrap();

    let first = qb.candidates().await.unwrap();
    assert_eq!(senders(&first), ["daily@a.example", "weekly@b.example"]);
    let second = qb.candidates().await.unwrap();
    assert_eq!(second, first);
    // Ranked from the stored state once more (the first call scanned), then kept.
    let reads = state.reads();
    assert_eq!(qb.candidates().await.unwrap(), first);
    assert_eq!(qb.clone().candidates().await.unwrap(), first);
    assert_eq!(
        state.reads(),
        reads,
        "unchanged state is not read again to rank"
    );

    // Another process keeps the top sender.
    other
        .set_sender_decision(SenderDecision {
            sender: "daily@a.example".into(),
            decision: Decision::Keep,
            actor: "other".into(),
            decided_at: t(0),
        })
        .await
        .unwrap();
    assert_eq!(
        senders(&qb.candidates().await.unwrap()),
        ["weekly@b.example"]
    );

    // This process takes the decision back (auto_archive is still a candidate).
    state
        .set_sender_decision(SenderDecision {
            sender: "daily@a.example".into(),
            decision: Decision::AutoArchive,
            actor: "me".into(),
            decided_at: t(1),
        })
        .await
        .unwrap();
    assert_eq!(
        senders(&qb.candidates().await.unwrap()),
        ["daily@a.example", "weekly@b.example"]
    );

    // Another process unsubscribes from the weekly list.
    let attempt = UnsubscribeAttempt {
        key: SubscriptionKey {
            sender: "weekly@b.example".into(),
            list_id: Some("<list.weekly@b.example>".into()),
        },
        method: UnsubscribeMethod::OneClick,
        target: "https://weekly.b.example/u".into(),
        status: UnsubscribeStatus::Succeeded,
        detail: None,
        actor: "other".into(),
        at: t(2),
    };
    other.complete_unsubscribe(attempt).await.unwrap();
    assert_eq!(
        senders(&qb.candidates().await.unwrap()),
        ["daily@a.example"]
    );

    // Another process stores a new scan with a new sender.
    let mut messages = mailbox();
    messages.extend(newsletter("monthly@c.example", 1));
    other
        .set_scan_checkpoint(ScanCheckpoint {
            account: ACCOUNT.into(),
            cursor: None,
            updated_at: t(3),
            messages,
        })
        .await
        .unwrap();
    assert_eq!(
        senders(&qb.candidates().await.unwrap()),
        ["daily@a.example", "monthly@c.example"]
    );
}

#[tokio::test]
async fn without_revisions_every_call_reads_and_sees_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(Counting {
        inner: FileStore::open(dir.path()).unwrap(),
        reads: AtomicUsize::new(0),
        revisions: false,
    });
    let qb = quietbox(state.clone(), mailbox());
    let first = qb.candidates().await.unwrap();
    let reads = state.reads();
    assert_eq!(qb.candidates().await.unwrap(), first);
    assert!(
        state.reads() > reads,
        "no revisions: the state is read again"
    );
    state
        .set_sender_decision(SenderDecision {
            sender: "weekly@b.example".into(),
            decision: Decision::Keep,
            actor: "me".into(),
            decided_at: t(0),
        })
        .await
        .unwrap();
    assert_eq!(
        senders(&qb.candidates().await.unwrap()),
        ["daily@a.example"]
    );
}

#[async_trait]
impl StateStore for Counting {
    async fn claim_unsubscribe(
        &self,
        attempt: UnsubscribeAttempt,
        stale_after: Duration,
    ) -> Result<Claim, StateError> {
        self.inner.claim_unsubscribe(attempt, stale_after).await
    }
    async fn complete_unsubscribe(&self, attempt: UnsubscribeAttempt) -> Result<(), StateError> {
        self.inner.complete_unsubscribe(attempt).await
    }
    async fn unsubscribe_entry(
        &self,
        key: &SubscriptionKey,
    ) -> Result<Option<UnsubscribeEntry>, StateError> {
        self.inner.unsubscribe_entry(key).await
    }
    async fn unsubscribe_history(
        &self,
        sender: Option<&str>,
    ) -> Result<Vec<UnsubscribeEntry>, StateError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.unsubscribe_history(sender).await
    }
    async fn insert_sent_link(&self, link: SentLink) -> Result<bool, StateError> {
        self.inner.insert_sent_link(link).await
    }
    async fn sent_links(&self) -> Result<Vec<SentLink>, StateError> {
        self.inner.sent_links().await
    }
    async fn release_sent_links(&self, links: &[String]) -> Result<(), StateError> {
        self.inner.release_sent_links(links).await
    }
    async fn scan_checkpoint(&self, account: &str) -> Result<Option<ScanCheckpoint>, StateError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.scan_checkpoint(account).await
    }
    async fn set_scan_checkpoint(&self, checkpoint: ScanCheckpoint) -> Result<(), StateError> {
        self.inner.set_scan_checkpoint(checkpoint).await
    }
    async fn incident(&self) -> Result<Option<Incident>, StateError> {
        self.inner.incident().await
    }
    async fn set_incident(&self, incident: Option<Incident>) -> Result<(), StateError> {
        self.inner.set_incident(incident).await
    }
    async fn put_task(&self, task: TaskRecord) -> Result<(), StateError> {
        self.inner.put_task(task).await
    }
    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StateError> {
        self.inner.get_task(id).await
    }
    async fn list_tasks(&self, query: TaskQuery) -> Result<TaskPage, StateError> {
        self.inner.list_tasks(query).await
    }
    async fn prune_tasks(
        &self,
        retention: quietbox_core::store::TaskRetention,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        self.inner.prune_tasks(retention, now).await
    }
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StateError> {
        self.inner.acquire_lease(name, holder, ttl, now).await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, StateError> {
        self.inner.renew_lease(lease, ttl, now).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<(), StateError> {
        self.inner.release_lease(lease).await
    }
    async fn check_fence(
        &self,
        name: &str,
        fencing_token: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        self.inner.check_fence(name, fencing_token, now).await
    }
    async fn idempotency_get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError> {
        self.inner.idempotency_get(key, now).await
    }
    async fn idempotency_put(
        &self,
        record: IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError> {
        self.inner.idempotency_put(record, now).await
    }
    async fn set_sender_decision(&self, decision: SenderDecision) -> Result<(), StateError> {
        self.inner.set_sender_decision(decision).await
    }
    async fn sender_decisions(&self) -> Result<Vec<SenderDecision>, StateError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.sender_decisions().await
    }
    async fn revision(&self, part: StatePart) -> Result<Option<u64>, StateError> {
        if self.revisions {
            self.inner.revision(part).await
        } else {
            Ok(None)
        }
    }
    async fn export(&self) -> Result<Snapshot, StateError> {
        self.inner.export().await
    }
    async fn import(&self, snapshot: Snapshot) -> Result<(), StateError> {
        self.inner.import(snapshot).await
    }
}
