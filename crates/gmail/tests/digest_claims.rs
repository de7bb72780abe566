//! A digest claims its links before its mail goes out (issue 11, found by the kill -9 test in
//! bins/api/tests/crash): two digests racing never mail the same link, and a digest whose send
//! fails releases its links so the next one offers them again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use quietbox_core::Quietbox;
use quietbox_core::ports::{
    MailProvider, ManualClock, OutgoingMail, ProviderError, ScanBatch, ScanProgress, ScanRequest,
    SentMail,
};
use quietbox_core::service::{CoreError, Settings};
use quietbox_gmail::local::{LocalCalendar, LocalMail, Outbox};
use quietbox_gmail::outbound::{OutboundPolicy, SsrfGuardedClient};
use quietbox_state::FileStore;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample");

/// The local mailbox, with a send that can be made slow or failing, keeping what it sent.
struct Controlled {
    local: LocalMail,
    delay: Duration,
    fail: Mutex<bool>,
    sent: Mutex<Vec<String>>,
}

#[async_trait]
impl MailProvider for Controlled {
    fn account(&self) -> &str {
        self.local.account()
    }

    async fn scan(
        &self,
        request: &ScanRequest,
        progress: &dyn ScanProgress,
    ) -> Result<ScanBatch, ProviderError> {
        self.local.scan(request, progress).await
    }

    async fn send(&self, mail: OutgoingMail) -> Result<SentMail, ProviderError> {
        // Slow, so that a racing digest runs while this one is between claim and send.
        tokio::time::sleep(self.delay).await;
        if *self.fail.lock().unwrap() {
            return Err(ProviderError::Unavailable(
                "send refused by the test".into(),
            ));
        }
        let raw = String::from_utf8_lossy(&mail.raw).into_owned();
        let mut sent = self.sent.lock().unwrap();
        sent.push(raw);
        Ok(SentMail {
            id: format!("m{}", sent.len()),
        })
    }
}

/// Two services (as two processes) on one state directory and one controlled mailbox.
fn world(delay: Duration) -> (Arc<Controlled>, Quietbox, Quietbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mail = Arc::new(Controlled {
        local: LocalMail::new(
            "owner@example.org",
            format!("{SAMPLE}/inbox.mbox"),
            Outbox::folder(dir.path().join("outbox")),
        ),
        delay,
        fail: Mutex::new(false),
        sent: Mutex::default(),
    });
    let service = || {
        Quietbox::new(
            mail.clone(),
            Arc::new(LocalCalendar::new(format!("{SAMPLE}/calendar.ics"))),
            Arc::new(FileStore::open(dir.path().join("state")).unwrap()),
            Arc::new(SsrfGuardedClient::new(OutboundPolicy::public_only()).unwrap()),
            Arc::new(ManualClock::new(
                Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
            )),
            Settings::default(),
        )
    };
    let (a, b) = (service(), service());
    (mail, a, b, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_digests_never_mail_the_same_link() {
    let (mail, a, b, _dir) = world(Duration::from_millis(300));
    // Both know the candidates before the race.
    let preview = a.digest(false).await.unwrap();
    assert!(!preview.candidates.is_empty());
    let (first, second) = tokio::join!(a.digest(true), b.digest(true));
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut links: Vec<&String> = first
        .candidates
        .iter()
        .chain(&second.candidates)
        .map(|c| &c.link)
        .collect();
    let total = links.len();
    links.sort();
    links.dedup();
    assert_eq!(links.len(), total, "a link in both digests");
    assert_eq!(total, preview.candidates.len(), "every link went out once");
    let sent = mail.sent.lock().unwrap().clone();
    for candidate in &preview.candidates {
        let mails = sent.iter().filter(|m| m.contains(&candidate.link)).count();
        assert!(mails <= 1, "{} mailed {mails} times", candidate.link);
    }
}

#[tokio::test]
async fn a_digest_that_fails_to_send_releases_its_links() {
    let (mail, a, _b, _dir) = world(Duration::ZERO);
    *mail.fail.lock().unwrap() = true;
    let failed = a.digest(true).await;
    assert!(matches!(failed, Err(CoreError::Provider(_))), "{failed:?}");
    assert!(a.state().sent_links().await.unwrap().is_empty());
    *mail.fail.lock().unwrap() = false;
    let retried = a.digest(true).await.unwrap();
    assert!(retried.sent && !retried.candidates.is_empty());
    assert_eq!(
        a.state().sent_links().await.unwrap().len(),
        retried.candidates.len()
    );
}
