//! Repository automation, following the cargo-xtask convention: `cargo xtask <command>`.
//!
//! - `preflight`: what CI runs — fmt check, clippy with warnings denied, every test (whose build
//!   also builds the three binaries). Prints each step and stops at the first failure, then
//!   each step's time.
//!   Then the runbook's release checks (`release.rs`: `--help`, `check-config`, the deploy files,
//!   the configuration table) and `smoke`.
//! - `release-check`: only those release checks and `smoke`, on freshly built binaries.
//! - `smoke`: the canary checks against the three binaries on a temporary data directory.
//! - `demo`: runs the three binaries on the embedded default (local provider, JSON files).
//! - `config-doc [--check]`: writes (or checks) the operator guide's configuration table.
//! - `gen-sample`: regenerates `data/sample/` from a fixed seed.
//!
//! xtask keeps few dependencies on purpose: it must build before anything else.

mod bench;
mod config_doc;
mod demo;
mod fleet;
mod http;
mod release;
mod sample;
mod smoke;
mod tidy;
mod yaml;

use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("help");
    // Paths in here are relative to the workspace root, wherever cargo was started.
    std::env::set_current_dir(fleet::workspace_root())?;
    match command {
        "preflight" => preflight(),
        "demo" => demo::run(),
        "smoke" => smoke::run(&args[1..]),
        "release-check" => release_check(),
        "config-doc" => config_doc::run(
            &fleet::workspace_root(),
            args.get(1).is_some_and(|a| a == "--check"),
        ),
        "bench" => bench::run(&args[1..]),
        "gen-sample" => sample::generate(std::path::Path::new("data/sample")),
        _ => {
            eprintln!(
                "usage: cargo xtask <preflight|release-check|smoke [--bin-dir DIR]|demo|config-doc [--check]|bench|gen-sample>"
            );
            if command == "help" {
                Ok(())
            } else {
                bail!("unknown command {command:?}")
            }
        }
    }
}

/// Runs `program args…`, echoing it first; fails with the exit status on error.
fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}

fn preflight() -> Result<()> {
    let mut steps = Timings::default();
    steps.time("fmt", || run("cargo", &["fmt", "--all", "--check"]))?;
    steps.time("clippy", || {
        run(
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        )
    })?;
    if has_nextest() {
        // The same build nextest starts with (`cargo test --no-run`), on its own so that the
        // table tells building from running; nextest then finds everything fresh.
        steps.time("build the tests", || {
            run("cargo", &["test", "--workspace", "--no-run"])
        })?;
        steps.time("run the tests (nextest)", || {
            run(
                "cargo",
                &["nextest", "run", "--workspace", "--no-fail-fast"],
            )
        })?;
        // nextest does not run doctests.
        steps.time("doctests", || {
            run("cargo", &["test", "--workspace", "--doc"])
        })?;
    } else {
        steps.time("tests (cargo test)", || {
            run("cargo", &["test", "--workspace"])
        })?;
    }
    // The test build has just built the three binaries: every bin package has integration tests,
    // and cargo builds a package's binaries for them (`CARGO_BIN_EXE_*`, in target/debug). A
    // `cargo build --bin` here would resolve features without the dev-dependencies (tokio's
    // test-util, libc's extra_traits, ...) and so rebuild most of the dependency graph, only to
    // test binaries that differ from the tested ones in those features.
    let bin_dir = fleet::debug_bin_dir();
    if fleet::BINARIES
        .iter()
        .any(|name| !bin_dir.join(name).is_file())
    {
        steps.time("build the binaries", fleet::build_binaries)?;
    }
    steps.time("release checks and smoke", release_checks)?;
    steps.time("interop (Python SDKs)", interop)?;
    steps.report();
    eprintln!("preflight passed");
    Ok(())
}

/// Wall time per preflight step, printed as a table at the end, or when a step fails (on drop).
#[derive(Default)]
struct Timings {
    steps: Vec<(&'static str, std::time::Duration, bool)>,
    reported: bool,
}

impl Timings {
    /// Runs `step`, recording its time and whether it passed.
    fn time(&mut self, name: &'static str, step: impl FnOnce() -> Result<()>) -> Result<()> {
        let started = std::time::Instant::now();
        let result = step();
        self.steps.push((name, started.elapsed(), result.is_ok()));
        result
    }

    /// Prints the table (once).
    fn report(&mut self) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        eprintln!("preflight step times:");
        let mut total = std::time::Duration::ZERO;
        for (name, took, ok) in &self.steps {
            total += *took;
            let secs = took.as_secs();
            let failed = if *ok { "" } else { " (FAILED)" };
            eprintln!("  {:>3}:{:02}  {name}{failed}", secs / 60, secs % 60);
        }
        let secs = total.as_secs();
        eprintln!("  {:>3}:{:02}  total", secs / 60, secs % 60);
    }
}

impl Drop for Timings {
    fn drop(&mut self) {
        self.report();
    }
}

/// The runbook's release preflight on its own: builds the binaries, then [`release_checks`].
fn release_check() -> Result<()> {
    fleet::build_binaries()?;
    release_checks()?;
    eprintln!("release checks passed");
    Ok(())
}

/// `--help`, `check-config`, the deploy files and the configuration table, then the canary.
fn release_checks() -> Result<()> {
    release::run()?;
    smoke::run(&[
        "--bin-dir".to_owned(),
        fleet::debug_bin_dir().display().to_string(),
    ])
}

/// Protocol interop tests with the official Python SDKs, when `QUIETBOX_INTEROP_PYTHON` names a
/// Python that has them (`.ci/run` makes that virtual environment).
fn interop() -> Result<()> {
    let Ok(python) = std::env::var("QUIETBOX_INTEROP_PYTHON") else {
        eprintln!("QUIETBOX_INTEROP_PYTHON is not set: Python SDK interop tests not run here");
        return Ok(());
    };
    run(
        &python,
        &[
            "tests/interop/a2a_interop.py",
            "target/debug/quietbox-a2a",
            "data/sample",
        ],
    )?;
    run(
        &python,
        &[
            "tests/interop/mcp_interop.py",
            "target/debug/quietbox-mcp",
            "data/sample",
        ],
    )
}
