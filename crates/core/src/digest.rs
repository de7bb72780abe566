//! The digest mail: candidates, and senders still sending after an unsubscribe, rendered as
//! text and HTML (minijinja templates; the HTML one auto-escapes, so a sender's display name
//! cannot inject markup) in one multipart message.

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use serde::Serialize;

use crate::candidates::Candidate;
use crate::compliance::ComplianceEntry;
use crate::store::{Decision, UnsubscribeMethod};

const TEXT: &str = include_str!("../templates/digest.txt");
const HTML: &str = include_str!("../templates/digest.html");

#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    address: &'a str,
    count: usize,
    unread_percent: u32,
    last_seen: String,
    method_label: &'static str,
    link: &'a str,
}

#[derive(Serialize)]
struct Violator<'a> {
    address: &'a str,
    list_id: &'a str,
    count: usize,
    first: String,
    last: String,
    unsubscribed: String,
    method_label: &'static str,
    archived: bool,
}

fn day(date: Option<DateTime<Utc>>) -> String {
    date.map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The subject line for `candidates` new candidates and `still_sending` violating senders.
pub fn subject(candidates: usize, still_sending: usize) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match (candidates, still_sending) {
        (c, 0) => format!("quietbox: {c} sender{} you may want to leave", plural(c)),
        (0, v) => format!(
            "quietbox: {v} sender{} still sending after unsubscribe",
            plural(v)
        ),
        (c, v) => format!(
            "quietbox: {c} sender{} you may want to leave, {v} still sending after unsubscribe",
            plural(c)
        ),
    }
}

/// Renders the text and HTML bodies.
pub fn render(
    candidates: &[Candidate],
    still_sending: &[ComplianceEntry],
    now: DateTime<Utc>,
) -> Result<(String, String), String> {
    let rows: Vec<Row<'_>> = candidates
        .iter()
        .map(|c| Row {
            name: c.sender.name.as_deref().unwrap_or(&c.sender.address),
            address: &c.sender.address,
            count: c.sender.count,
            unread_percent: (c.sender.unread_ratio * 100.0).round() as u32,
            last_seen: c
                .sender
                .last_seen
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "unknown".into()),
            method_label: match c.method {
                UnsubscribeMethod::OneClick => "one-click",
                UnsubscribeMethod::Mailto => "by mail",
                UnsubscribeMethod::Manual => "open this link",
            },
            link: &c.link,
        })
        .collect();
    let violators: Vec<Violator<'_>> = still_sending
        .iter()
        .map(|e| Violator {
            address: &e.sender,
            list_id: e.list_id.as_deref().unwrap_or(""),
            count: e.violations,
            first: day(e.first_violation_at),
            last: day(e.last_violation_at),
            unsubscribed: day(Some(e.unsubscribed_at)),
            method_label: match e.method {
                UnsubscribeMethod::OneClick => "one-click",
                UnsubscribeMethod::Mailto => "by mail",
                UnsubscribeMethod::Manual => "by link",
            },
            archived: e.decision == Some(Decision::AutoArchive),
        })
        .collect();
    let mut env = minijinja::Environment::new();
    env.add_template("digest.txt", TEXT)
        .map_err(|e| e.to_string())?;
    env.add_template("digest.html", HTML)
        .map_err(|e| e.to_string())?;
    let context = minijinja::context! { candidates => rows, still_sending => violators, date => now.format("%Y-%m-%d").to_string() };
    let text = env
        .get_template("digest.txt")
        .and_then(|t| t.render(&context))
        .map_err(|e| e.to_string())?;
    let html = env
        .get_template("digest.html")
        .and_then(|t| t.render(&context))
        .map_err(|e| e.to_string())?;
    Ok((text, html))
}

/// Builds the RFC 5322 digest message.
pub fn message(
    from: &str,
    to: &str,
    subject: &str,
    text: String,
    html: String,
) -> Result<lettre::Message, String> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("bad sender address {from:?}: {e}"))?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("bad digest recipient {to:?}: {e}"))?;
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| e.to_string())
}
