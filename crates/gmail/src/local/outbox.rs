//! Where the local provider's mail goes: `.eml` files in `DATA_DIR/outbox/` (written atomically,
//! mode 0600), or an SMTP server when `SMTP_URL` is set.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use lettre::address::Envelope;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use quietbox_core::ports::{OutgoingMail, ProviderError, SentMail};

/// The local provider's sending side.
#[derive(Debug)]
pub enum Outbox {
    /// Mail is written as `.eml` files into this directory.
    Folder(PathBuf),
    /// Mail is relayed to an SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl Outbox {
    /// Files in `dir` (created when the first mail is sent).
    pub fn folder(dir: impl Into<PathBuf>) -> Self {
        Outbox::Folder(dir.into())
    }

    /// SMTP relay from a URL such as `smtps://user:pass@smtp.example.com` (lettre's URL format).
    pub fn smtp(url: &str) -> Result<Self, ProviderError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| ProviderError::InvalidInput(format!("SMTP_URL is not usable: {e}")))?
            .build();
        Ok(Outbox::Smtp(transport))
    }

    /// Sends (or files) one mail.
    pub async fn send(&self, mail: OutgoingMail) -> Result<SentMail, ProviderError> {
        match self {
            Outbox::Folder(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || write_eml(&dir, &mail.raw))
                    .await
                    .map_err(|e| ProviderError::Unavailable(e.to_string()))?
            }
            Outbox::Smtp(transport) => {
                let parse = |a: &String| {
                    a.parse()
                        .map_err(|e| ProviderError::InvalidInput(format!("bad address {a:?}: {e}")))
                };
                let to = mail.to.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
                let envelope = Envelope::new(Some(parse(&mail.from)?), to)
                    .map_err(|e| ProviderError::InvalidInput(e.to_string()))?;
                let response = transport
                    .send_raw(&envelope, &mail.raw)
                    .await
                    .map_err(|e| ProviderError::Unavailable(format!("SMTP: {e}")))?;
                Ok(SentMail {
                    id: response.message().collect::<Vec<_>>().join(" "),
                })
            }
        }
    }
}

fn write_eml(dir: &std::path::Path, raw: &[u8]) -> Result<SentMail, ProviderError> {
    let failed = |e: std::io::Error| {
        ProviderError::Unavailable(format!("cannot write to outbox {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let name = format!(
        "{}-{}-{}.eml",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(failed)?;
    file.write_all(raw)
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    std::fs::rename(&temp, dir.join(&name)).map_err(failed)?;
    Ok(SentMail { id: name })
}
