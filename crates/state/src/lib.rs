//! Durable state for quietbox behind core's [`StateStore`] port: atomic, advisory-locked JSON
//! files in `DATA_DIR` by default ([`FileStore`]), and PostgreSQL for deployments with more than
//! one node ([`PgStore`]). One conformance suite runs against both.
//!
//! # Decisions
//! - **Files by default.** A personal agent on one machine needs no database; the runbook asks
//!   operators to back up `sent_unsubscribe_links.json` and `unsubscribed_methods.json` and to keep
//!   them unchanged during rollback, which plain files make easy.
//! - **One advisory lock for all processes.** The three binaries share `DATA_DIR`; every
//!   read-modify-write happens inside an exclusive `flock` of `DATA_DIR/.state.lock`, so
//!   concurrent writers lose nothing.
//! - **Atomic replace, then fsync of the directory.** A writer killed at any instant leaves the
//!   old file or the new one; fsyncing the directory makes the rename itself durable.
//! - **Revisions on both backends.** Core keeps what it derived from the state (the candidates
//!   ranking) while the store reports the same revision. Files give the cache generation of
//!   the file's inode; PostgreSQL bumps a revision in the writing transaction and announces it
//!   with `NOTIFY`, and a write returns once every replica's listener has applied it.
//! - **Never overwrite what cannot be read.** A corrupt or newer-version file fails the operation
//!   (and start-up) with an error naming the file; its bytes stay as they were for the operator.
//!
//! # Example
//! ```
//! # async fn demo() -> Result<(), quietbox_core::store::StateError> {
//! use quietbox_core::store::{SentLink, StateStore};
//! let dir = std::env::temp_dir().join(format!("quietbox-doc-{}", std::process::id()));
//! let store = quietbox_state::FileStore::open(&dir)?;
//! let link = SentLink { link: "https://news.example.com/u/1".into(), sender: "news@example.com".into(), sent_at: chrono::Utc::now() };
//! assert!(store.insert_sent_link(link.clone()).await?);
//! assert!(!store.insert_sent_link(link).await?, "the same link is never recorded twice");
//! # std::fs::remove_dir_all(dir).ok();
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod cache;
mod file_store;
pub mod files;
mod pg_revisions;
mod pg_store;
mod rules;

pub use file_store::{FILES, FileStore};
pub use pg_store::PgStore;
pub use quietbox_core::store::StateStore;
pub use rules::{FINAL_TASK_STATES, task_may_become};

use quietbox_core::store::StateError;

/// Copies everything from one store to another (`state export` / `state import` between
/// backends). The target's previous content is replaced.
pub async fn transfer(from: &dyn StateStore, to: &dyn StateStore) -> Result<(), StateError> {
    to.import(from.export().await?).await
}
