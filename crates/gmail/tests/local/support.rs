//! A world per test: a temp data dir, the local provider over a given mbox, the file store, the
//! SSRF-guarded client under its loopback test policy, a manual clock, and a TLS endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{TimeZone, Utc};
use quietbox_core::Quietbox;
use quietbox_core::ports::ManualClock;
use quietbox_core::service::Settings;
use quietbox_gmail::local::{LocalCalendar, LocalMail, Outbox};
use quietbox_gmail::outbound::{OutboundPolicy, SsrfGuardedClient};
use quietbox_state::FileStore;

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

/// What the one-click endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
}

#[derive(Clone)]
struct EndpointState {
    received: Arc<Mutex<Vec<Received>>>,
    redirect_to: Option<String>,
    status: StatusCode,
}

/// A loopback HTTPS endpoint (self-signed) recording every POST.
pub struct Endpoint {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    pub async fn start(status: StatusCode, redirect_to: Option<&str>) -> Endpoint {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = EndpointState {
            received: received.clone(),
            redirect_to: redirect_to.map(str::to_owned),
            status,
        };
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state(state);
        let addr = serve_tls(app).await;
        Endpoint { addr, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn record(
    State(state): State<EndpointState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        content_type: headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        body,
    });
    match &state.redirect_to {
        Some(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", location.clone())],
        )
            .into_response(),
        None => state.status.into_response(),
    }
}

async fn serve_tls(app: Router) -> SocketAddr {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    addr
}
