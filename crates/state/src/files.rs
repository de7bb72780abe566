//! The JSON-file backend: one versioned file per collection in `DATA_DIR`.
//!
//! Every operation takes one advisory lock (`DATA_DIR/.state.lock`) shared by all processes —
//! exclusive for read-modify-write, shared for reads — so three binaries writing at once lose
//! nothing. One lock for all collections keeps export/import consistent and costs little: each
//! critical section is one small file read and at most one write.
//!
//! A write goes to a temp file in the same directory, is fsynced, renamed over the target, and
//! the directory is fsynced: a process killed at any moment leaves either the old file or the
//! new one, never a torn one. A file that does not parse, or whose `version` is newer than this
//! build reads, is never overwritten: the operation fails naming the file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use quietbox_core::store::StateError;

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u64 = 1;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = ".state.lock";

/// A collection stored in one file.
pub trait Collection: Serialize + DeserializeOwned + Default + Send + 'static {
    /// The file name inside the data directory.
    const FILE: &'static str;
}

/// Shared or exclusive access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Readers share the lock.
    Shared,
    /// A read-modify-write holds it alone.
    Exclusive,
}

/// Runs `f` while holding the data directory's advisory lock.
pub fn with_lock<R>(
    dir: &Path,
    access: Access,
    f: impl FnOnce() -> Result<R, StateError>,
) -> Result<R, StateError> {
    let path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    match access {
        Access::Shared => lock.lock_shared(),
        Access::Exclusive => lock.lock(),
    }
    .map_err(|e| io_error(&path, e))?;
    let result = f();
    // Dropping the file releases the lock; unlock explicitly to release it before the drop.
    let _ = lock.unlock();
    result
}

/// Reads a collection; a missing file is the empty collection.
pub fn read<C: Collection>(dir: &Path) -> Result<C, StateError> {
    let path = dir.join(C::FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(C::default()),
        Err(e) => return Err(io_error(&path, e)),
    };
    parse(&path, &bytes)
}

/// Parses a collection's file: a JSON object with a `version` this build reads, then the typed
/// content. The errors name `path`.
pub(crate) fn parse<C: Collection>(path: &Path, bytes: &[u8]) -> Result<C, StateError> {
    let corrupt = |detail: String| StateError::Corrupt {
        location: path.display().to_string(),
        detail,
    };
    // First only the version (the rest is skipped, not built), then straight into the typed
    // collection: no generic JSON tree of the whole file.
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => corrupt("not a JSON object".to_owned()),
        _ => corrupt(format!("not valid JSON ({e})")),
    })?;
    let version = probe
        .version
        .as_ref()
        .and_then(Value::as_u64)
        .ok_or_else(|| corrupt("missing or non-numeric \"version\" field".to_owned()))?;
    if version > FORMAT_VERSION {
        return Err(StateError::UnsupportedVersion {
            location: path.display().to_string(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("unexpected content ({e})")))
}

/// The `version` field of a JSON object; anything but an object is refused.
struct VersionProbe {
    version: Option<Value>,
}

impl<'de> serde::Deserialize<'de> for VersionProbe {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = VersionProbe;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<VersionProbe, A::Error> {
                let mut version = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "version" {
                        version = Some(map.next_value::<Value>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(VersionProbe { version })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Replaces a collection's file atomically (temp file, fsync, rename, fsync directory), mode 0600.
pub fn write<C: Collection>(dir: &Path, collection: &C) -> Result<(), StateError> {
    let path = dir.join(C::FILE);
    let mut value = serde_json::to_value(collection).map_err(|e| StateError::Io {
        location: path.display().to_string(),
        detail: format!("cannot serialize: {e}"),
    })?;
    if let Some(object) = value.as_object_mut() {
        object.insert("version".to_owned(), Value::from(FORMAT_VERSION));
    }
    let mut bytes = serde_json::to_vec_pretty(&value).map_err(|e| StateError::Io {
        location: path.display().to_string(),
        detail: format!("cannot serialize: {e}"),
    })?;
    bytes.push(b'\n');
    write_atomically(&path, &bytes)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` so that a crash leaves the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| io_error(&temp, e))?;
        file.write_all(bytes).map_err(|e| io_error(&temp, e))?;
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        fs::rename(&temp, path).map_err(|e| io_error(path, e))?;
        // The rename is durable only once the directory entry is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Removes temp files left by writers that died mid-write. Call under the exclusive lock: a
/// live writer holds the lock while its temp file exists.
pub fn remove_stale_temp_files(dir: &Path) -> Result<usize, StateError> {
    let mut removed = 0;
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates the data directory (mode 0700) if needed.
pub fn ensure_dir(dir: &Path) -> Result<PathBuf, StateError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
    }
    Ok(dir.to_path_buf())
}

pub(crate) fn io_error(path: &Path, error: std::io::Error) -> StateError {
    StateError::Io {
        location: path.display().to_string(),
        detail: error.to_string(),
    }
}
