//! Times a full scan of an mbox through the local provider (`LocalMail`, the code quietbox-api
//! runs), for `cargo xtask bench`. Prints one line: `messages=<n> seconds=<s> with_list_id=<n>`.
//!
//! Run with: `cargo run --release -p quietbox-gmail --example mbox_scan -- <path.mbox>`

use std::time::Instant;

use quietbox_core::ports::{MailProvider, NoProgress, ScanRequest};
use quietbox_gmail::local::{LocalMail, Outbox};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: mbox_scan <path.mbox>")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outbox = std::env::temp_dir().join("quietbox-bench-outbox");
    let mail = LocalMail::new("owner@example.org", &path, Outbox::folder(outbox));
    let start = Instant::now();
    let batch = runtime.block_on(mail.scan(&ScanRequest::default(), &NoProgress))?;
    let seconds = start.elapsed().as_secs_f64();
    // A figure that depends on the parsed headers, so the parse cannot be skipped and the
    // Python reference can print the same one.
    let with_list_id = batch
        .messages
        .iter()
        .filter(|m| m.list_id.is_some())
        .count();
    println!(
        "messages={} seconds={seconds:.4} with_list_id={with_list_id}",
        batch.messages.len()
    );
    Ok(())
}
