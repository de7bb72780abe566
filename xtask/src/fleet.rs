//! Starts the three quietbox binaries side by side on one data directory and stops them again:
//! the shared part of `cargo xtask smoke` and `cargo xtask demo`.
//!
//! Each binary prints `listening on <addr>` as its first stdout line once bound (so port 0 works);
//! stopping sends SIGTERM, as an orchestrator would, and waits for a clean exit before resorting
//! to SIGKILL. Dropping a [`Fleet`] stops whatever still runs, so an early `?` leaves no orphan.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The three binaries, in the order of `BIND_ADDR`'s per-binary defaults.
pub const BINARIES: [&str; 3] = ["quietbox-api", "quietbox-a2a", "quietbox-mcp"];

/// How long a binary may take to bind, and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `cargo build` puts the debug binaries.
pub fn debug_bin_dir() -> PathBuf {
    target_dir().join("debug")
}

/// Where `cargo build --release` puts the release binaries (and `examples/`).
pub fn release_dir() -> PathBuf {
    target_dir().join("release")
}

/// `CARGO_TARGET_DIR`, or the workspace's `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the three binaries (a no-op when they are current).
pub fn build_binaries() -> Result<()> {
    let mut args = vec!["build"];
    for name in BINARIES {
        args.extend(["--bin", name]);
    }
    crate::run("cargo", &args)
}

/// A directory under the system temp dir, removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<tmp>/quietbox-<label>-<pid>-<nanos>`.
    pub fn new(label: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("quietbox-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a binary's stderr goes.
pub enum Logs {
    /// `<dir>/<binary>.log`, shown when something fails.
    Files(PathBuf),
    /// The terminal.
    Inherit,
}

/// One running binary.
pub struct Process {
    /// Its name, e.g. `quietbox-api`.
    pub name: &'static str,
    /// `http://<bound address>`.
    pub base: String,
    child: Child,
    log: Option<PathBuf>,
    stopped: Option<ExitStatus>,
}

impl Process {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The last `lines` lines of its log file, when it has one.
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(text) = self
            .log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return String::new();
        };
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then up to [`STOP_TIMEOUT`] for a clean exit, then SIGKILL. Returns the exit
    /// status and whether the exit was clean (status 0 within the timeout).
    pub fn stop(&mut self) -> (Option<ExitStatus>, bool) {
        if let Some(status) = self.stopped {
            return (Some(status), status.success());
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            // It had already exited on its own: that is not a clean stop.
            self.stopped = Some(status);
            return (Some(status), false);
        }
        // The shell's own `kill`: std has no SIGTERM, unsafe code is forbidden, and a shell is
        // on every machine where procps may not be.
        let signalled = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while signalled && Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = Some(status);
                return (Some(status), status.success());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        self.stopped = status;
        (status, false)
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.stopped
            .or_else(|| self.child.try_wait().ok().flatten())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The three binaries, running.
pub struct Fleet {
    /// In [`BINARIES`] order.
    pub processes: Vec<Process>,
}

impl Fleet {
    /// The process named `name`.
    pub fn get(&self, name: &str) -> Option<&Process> {
        self.processes.iter().find(|p| p.name == name)
    }

    /// Stops every process (in reverse start order); see [`Process::stop`].
    pub fn stop_all(&mut self) -> Vec<(&'static str, Option<ExitStatus>, bool, Duration)> {
        self.processes
            .iter_mut()
            .rev()
            .map(|p| {
                let started = Instant::now();
                let (status, clean) = p.stop();
                (p.name, status, clean, started.elapsed())
            })
            .collect()
    }
}

/// How to start the fleet.
pub struct Launch<'a> {
    /// Directory holding the three binaries.
    pub bin_dir: &'a Path,
    /// Variables every binary gets.
    pub env: Vec<(String, String)>,
    /// `BIND_ADDR` per binary, in [`BINARIES`] order.
    pub binds: [String; 3],
    /// Start from an empty environment (reproducible) instead of the caller's.
    pub clear_env: bool,
    /// Where stderr goes.
    pub logs: Logs,
}

/// Starts the three binaries and waits until each has bound its port. On any failure the ones
/// already started are stopped (by drop) and the error carries the failing one's log.
pub fn start(launch: &Launch) -> Result<Fleet> {
    let mut processes = Vec::new();
    for (name, bind) in BINARIES.into_iter().zip(&launch.binds) {
        processes.push(start_one(launch, name, bind)?);
    }
    Ok(Fleet { processes })
}

fn start_one(launch: &Launch, name: &'static str, bind: &str) -> Result<Process> {
    let program = launch.bin_dir.join(name);
    if !program.is_file() {
        bail!(
            "{} does not exist: build it first (cargo build --bin {name})",
            program.display()
        );
    }
    let mut command = Command::new(&program);
    if launch.clear_env {
        command.env_clear();
    }
    command
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .env("BIND_ADDR", bind)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let log = match &launch.logs {
        Logs::Files(dir) => {
            let path = dir.join(format!("{name}.log"));
            command.stderr(File::create(&path)?);
            Some(path)
        }
        Logs::Inherit => {
            command.stderr(Stdio::inherit());
            None
        }
    };
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = sender.send(line);
        // Keep draining so the binary never blocks on a full pipe.
        for _ in reader.lines() {}
    });
    let mut process = Process {
        name,
        base: String::new(),
        child,
        log,
        stopped: None,
    };
    let line = receiver.recv_timeout(START_TIMEOUT).unwrap_or_default();
    match line.trim().strip_prefix("listening on ") {
        Some(addr) => {
            // A wildcard bind is reached on loopback.
            let addr = addr
                .replace("0.0.0.0:", "127.0.0.1:")
                .replace("[::]:", "[::1]:");
            process.base = format!("http://{addr}");
            Ok(process)
        }
        None => {
            let status = process.stop().0;
            bail!(
                "{name} did not start (first line {line:?}, exit {status:?}):\n{}",
                process.log_tail(20)
            )
        }
    }
}
