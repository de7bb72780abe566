//! The local provider's busy intervals for a batch of calendars and windows, for the
//! differential test (`tests/ics/differential.py`) and by hand.
//!
//! Reads one JSON job on standard input:
//! `{"tz": "Europe/Berlin", "windows": [["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"]],
//!   "files": ["a.ics", ...]}` and writes one JSON object per file on standard output:
//! `{"file": ..., "error": null | "...", "skipped": n, "busy": [[[start, end], ...] per window]}`
//! (instants in RFC 3339 UTC, the intervals of each window sorted and merged).

use std::io::{Read, Write};
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use quietbox_gmail::local::ParsedCalendar;
use serde_json::{Value, json};

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().lock().read_to_string(&mut input) {
        eprintln!("ics_busy: cannot read standard input: {e}");
        std::process::exit(2);
    }
    let job: Value = match serde_json::from_str(&input) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("ics_busy: the job is not JSON: {e}");
            std::process::exit(2);
        }
    };
    let Some(tz) = job["tz"]
        .as_str()
        .and_then(|t| chrono_tz::Tz::from_str(t).ok())
    else {
        eprintln!("ics_busy: \"tz\" is not an IANA time zone");
        std::process::exit(2);
    };
    let parse_time = |v: &Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = job["windows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| Some((parse_time(&w[0])?, parse_time(&w[1])?)))
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in job["files"].as_array().into_iter().flatten() {
        let Some(file) = file.as_str() else { continue };
        let line = match std::fs::read(file) {
            Err(e) => json!({"file": file, "error": e.to_string()}),
            Ok(bytes) => match ParsedCalendar::parse(&String::from_utf8_lossy(&bytes)) {
                Err(e) => json!({"file": file, "error": e.to_string()}),
                Ok(calendar) => {
                    let busy: Vec<Value> = windows
                        .iter()
                        .map(|(start, end)| {
                            let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
                            for b in calendar.busy(*start, *end, tz) {
                                // Clipped to the window, as the reference's are.
                                let (s, e) = (b.start.max(*start), b.end.min(*end));
                                match merged.last_mut() {
                                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                                    _ => merged.push((s, e)),
                                }
                            }
                            Value::Array(
                                merged
                                    .into_iter()
                                    .map(|(s, e)| json!([rfc3339(s), rfc3339(e)]))
                                    .collect(),
                            )
                        })
                        .collect();
                    json!({"file": file, "error": null, "skipped": calendar.skipped(), "busy": busy})
                }
            },
        };
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
