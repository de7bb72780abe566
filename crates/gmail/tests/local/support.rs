//! A world per test: a temp data dir, the local provider over a given mbox, the file store, the
//! SSRF-guarded client under its loopback test policy, a manual clock, and a TLS endpoint.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{TimeZone, Utc};
use quietbox_core::Quietbox;
use quietbox_core::ports::ManualClock;
use quietbox_core::service::Settings;
use quietbox_gmail::local::{LocalCalendar, LocalMail, Outbox};
use quietbox_gmail::outbound::{OutboundPolicy, SsrfGuardedClient};
use quietbox_state::FileStore;
pub use quietbox_testkit::one_click::{Answer, Endpoint};

pub const SAMPLE_MBOX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample/inbox.mbox");
pub const SAMPLE_ICS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/calendar.ics"
);

pub struct World {
    pub quietbox: Quietbox,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    mbox: PathBuf,
    _mbox_dir: Option<tempfile::TempDir>,
}

impl World {
    /// Appends messages (header blocks) to the mbox, as new mail arriving.
    pub fn deliver(&self, messages: &[String]) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.mbox)
            .unwrap();
        file.write_all(mbox_text(messages).as_bytes()).unwrap();
    }

    /// The mbox file.
    pub fn mbox(&self) -> &std::path::Path {
        &self.mbox
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    pub fn sent_mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.outbox()) else {
            return Vec::new();
        };
        let mut mails: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        mails.sort();
        mails
    }
}

pub fn world_with_mbox(path: &str) -> World {
    world_with_mbox_and(path, Settings::default())
}

pub fn world_with_mbox_and(path: &str, settings: Settings) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path().join("state")).unwrap());
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap());
    let quietbox = Quietbox::new(
        Arc::new(LocalMail::new(
            "owner@example.org",
            path,
            Outbox::folder(dir.path().join("outbox")),
        )),
        Arc::new(LocalCalendar::new(SAMPLE_ICS)),
        store,
        Arc::new(SsrfGuardedClient::new(OutboundPolicy::allow_loopback_for_tests()).unwrap()),
        Arc::new(clock.clone()),
        settings,
    );
    World {
        quietbox,
        clock,
        dir,
        mbox: PathBuf::from(path),
        _mbox_dir: None,
    }
}

pub fn sample_world() -> World {
    world_with_mbox(SAMPLE_MBOX)
}

fn mbox_text(messages: &[String]) -> String {
    messages
        .iter()
        .map(|m| format!("From x@example.com Mon Nov 23 09:00:00 2026\n{m}\nbody\n\n"))
        .collect()
}

/// A world whose mbox is `messages` (header blocks), written to the temp dir.
pub fn world_with_messages(messages: &[String]) -> World {
    world_with_messages_and(messages, Settings::default())
}

/// Like [`world_with_messages`], with the use cases' settings.
pub fn world_with_messages_and(messages: &[String], settings: Settings) -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.mbox");
    std::fs::write(&path, mbox_text(messages)).unwrap();
    let mut world = world_with_mbox_and(path.to_str().unwrap(), settings);
    world._mbox_dir = Some(dir);
    world
}

/// A newsletter's header block.
pub fn newsletter(from: &str, list_unsubscribe: &str, one_click: bool) -> String {
    let mut m = format!(
        "From: {from}\nSubject: news\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nList-Id: <list.{}>\nList-Unsubscribe: {list_unsubscribe}\nX-Gmail-Labels: Inbox,Unread\n",
        from.split('@').nth(1).unwrap_or("x")
    );
    if one_click {
        m.push_str("List-Unsubscribe-Post: List-Unsubscribe=One-Click\n");
    }
    m
}

/// `message` (a header block) with its `Date` replaced and a `Message-ID` added.
pub fn dated(message: &str, id: &str, date: chrono::DateTime<Utc>) -> String {
    let mut lines: Vec<String> = message
        .lines()
        .filter(|l| !l.starts_with("Date:"))
        .map(str::to_owned)
        .collect();
    lines.push(format!("Date: {}", date.to_rfc2822()));
    lines.push(format!("Message-ID: <{id}@test.example>"));
    lines.join("\n") + "\n"
}

/// The shared loopback HTTPS one-click endpoint, answering every POST with `status` or, with
/// `redirect_to`, a 307 there.
pub async fn endpoint(status: StatusCode, redirect_to: Option<&str>) -> Endpoint {
    Endpoint::answering(Answer {
        status,
        redirect_to: redirect_to.map(str::to_owned),
        ..Answer::default()
    })
    .await
}
