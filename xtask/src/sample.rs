//! `cargo xtask gen-sample`: writes `data/sample/inbox.mbox` and `data/sample/calendar.ics`
//! from a fixed seed, so the sample is reproducible and reviewable as a diff.
//!
//! The mailbox mixes what a real inbox holds: newsletters with RFC 8058 one-click, newsletters
//! with a web link only, mailto-only lists, machine notifications, personal mail, and messages
//! with malformed headers. Only `example.com`/`example.org`/`example.net` domains are used.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// A small deterministic PRNG (xorshift64*), so xtask needs no `rand`.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy)]
enum Kind {
    OneClick,
    WebOnly,
    MailtoOnly,
    Notification,
    Personal,
}

pub(crate) struct Sender {
    name: &'static str,
    address: &'static str,
    kind: Kind,
    /// Messages over the 90 days.
    pub(crate) volume: u64,
    /// Percent left unread.
    unread: u64,
}

pub(crate) const SENDERS: &[Sender] = &[
    Sender {
        name: "Daily Deals",
        address: "deals@shop.example.com",
        kind: Kind::OneClick,
        volume: 40,
        unread: 95,
    },
    Sender {
        name: "Tech Weekly",
        address: "newsletter@techweekly.example.com",
        kind: Kind::OneClick,
        volume: 13,
        unread: 40,
    },
    Sender {
        name: "Travel Offers",
        address: "offers@travel.example.net",
        kind: Kind::OneClick,
        volume: 25,
        unread: 90,
    },
    Sender {
        name: "Recipes of the Week",
        address: "hello@recipes.example.org",
        kind: Kind::OneClick,
        volume: 12,
        unread: 70,
    },
    Sender {
        name: "Gadget Store",
        address: "promo@gadgets.example.com",
        kind: Kind::OneClick,
        volume: 30,
        unread: 100,
    },
    Sender {
        name: "City Events",
        address: "events@city.example.org",
        kind: Kind::OneClick,
        volume: 8,
        unread: 25,
    },
    Sender {
        name: "Fashion Outlet",
        address: "news@fashion.example.net",
        kind: Kind::OneClick,
        volume: 22,
        unread: 98,
    },
    Sender {
        name: "Book Club",
        address: "club@books.example.com",
        kind: Kind::WebOnly,
        volume: 6,
        unread: 50,
    },
    Sender {
        name: "Old Forum Digest",
        address: "digest@forum.example.net",
        kind: Kind::WebOnly,
        volume: 14,
        unread: 100,
    },
    Sender {
        name: "Charity Updates",
        address: "updates@charity.example.org",
        kind: Kind::WebOnly,
        volume: 5,
        unread: 80,
    },
    Sender {
        name: "Linux Users List",
        address: "lug@lists.example.org",
        kind: Kind::MailtoOnly,
        volume: 18,
        unread: 85,
    },
    Sender {
        name: "Alumni Association",
        address: "alumni@university.example.edu",
        kind: Kind::MailtoOnly,
        volume: 4,
        unread: 100,
    },
    Sender {
        name: "Garden Society",
        address: "members@garden.example.com",
        kind: Kind::MailtoOnly,
        volume: 7,
        unread: 60,
    },
    Sender {
        name: "Bank",
        address: "no-reply@bank.example.com",
        kind: Kind::Notification,
        volume: 12,
        unread: 20,
    },
    Sender {
        name: "Code Host",
        address: "notifications@code.example.com",
        kind: Kind::Notification,
        volume: 20,
        unread: 50,
    },
    Sender {
        name: "Parcel Service",
        address: "tracking@parcels.example.net",
        kind: Kind::Notification,
        volume: 9,
        unread: 10,
    },
    Sender {
        name: "Cloud Alerts",
        address: "alerts@cloud.example.com",
        kind: Kind::Notification,
        volume: 11,
        unread: 30,
    },
    Sender {
        name: "Alice Martin",
        address: "alice@example.org",
        kind: Kind::Personal,
        volume: 10,
        unread: 0,
    },
    Sender {
        name: "Bob Chen",
        address: "bob.chen@example.net",
        kind: Kind::Personal,
        volume: 7,
        unread: 10,
    },
    Sender {
        name: "Carol Diaz",
        address: "carol@example.com",
        kind: Kind::Personal,
        volume: 6,
        unread: 0,
    },
    Sender {
        name: "Dan Okafor",
        address: "dan.okafor@example.org",
        kind: Kind::Personal,
        volume: 5,
        unread: 20,
    },
    Sender {
        name: "Mum",
        address: "mum@family.example.net",
        kind: Kind::Personal,
        volume: 8,
        unread: 0,
    },
];

const SUBJECTS: &[&str] = &[
    "This week's picks",
    "Don't miss out",
    "Your update",
    "News and notes",
    "Last chance",
    "Hello again",
    "Quick question",
];

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 → (year, month 1-12, day).
fn civil(days: i64) -> (i64, usize, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month as usize, day)
}

fn rfc2822(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    format!(
        "{weekday}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        MONTHS[m - 1],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn mbox_date(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    format!(
        "{weekday} {} {d:>2} {:02}:{:02}:{:02} {y}",
        MONTHS[m - 1],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// 2026-11-20T00:00:00Z, the end of the sample's 90 days.
pub(crate) const END: i64 = 1_795_132_800;

fn list_headers(out: &mut String, sender: &Sender, n: u64) {
    let domain = sender.address.split('@').nth(1).unwrap_or("example.com");
    let list = sender.address.split('@').next().unwrap_or("list");
    match sender.kind {
        Kind::OneClick => {
            let _ = writeln!(out, "List-Id: {} <{list}.{domain}>", sender.name);
            let _ = writeln!(
                out,
                "List-Unsubscribe: <https://{domain}/unsubscribe/{list}/t{n:04}>,\n <mailto:unsubscribe@{domain}?subject=unsubscribe%20{list}>"
            );
            let _ = writeln!(out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click");
            let _ = writeln!(out, "Precedence: bulk");
        }
        Kind::WebOnly => {
            let _ = writeln!(out, "List-Id: <{list}.{domain}>");
            let _ = writeln!(
                out,
                "List-Unsubscribe: <https://{domain}/account/email-preferences>"
            );
        }
        Kind::MailtoOnly => {
            let _ = writeln!(out, "List-Id: {} <{list}.{domain}>", sender.name);
            let _ = writeln!(
                out,
                "List-Unsubscribe: <mailto:{list}-leave@{domain}?subject=unsubscribe>"
            );
            let _ = writeln!(out, "Precedence: list");
        }
        Kind::Notification => {
            let _ = writeln!(out, "Auto-Submitted: auto-generated");
        }
        Kind::Personal => {}
    }
}

/// One message of `sender` (its `n`th, sent at `at`): the mbox `From ` line, realistic headers
/// for the sender's kind, and a short body. `cargo xtask bench` reuses it for its large mbox.
pub(crate) fn message(rng: &mut Rng, sender: &Sender, n: u64, at: i64) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "From {} {}", sender.address, mbox_date(at));
    let _ = writeln!(m, "From: \"{}\" <{}>", sender.name, sender.address);
    let _ = writeln!(m, "To: Sam Owner <owner@example.org>");
    let _ = writeln!(
        m,
        "Subject: {}",
        SUBJECTS[rng.below(SUBJECTS.len() as u64) as usize]
    );
    let _ = writeln!(m, "Date: {}", rfc2822(at));
    let _ = writeln!(
        m,
        "Message-ID: <{at}.{n}.{}>",
        sender.address.replace('@', "=")
    );
    list_headers(&mut m, sender, n);
    let mut labels = vec!["Inbox"];
    labels.push(match sender.kind {
        Kind::OneClick | Kind::WebOnly => "Category Promotions",
        Kind::MailtoOnly => "Category Forums",
        Kind::Notification => "Category Updates",
        Kind::Personal => "Category Personal",
    });
    if rng.chance(sender.unread) {
        labels.push("Unread");
    }
    let _ = writeln!(m, "X-Gmail-Labels: {}", labels.join(","));
    let _ = writeln!(
        m,
        "\nHello,\n\nGreetings from the desk of {}: this is message {n}.\n>From a quoted line.\n",
        sender.name
    );
    m
}

fn mbox(rng: &mut Rng) -> (String, usize) {
    let mut messages: Vec<(i64, String)> = Vec::new();
    for sender in SENDERS {
        for n in 0..sender.volume {
            let at = END - 1 - rng.below(90 * 86_400) as i64;
            messages.push((at, message(rng, sender, n, at)));
        }
    }
    // Malformed headers: what a parser must survive.
    let broken = [
        "From: \nSubject: no sender at all\nDate: Mon, 02 Nov 2026 10:00:00 +0000\n",
        "From: not-an-address\nSubject: sender without @\nDate: yesterday-ish\n",
        "From: \"Broken Date\" <broken-date@example.com>\nSubject: bad date\nDate: Tue, 99 Foo 2026 25:61:00 +9999\n",
        "From: junk-list@example.net\nSubject: junk unsubscribe header\nList-Unsubscribe: please remove me, thanks\nDate: Wed, 04 Nov 2026 08:00:00 +0000\n",
        "From: =?UTF-8?B?w4lsb2TDrWU=?= <elodie@example.org>\nSubject: =?UTF-8?Q?Caf=C3=A9?=\nDate: Thu, 05 Nov 2026 12:00:00 +0100\n",
        "From: folded@example.com\nSubject: folded\n header\nList-Unsubscribe:\n <https://folded.example.com/u>\nList-Unsubscribe-Post:\n List-Unsubscribe=One-Click\nDate: Fri, 06 Nov 2026 09:00:00 +0000\n",
        "From: \"Evil\" <evil@example.com>\nSubject: ssrf bait\nList-Unsubscribe: <https://169.254.169.254/latest/meta-data>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\nDate: Sat, 07 Nov 2026 09:00:00 +0000\n",
        "From: lonely-header-without-body@example.com",
    ];
    for (i, headers) in broken.iter().enumerate() {
        let at = END - 86_400 * (20 + i as i64);
        messages.push((
            at,
            format!(
                "From MAILER-DAEMON {}\n{headers}\n\nbody {i}\n",
                mbox_date(at)
            ),
        ));
    }
    messages.sort_by_key(|(at, _)| *at);
    let count = messages.len();
    (
        messages
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
            .join("\n"),
        count,
    )
}

const CALENDAR: &str = "BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//quietbox//sample//EN\r
BEGIN:VEVENT\r
UID:standup@quietbox.example\r
SUMMARY:Team standup\r
DTSTART;TZID=Europe/Paris:20260907T093000\r
DTEND;TZID=Europe/Paris:20260907T094500\r
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:one-on-one@quietbox.example\r
SUMMARY:1:1 with manager\r
DTSTART;TZID=Europe/Paris:20260910T140000\r
DTEND;TZID=Europe/Paris:20260910T143000\r
RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TH\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:review@quietbox.example\r
SUMMARY:Quarterly review\r
DTSTART:20261125T130000Z\r
DTEND:20261125T150000Z\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:dentist@quietbox.example\r
SUMMARY:Dentist\r
DTSTART;TZID=Europe/Paris:20261126T100000\r
DTEND;TZID=Europe/Paris:20261126T110000\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:offsite@quietbox.example\r
SUMMARY:Team offsite\r
DTSTART;VALUE=DATE:20261127\r
DTEND;VALUE=DATE:20261128\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:lunch@quietbox.example\r
SUMMARY:Lunch (free)\r
DTSTART;TZID=Europe/Paris:20261124T120000\r
DTEND;TZID=Europe/Paris:20261124T130000\r
TRANSP:TRANSPARENT\r
END:VEVENT\r
END:VCALENDAR\r
";

/// Writes both sample files under `dir`.
pub fn generate(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mbox, count) = mbox(&mut rng);
    std::fs::write(dir.join("inbox.mbox"), mbox).context("cannot write inbox.mbox")?;
    std::fs::write(dir.join("calendar.ics"), CALENDAR).context("cannot write calendar.ics")?;
    eprintln!(
        "wrote {count} messages to {} and a calendar",
        dir.join("inbox.mbox").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rendered_like_rfc_2822() {
        assert_eq!(rfc2822(END), "Fri, 20 Nov 2026 00:00:00 +0000");
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    }

    #[test]
    fn the_sample_is_reproducible() {
        let (a, count) = mbox(&mut Rng(1));
        let (b, _) = mbox(&mut Rng(1));
        assert_eq!(a, b);
        assert!(count > 250, "{count}");
    }
}
