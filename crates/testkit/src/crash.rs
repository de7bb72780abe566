//! Crash consistency of a real binary (issue 11), shared by quietbox-api, quietbox-a2a and
//! quietbox-mcp: the binary is SIGKILLed at random moments while unsubscribes (RFC 8058
//! one-click to a loopback HTTPS [`Endpoint`]) and digest sends are in flight, many times over
//! one `DATA_DIR`. Afterwards every state file parses and carries its version, no one-click
//! endpoint was posted to twice, a final uninterrupted run records every requested unsubscribe
//! exactly once, and no unsubscribe link went out in two digests.
//!
//! Each protocol supplies a [`Client`] (how to ask a running binary for a scan, an unsubscribe,
//! a digest and the history); [`run`] does the rest. `QUIETBOX_CRASH_CYCLES` sets the number of
//! kill cycles ([`cycles`]), `QUIETBOX_CRASH_SEED` replays a run ([`seed`]; the seed is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::binary::{self, Server, with};
use crate::one_click::Endpoint;

/// The API key every crash run uses (`AUTH_MODE=api_key`).
pub const API_KEY: &str = crate::API_KEY;
/// New newsletter senders appended to the mailbox each cycle, so every digest has fresh links.
pub const SENDERS_PER_CYCLE: usize = 4;

/// The answer of one call: the operation's JSON (the REST body, the A2A artifact data, the MCP
/// structured content), or why there is none.
pub type Call = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;

/// How one protocol asks a running binary for the operations under test. Each call owns what it
/// needs, so it can run on its own task while the binary is killed.
pub trait Client: Send + Sync {
    /// `scan_inbox` (the whole mailbox).
    fn scan(&self) -> Call;
    /// `unsubscribe` from `sender`.
    fn unsubscribe(&self, sender: &str) -> Call;
    /// `unsubscribe_digest` with `send: true`.
    fn digest(&self) -> Call;
    /// `unsubscribe_history`.
    fn history(&self) -> Call;
}

/// Connects a [`Client`] to a binary listening at the given base URL (`http://127.0.0.1:port`).
pub type Connect =
    Box<dyn Fn(String) -> Pin<Box<dyn Future<Output = Arc<dyn Client>> + Send>> + Send + Sync>;

/// The binary under test and how to talk to it.
pub struct Target {
    /// Shown in the figures (`quietbox-a2a`).
    pub name: &'static str,
    /// Path of the binary (`env!("CARGO_BIN_EXE_...")`).
    pub binary: &'static str,
    /// Extra environment on top of [`run`]'s (api-key auth, loopback one-click, no rate limit).
    pub env: Vec<(String, String)>,
    /// Makes a client for a started process.
    pub connect: Connect,
}

/// `QUIETBOX_CRASH_CYCLES`, or `default`.
pub fn cycles(default: usize) -> usize {
    std::env::var("QUIETBOX_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `QUIETBOX_CRASH_SEED`, or one from the clock (odd, never zero).
pub fn seed() -> u64 {
    std::env::var("QUIETBOX_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
                | 1
        })
}

/// A small deterministic generator (xorshift): the seed is printed so a failing run replays.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Address, list id and one-click path of sender `index` introduced in `cycle`.
pub fn sender(cycle: usize, index: usize) -> (String, String, String) {
    (
        format!("news{index}@c{cycle}.example.com"),
        format!("list{index}.c{cycle}.example.com"),
        format!("/u/c{cycle}/s{index}"),
    )
}

/// Three unread mails (mbox text) of sender `index` of `cycle`, with a one-click link to
/// `endpoint`: enough volume to rank as a candidate.
pub fn newsletter(cycle: usize, index: usize, endpoint: &Endpoint) -> String {
    let (address, list, path) = sender(cycle, index);
    let mut messages = String::new();
    for day in 20..23 {
        messages.push_str(&format!(
            "From x@example.com Mon Nov {day} 09:00:00 2026\nFrom: \"News {cycle}-{index}\" <{address}>\nSubject: issue {day}\nDate: Mon, {day} Nov 2026 09:00:00 +0000\nMessage-ID: <{cycle}.{index}.{day}@crash.example.com>\nList-Id: <{list}>\nList-Unsubscribe: <{}>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\nX-Gmail-Labels: Inbox,Unread\n\nbody\n\n",
            endpoint.url(&path)
        ));
    }
    messages
}

/// Every `.json` file under `dir` (recursively, but not the outbox).
pub fn state_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("outbox") {
            found.extend(state_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            found.push(path);
        }
    }
    found
}

/// Asserts that every state file under `dir` parses and carries a numeric `version`; returns
/// how many there are.
pub fn assert_state_files_parse(dir: &Path, when: &str) -> usize {
    let files = state_files(dir);
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("{when}: cannot read {}: {e}", file.display()));
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{when}: {} does not parse: {e}\n{text}", file.display()));
        assert!(
            value.get("version").is_some_and(Value::is_u64),
            "{when}: {} has no version: {text}",
            file.display()
        );
    }
    files.len()
}

/// The decoded body text of a `.eml` (quoted-printable soft breaks and escapes undone; the digest
/// is ASCII, so a byte-level decode is enough to find its links).
pub fn decoded(raw: &str) -> String {
    let raw = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(byte) = raw
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The one-click links of `endpoint` that a mail names.
pub fn links_in(mail: &str, endpoint: &Endpoint) -> BTreeSet<String> {
    let prefix = endpoint.url("/u/");
    let text = decoded(mail);
    let mut links = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(&prefix) {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "/:._-".contains(c)))
            .unwrap_or(tail.len());
        links.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    links
}

/// What a crash run saw; `Display` prints the `FIGURE` line.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The binary.
    pub name: &'static str,
    /// Kill cycles.
    pub cycles: usize,
    /// The seed (`QUIETBOX_CRASH_SEED` replays it).
    pub seed: u64,
    /// Requests whose answer a kill cut off.
    pub cut: usize,
    /// Requests that got an answer before the kill.
    pub answered: usize,
    /// Distinct senders an unsubscribe was requested for.
    pub requested: usize,
    /// One-click POSTs the endpoint received.
    pub posted: usize,
    /// Unsubscribes a kill left `in_progress` (claimed; the POST may or may not have gone out).
    pub in_progress: usize,
    /// Digests in the outbox.
    pub digests: usize,
    /// Of which the final, uninterrupted run sent.
    pub final_digests: usize,
    /// Distinct links in digests.
    pub links: usize,
    /// Links claimed by a digest killed before its mail went out.
    pub claimed_unsent: usize,
    /// State files at the end.
    pub files: usize,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FIGURE crash consistency ({}): {} SIGKILL cycles (seed {}), {} requests cut by a kill, {} answered before it, {} unsubscribes requested, {} one-click POSTs (none twice), {} left in_progress by a kill, {} digests ({} in the final run) carrying {} distinct links (none twice), {} links claimed by a digest killed before sending, {} state files parse",
            self.name,
            self.cycles,
            self.seed,
            self.cut,
            self.answered,
            self.requested,
            self.posted,
            self.in_progress,
            self.digests,
            self.final_digests,
            self.links,
            self.claimed_unsent,
            self.files
        )
    }
}

/// Runs `cycles` kill cycles of `target` and the final checks; panics on any inconsistency.
pub async fn run(target: &Target, cycles: usize, seed: u64) -> Figures {
    eprintln!(
        "crash test ({}): {cycles} kill cycles, QUIETBOX_CRASH_SEED={seed}",
        target.name
    );
    let mut rng = Rng(seed);
    let endpoint = Endpoint::start(Duration::from_millis(20)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mbox = dir.path().join("inbox.mbox");
    std::fs::write(&mbox, "").expect("write the mbox");
    let env = with(
        binary::base_env(dir.path()),
        &[
            ("AUTH_MODE", "api_key"),
            ("AGENT_API_KEY", API_KEY),
            ("LOCAL_MBOX", &mbox.display().to_string()),
            ("QUIETBOX_TEST_UNSUBSCRIBE_LOOPBACK", "true"),
            // The kill cycles, not the limiter, are under test.
            ("RATE_LIMIT_PER_MIN", "100000"),
            ("RATE_LIMIT_BURST", "100000"),
        ],
    );
    let extra: Vec<(&str, &str)> = target
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let env = with(env, &extra);
    // A new process on the same `DATA_DIR` (its own temp dir holds nothing of value).
    let start = || binary::spawn(target.binary, tempfile::tempdir().expect("temp dir"), &env);
    let mut figures = Figures {
        name: target.name,
        cycles,
        seed,
        ..Figures::default()
    };
    // Sender address -> its one-click path, for every unsubscribe requested.
    let mut requested: BTreeMap<String, String> = BTreeMap::new();

    for cycle in 0..cycles {
        let mut text = std::fs::read_to_string(&mbox).expect("read the mbox");
        for index in 0..SENDERS_PER_CYCLE {
            text.push_str(&newsletter(cycle, index, &endpoint));
        }
        std::fs::write(&mbox, text).expect("write the mbox");
        let server: Server = start();
        let client = (target.connect)(server.base.clone()).await;
        if let Err(error) = client.scan().await {
            panic!("cycle {cycle}: scan failed: {error}");
        }

        // Half of this cycle's senders, plus a repeat of an earlier request (idempotent).
        let mut targets: Vec<(String, String)> = (0..SENDERS_PER_CYCLE / 2)
            .map(|i| {
                let (address, _, path) = sender(cycle, i * 2);
                (address, path)
            })
            .collect();
        if let Some((address, path)) = requested
            .iter()
            .nth(rng.below(requested.len() as u64) as usize)
        {
            targets.push((address.clone(), path.clone()));
        }
        let mut inflight = Vec::new();
        for (address, path) in &targets {
            requested.insert(address.clone(), path.clone());
            inflight.push(tokio::spawn(client.unsubscribe(address)));
        }
        inflight.push(tokio::spawn(client.digest()));

        // SIGKILL (Server's drop) at a random moment while those requests run.
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        drop(server);
        for request in inflight {
            match request.await {
                Ok(Ok(_)) => figures.answered += 1,
                _ => figures.cut += 1,
            }
        }
        assert_state_files_parse(&data, &format!("after kill {cycle}"));
    }

    // A final uninterrupted run: every request again, then digests until nothing is new.
    let server = start();
    let client = (target.connect)(server.base.clone()).await;
    if let Err(error) = client.scan().await {
        panic!("final scan failed: {error}");
    }
    for address in requested.keys() {
        if let Err(error) = client.unsubscribe(address).await {
            panic!("{address}: the final unsubscribe failed: {error}");
        }
    }
    loop {
        let body = match client.digest().await {
            Ok(body) => body,
            Err(error) => panic!("a final digest failed: {error}"),
        };
        if body["sent"] != true {
            break;
        }
        figures.final_digests += 1;
        assert!(
            figures.final_digests < 100,
            "the digest never runs dry: {body}"
        );
    }
    let history = match client.history().await {
        Ok(history) => history,
        Err(error) => panic!("history failed: {error}"),
    };
    drop(server);
    figures.files = assert_state_files_parse(&data, "at the end");

    // At most once: no one-click endpoint got two POSTs.
    for cycle in 0..cycles {
        for index in 0..SENDERS_PER_CYCLE {
            let (_, _, path) = sender(cycle, index);
            let hits = endpoint.hits(&path);
            assert!(hits <= 1, "{path} was posted to {hits} times");
        }
    }
    figures.posted = endpoint.total();
    figures.requested = requested.len();

    // None lost: each requested unsubscribe is recorded exactly once; a success was posted.
    let entries = history["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("unexpected history: {history}"));
    for (address, path) in &requested {
        let mine: Vec<&Value> = entries
            .iter()
            .filter(|e| e["key"]["sender"] == address.as_str())
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{address} recorded {} times: {history}",
            mine.len()
        );
        match mine[0]["status"].as_str() {
            Some("succeeded") => assert_eq!(endpoint.hits(path), 1, "{address}: {history}"),
            // Killed between the claim and its completion: the POST may or may not have gone
            // out, so at-most-once forbids a blind retry until the stale window has passed.
            Some("in_progress") => figures.in_progress += 1,
            other => panic!("{address}: status {other:?}: {history}"),
        }
    }

    // No link in two digests; every link that went out is recorded.
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(data.join("outbox"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        figures.digests += 1;
        let mail = std::fs::read_to_string(&path).expect("read a digest");
        for link in links_in(&mail, &endpoint) {
            if let Some(first) = seen.insert(link.clone(), path.clone()) {
                panic!(
                    "{link} went out in two digests: {} and {}",
                    first.display(),
                    path.display()
                );
            }
        }
    }
    let sent_file = data.join("sent_unsubscribe_links.json");
    let sent: Value = serde_json::from_str(
        &std::fs::read_to_string(&sent_file).expect("sent_unsubscribe_links.json exists"),
    )
    .expect("sent_unsubscribe_links.json parses");
    let recorded: Vec<String> = sent["links"]
        .as_array()
        .unwrap_or_else(|| panic!("unexpected shape: {sent}"))
        .iter()
        .filter_map(|l| l["link"].as_str().map(str::to_owned))
        .collect();
    let unique: BTreeSet<&String> = recorded.iter().collect();
    assert_eq!(
        unique.len(),
        recorded.len(),
        "a link recorded twice: {sent}"
    );
    for link in seen.keys() {
        assert!(
            unique.contains(link),
            "{link} went out in a digest but is not recorded: a later digest may repeat it"
        );
    }
    // A link recorded but in no digest was claimed by a digest killed before its mail went out:
    // at most once means it stays out of later digests. Counted, not failed.
    figures.claimed_unsent = recorded.iter().filter(|l| !seen.contains_key(*l)).count();
    figures.links = seen.len();
    figures
}
