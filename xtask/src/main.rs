//! Repository automation, following the cargo-xtask convention: `cargo xtask <command>`.
//!
//! - `preflight`: what CI runs — fmt check, clippy with warnings denied, every test, a build of
//!   the three binaries. Prints each step and stops at the first failure.
//! - `demo`: runs quietbox on the embedded default (local provider, JSON files).
//! - `gen-sample`: regenerates `data/sample/` from a fixed seed.
//!
//! xtask keeps few dependencies on purpose: it must build before anything else.

mod sample;
mod tidy;

use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("help");
    match command {
        "preflight" => preflight(),
        "demo" => demo(),
        "gen-sample" => sample::generate(std::path::Path::new("data/sample")),
        _ => {
            eprintln!("usage: cargo xtask <preflight|demo|gen-sample>");
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
    run("cargo", &["fmt", "--all", "--check"])?;
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
    )?;
    if has_nextest() {
        run(
            "cargo",
            &["nextest", "run", "--workspace", "--no-fail-fast"],
        )?;
        // nextest does not run doctests.
        run("cargo", &["test", "--workspace", "--doc"])?;
    } else {
        run("cargo", &["test", "--workspace"])?;
    }
    run(
        "cargo",
        &[
            "build",
            "--bin",
            "quietbox-api",
            "--bin",
            "quietbox-a2a",
            "--bin",
            "quietbox-mcp",
        ],
    )?;
    interop()?;
    eprintln!("preflight passed");
    Ok(())
}

/// Builds and runs quietbox-api on the embedded default: the sample mbox and calendar, JSON
/// state in `./data`. The API key is `AGENT_API_KEY` if set, else `demo-key`.
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

fn demo() -> Result<()> {
    run("cargo", &["build", "--bin", "quietbox-api"])?;
    let key = std::env::var("AGENT_API_KEY").unwrap_or_else(|_| "demo-key".to_owned());
    eprintln!("quietbox-api on the local sample; try:");
    eprintln!("  curl -H 'X-API-Key: {key}' localhost:8080/v1/unsubscribe/candidates");
    let status = Command::new("target/debug/quietbox-api")
        .env("AGENT_API_KEY", &key)
        .env(
            "MAIL_PROVIDER",
            std::env::var("MAIL_PROVIDER").unwrap_or_else(|_| "local".to_owned()),
        )
        .status()
        .context("could not start target/debug/quietbox-api")?;
    if !status.success() {
        bail!("quietbox-api exited with {status}");
    }
    Ok(())
}
