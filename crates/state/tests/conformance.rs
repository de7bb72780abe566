//! One behaviour suite, run against both backends. The PostgreSQL half runs when
//! `QUIETBOX_TEST_DATABASE_URL` is set (CI sets it), each test in a fresh schema.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use quietbox_core::store::{
    Claim, Decision, IdempotencyRecord, Incident, ScanCheckpoint, SenderDecision, SentLink,
    StateError, StatePart, StateStore, SubscriptionKey, TaskOwner, TaskQuery, TaskRecord,
    TaskRetention, UnsubscribeAttempt, UnsubscribeMethod, UnsubscribeStatus,
};
use quietbox_state::{FileStore, PgStore};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn key(sender: &str) -> SubscriptionKey {
    SubscriptionKey {
        sender: sender.to_owned(),
        list_id: Some(format!("<list.{sender}>")),
    }
}

fn attempt(sender: &str, status: UnsubscribeStatus, at: DateTime<Utc>) -> UnsubscribeAttempt {
    UnsubscribeAttempt {
        key: key(sender),
        method: UnsubscribeMethod::OneClick,
        target: format!("https://{sender}/unsub"),
        status,
        detail: None,
        actor: "api_key".to_owned(),
        at,
    }
}

fn task(id: &str, context: &str, state: &str, updated: i64) -> TaskRecord {
    TaskRecord {
        id: id.to_owned(),
        context_id: context.to_owned(),
        state: state.to_owned(),
        payload: serde_json::json!({"id": id}),
        created_at: t(0),
        updated_at: t(updated),
        owner: TaskOwner::legacy(),
        skill: Some("scan_inbox".to_owned()),
    }
}

fn owner(subject: &str) -> TaskOwner {
    TaskOwner {
        tenant: "t1".to_owned(),
        subject: subject.to_owned(),
    }
}

fn owned(id: &str, who: &str, skill: Option<&str>, updated: i64) -> TaskRecord {
    TaskRecord {
        owner: owner(who),
        skill: skill.map(str::to_owned),
        ..task(id, "c", "TASK_STATE_COMPLETED", updated)
    }
}

fn ids(page: &quietbox_core::store::TaskPage) -> Vec<&str> {
    page.tasks.iter().map(|t| t.id.as_str()).collect()
}

async fn tasks_keep_their_owner_and_list_by_owner_and_skill(store: Arc<dyn StateStore>) {
    store
        .put_task(owned("a1", "alice", Some("scan_inbox"), 1))
        .await
        .unwrap();
    store
        .put_task(owned("a2", "alice", Some("availability"), 2))
        .await
        .unwrap();
    store
        .put_task(owned("b1", "bob", Some("scan_inbox"), 3))
        .await
        .unwrap();
    store
        .put_task(owned("l1", "legacy", None, 4))
        .await
        .unwrap();
    let stored = store.get_task("a1").await.unwrap().unwrap();
    assert_eq!(
        (stored.owner, stored.skill.as_deref()),
        (owner("alice"), Some("scan_inbox"))
    );

    // Another owner's write to the same id is ignored: the task stays alice's, unchanged.
    let mut stolen = owned("a1", "bob", Some("scan_inbox"), 9);
    stolen.state = "TASK_STATE_CANCELED".into();
    store.put_task(stolen).await.unwrap();
    let stored = store.get_task("a1").await.unwrap().unwrap();
    assert_eq!(
        (stored.owner, stored.state.as_str(), stored.updated_at),
        (owner("alice"), "TASK_STATE_COMPLETED", t(1))
    );

    let alice = |skills: Option<Vec<&str>>| TaskQuery {
        owner: Some(owner("alice")),
        skills: skills.map(|s| s.into_iter().map(str::to_owned).collect()),
        ..Default::default()
    };
    let page = store.list_tasks(alice(None)).await.unwrap();
    assert_eq!((ids(&page), page.total_size), (vec!["a2", "a1"], 2));
    let page = store
        .list_tasks(alice(Some(vec!["scan_inbox"])))
        .await
        .unwrap();
    assert_eq!((ids(&page), page.total_size), (vec!["a1"], 1));
    let page = store.list_tasks(alice(Some(vec![]))).await.unwrap();
    assert_eq!((ids(&page), page.total_size), (vec![], 0));
    // A skill filter leaves out tasks with no recorded skill; no filter keeps them.
    let page = store
        .list_tasks(TaskQuery {
            skills: Some(vec!["scan_inbox".into(), "availability".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&page), ["b1", "a2", "a1"]);
    let page = store.list_tasks(TaskQuery::default()).await.unwrap();
    assert_eq!(page.total_size, 4);
}

async fn pruning_drops_expired_tasks_then_keeps_the_newest(store: Arc<dyn StateStore>) {
    let now = t(10_000);
    let retention = TaskRetention {
        max_age: chrono::Duration::seconds(5_000),
        max_tasks: 3,
    };
    assert_eq!(store.prune_tasks(retention, now).await.unwrap(), 0);
    // Two expired (updated before t(5000)), six recent.
    for (i, updated) in [100, 4_999, 5_000, 6_000, 7_000, 8_000, 9_000, 9_000]
        .into_iter()
        .enumerate()
    {
        store
            .put_task(task(
                &format!("task-{i}"),
                "c",
                "TASK_STATE_WORKING",
                updated,
            ))
            .await
            .unwrap();
    }
    assert_eq!(store.prune_tasks(retention, now).await.unwrap(), 5);
    let page = store.list_tasks(TaskQuery::default()).await.unwrap();
    assert_eq!(ids(&page), ["task-6", "task-7", "task-5"]);
    assert_eq!(
        store.prune_tasks(retention, now).await.unwrap(),
        0,
        "nothing left to drop"
    );
    // Age alone: everything is older than a tiny TTL.
    let short = TaskRetention {
        max_age: chrono::Duration::seconds(1),
        max_tasks: 10_000,
    };
    assert_eq!(store.prune_tasks(short, now).await.unwrap(), 3);
    assert_eq!(
        store
            .list_tasks(TaskQuery::default())
            .await
            .unwrap()
            .total_size,
        0
    );
    // An age too large for the clock keeps everything rather than failing.
    store
        .put_task(task("old", "c", "TASK_STATE_COMPLETED", -1_000_000))
        .await
        .unwrap();
    let forever = TaskRetention {
        max_age: chrono::Duration::MAX,
        max_tasks: 10,
    };
    assert_eq!(store.prune_tasks(forever, now).await.unwrap(), 0);
    assert!(store.get_task("old").await.unwrap().is_some());
}

const STALE: Duration = Duration::from_secs(600);

async fn unsubscribe_claims_are_at_most_once(store: Arc<dyn StateStore>) {
    use UnsubscribeStatus::*;
    assert_eq!(
        store
            .claim_unsubscribe(attempt("a.example", InProgress, t(0)), STALE)
            .await
            .unwrap(),
        Claim::Claimed
    );
    // In progress and fresh: someone else is doing it.
    let Claim::Existing(entry) = store
        .claim_unsubscribe(attempt("a.example", InProgress, t(10)), STALE)
        .await
        .unwrap()
    else {
        panic!("second claim must see the first");
    };
    assert_eq!(entry.status, InProgress);
    store
        .complete_unsubscribe(attempt("a.example", Succeeded, t(20)))
        .await
        .unwrap();
    assert!(matches!(
        store
            .claim_unsubscribe(attempt("a.example", InProgress, t(5000)), STALE)
            .await
            .unwrap(),
        Claim::Existing(_)
    ));
    // A failed attempt may be retried.
    store
        .claim_unsubscribe(attempt("b.example", InProgress, t(0)), STALE)
        .await
        .unwrap();
    store
        .complete_unsubscribe(attempt("b.example", Failed, t(1)))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_unsubscribe(attempt("b.example", InProgress, t(2)), STALE)
            .await
            .unwrap(),
        Claim::Claimed
    );
    // A stale in-progress claim (its worker died) may be taken over.
    store
        .claim_unsubscribe(attempt("c.example", InProgress, t(0)), STALE)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_unsubscribe(attempt("c.example", InProgress, t(601)), STALE)
            .await
            .unwrap(),
        Claim::Claimed
    );

    let entry = store
        .unsubscribe_entry(&key("a.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.status, Succeeded);
    assert_eq!(
        entry.attempts.len(),
        2,
        "claim and completion are both recorded"
    );
    let history = store.unsubscribe_history(None).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|e| e.key.sender.as_str())
            .collect::<Vec<_>>(),
        ["a.example", "b.example", "c.example"]
    );
    assert_eq!(
        store
            .unsubscribe_history(Some("b.example"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .unsubscribe_entry(&key("zzz.example"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn concurrent_claims_let_exactly_one_through(store: Arc<dyn StateStore>) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_unsubscribe(
                    attempt("race.example", UnsubscribeStatus::InProgress, t(0)),
                    STALE,
                )
                .await
                .unwrap()
        }));
    }
    let mut claimed = 0;
    for task in tasks {
        if task.await.unwrap() == Claim::Claimed {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 1);
}

async fn a_task_in_a_final_state_is_never_replaced(store: Arc<dyn StateStore>) {
    store
        .put_task(task("t1", "c", "TASK_STATE_WORKING", 1))
        .await
        .unwrap();
    store
        .put_task(task("t1", "c", "TASK_STATE_WORKING", 2))
        .await
        .unwrap();
    assert_eq!(
        store.get_task("t1").await.unwrap().unwrap().updated_at,
        t(2)
    );
    store
        .put_task(task("t1", "c", "TASK_STATE_CANCELED", 3))
        .await
        .unwrap();
    // The replica that ran the task finishes later: its write does not undo the cancel.
    store
        .put_task(task("t1", "c", "TASK_STATE_COMPLETED", 4))
        .await
        .unwrap();
    let stored = store.get_task("t1").await.unwrap().unwrap();
    assert_eq!(stored.state, "TASK_STATE_CANCELED");
    assert_eq!(stored.updated_at, t(3));
}

async fn a_racing_cancel_and_completion_leave_exactly_one_final_state(store: Arc<dyn StateStore>) {
    for round in 0..8 {
        let id = format!("race-{round}");
        store
            .put_task(task(&id, "c", "TASK_STATE_WORKING", 1))
            .await
            .unwrap();
        let writers: Vec<_> = ["TASK_STATE_CANCELED", "TASK_STATE_COMPLETED"]
            .into_iter()
            .map(|state| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move { store.put_task(task(&id, "c", state, 2)).await })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let first = store.get_task(&id).await.unwrap().unwrap().state;
        assert!(first == "TASK_STATE_CANCELED" || first == "TASK_STATE_COMPLETED");
        store
            .put_task(task(&id, "c", "TASK_STATE_WORKING", 3))
            .await
            .unwrap();
        assert_eq!(store.get_task(&id).await.unwrap().unwrap().state, first);
    }
}

async fn sent_links_are_recorded_once(store: Arc<dyn StateStore>) {
    let link = |n: u32| SentLink {
        link: format!("https://x.example/{n}"),
        sender: "x@example.com".into(),
        sent_at: t(n.into()),
    };
    assert!(store.insert_sent_link(link(1)).await.unwrap());
    assert!(store.insert_sent_link(link(2)).await.unwrap());
    assert!(!store.insert_sent_link(link(1)).await.unwrap());
    let links = store.sent_links().await.unwrap();
    assert_eq!(links, vec![link(1), link(2)]);
}

async fn checkpoints_and_incidents_round_trip(store: Arc<dyn StateStore>) {
    assert!(
        store
            .scan_checkpoint("me@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let cp = ScanCheckpoint {
        account: "me@example.com".into(),
        cursor: Some("12345".into()),
        updated_at: t(1),
        messages: vec![],
    };
    store.set_scan_checkpoint(cp.clone()).await.unwrap();
    let newer = ScanCheckpoint {
        cursor: Some("12399".into()),
        updated_at: t(2),
        ..cp
    };
    store.set_scan_checkpoint(newer.clone()).await.unwrap();
    assert_eq!(
        store.scan_checkpoint("me@example.com").await.unwrap(),
        Some(newer)
    );

    assert!(store.incident().await.unwrap().is_none());
    let incident = Incident {
        reason: "phishing wave".into(),
        started_by: "ops".into(),
        started_at: t(0),
        until: t(3600),
    };
    store.set_incident(Some(incident.clone())).await.unwrap();
    assert_eq!(store.incident().await.unwrap(), Some(incident));
    store.set_incident(None).await.unwrap();
    assert!(store.incident().await.unwrap().is_none());
}

async fn tasks_page_by_update_time_with_filters(store: Arc<dyn StateStore>) {
    for i in 0..7 {
        let context = if i % 2 == 0 { "even" } else { "odd" };
        let state = if i < 3 {
            "TASK_STATE_COMPLETED"
        } else {
            "TASK_STATE_WORKING"
        };
        store
            .put_task(task(&format!("task-{i}"), context, state, i))
            .await
            .unwrap();
    }
    store
        .put_task(task("task-0", "even", "TASK_STATE_COMPLETED", 100))
        .await
        .unwrap();
    assert_eq!(
        store.get_task("task-0").await.unwrap().unwrap().updated_at,
        t(100)
    );
    assert!(store.get_task("nope").await.unwrap().is_none());

    let page = store
        .list_tasks(TaskQuery {
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total_size, 7);
    assert_eq!(
        page.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["task-0", "task-6", "task-5"]
    );
    let next = store
        .list_tasks(TaskQuery {
            page_size: 3,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        next.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["task-4", "task-3", "task-2"]
    );
    let last = store
        .list_tasks(TaskQuery {
            page_size: 3,
            page_token: next.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(last.tasks.len(), 1);
    assert!(last.next_page_token.is_none());

    let odd = store
        .list_tasks(TaskQuery {
            context_id: Some("odd".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(odd.total_size, 3);
    let working = store
        .list_tasks(TaskQuery {
            state: Some("TASK_STATE_WORKING".into()),
            context_id: Some("even".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        working
            .tasks
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["task-6", "task-4"]
    );
    let bad = store
        .list_tasks(TaskQuery {
            page_token: Some("garbage".into()),
            ..Default::default()
        })
        .await;
    assert!(bad.is_err());
}

async fn leases_have_one_holder_and_refuse_stale_tokens(store: Arc<dyn StateStore>) {
    let ttl = Duration::from_secs(60);
    let a = store
        .acquire_lease("digest", "node-a", ttl, t(0))
        .await
        .unwrap()
        .expect("free lease");
    assert!(
        store
            .acquire_lease("digest", "node-b", ttl, t(10))
            .await
            .unwrap()
            .is_none(),
        "held by a"
    );
    // The holder re-acquiring keeps its token.
    let a_again = store
        .acquire_lease("digest", "node-a", ttl, t(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a_again.fencing_token, a.fencing_token);
    assert!(
        store
            .check_fence("digest", a.fencing_token, t(30))
            .await
            .unwrap()
    );
    // a stalls past expiry; b takes over with a larger token.
    let b = store
        .acquire_lease("digest", "node-b", ttl, t(200))
        .await
        .unwrap()
        .expect("expired lease is free");
    assert!(b.fencing_token > a.fencing_token);
    assert!(
        !store
            .check_fence("digest", a.fencing_token, t(201))
            .await
            .unwrap(),
        "stale token refused"
    );
    assert!(matches!(
        store.renew_lease(&a, ttl, t(201)).await,
        Err(StateError::Conflict(_))
    ));
    let b2 = store.renew_lease(&b, ttl, t(230)).await.unwrap();
    assert_eq!(b2.expires_at, t(290));
    // a's release of its stale lease changes nothing.
    store.release_lease(&a).await.unwrap();
    assert!(
        store
            .check_fence("digest", b.fencing_token, t(240))
            .await
            .unwrap()
    );
    store.release_lease(&b).await.unwrap();
    let c = store
        .acquire_lease("digest", "node-c", ttl, t(241))
        .await
        .unwrap()
        .unwrap();
    assert!(
        c.fencing_token > b.fencing_token,
        "tokens keep growing after release"
    );
}

async fn idempotency_records_expire(store: Arc<dyn StateStore>) {
    let record = |hash: &str, expires| IdempotencyRecord {
        key: "tenant:unsubscribe:k1".into(),
        request_hash: hash.into(),
        response: serde_json::json!({"ok": hash}),
        expires_at: expires,
    };
    assert!(
        store
            .idempotency_put(record("h1", t(100)), t(0))
            .await
            .unwrap()
            .is_none()
    );
    let existing = store
        .idempotency_put(record("h2", t(100)), t(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(existing.request_hash, "h1");
    assert_eq!(
        store
            .idempotency_get("tenant:unsubscribe:k1", t(50))
            .await
            .unwrap()
            .unwrap()
            .request_hash,
        "h1"
    );
    assert!(
        store
            .idempotency_get("tenant:unsubscribe:k1", t(100))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        store
            .idempotency_put(record("h3", t(300)), t(150))
            .await
            .unwrap()
            .is_none(),
        "expired key is reusable"
    );
}

async fn sender_decisions_replace_earlier_ones(store: Arc<dyn StateStore>) {
    let decision = |sender: &str, decision, at| SenderDecision {
        sender: sender.into(),
        decision,
        actor: "me".into(),
        decided_at: t(at),
    };
    store
        .set_sender_decision(decision("b@example.com", Decision::Keep, 1))
        .await
        .unwrap();
    store
        .set_sender_decision(decision("a@example.com", Decision::AutoArchive, 2))
        .await
        .unwrap();
    store
        .set_sender_decision(decision("b@example.com", Decision::AutoArchive, 3))
        .await
        .unwrap();
    let all = store.sender_decisions().await.unwrap();
    assert_eq!(
        all,
        vec![
            decision("a@example.com", Decision::AutoArchive, 2),
            decision("b@example.com", Decision::AutoArchive, 3)
        ]
    );
}

async fn export_then_import_reproduces_the_store(
    store: Arc<dyn StateStore>,
    other: Arc<dyn StateStore>,
) {
    unsubscribe_claims_are_at_most_once(store.clone()).await;
    sent_links_are_recorded_once(store.clone()).await;
    checkpoints_and_incidents_round_trip(store.clone()).await;
    sender_decisions_replace_earlier_ones(store.clone()).await;
    store
        .put_task(task("t1", "c", "TASK_STATE_COMPLETED", 1))
        .await
        .unwrap();
    let lease = store
        .acquire_lease("digest", "n", Duration::from_secs(60), t(0))
        .await
        .unwrap()
        .unwrap();
    let snapshot = store.export().await.unwrap();
    quietbox_state::transfer(store.as_ref(), other.as_ref())
        .await
        .unwrap();
    assert_eq!(other.export().await.unwrap(), snapshot);
    assert!(
        other
            .check_fence("digest", lease.fencing_token, t(1))
            .await
            .unwrap()
    );
    let next = other
        .acquire_lease("digest", "m", Duration::from_secs(60), t(100))
        .await
        .unwrap()
        .unwrap();
    assert!(
        next.fencing_token > lease.fencing_token,
        "imported leases keep their token order"
    );
}

/// A backend either gives no revisions or gives one that stays while the part is unchanged and
/// moves with every write to it.
async fn revisions_move_with_writes(store: Arc<dyn StateStore>) {
    let parts = [
        StatePart::ScanCheckpoints,
        StatePart::Unsubscribes,
        StatePart::SenderDecisions,
    ];
    let mut before = Vec::new();
    for part in parts {
        let revision = store.revision(part).await.unwrap();
        assert_eq!(store.revision(part).await.unwrap(), revision, "{part:?}");
        before.push(revision);
    }
    store
        .set_scan_checkpoint(ScanCheckpoint {
            account: "me@example.com".into(),
            cursor: None,
            updated_at: t(0),
            messages: Vec::new(),
        })
        .await
        .unwrap();
    store
        .complete_unsubscribe(attempt("a.example", UnsubscribeStatus::Succeeded, t(1)))
        .await
        .unwrap();
    store
        .set_sender_decision(SenderDecision {
            sender: "a.example".into(),
            decision: Decision::Keep,
            actor: "test".into(),
            decided_at: t(2),
        })
        .await
        .unwrap();
    for (part, before) in parts.into_iter().zip(before) {
        let after = store.revision(part).await.unwrap();
        match before {
            Some(_) => assert_ne!(after, before, "{part:?} changed"),
            None => assert_eq!(after, None, "{part:?}: no revisions, ever"),
        }
    }
}

/// A fresh store of each backend.
mod backends {
    use super::*;

    pub fn file() -> (Arc<dyn StateStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Arc::new(FileStore::open(dir.path()).unwrap()), dir)
    }

    /// `None` (and a line saying so) when no test database is configured.
    pub async fn pg() -> Option<Arc<dyn StateStore>> {
        let (url, schema) = pg_target()?;
        Some(Arc::new(
            PgStore::connect_with_schema(&url, &schema).await.unwrap(),
        ))
    }

    /// The test database URL and a fresh schema name; `None` (and a line saying so) when no
    /// test database is configured.
    pub fn pg_target() -> Option<(String, String)> {
        let Ok(url) = std::env::var("QUIETBOX_TEST_DATABASE_URL") else {
            eprintln!(
                "QUIETBOX_TEST_DATABASE_URL is not set: PostgreSQL backend not exercised here"
            );
            return None;
        };
        let schema = format!("qb_test_{}_{}", std::process::id(), rand_suffix());
        Some((url, schema))
    }

    fn rand_suffix() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        h.finish() % 1_000_000_000
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod file_backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = backends::file();
                    super::$name(store).await;
                }
            )*
        }
        mod postgres_backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = backends::pg().await else { return };
                    super::$name(store).await;
                }
            )*
        }
    };
}

conformance!(
    revisions_move_with_writes,
    unsubscribe_claims_are_at_most_once,
    concurrent_claims_let_exactly_one_through,
    a_task_in_a_final_state_is_never_replaced,
    a_racing_cancel_and_completion_leave_exactly_one_final_state,
    sent_links_are_recorded_once,
    checkpoints_and_incidents_round_trip,
    tasks_page_by_update_time_with_filters,
    tasks_keep_their_owner_and_list_by_owner_and_skill,
    pruning_drops_expired_tasks_then_keeps_the_newest,
    leases_have_one_holder_and_refuse_stale_tokens,
    idempotency_records_expire,
    sender_decisions_replace_earlier_ones,
);

/// Writes decisions through `before`, drops it (the process ends), and reads them back through
/// `after`, a store opened afresh on the same data.
async fn sender_decisions_survive_a_restart(
    before: Arc<dyn StateStore>,
    after: impl std::future::Future<Output = Arc<dyn StateStore>>,
) {
    let recorded = [
        SenderDecision {
            sender: "deals@shop.example.com".into(),
            decision: Decision::AutoArchive,
            actor: "scheduler".into(),
            decided_at: t(10),
        },
        SenderDecision {
            sender: "friend@example.org".into(),
            decision: Decision::Keep,
            actor: "user-7".into(),
            decided_at: t(20),
        },
        SenderDecision {
            sender: "news@a.example.com".into(),
            decision: Decision::Unsubscribed,
            actor: "api_key".into(),
            decided_at: t(30),
        },
    ];
    for decision in &recorded {
        before.set_sender_decision(decision.clone()).await.unwrap();
    }
    drop(before);
    let after = after.await;
    assert_eq!(after.sender_decisions().await.unwrap(), recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend_sender_decisions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Arc<dyn StateStore> { Arc::new(FileStore::open(dir.path()).unwrap()) };
    sender_decisions_survive_a_restart(open(), async { open() }).await;
    let file = std::fs::read_to_string(dir.path().join("sender_decisions.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(value["version"], 1);
    assert_eq!(value["decisions"][0]["decision"], "auto_archive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_sender_decisions_survive_a_restart() {
    let Some((url, schema)) = backends::pg_target() else {
        return;
    };
    let open = || async {
        let store: Arc<dyn StateStore> =
            Arc::new(PgStore::connect_with_schema(&url, &schema).await.unwrap());
        store
    };
    sender_decisions_survive_a_restart(open().await, open()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_moves_from_files_to_postgres_and_back() {
    let (file, _dir) = backends::file();
    let (file_again, _dir2) = backends::file();
    match backends::pg().await {
        Some(pg) => {
            export_then_import_reproduces_the_store(file.clone(), pg.clone()).await;
            quietbox_state::transfer(pg.as_ref(), file_again.as_ref())
                .await
                .unwrap();
            assert_eq!(
                file_again.export().await.unwrap(),
                pg.export().await.unwrap()
            );
        }
        None => export_then_import_reproduces_the_store(file, file_again).await,
    }
}

/// A `tasks.json` written before owners and skills were recorded (format version 1, as every
/// earlier build wrote it).
const TASKS_WITHOUT_OWNERS: &str = r#"{"version": 1, "tasks": [
  {"id": "old-1", "context_id": "c", "state": "TASK_STATE_COMPLETED", "payload": {"id": "old-1"},
   "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z"}
]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend_reads_tasks_without_an_owner_as_the_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tasks.json"), TASKS_WITHOUT_OWNERS).unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let old = store.get_task("old-1").await.unwrap().unwrap();
    assert_eq!((old.owner, old.skill), (TaskOwner::legacy(), None));
    let mine = store
        .list_tasks(TaskQuery {
            owner: Some(TaskOwner::legacy()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&mine), ["old-1"]);
    let theirs = store
        .list_tasks(TaskQuery {
            owner: Some(owner("alice")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(theirs.total_size, 0);
    // Written back, the file keeps format version 1 and now names the owner.
    store
        .put_task(owned("new-1", "alice", Some("scan_inbox"), 1))
        .await
        .unwrap();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("tasks.json")).unwrap())
            .unwrap();
    assert_eq!(file["version"], 1);
    let old = file["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "old-1")
        .unwrap();
    assert_eq!(
        old["owner"],
        serde_json::json!({"tenant": "default", "subject": "api_key"})
    );
    assert!(old.get("skill").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_gives_existing_tasks_the_api_key_owner() {
    use sqlx::Executor;
    let Some((url, schema)) = backends::pg_target() else {
        return;
    };
    // A schema as the first migration left it, holding a task row of that time.
    {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        pool.execute(format!("CREATE SCHEMA {schema}; SET search_path TO {schema};").as_str())
            .await
            .unwrap();
        pool.execute(include_str!("../migrations/0001_state.sql"))
            .await
            .unwrap();
        let old = serde_json::json!({"id": "old-1", "context_id": "c", "state": "TASK_STATE_COMPLETED",
            "payload": {"id": "old-1"}, "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z"});
        sqlx::query("INSERT INTO tasks (id, context_id, state, data, updated_at) VALUES ('old-1', 'c', 'TASK_STATE_COMPLETED', $1, $2)")
            .bind(old)
            .bind(t(0))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = PgStore::connect_with_schema(&url, &schema).await.unwrap();
    let old = store.get_task("old-1").await.unwrap().unwrap();
    assert_eq!((old.owner, old.skill), (TaskOwner::legacy(), None));
    let mine = store
        .list_tasks(TaskQuery {
            owner: Some(TaskOwner::legacy()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&mine), ["old-1"]);
    let theirs = store
        .list_tasks(TaskQuery {
            owner: Some(owner("alice")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(theirs.total_size, 0);
    // The legacy owner's write is accepted, another owner's is not.
    let mut stolen = owned("old-1", "alice", None, 5);
    stolen.state = "TASK_STATE_COMPLETED".into();
    store.put_task(stolen).await.unwrap();
    assert_eq!(
        store.get_task("old-1").await.unwrap().unwrap().owner,
        TaskOwner::legacy()
    );
}
