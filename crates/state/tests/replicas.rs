//! Three replicas (three `PgStore`s, each with its own pool and listener) on one PostgreSQL
//! schema, each serving `Quietbox::candidates` from core's ranking cache: a write on one
//! replica is seen by the next read on every other one, also after a replica's notification
//! connection was terminated and came back. Runs when `QUIETBOX_TEST_DATABASE_URL` is set.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    Decision, ScanCheckpoint, SenderDecision, StatePart, StateStore, SubscriptionKey,
    UnsubscribeAttempt, UnsubscribeMethod, UnsubscribeStatus,
};
use quietbox_state::PgStore;

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

/// A mailbox that must not be scanned: the replicas rank the checkpoint the test stores.
struct NoScan;

#[async_trait]
impl MailProvider for NoScan {
    fn account(&self) -> &str {
        ACCOUNT
    }
    async fn scan(
        &self,
        _request: &ScanRequest,
        _progress: &dyn ScanProgress,
    ) -> Result<ScanBatch, ProviderError> {
        Err(ProviderError::Unavailable(
            "the replicas rank the stored checkpoint".into(),
        ))
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

/// One replica: its store and the use cases over it.
struct Replica {
    store: PgStore,
    quietbox: Quietbox,
}

impl Replica {
    async fn senders(&self) -> Vec<String> {
        self.quietbox
            .shared_candidates()
            .await
            .unwrap()
            .iter()
            .map(|c| c.sender.address.clone())
            .collect()
    }
}

/// `n` replicas on one fresh schema, each with its listener in step; `None` without a test
/// database.
async fn replicas(n: usize) -> Option<Vec<Replica>> {
    let Ok(url) = std::env::var("QUIETBOX_TEST_DATABASE_URL") else {
        eprintln!("QUIETBOX_TEST_DATABASE_URL is not set: PostgreSQL replicas not exercised here");
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!(
        "qb_replicas_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    let mut replicas = Vec::new();
    for _ in 0..n {
        let store = PgStore::connect_with_schema(&url, &schema).await.unwrap();
        let quietbox = Quietbox::new(
            Arc::new(NoScan),
            Arc::new(NoCalendar),
            Arc::new(store.clone()),
            Arc::new(NoOneClick),
            Arc::new(SystemClock),
            Settings::default(),
        );
        replicas.push(Replica { store, quietbox });
    }
    for replica in &replicas {
        listening(&replica.store, None).await;
    }
    Some(replicas)
}

/// Waits until `store`'s listener is connected and in step, on another connection than `old`.
async fn listening(store: &PgStore, old: Option<i32>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = store.listener_pid().filter(|pid| Some(*pid) != old) {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the listener did not get in step"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn decision(sender: &str, decision: Decision, at: i64) -> SenderDecision {
    SenderDecision {
        sender: sender.into(),
        decision,
        actor: "test".into(),
        decided_at: t(at),
    }
}

fn checkpoint(messages: Vec<MessageMeta>, at: i64) -> ScanCheckpoint {
    ScanCheckpoint {
        account: ACCOUNT.into(),
        cursor: None,
        updated_at: t(at),
        messages,
    }
}

fn mailbox() -> Vec<MessageMeta> {
    let mut messages = newsletter("daily@a.example", 9);
    messages.extend(newsletter("weekly@b.example", 3));
    messages
}

const BOTH: [&str; 2] = ["daily@a.example", "weekly@b.example"];
const WEEKLY: [&str; 1] = ["weekly@b.example"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_is_seen_by_the_next_read_on_the_others() {
    let Some(replicas) = replicas(3).await else {
        return;
    };
    replicas[0]
        .store
        .set_scan_checkpoint(checkpoint(mailbox(), 0))
        .await
        .unwrap();
    for replica in &replicas {
        assert_eq!(replica.senders().await, BOTH);
    }
    // Unchanged state: every replica answers its kept ranking (the same allocation), without
    // ranking again; with no revisions from PostgreSQL each call would rank anew.
    for replica in &replicas {
        let first = replica.quietbox.shared_candidates().await.unwrap();
        let again = replica.quietbox.shared_candidates().await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "an unchanged PostgreSQL state was ranked again"
        );
    }

    // Writers take turns; after each write, the others read at once.
    for round in 0..30usize {
        let writer = round % 3;
        let keep = round % 2 == 0;
        let choice = if keep {
            Decision::Keep
        } else {
            Decision::AutoArchive
        };
        replicas[writer]
            .store
            .set_sender_decision(decision("daily@a.example", choice, round as i64))
            .await
            .unwrap();
        let expected: &[&str] = if keep { &WEEKLY } else { &BOTH };
        for (i, reader) in replicas.iter().enumerate() {
            assert_eq!(
                reader.senders().await,
                expected,
                "round {round}: replica {i} after a write on replica {writer}"
            );
        }
    }

    // The other two parts: a new scan on replica 1, an unsubscribe on replica 2.
    let mut messages = mailbox();
    messages.extend(newsletter("monthly@c.example", 1));
    replicas[1]
        .store
        .set_scan_checkpoint(checkpoint(messages, 100))
        .await
        .unwrap();
    for (i, reader) in replicas.iter().enumerate() {
        assert_eq!(
            reader.senders().await,
            ["daily@a.example", "weekly@b.example", "monthly@c.example"],
            "replica {i} after a scan on replica 1"
        );
    }
    replicas[2]
        .store
        .complete_unsubscribe(UnsubscribeAttempt {
            key: SubscriptionKey {
                sender: "monthly@c.example".into(),
                list_id: Some("<list.monthly@c.example>".into()),
            },
            method: UnsubscribeMethod::OneClick,
            target: "https://monthly.c.example/u".into(),
            status: UnsubscribeStatus::Succeeded,
            detail: None,
            actor: "test".into(),
            at: t(101),
        })
        .await
        .unwrap();
    for (i, reader) in replicas.iter().enumerate() {
        assert_eq!(
            reader.senders().await,
            BOTH,
            "replica {i} after an unsubscribe on replica 2"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_notifications_were_cut_still_sees_every_write() {
    let Some(replicas) = replicas(3).await else {
        return;
    };
    let (writer, cut, other) = (&replicas[0], &replicas[1], &replicas[2]);
    writer
        .store
        .set_scan_checkpoint(checkpoint(mailbox(), 0))
        .await
        .unwrap();
    for replica in &replicas {
        assert_eq!(replica.senders().await, BOTH);
    }

    for round in 0..4i64 {
        // The administrator terminates the cut replica's listening connection ...
        let old = cut.store.listener_pid().unwrap();
        let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(old)
            .fetch_one(writer.store.pool())
            .await
            .unwrap();
        assert!(terminated);
        let deadline = Instant::now() + Duration::from_secs(10);
        while cut.store.listener_pid() == Some(old) {
            assert!(
                Instant::now() < deadline,
                "the lost connection went unnoticed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // ... and a write lands while it is away (its notification cannot reach the replica).
        writer
            .store
            .set_sender_decision(decision("daily@a.example", Decision::Keep, 10 * round))
            .await
            .unwrap();
        assert_eq!(other.senders().await, WEEKLY, "round {round}");
        if round % 2 == 0 {
            // Reads meanwhile ask the database (or, if it was quick, the listener is back).
            assert_eq!(cut.senders().await, WEEKLY, "round {round}: during the cut");
        }
        // Once it is back, its cache is in step with the database, though it heard nothing of
        // the write.
        listening(&cut.store, Some(old)).await;
        assert_eq!(cut.senders().await, WEEKLY, "round {round}: after the cut");
        let kept = cut.quietbox.shared_candidates().await.unwrap();
        assert!(
            Arc::ptr_eq(&kept, &cut.quietbox.shared_candidates().await.unwrap()),
            "round {round}: the ranking cache works again after the reconnection"
        );
        // Notifications flow again: the next write is seen at once.
        writer
            .store
            .set_sender_decision(decision(
                "daily@a.example",
                Decision::AutoArchive,
                10 * round + 1,
            ))
            .await
            .unwrap();
        assert_eq!(cut.senders().await, BOTH, "round {round}: the next write");
        assert_eq!(other.senders().await, BOTH, "round {round}: the next write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_come_from_memory_while_the_listener_is_in_step() {
    let Some(replicas) = replicas(2).await else {
        return;
    };
    let (a, b) = (&replicas[0].store, &replicas[1].store);
    let before = b.revision(StatePart::SenderDecisions).await.unwrap();
    assert!(before.is_some(), "PostgreSQL gives revisions");
    let probe = PgStore::clone(b);
    a.set_sender_decision(decision("x@example.com", Decision::Keep, 0))
        .await
        .unwrap();
    let after = probe.revision(StatePart::SenderDecisions).await.unwrap();
    assert_ne!(
        after, before,
        "the write on the other replica moved the revision"
    );
    for _ in 0..1000 {
        assert_eq!(
            probe.revision(StatePart::SenderDecisions).await.unwrap(),
            after
        );
    }
    let started = Instant::now();
    for _ in 0..10_000 {
        probe.revision(StatePart::Unsubscribes).await.unwrap();
    }
    // A query per call would take well over 0.5 s (a loopback round trip each); from memory
    // it takes a few milliseconds.
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "10,000 revisions took {:?}: they were asked of the database",
        started.elapsed()
    );
}
