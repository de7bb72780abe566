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
///
/// A large file is cut into one piece per core, each starting at a `From ` separator line, and
/// the pieces are read in parallel: header parsing is CPU-bound, and a Takeout export of several
/// gigabytes is the case where a scan is slow. The result is the same as one sequential read,
/// in the same order and with the same ids.
pub fn read_mbox(path: &Path) -> Result<Vec<MessageMeta>, ProviderError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS));
    read_in_pieces(path, workers, PARALLEL_FROM_BYTES)
}

fn read_in_pieces(
    path: &Path,
    workers: usize,
    parallel_from: u64,
) -> Result<Vec<MessageMeta>, ProviderError> {
    let cannot = |e: std::io::Error| {
        ProviderError::BadData(format!("cannot read mbox {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path)
        .map_err(|e| ProviderError::BadData(format!("cannot open mbox {}: {e}", path.display())))?;
    let len = file.metadata().map_err(cannot)?.len();
    let bounds = if len >= parallel_from {
        piece_bounds(&file, len, workers).map_err(cannot)?
    } else {
        vec![0, len]
    };
    if bounds.len() <= 2 {
        // Looking for cuts moved the file's cursor.
        let mut file = file;
        std::io::Seek::rewind(&mut file).map_err(cannot)?;
        return read_messages(std::io::BufReader::with_capacity(READ_BUFFER, file)).map_err(cannot);
    }
    let pieces = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (start, end) = (w[0], w[1]);
                scope.spawn(move || read_piece(path, start, end))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("mbox reader panicked")))
            })
            .collect::<std::io::Result<Vec<Piece>>>()
    })
    .map_err(cannot)?;
    let mut messages = Vec::with_capacity(pieces.iter().map(|p| p.messages.len()).sum());
    let mut blocks_before = 0;
    for piece in pieces {
        let first = messages.len();
        messages.extend(piece.messages);
        for unnamed in piece.unnamed {
            messages[first + unnamed.position].id =
                fallback_id(blocks_before + unnamed.block, unnamed.offset);
        }
        blocks_before += piece.blocks;
    }
    Ok(messages)
}

/// Files smaller than this are read by one thread: splitting costs more than it saves.
const PARALLEL_FROM_BYTES: u64 = 8 * 1024 * 1024;
const MAX_WORKERS: usize = 8;
const READ_BUFFER: usize = 256 * 1024;

/// Byte offsets cutting the file into about `workers` pieces, each piece starting at the start
/// of the file or of a `From ` line: `[0, c1, c2, …, len]`. A cut with no separator after it is
/// dropped, so a file with one huge message stays one piece.
fn piece_bounds(file: &std::fs::File, len: u64, workers: usize) -> std::io::Result<Vec<u64>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut bounds = vec![0];
    if workers < 2 {
        bounds.push(len);
        return Ok(bounds);
    }
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    for k in 1..workers as u64 {
        let nominal = len / workers as u64 * k;
        let last = *bounds.last().unwrap_or(&0);
        if nominal <= last {
            continue;
        }
        // Look from one byte before the nominal cut, so a separator right at it is found.
        let from = nominal - 1;
        reader.seek(SeekFrom::Start(from))?;
        let mut window = Vec::new();
        let mut found = None;
        let mut scanned = from;
        loop {
            let mut chunk = [0u8; 64 * 1024];
            let n = reader.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            // Keep the last 5 bytes of the previous chunk so a separator across chunks is seen.
            let keep = window.len().min(5);
            let base = scanned - keep as u64;
            window.drain(..window.len() - keep);
            window.extend_from_slice(&chunk[..n]);
            if let Some(i) = memchr::memmem::find(&window, b"\nFrom ") {
                found = Some(base + i as u64 + 1);
                break;
            }
            scanned += n as u64;
        }
        match found {
            Some(cut) if cut > last && cut < len => bounds.push(cut),
            _ => break,
        }
    }
    bounds.push(len);
    Ok(bounds)
}

/// What one piece of the file held.
struct Piece {
    messages: Vec<MessageMeta>,
    /// Messages without a `Message-ID`, whose fallback id needs the global message index.
    unnamed: Vec<Unnamed>,
    /// How many messages (separator blocks) the piece started, counted like `read_messages`.
    blocks: usize,
}

struct Unnamed {
    position: usize,
    block: usize,
    offset: usize,
}

fn read_piece(path: &Path, start: u64, end: u64) -> std::io::Result<Piece> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let reader = std::io::BufReader::with_capacity(READ_BUFFER, file.take(end - start));
    let offset = usize::try_from(start).map_err(std::io::Error::other)?;
    scan_blocks(reader, offset)
}

/// Streams an mbox: only the current message's header block is held in memory; body lines are
/// read and dropped. A message starts at a line beginning with `From ` (bodies quote such lines
/// as `>From `).
pub fn read_messages(reader: impl BufRead) -> std::io::Result<Vec<MessageMeta>> {
    let piece = scan_blocks(reader, 0)?;
    let mut messages = piece.messages;
    for unnamed in piece.unnamed {
        messages[unnamed.position].id = fallback_id(unnamed.block, unnamed.offset);
    }
    Ok(messages)
}

/// The id of a message without a `Message-ID`: stable for the same file.
fn fallback_id(block: usize, offset: usize) -> String {
    format!("mbox-{block}-{offset}")
}

/// The sequential reader behind [`read_messages`] and each parallel piece. `base` is the piece's
/// offset in the file, so message offsets stay absolute.
fn scan_blocks(mut reader: impl BufRead, base: usize) -> std::io::Result<Piece> {
    let parser = header_parser();
    let mut piece = Piece {
        messages: Vec::new(),
        unnamed: Vec::new(),
        blocks: 0,
    };
    let mut line = Vec::with_capacity(1024);
    let mut headers: Vec<u8> = Vec::new();
    let mut in_headers = false;
    let (mut offset, mut start) = (base, base);
    let finish = |piece: &mut Piece, headers: &[u8], start: usize| {
        if let Some((meta, named)) = parse(&parser, headers) {
            if !named {
                piece.unnamed.push(Unnamed {
                    position: piece.messages.len(),
                    block: piece.blocks,
                    offset: start,
                });
            }
            piece.messages.push(meta);
        }
        piece.blocks += 1;
    };
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
                finish(&mut piece, &headers, start);
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
        finish(&mut piece, &headers, start);
    }
    Ok(piece)
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

/// The metadata of one header block, and whether it had a `Message-ID` (without one, the id
/// is left empty for the caller to fill in).
fn parse(parser: &MessageParser, headers: &[u8]) -> Option<(MessageMeta, bool)> {
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
        .map(|id| id.trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace()))
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let named = id.is_some();
    Some((
        MessageMeta {
            id: id.unwrap_or_default(),
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
        },
        named,
    ))
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

    /// The sample mailbox, repeated with and without `Message-ID`s, read whole and in pieces.
    #[test]
    fn a_file_read_in_pieces_gives_the_same_messages_as_one_read() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(MBOX);
            // Messages with no Message-ID get positional ids, which must not depend on pieces.
            text.push_str(&format!(
                "From c@example.org Wed Jan  7 10:00:00 2026\nFrom: c{i}@example.org\n\n{}\n",
                "x".repeat(i * 7)
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.mbox");
        std::fs::write(&path, &text).unwrap();
        let whole = read_messages(text.as_bytes()).unwrap();
        assert_eq!(whole.len(), 600);
        for workers in [1, 2, 3, 7, 64, 5000] {
            let pieces = read_in_pieces(&path, workers, 0).unwrap();
            assert_eq!(pieces, whole, "{workers} workers");
        }
        // Below the size threshold, one sequential read.
        assert_eq!(read_in_pieces(&path, 4, u64::MAX).unwrap(), whole);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any mix of separators, headers, blank lines and quoted `>From ` bodies splits the
        /// same in pieces as in one read.
        #[test]
        fn any_mbox_splits_the_same_in_pieces(
            lines in proptest::collection::vec(
                proptest::sample::select(vec![
                    "From x@example.org Mon Jan  5 09:00:00 2026\n",
                    "From: a@example.org\n",
                    "Message-ID: <m@example.org>\n",
                    "List-Id: <l.example.org>\n",
                    "\n",
                    "\r\n",
                    "body From inside\n",
                    ">From quoted\n",
                    "From ",
                    "no newline",
                ]),
                0..120,
            ),
            workers in 1usize..9,
        ) {
            let text = lines.concat();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("box.mbox");
            std::fs::write(&path, &text).unwrap();
            let whole = read_messages(text.as_bytes()).unwrap();
            proptest::prop_assert_eq!(read_in_pieces(&path, workers, 0).unwrap(), whole);
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
