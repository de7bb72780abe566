//! Replays each target's seeds, local corpus and deterministic mutations of its seeds.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Mutations run per seed file. Each is a few byte-level edits (flips, interesting bytes,
/// insertions, deletions, duplications, truncation, splices with another seed), the same ones on
/// every run.
const MUTANTS_PER_SEED: usize = 1000;

/// For `jsonrpc`, whose inputs go through the whole service (a valid `SendMessage` scans the
/// sample mailbox): 500 inputs take about a second in a debug build, 2,000 took 18 s.
const JSONRPC_MUTANTS_PER_SEED: usize = 250;

/// The files of `dir` (none when it does not exist), by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            Some((e.path().display().to_string(), bytes))
        })
        .collect();
    files.sort();
    files
}

/// xorshift64*: a fixed sequence per target, no dependency.
struct Rng(u64);

impl Rng {
    fn new(label: &str) -> Self {
        // FNV-1a of the label, never zero.
        let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Rng(hash | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that parsers of text formats treat specially.
const INTERESTING: &[u8] = b"\0\n\r\t \"'=:;,<>[]{}\\/@%+-.0\x7f\x80\xff";

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                let piece = out[at.min(end)..end].to_vec();
                out.splice(at..at, piece);
            }
            5 => out.truncate(at),
            _ => {
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
        }
    }
    out
}

/// Runs `run` on `input`; on a panic, fails naming the input and showing its start.
fn check(target: &str, what: &str, run: fn(&[u8]), input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
        let shown: String = String::from_utf8_lossy(input).chars().take(400).collect();
        panic!(
            "fuzz target {target} failed on {what} ({} bytes): {shown:?}",
            input.len()
        );
    }
}

fn replay(target: &str, run: fn(&[u8]), mutants_per_seed: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = files(&root.join("seeds").join(target));
    assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no seed");
    let corpus = files(&root.join("corpus").join(target));
    for (name, input) in seeds.iter().chain(&corpus) {
        check(target, name, run, input);
    }
    let mut rng = Rng::new(target);
    for i in 0..mutants_per_seed * seeds.len() {
        let (name, seed) = &seeds[i % seeds.len()];
        let other = &seeds[rng.below(seeds.len())].1;
        let input = mutate(&mut rng, seed, other);
        check(target, &format!("mutant {i} of {name}"), run, &input);
    }
}

#[test]
fn config_replays() {
    replay("config", crate::config::run, MUTANTS_PER_SEED);
}

#[test]
fn credentials_replays() {
    replay("credentials", crate::credentials::run, MUTANTS_PER_SEED);
}

#[test]
fn jsonrpc_replays() {
    replay("jsonrpc", crate::jsonrpc::run, JSONRPC_MUTANTS_PER_SEED);
}

#[test]
fn list_unsubscribe_replays() {
    replay(
        "list_unsubscribe",
        crate::list_unsubscribe::run,
        MUTANTS_PER_SEED,
    );
}

#[test]
fn mbox_headers_replays() {
    replay("mbox_headers", crate::mbox_headers::run, MUTANTS_PER_SEED);
}

#[test]
fn mutations_are_fixed_and_edit_the_seed() {
    let seed = b"KEY=value\nOTHER=1";
    let first: Vec<Vec<u8>> = {
        let mut rng = Rng::new("t");
        (0..50).map(|_| mutate(&mut rng, seed, b"x")).collect()
    };
    let mut rng = Rng::new("t");
    let again: Vec<Vec<u8>> = (0..50).map(|_| mutate(&mut rng, seed, b"x")).collect();
    assert_eq!(first, again);
    assert!(first.iter().filter(|m| m.as_slice() != seed).count() > 40);
}
