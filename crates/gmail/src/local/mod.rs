//! The embedded default provider: mail from an mbox file (a Google Takeout export is one),
//! calendar from an `.ics` file, and sent mail written to `DATA_DIR/outbox/` (or sent over SMTP
//! when `SMTP_URL` is set). It lets quietbox do real work with no Google account.

mod ics;
mod mbox;
mod outbox;

pub use ics::{LocalCalendar, ParsedCalendar, busy_from_ics};
pub use mbox::{LocalMail, read_mbox, read_messages};
pub use outbox::Outbox;
