//! Fuzzes the local provider's streamed mbox reader: any bytes give messages or an I/O error,
//! never a panic, and every message it returns has an id.

use quietbox_gmail::local::read_messages;

/// One fuzz input; panics when a property above does not hold.
pub fn run(data: &[u8]) {
    if let Ok(messages) = read_messages(data) {
        for message in messages {
            assert!(!message.id.is_empty());
        }
    }
}
