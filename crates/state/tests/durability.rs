//! The file backend under hostile conditions: many processes writing at once, writers killed
//! with SIGKILL mid-write, corrupt and newer-version files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use quietbox_core::store::{SentLink, StateError, StateStore};
use quietbox_state::FileStore;

const WRITER: &str = env!("CARGO_BIN_EXE_quietbox-state-writer");

fn spawn_writer(dir: &Path, id: usize, count: usize) -> Child {
    Command::new(WRITER)
        .arg(dir)
        .arg(id.to_string())
        .arg(count.to_string())
        .spawn()
        .unwrap()
}

/// Reads the links file directly (as an operator or a restarted process would) and groups the
/// record numbers by writer.
fn records_by_writer(dir: &Path) -> BTreeMap<String, BTreeSet<usize>> {
    let bytes = std::fs::read(dir.join("sent_unsubscribe_links.json")).unwrap_or_default();
    if bytes.is_empty() {
        return BTreeMap::new();
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).expect("the links file always parses");
    assert_eq!(value["version"], 1);
    let mut by_writer: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for link in value["links"].as_array().unwrap() {
        let url = link["link"].as_str().unwrap();
        let (host, number) = url.trim_start_matches("https://").split_once('/').unwrap();
        let fresh = by_writer
            .entry(host.to_owned())
            .or_default()
            .insert(number.parse().unwrap());
        assert!(fresh, "duplicate record {url}");
    }
    by_writer
}

#[test]
fn concurrent_processes_lose_no_read_modify_write() {
    const PROCESSES: usize = 6;
    const RECORDS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<Child> = (0..PROCESSES)
        .map(|id| spawn_writer(dir.path(), id, RECORDS))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let records = records_by_writer(dir.path());
    assert_eq!(records.len(), PROCESSES);
    let total: usize = records.values().map(BTreeSet::len).sum();
    assert_eq!(
        total,
        PROCESSES * RECORDS,
        "every one of {PROCESSES}×{RECORDS} records is there"
    );
    eprintln!(
        "cross-process: {PROCESSES} processes × {RECORDS} records = {total} records, none lost"
    );
}

#[test]
fn a_writer_killed_at_random_moments_leaves_a_parseable_prefix() {
    const CYCLES: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut killed_mid_run = 0;
    for cycle in 0..CYCLES {
        // xorshift: reproducible "random" kill delays between 0 and 40 ms.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 40_000);
        let mut child = spawn_writer(dir.path(), cycle, 10_000);
        std::thread::sleep(delay);
        sigkill(&mut child);
        let status = child.wait().unwrap();
        if !status.success() {
            killed_mid_run += 1;
        }
        let records = records_by_writer(dir.path());
        for (writer, numbers) in &records {
            let expected: BTreeSet<usize> = (0..numbers.len()).collect();
            assert_eq!(
                numbers, &expected,
                "writer {writer}'s records must be a prefix 0..n"
            );
        }
    }
    let records = records_by_writer(dir.path());
    let total: usize = records.values().map(BTreeSet::len).sum();
    eprintln!(
        "crash: {CYCLES} kill cycles ({killed_mid_run} killed mid-run), {total} records survived, all prefixes"
    );
    assert!(
        killed_mid_run > CYCLES / 2,
        "most writers must really be killed mid-run"
    );
    // The store opens afterwards (stale temp files are cleaned) and keeps working.
    let store = FileStore::open(dir.path()).unwrap();
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        })
        .count();
    assert_eq!(leftovers, 0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let link = SentLink {
            link: "https://after.example/0".into(),
            sender: "a@example.com".into(),
            sent_at: chrono::Utc::now(),
        };
        assert!(store.insert_sent_link(link).await.unwrap());
    });
}

/// SIGKILL through `Child::kill` (which sends SIGKILL on Unix), ignoring an already-exited child.
fn sigkill(child: &mut Child) {
    let _ = child.kill();
}

#[tokio::test]
async fn a_corrupt_file_is_reported_by_name_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unsubscribed_methods.json");
    let garbage = b"{\"version\": 1, \"entries\": [ {\"key\": tru";
    std::fs::write(&path, garbage).unwrap();
    let err = FileStore::open(dir.path()).unwrap_err();
    let StateError::Corrupt { location, detail } = &err else {
        panic!("expected Corrupt, got {err:?}")
    };
    assert!(
        location.ends_with("unsubscribed_methods.json"),
        "{location}"
    );
    assert!(detail.contains("not valid JSON"), "{detail}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "bytes untouched");

    // A store opened before the corruption refuses writes to that collection too.
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let path = dir.path().join("sent_unsubscribe_links.json");
    std::fs::write(&path, b"not json at all").unwrap();
    let link = SentLink {
        link: "https://x.example/1".into(),
        sender: "x@example.com".into(),
        sent_at: chrono::Utc::now(),
    };
    let err = store.insert_sent_link(link).await.unwrap_err();
    assert!(
        err.to_string().contains("sent_unsubscribe_links.json"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"not json at all");
}

#[tokio::test]
async fn a_newer_version_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sent_unsubscribe_links.json");
    let newer = br#"{"version": 7, "links": [], "shiny_new_field": true}"#;
    std::fs::write(&path, newer).unwrap();
    let err = FileStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StateError::UnsupportedVersion { found: 7, supported: 1, location } if location.ends_with("sent_unsubscribe_links.json")),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), newer);
}

#[tokio::test]
async fn a_file_without_a_version_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("incident.json"), br#"{"incident": null}"#).unwrap();
    let err = FileStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn new_files_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let link = SentLink {
        link: "https://x.example/1".into(),
        sender: "x@example.com".into(),
        sent_at: chrono::Utc::now(),
    };
    store.insert_sent_link(link).await.unwrap();
    for name in ["sent_unsubscribe_links.json", ".state.lock"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }
}
