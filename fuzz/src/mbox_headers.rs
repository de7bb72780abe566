//! Fuzzes the local provider's streamed mbox reader: any bytes give messages or an I/O error,
//! never a panic, and every message it returns has an id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quietbox_gmail::local::read_messages;

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = read_messages(data) {
        for message in messages {
            assert!(!message.id.is_empty());
        }
    }
});
