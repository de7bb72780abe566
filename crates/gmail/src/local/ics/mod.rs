//! Calendar from `.ics` files: busy time as Google freeBusy gives it (transparent and cancelled
//! events and instances are free), with recurrences expanded as RFC 5545 says (RRULE, RDATE,
//! EXDATE, RECURRENCE-ID overrides incl. `RANGE=THISANDFUTURE`, DURATION, DST gaps and
//! overlaps), time zones as real producers write them (IANA, Windows and "(UTC±hh:mm) City"
//! names via `calcard`, `X-WR-TIMEZONE`), and leniency as real clients have it: a line or
//! component that cannot be read is skipped with one warning per file version (counted in
//! `calendar_lines_skipped_total`); only a file that is not iCalendar at all is refused.
//!
//! Each file is parsed once per version (its modification time and size), not per query.

mod expand;
mod parse;
mod vtimezone;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use quietbox_core::ports::{BusyInterval, CalendarProvider, ProviderError};

/// A calendar made of one or more `.ics` files (`LOCAL_ICS`, comma-separated), each parsed once
/// per version of the file.
#[derive(Debug)]
pub struct LocalCalendar {
    paths: Vec<PathBuf>,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    calendar: Arc<parse::Calendar>,
}

impl LocalCalendar {
    /// The calendar of the file at `path`, or of several files when `path` is a
    /// comma-separated list (as `LOCAL_ICS` is written).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path: PathBuf = path.into();
        let paths = match path.to_str() {
            Some(text) if text.contains(',') => text
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
            _ => vec![path],
        };
        Self::from_paths(paths)
    }

    /// The calendar made of the files at `paths`.
    pub fn from_paths(paths: Vec<PathBuf>) -> Self {
        LocalCalendar {
            paths,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The paths read, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    async fn calendar(&self, path: &Path) -> Result<Arc<parse::Calendar>, ProviderError> {
        let unreadable = |e: std::io::Error| {
            ProviderError::BadData(format!("cannot read calendar {}: {e}", path.display()))
        };
        let meta = tokio::fs::metadata(path).await.map_err(unreadable)?;
        let (modified, len) = (meta.modified().ok(), meta.len());
        if let Some(hit) = self.lock().get(path)
            && hit.modified == modified
            && hit.len == len
            && modified.is_some()
        {
            return Ok(hit.calendar.clone());
        }
        let bytes = tokio::fs::read(path).await.map_err(unreadable)?;
        let owned = path.to_path_buf();
        let calendar = tokio::task::spawn_blocking(move || parse_file(&owned, &bytes))
            .await
            .map_err(|e| ProviderError::BadData(format!("calendar {}: {e}", path.display())))??;
        let calendar = Arc::new(calendar);
        self.lock().insert(
            path.to_path_buf(),
            Cached {
                modified,
                len,
                calendar: calendar.clone(),
            },
        );
        Ok(calendar)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Parses one file's bytes (invalid UTF-8 replaced), warning once about skipped lines.
fn parse_file(path: &Path, bytes: &[u8]) -> Result<parse::Calendar, ProviderError> {
    let text = String::from_utf8_lossy(bytes);
    let calendar = parse::parse(&text).map_err(|e| {
        ProviderError::BadData(format!(
            "calendar {}, line {}: {}",
            path.display(),
            e.line,
            e.text
        ))
    })?;
    if calendar.skipped > 0 {
        metrics::counter!("calendar_lines_skipped_total").increment(calendar.skipped as u64);
        tracing::warn!(
            file = %path.display(),
            skipped = calendar.skipped,
            first = calendar.first_skipped.as_deref().unwrap_or_default(),
            "calendar has lines or components that cannot be read; they are skipped"
        );
    }
    Ok(calendar)
}

#[async_trait]
impl CalendarProvider for LocalCalendar {
    async fn busy(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        tz: &str,
    ) -> Result<Vec<BusyInterval>, ProviderError> {
        let tz = Tz::from_str(tz)
            .map_err(|_| ProviderError::InvalidInput(format!("unknown time zone {tz:?}")))?;
        let mut busy = Vec::new();
        for path in &self.paths {
            let calendar = self.calendar(path).await?;
            expand::busy(&calendar, start, end, tz, &mut busy);
        }
        busy.sort();
        Ok(busy)
    }
}

/// Busy intervals of an iCalendar text overlapping `[start, end)`, sorted; floating times and
/// dates are read in `tz`.
pub fn busy_from_ics(
    text: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    tz: Tz,
) -> Result<Vec<BusyInterval>, ProviderError> {
    let calendar = parse_file(Path::new("(text)"), text.as_bytes())?;
    let mut busy = Vec::new();
    expand::busy(&calendar, start, end, tz, &mut busy);
    busy.sort();
    Ok(busy)
}

/// A parsed calendar, for callers that query one text many times (benchmarks, the
/// differential test's entry point).
#[derive(Debug)]
pub struct ParsedCalendar(parse::Calendar);

impl ParsedCalendar {
    /// Parses `text` (lenient; refuses only a text that is not iCalendar).
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        parse_file(Path::new("(text)"), text.as_bytes()).map(ParsedCalendar)
    }

    /// Lines or components skipped while parsing.
    pub fn skipped(&self) -> usize {
        self.0.skipped
    }

    /// Busy intervals overlapping `[start, end)`, sorted.
    pub fn busy(&self, start: DateTime<Utc>, end: DateTime<Utc>, tz: Tz) -> Vec<BusyInterval> {
        let mut busy = Vec::new();
        expand::busy(&self.0, start, end, tz, &mut busy);
        busy.sort();
        busy
    }
}
