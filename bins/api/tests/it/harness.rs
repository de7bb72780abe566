//! Spawns the binary with a clean environment, a temp `DATA_DIR` and `BIND_ADDR=127.0.0.1:0`,
//! reads the bound address from its first stdout line, and captures its logs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_quietbox-api");
pub const KEY: &str = "test-api-key-0123456789";
pub const SECRET: &str = "test-jwt-secret-0123456789abcdef";
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample");

pub struct Server {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    logs: Arc<Mutex<String>>,
    pub client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment every test starts from: hybrid auth, the sample data.
pub fn base_env(dir: &std::path::Path) -> Vec<(String, String)> {
    [
        ("AUTH_MODE", "hybrid".to_owned()),
        ("AGENT_API_KEY", KEY.to_owned()),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("DATA_DIR", dir.join("data").display().to_string()),
        ("LOCAL_MBOX", format!("{SAMPLE}/inbox.mbox")),
        ("LOCAL_ICS", format!("{SAMPLE}/calendar.ics")),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("SCHEDULER_ENABLED", "false".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn command(env: &[(String, String)]) -> Command {
    let mut command = Command::new(BIN);
    // Like ripgrep's harness: nothing from the developer's environment leaks in.
    command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    command
}

pub fn spawn(extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    spawn_in(dir, extra)
}

pub fn spawn_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Server {
    let mut env = base_env(dir.path());
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    let mut child = command(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = logs.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!(
                "unexpected first line {line:?}; logs: {}",
                logs.lock().unwrap()
            )
        })
        .to_owned();
    std::thread::spawn(move || for _ in stdout.lines() {});
    Server {
        child,
        base: format!("http://{addr}"),
        dir,
        logs,
        client: reqwest::Client::new(),
    }
}

impl Server {
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// An HS256 token with the given scopes.
pub fn token(scopes: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": "user-7", "tenant": "acme", "aud": "quietbox", "scope": scopes, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}
