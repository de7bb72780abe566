//! Logging and metrics set-up: one `tracing` subscriber (`LOG_FORMAT=text|json`, `RUST_LOG`
//! filter) and one Prometheus recorder whose handle renders `/metrics`.
//!
//! Installing either twice is harmless (tests build many apps in one process): the first wins.
//!
//! Text logs escape control characters in every message and field value ([`escape_controls`]):
//! a client-controlled value (a path segment, a `From:` address, a token's subject) holding CR,
//! LF or ESC cannot forge a log line or drive the reader's terminal. JSON logs are escaped by
//! JSON itself.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

use crate::config::LogFormat;

/// Buckets of `http_request_duration_seconds`, dense around the p90 SLO.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the global subscriber writing to stderr. Returns `false` if one was already set.
/// Text lines are coloured only on a terminal: a log file or collector gets plain text (and the
/// request path does not spend time on escape codes nobody sees).
pub fn init_tracing(format: LogFormat) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .fmt_fields(debug_fn(write_escaped_field).delimited(" "))
            .try_init()
            .is_ok(),
        LogFormat::Json => builder.json().flatten_event(true).try_init().is_ok(),
    }
}

/// One field of a text log line, as tracing-subscriber's default writes it (`name=value`, the
/// message bare, `log.*` metadata of `log` records left out) but with control characters
/// escaped.
fn write_escaped_field(
    writer: &mut Writer<'_>,
    field: &tracing::field::Field,
    value: &dyn fmt::Debug,
) -> fmt::Result {
    let name = field.name();
    if name.starts_with("log.") {
        return Ok(());
    }
    let mut out = EscapeControls(writer);
    if name == "message" {
        write!(out, "{value:?}")
    } else {
        write!(out, "{}={value:?}", name.strip_prefix("r#").unwrap_or(name))
    }
}

/// A `fmt::Write` that escapes what [`needs_escape`] names on its way through.
struct EscapeControls<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for EscapeControls<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some((at, c)) = rest.char_indices().find(|(_, c)| needs_escape(*c)) {
            self.0.write_str(&rest[..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "{}", other.escape_unicode())?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Control characters (C0 with CR, LF, ESC; DEL; C1, which holds a one-byte CSI) and the
/// Unicode line and paragraph separators.
fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `text` with control characters escaped as text logs write them (`\r`, `\n`, `\t`,
/// `\u{1b}`…); borrowed when there is nothing to escape.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    let _ = EscapeControls(&mut escaped).write_str(text);
    std::borrow::Cow::Owned(escaped)
}

/// How often the recorder folds pending histogram samples into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use, with a thread keeping its
/// memory bounded.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Histogram samples wait in the recorder until they are folded into their buckets,
            // which only rendering /metrics or an upkeep does: with nobody scraping, every
            // request left 8 bytes behind for good (the 60 s soak saw RSS climb ~10 MB a minute).
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            // Fails only when another recorder is installed; then ours renders nothing,
            // which a test would notice at once.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("plain text é"), "plain text é");
        assert_eq!(
            escape_controls("a\r\nFORGED\u{1b}[31m\u{7f}\u{9b}\u{2028}"),
            "a\\r\\nFORGED\\u{1b}[31m\\u{7f}\\u{9b}\\u{2028}"
        );
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_text_log_line_carries_no_raw_control_character_from_any_field() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .fmt_fields(debug_fn(write_escaped_field).delimited(" "))
            .finish();
        let forged = "a\r\n2026-01-01T00:00:00Z  INFO FORGED line\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(sender = %forged, subject = forged, count = 3, "decision for {forged}");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line = text.strip_suffix('\n').expect("one line");
        assert!(
            !line.contains(['\r', '\n', '\u{1b}']),
            "raw control character in {line:?}"
        );
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(line.contains("decision for a\\r\\n2026"), "{line}");
        assert!(line.contains(" sender=a\\r\\n2026"), "{line}");
        assert!(line.contains(" count=3"), "{line}");
        assert!(line.contains("\\u{1b}[2J"), "{line}");
    }
}
