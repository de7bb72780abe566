//! Parsed state files kept in memory, each with the identity of the file it was parsed from, so
//! that reading an unchanged file costs one `stat` instead of a read and a parse.
//!
//! Every writer (this process or another) replaces a file by renaming a new one over it
//! ([`crate::files::write_atomically`]), so each version of a file is a new inode. A cache entry
//! keeps the file it was parsed from open, which stops the file system from giving that inode
//! number to another file while the entry lives. So when a `stat` of the path shows the entry's
//! device and inode (and its size, modification and change times), the path still names the very
//! file the entry was parsed from, and the entry is its content. A file edited in place (by hand)
//! changes its size or times and is read again.
//!
//! Each entry gets a generation number, unique in the process and never reused, which
//! [`quietbox_core::store::StateStore::revision`] hands out: one generation, one content.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use quietbox_core::store::StateError;

use crate::files::{self, Collection};

/// Generations of every slot in the process: a number is never given twice.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// What identifies one version of a state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// No file: the collection is empty.
    Missing,
    /// The file with these attributes.
    File {
        dev: u64,
        ino: u64,
        len: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
}

impl Identity {
    fn of(meta: &Metadata) -> Self {
        Identity::File {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The identity of what `path` names now; `None` when it cannot be told (the caller reads).
    fn of_path(path: &Path) -> Option<Self> {
        match std::fs::metadata(path) {
            Ok(meta) => Some(Identity::of(&meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Identity::Missing),
            Err(_) => None,
        }
    }
}

struct Entry<C> {
    identity: Identity,
    generation: u64,
    value: Arc<C>,
    /// The file the value was parsed from, held open so that its inode number is not reused.
    _pinned: Option<File>,
}

/// The cached content of one collection.
pub(crate) struct Slot<C> {
    entry: Mutex<Option<Entry<C>>>,
}

impl<C> Default for Slot<C> {
    fn default() -> Self {
        Slot {
            entry: Mutex::new(None),
        }
    }
}

impl<C> fmt::Debug for Slot<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let generation = self.lock().as_ref().map(|e| e.generation);
        f.debug_struct("Slot")
            .field("generation", &generation)
            .finish()
    }
}

impl<C> Slot<C> {
    fn lock(&self) -> MutexGuard<'_, Option<Entry<C>>> {
        // An entry is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.entry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Collection> Slot<C> {
    /// The cached content and its generation, if `dir`'s file is still the one it was parsed
    /// from. Costs one `stat`; reads nothing.
    pub(crate) fn fresh(&self, dir: &Path) -> Option<(Arc<C>, u64)> {
        let identity = Identity::of_path(&dir.join(C::FILE))?;
        let entry = self.lock();
        let entry = entry.as_ref().filter(|e| e.identity == identity)?;
        Some((Arc::clone(&entry.value), entry.generation))
    }

    /// Reads and parses `dir`'s file (a missing file is the empty collection), and keeps it as
    /// the new entry. A file that does not parse is reported (naming it) and not kept.
    pub(crate) fn load(&self, dir: &Path) -> Result<(Arc<C>, u64), StateError> {
        let path = dir.join(C::FILE);
        let (identity, value, pinned) = match File::open(&path) {
            Ok(mut file) => {
                // The identity of the file actually read, not of whatever the path names later.
                let meta = file.metadata().map_err(|e| files::io_error(&path, e))?;
                let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
                file.read_to_end(&mut bytes)
                    .map_err(|e| files::io_error(&path, e))?;
                let value = files::parse::<C>(&path, &bytes)?;
                (Identity::of(&meta), value, Some(file))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (Identity::Missing, C::default(), None)
            }
            Err(e) => return Err(files::io_error(&path, e)),
        };
        let value = Arc::new(value);
        let mut entry = self.lock();
        // Taken under the slot's mutex: the generations a slot holds only grow.
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
        *entry = Some(Entry {
            identity,
            generation,
            value: Arc::clone(&value),
            _pinned: pinned,
        });
        Ok((value, generation))
    }
}
