//! Runs a quietbox binary as a test subject: a clean environment (nothing from the developer's
//! shell leaks in), a temp `DATA_DIR`, `BIND_ADDR=127.0.0.1:0`, the bound address read from the
//! first stdout line, and stderr captured for log assertions.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The sample mailbox and calendar of the repository.
pub const SAMPLE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample");

/// A running binary; killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Its temp directory (`DATA_DIR` is `dir/data`).
    pub dir: tempfile::TempDir,
    logs: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Everything written to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The environment every test starts from: the sample data, a data dir under `dir`, port 0.
pub fn base_env(dir: &Path) -> Vec<(String, String)> {
    [
        ("DATA_DIR", dir.join("data").display().to_string()),
        ("LOCAL_MBOX", format!("{SAMPLE_DIR}/inbox.mbox")),
        ("LOCAL_ICS", format!("{SAMPLE_DIR}/calendar.ics")),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("SCHEDULER_ENABLED", "false".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `env` with `extra` applied on top (later values win).
pub fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

/// A command for `binary` with exactly `env`.
pub fn command(binary: &str, env: &[(String, String)]) -> Command {
    let mut command = Command::new(binary);
    command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Starts `binary` in `dir` with `env`, waiting for its `listening on` line.
pub fn spawn(binary: &str, dir: tempfile::TempDir, env: &[(String, String)]) -> Server {
    let mut child = command(binary, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let logs = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().expect("stderr");
    let sink = logs.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buffer) {
            if n == 0 {
                break;
            }
            if let Ok(mut logs) = sink.lock() {
                logs.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let Some(addr) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
        let _ = child.wait();
        std::thread::sleep(std::time::Duration::from_millis(50));
        panic!(
            "unexpected first line {line:?}; logs: {}",
            logs.lock().map(|l| l.clone()).unwrap_or_default()
        );
    };
    std::thread::spawn(move || for _ in stdout.lines() {});
    Server {
        child,
        base: format!("http://{addr}"),
        dir,
        logs,
    }
}
