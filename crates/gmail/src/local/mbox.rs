//! Mail from an mbox file, read header-only and streamed line by line, so a multi-gigabyte
//! Takeout export costs one message's headers of memory, not its size.
//!
//! An mbox is an export, not a mailbox: it is never rewritten. Auto-archiving keeps the
//! [`MailProvider`] default, which only reports the messages that would leave the inbox.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use mail_parser::{HeaderName, MessageParser};
use quietbox_core::ports::{
    MailProvider, MessageMeta, OutgoingMail, ProviderError, ScanBatch, ScanProgress, ScanRequest,
    SentMail,
};

use super::outbox::Outbox;

/// The local mailbox: an mbox file plus an outbox for what quietbox sends.
#[derive(Debug, Clone)]
pub struct LocalMail {
    account: String,
    mbox: PathBuf,
    outbox: Arc<Outbox>,
}

impl LocalMail {
    /// A mailbox of `account` read from `mbox`, sending through `outbox`.
    pub fn new(account: impl Into<String>, mbox: impl Into<PathBuf>, outbox: Outbox) -> Self {
        LocalMail {
            account: account.into(),
            mbox: mbox.into(),
            outbox: Arc::new(outbox),
        }
    }
}

#[async_trait]
impl MailProvider for LocalMail {
    fn account(&self) -> &str {
        &self.account
    }

    async fn scan(
        &self,
        request: &ScanRequest,
        progress: &dyn ScanProgress,
    ) -> Result<ScanBatch, ProviderError> {
        let path = self.mbox.clone();
        let mut messages = tokio::task::spawn_blocking(move || read_mbox(&path))
            .await
            .map_err(|e| ProviderError::BadData(e.to_string()))??;
        if let Some(since) = request.since {
            messages.retain(|m| m.date.is_some_and(|d| d >= since));
        }
        if request.limit > 0 {
            messages.truncate(request.limit);
        }
        progress.report(messages.len(), Some(messages.len()));
        // A file has no change history: every scan is a full listing.
        Ok(ScanBatch {
            messages,
            removed: Vec::new(),
            cursor: None,
            full: true,
        })
    }

    async fn send(&self, mail: OutgoingMail) -> Result<SentMail, ProviderError> {
        self.outbox.send(mail).await
    }

    async fn check(&self) -> Result<(), ProviderError> {
        std::fs::File::open(&self.mbox).map(|_| ()).map_err(|e| {
            ProviderError::BadData(format!("cannot open mbox {}: {e}", self.mbox.display()))
        })
    }
}

/// Reads the metadata of every message of an mbox file.
pub fn read_mbox(path: &Path) -> Result<Vec<MessageMeta>, ProviderError> {
    let file = std::fs::File::open(path)
        .map_err(|e| ProviderError::BadData(format!("cannot open mbox {}: {e}", path.display())))?;
    read_messages(std::io::BufReader::with_capacity(256 * 1024, file))
        .map_err(|e| ProviderError::BadData(format!("cannot read mbox {}: {e}", path.display())))
}

/// Streams an mbox: only the current message's header block is held in memory; body lines are
/// read and dropped. A message starts at a line beginning with `From ` (bodies quote such lines
/// as `>From `).
pub fn read_messages(mut reader: impl BufRead) -> std::io::Result<Vec<MessageMeta>> {
    let parser = header_parser();
    let mut messages = Vec::new();
    let mut line = Vec::with_capacity(1024);
    let mut headers: Vec<u8> = Vec::new();
    let mut in_headers = false;
    let (mut offset, mut start, mut index) = (0usize, 0usize, 0usize);
    loop {
        if !in_headers {
            offset += skip_body(&mut reader)?;
        }
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if line.starts_with(b"From ") {
            if in_headers || !headers.is_empty() {
                messages.extend(parse(&parser, &headers, start, index));
                index += 1;
            }
            headers.clear();
            in_headers = true;
            start = offset;
        } else if in_headers {
            if line == b"\n" || line == b"\r\n" {
                in_headers = false;
            } else if headers.len() < MAX_HEADER_BYTES {
                headers.extend_from_slice(&line);
            }
        }
        offset += read;
    }
    if in_headers || !headers.is_empty() {
        messages.extend(parse(&parser, &headers, start, index));
    }
    Ok(messages)
}

/// Skips body lines inside the reader's buffer, without copying them line by line: stops at
/// (without consuming) the next line that starts with `From `, at the end of the input, or when
/// too little is buffered to tell, leaving that line to the line-by-line loop. Returns the bytes
/// skipped. Called at the start of a line. Copying every body line was a third of a scan's time.
fn skip_body(reader: &mut impl BufRead) -> std::io::Result<usize> {
    let mut skipped = 0;
    let mut at_line_start = true;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() || (at_line_start && (buf.len() < 5 || buf.starts_with(b"From "))) {
            return Ok(skipped);
        }
        if let Some(i) = memchr::memmem::find(buf, b"\nFrom ") {
            reader.consume(i + 1);
            return Ok(skipped + i + 1);
        }
        // Up to the last complete line, or the whole buffer inside one long line.
        let n = match memchr::memrchr(b'\n', buf) {
            Some(i) => {
                at_line_start = true;
                i + 1
            }
            None => {
                at_line_start = false;
                buf.len()
            }
        };
        reader.consume(n);
        skipped += n;
    }
}

/// A header block larger than this is cut (hostile or broken input must not eat memory).
const MAX_HEADER_BYTES: usize = 256 * 1024;

/// A parser that decodes only the fields read as values below; every other header (To, List-*,
/// Received…) stays raw and is read by offset. Decoding them all was about a third of a scan's
/// time in `cargo xtask bench`'s profile.
fn header_parser() -> MessageParser {
    MessageParser::new()
        .header_address(HeaderName::From)
        .header_date(HeaderName::Date)
        .header_id(HeaderName::MessageId)
        .header_text(HeaderName::Subject)
        .default_header_raw()
}

fn parse(
    parser: &MessageParser,
    headers: &[u8],
    offset: usize,
    index: usize,
) -> Option<MessageMeta> {
    if headers.is_empty() {
        return None;
    }
    let parsed = parser.parse_headers(headers)?;
    let raw = |name: &str| {
        parsed
            .header_raw(name)
            .map(unfold)
            .filter(|v| !v.is_empty())
    };
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|addr| {
            let address = addr.address.as_deref()?;
            Some(match addr.name.as_deref() {
                Some(name) if !name.is_empty() => {
                    format!("\"{}\" <{address}>", name.replace('"', ""))
                }
                _ => address.to_owned(),
            })
        })
        .or_else(|| raw("From"))
        .unwrap_or_default();
    let labels: Vec<String> = raw("X-Gmail-Labels")
        .map(|l| {
            l.split(',')
                .map(|s| gmail_label(s.trim()))
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let unread = labels.iter().any(|l| l == "UNREAD");
    let date = parsed
        .date()
        .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single());
    let id = parsed
        .message_id()
        .map(|id| id.trim_matches(|c| c == '<' || c == '>').to_owned())
        .unwrap_or_else(|| format!("mbox-{index}-{offset}"));
    Some(MessageMeta {
        id,
        thread_id: None,
        from,
        to: raw("To"),
        subject: parsed.subject().map(str::to_owned),
        date,
        list_id: raw("List-Id"),
        list_unsubscribe: raw("List-Unsubscribe"),
        list_unsubscribe_post: raw("List-Unsubscribe-Post"),
        precedence: raw("Precedence"),
        auto_submitted: raw("Auto-Submitted"),
        labels,
        unread,
    })
}

/// Takeout's `X-Gmail-Labels` names, as Gmail API label ids.
fn gmail_label(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "unread" => "UNREAD".into(),
        "inbox" => "INBOX".into(),
        "sent" => "SENT".into(),
        "important" => "IMPORTANT".into(),
        "category promotions" => "CATEGORY_PROMOTIONS".into(),
        "category updates" => "CATEGORY_UPDATES".into(),
        "category social" => "CATEGORY_SOCIAL".into(),
        "category forums" => "CATEGORY_FORUMS".into(),
        "category personal" => "CATEGORY_PERSONAL".into(),
        _ => name.to_owned(),
    }
}

fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBOX: &str = "From a@example.com Mon Jan  5 09:00:00 2026\n\
From: \"Weekly News\" <news@news.example.com>\n\
To: me@example.org\n\
Subject: Issue 12\n\
Date: Mon, 05 Jan 2026 09:00:00 +0000\n\
Message-ID: <n12@news.example.com>\n\
List-Id: Weekly <weekly.news.example.com>\n\
List-Unsubscribe: <https://news.example.com/u/abc>,\n <mailto:leave@news.example.com>\n\
List-Unsubscribe-Post: List-Unsubscribe=One-Click\n\
X-Gmail-Labels: Inbox,Unread,Category Promotions\n\
\n\
Body line\n\
From the archive: this body line starts with From but is not a separator\n\
\n\
From b@example.org Tue Jan  6 10:00:00 2026\n\
From: alice@example.org\n\
Subject: lunch?\n\
Date: Tue, 06 Jan 2026 10:00:00 +0100\n\
\n\
See you\n";

    #[test]
    fn messages_split_the_same_with_any_buffer_size() {
        let whole = read_messages(MBOX.as_bytes()).unwrap();
        for capacity in 1..40 {
            let reader = std::io::BufReader::with_capacity(capacity, MBOX.as_bytes());
            assert_eq!(
                read_messages(reader).unwrap(),
                whole,
                "buffer of {capacity} bytes"
            );
        }
    }

    #[test]
    fn headers_are_read_and_bodies_skipped() {
        let messages = read_messages(MBOX.as_bytes()).unwrap();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        let news = &messages[0];
        assert_eq!(news.id, "n12@news.example.com");
        assert_eq!(news.from, "\"Weekly News\" <news@news.example.com>");
        assert_eq!(
            news.list_unsubscribe.as_deref(),
            Some("<https://news.example.com/u/abc>, <mailto:leave@news.example.com>")
        );
        assert!(news.unread);
        assert!(news.labels.contains(&"CATEGORY_PROMOTIONS".to_owned()));
        assert_eq!(
            messages[1].date,
            Some(Utc.with_ymd_and_hms(2026, 1, 6, 9, 0, 0).unwrap())
        );
        assert!(!messages[1].unread);
        assert!(messages[1].id.starts_with("mbox-1-"));
    }
}
