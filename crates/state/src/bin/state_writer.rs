//! Test helper, not an operator tool: appends numbered digest links to a `FileStore`, one
//! read-modify-write each. The state crate's cross-process and crash tests run several of these
//! at once and kill them at random moments.
//!
//! Usage: `quietbox-state-writer <data-dir> <writer-id> <count>`

use quietbox_core::store::{SentLink, StateStore};
use quietbox_state::FileStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, writer, count] = args.as_slice() else {
        return Err("usage: quietbox-state-writer <data-dir> <writer-id> <count>".into());
    };
    let count: usize = count.parse()?;
    let store = FileStore::open(dir)?;
    for i in 0..count {
        let link = SentLink {
            link: format!("https://w{writer}.example.com/{i}"),
            sender: format!("writer-{writer}@example.com"),
            sent_at: chrono::Utc::now(),
        };
        store.insert_sent_link(link).await?;
    }
    Ok(())
}
