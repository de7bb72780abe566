//! The file backend keeps parsed files in memory: what another process (here: another store on
//! the same directory, with its own cache) or this one writes must be seen by the next read, and
//! a corrupt file must still be reported by name.

use chrono::{TimeZone, Utc};
use quietbox_core::store::{
    Decision, ScanCheckpoint, SenderDecision, SentLink, StateError, StatePart, StateStore,
};
use quietbox_state::FileStore;

fn checkpoint(cursor: &str) -> ScanCheckpoint {
    ScanCheckpoint {
        account: "me@example.com".into(),
        cursor: Some(cursor.into()),
        updated_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        messages: Vec::new(),
    }
}

fn decision(sender: &str, decision: Decision) -> SenderDecision {
    SenderDecision {
        sender: sender.into(),
        decision,
        actor: "test".into(),
        decided_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
    }
}

#[tokio::test]
async fn a_write_by_another_process_is_seen_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let reader = FileStore::open(dir.path()).unwrap();
    let writer = FileStore::open(dir.path()).unwrap();
    assert!(reader.sender_decisions().await.unwrap().is_empty());
    let before = reader.revision(StatePart::SenderDecisions).await.unwrap();
    assert_eq!(
        reader.revision(StatePart::SenderDecisions).await.unwrap(),
        before,
        "an unchanged file keeps its revision"
    );

    writer
        .set_sender_decision(decision("news@a.example", Decision::Keep))
        .await
        .unwrap();
    assert_eq!(
        reader.sender_decisions().await.unwrap(),
        [decision("news@a.example", Decision::Keep)]
    );
    assert_ne!(
        reader.revision(StatePart::SenderDecisions).await.unwrap(),
        before
    );
}

#[tokio::test]
async fn a_write_by_the_same_store_is_seen_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store.set_scan_checkpoint(checkpoint("1")).await.unwrap();
    assert_eq!(
        store.scan_checkpoint("me@example.com").await.unwrap(),
        Some(checkpoint("1"))
    );
    let before = store.revision(StatePart::ScanCheckpoints).await.unwrap();
    store.set_scan_checkpoint(checkpoint("2")).await.unwrap();
    assert_eq!(
        store.scan_checkpoint("me@example.com").await.unwrap(),
        Some(checkpoint("2"))
    );
    assert_ne!(
        store.revision(StatePart::ScanCheckpoints).await.unwrap(),
        before
    );
}

/// Files of the same size written in quick succession (same modification time on file systems
/// with coarse timestamps, and possibly a recycled inode number) are still told apart.
#[tokio::test]
async fn rapid_same_size_writes_are_each_seen() {
    let dir = tempfile::tempdir().unwrap();
    let reader = FileStore::open(dir.path()).unwrap();
    let writer = FileStore::open(dir.path()).unwrap();
    for i in 0..200 {
        let cursor = (i % 10).to_string();
        writer
            .set_scan_checkpoint(checkpoint(&cursor))
            .await
            .unwrap();
        let seen = reader.scan_checkpoint("me@example.com").await.unwrap();
        assert_eq!(seen, Some(checkpoint(&cursor)), "write {i}");
    }
}

#[tokio::test]
async fn a_revision_stands_for_one_content() {
    let dir = tempfile::tempdir().unwrap();
    let reader = FileStore::open(dir.path()).unwrap();
    let writer = FileStore::open(dir.path()).unwrap();
    let mut seen = std::collections::HashMap::new();
    for i in 0..50 {
        writer
            .set_scan_checkpoint(checkpoint(&(i % 3).to_string()))
            .await
            .unwrap();
        let revision = reader
            .revision(StatePart::ScanCheckpoints)
            .await
            .unwrap()
            .expect("the file backend gives revisions");
        let content = reader.scan_checkpoint("me@example.com").await.unwrap();
        assert_eq!(
            reader.revision(StatePart::ScanCheckpoints).await.unwrap(),
            Some(revision)
        );
        if let Some(earlier) = seen.insert(revision, content.clone()) {
            assert_eq!(earlier, content, "revision {revision} named two contents");
        }
    }
}

#[tokio::test]
async fn a_file_corrupted_after_it_was_cached_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let link = SentLink {
        link: "https://x.example/1".into(),
        sender: "x@example.com".into(),
        sent_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
    };
    store.insert_sent_link(link.clone()).await.unwrap();
    assert_eq!(store.sent_links().await.unwrap(), [link]);

    // Overwritten in place (same file), as an editor or a bad restore would.
    let path = dir.path().join("sent_unsubscribe_links.json");
    std::fs::write(&path, b"{\"version\": 1, \"links\": [ {\"link\": tru").unwrap();
    let err = store.sent_links().await.unwrap_err();
    let StateError::Corrupt { location, detail } = &err else {
        panic!("expected Corrupt, got {err:?}")
    };
    assert!(
        location.ends_with("sent_unsubscribe_links.json"),
        "{location}"
    );
    assert!(detail.contains("not valid JSON"), "{detail}");
    assert!(
        store.revision(StatePart::Unsubscribes).await.is_ok(),
        "other files still read"
    );
    // Reported again, not served from what was cached before.
    assert!(store.sent_links().await.is_err());
}

#[tokio::test]
async fn a_deleted_file_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store
        .set_sender_decision(decision("news@a.example", Decision::AutoArchive))
        .await
        .unwrap();
    assert_eq!(store.sender_decisions().await.unwrap().len(), 1);
    std::fs::remove_file(dir.path().join("sender_decisions.json")).unwrap();
    assert!(store.sender_decisions().await.unwrap().is_empty());
}
